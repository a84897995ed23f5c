#![doc = include_str!("../README.md")]

mod backend;
mod client;
mod config;
mod encoding;
mod error;
mod scripts;
mod server;
mod watch;

pub use backend::RedisBackend;
pub use config::{IncrementMode, RedisBackendBuilder, Topology};
pub use encoding::namespace_prefix;
