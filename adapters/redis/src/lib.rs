//! redis adapter (work in progress).
