#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod store;

pub use backend::MemoryBackend;
pub use config::MemoryBackendBuilder;
