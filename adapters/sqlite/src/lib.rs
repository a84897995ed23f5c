#![doc = include_str!("../README.md")]

mod backend;
mod batch;
mod config;
mod encoding;
mod error;
mod pool;
mod watch;

pub use backend::SqliteBackend;
pub use config::{SqliteBackendBuilder, Synchronous};
pub use encoding::SCHEMA_VERSION;
