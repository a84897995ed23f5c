#![doc = include_str!("../README.md")]

mod backend;
mod batch;
mod config;
mod encoding;
mod error;
mod table;

pub use aws_sdk_dynamodb::config::retry::RetryConfig;
pub use backend::DynamoDbBackend;
pub use config::{
    DynamoDbBackendBuilder, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_VALUE_BYTES, DEFAULT_OPERATION_TIMEOUT,
    URL_SCHEME,
};
pub use encoding::{
    AWS_ITEM_LIMIT_BYTES, AWS_MAX_VALUE_BYTES, MAX_NAMESPACE_BYTES, NAMESPACE_PREFIX, TTL_ATTRIBUTE,
};
pub use table::{TtlDeletion, TABLE_READY_TIMEOUT};

/// The SDK crates this one is built on, re-exported so callers use the same versions.
pub use aws_config;
pub use aws_sdk_dynamodb;
