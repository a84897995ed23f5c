//! `kv-dynamodb`: a [`KvBackend`](kv_trait::KvBackend) over one Amazon DynamoDB table.
//!
//! Pick it when the data must be shared by many machines without running a server, with
//! strongly consistent reads, atomic counters and compare-and-swap, and exact TTLs. It keeps
//! the whole kvkit contract (the conformance suite passes against the moto emulator).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kv_trait::KvError> {
//! use kv_dynamodb::DynamoDbBackend;
//! use kv_trait::KvBackend;
//!
//! // Region and credentials from the standard AWS chain; the table is created if missing.
//! let store = DynamoDbBackend::from_url("dynamodb://app-kv?namespace=web&create_table=true").await?;
//! store.set_with_ttl("session/42", b"token", 30_000_000_000).await?; // 30 s
//! assert!(store.compare_and_swap("lock", None, b"me").await?);
//! assert_eq!(store.increment("visits", 1).await?, 1);
//! assert_eq!(store.list_keys("").await?, ["lock", "session/42", "visits"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Opening
//!
//! - [`DynamoDbBackend::from_client`]`(client, table)`: over an `aws_sdk_dynamodb::Client`
//!   you configured (its timeouts, if unset, get this crate's defaults).
//! - [`DynamoDbBackend::from_url`]`("dynamodb://TABLE?region=..&endpoint=..&namespace=..")`:
//!   region and credentials from the standard AWS chain unless the URL gives them; see
//!   [`DynamoDbBackendBuilder::from_url`] for every option.
//! - [`DynamoDbBackendBuilder`] for the namespace, endpoint, retries ([`RetryConfig`]),
//!   connect/attempt/operation timeouts, maximum value length and table creation.
//! - [`DynamoDbBackend::create_table_if_missing`] creates the table (on-demand billing),
//!   waits until it is `ACTIVE` and enables DynamoDB TTL on the `ttl` attribute.
//!
//! # Item layout
//!
//! One item per key, in one table with a String partition key `pk` and a String sort key `sk`:
//!
//! | attribute | type | holds |
//! | --- | --- | --- |
//! | `pk` | S | `ns#` + the namespace (the empty namespace is `ns#`) |
//! | `sk` | S | the key, exactly |
//! | `v` | B | the value (values written by `set`, `set_with_ttl`, CAS) |
//! | `n` | N | the counter (values written by `increment`), instead of `v` |
//! | `exp` | N | exact deadline, Unix milliseconds (only with a TTL) |
//! | `ttl` | N | the deadline in Unix seconds rounded up, for DynamoDB's TTL deletion |
//!
//! A namespace is one partition key, so `list_keys` is a `Query` of one partition, never a
//! `Scan` of the table: DynamoDB orders String sort keys by their UTF-8 bytes, which is exactly
//! the contract's order, and sort keys hold up to 1024 bytes, exactly the contract's longest
//! key. The price: a namespace's items form one item collection, served by one partition key
//! (adaptive capacity splits hot partitions by sort key range, so throughput is not capped at
//! one partition's, but each `list_keys` page is read from one place).
//!
//! # Requests per operation
//!
//! | operation | requests |
//! | --- | --- |
//! | `get`, `exists` | 1 `GetItem` (`ConsistentRead`) |
//! | `set`, `set_with_ttl` | 1 `PutItem` |
//! | `delete` | 1 `DeleteItem` (`ReturnValues=ALL_OLD`: the old item's deadline decides the answer) |
//! | `compare_and_swap` | 1 conditional `PutItem` (0 when `expected` is longer than any value) |
//! | `increment` | 1 conditional `UpdateItem` (`ADD`) when the key is absent or a counter; 2 when it holds a counter written by `set` (converted once) or an expired leftover |
//! | `list_keys` | 1 `Query` (`ConsistentRead`) per 1 MB page; 0 for a prefix over 1024 bytes |
//!
//! # Expiry
//!
//! The exact deadline (`exp`, Unix ms, rounded up: granularity 1 ms) is checked by every read
//! after fetching and by every conditional write inside its condition expression, against the
//! clock of the process making the call (so the clocks of the machines sharing a table should
//! be synchronised, e.g. by NTP). DynamoDB's own TTL deletes expired items within days, for
//! free; until then they are invisible, and `delete` removes them (returning `false`).
//!
//! # Errors and retries
//!
//! Throttling, timeouts, connection failures and HTTP 5xx are
//! [`KvError::Unavailable`](kv_trait::KvError::Unavailable) once the SDK's retries are spent;
//! see the `error` table in the README. The SDK retries reads as configured, but retries a
//! write only after failures that prove the request was not applied (throttling, a refused
//! connection): a blind retry of an `ADD` could count twice, and of a put could undo another
//! client's write. A write may therefore return `Unavailable` when it did happen (a lost
//! reply), which the contract allows.

mod backend;
mod config;
mod encoding;
mod error;
mod table;

pub use aws_sdk_dynamodb::config::retry::RetryConfig;
pub use backend::DynamoDbBackend;
pub use config::{
    DynamoDbBackendBuilder, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_VALUE_BYTES, DEFAULT_OPERATION_TIMEOUT, URL_SCHEME,
};
pub use encoding::{
    AWS_ITEM_LIMIT_BYTES, AWS_MAX_VALUE_BYTES, MAX_NAMESPACE_BYTES, NAMESPACE_PREFIX, TTL_ATTRIBUTE,
};
pub use table::TABLE_READY_TIMEOUT;

/// The SDK crates this one is built on, re-exported so callers use the same versions.
pub use aws_config;
pub use aws_sdk_dynamodb;
