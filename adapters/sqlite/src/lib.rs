//! SQLite adapter (work in progress).
