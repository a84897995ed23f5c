//! Finding or starting a redis server for tests (work in progress).
