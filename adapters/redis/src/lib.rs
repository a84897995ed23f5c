#![doc = include_str!("../README.md")]

mod backend;
mod client;
mod config;
mod encoding;
mod error;
mod pool;
mod scripts;

pub use backend::RedisBackend;
pub use config::{RedisBackendBuilder, Topology};
pub use encoding::namespace_prefix;
