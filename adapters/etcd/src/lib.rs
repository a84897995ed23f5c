#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod counter;
mod encoding;
mod error;
mod lease;
#[cfg(feature = "tls")]
mod tls;
mod watch;

pub use backend::EtcdBackend;
pub use config::{
    EtcdBackendBuilder, TlsSettings, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT, LARGEST_MAX_CONCURRENT_REQUESTS,
    LARGEST_MAX_VALUE_BYTES,
};

/// The crate's version of etcd-client, re-exported so callers use the same one.
pub use etcd_client;
