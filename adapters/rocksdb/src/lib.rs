#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod encoding;
mod error;
mod registry;

pub use backend::RocksDbBackend;
pub use config::RocksDbBackendBuilder;
pub use encoding::FORMAT_VERSION;
