//! Finding or starting a dynamodb server for tests (work in progress).
