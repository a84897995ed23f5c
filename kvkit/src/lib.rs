//! `kvkit`: open any key-value store kvkit knows from a URL.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = kvkit::open("memory://").await?;
//! store.set("greeting", b"hello").await?;
//! assert_eq!(store.get("greeting").await?, Some(b"hello".to_vec()));
//! # Ok::<(), kvkit::KvError>(())
//! # }).unwrap();
//! ```
//!
//! The returned `Arc<dyn KvBackend>` keeps the whole kvkit contract (see [`kv_trait`]), whatever
//! the store. Like object_store's `parse_url` or OpenDAL's `from_uri`, the URL's scheme picks
//! the adapter and the rest configures it:
//!
//! | URL | store | cargo feature |
//! | --- | --- | --- |
//! | `memory://` | a new, private in-memory store | `memory` |
//! | `memory://NAME` | the in-memory store called `NAME` in this process (made on first use) | `memory` |
//! | `sqlite:///abs/path.db`, `sqlite://rel/path.db` | an SQLite file, created if missing | `sqlite` |
//! | `sqlite::memory:` | a new, private in-memory SQLite database | `sqlite` |
//! | `rocksdb:///abs/path`, `rocksdb://rel/path` | a RocksDB database directory, created if missing | `rocksdb` (off by default: its build needs libclang) |
//! | `redis://[user:pass@]host:port[/db]`, `rediss://...` | a Redis server (TLS: `redis-tls`) | `redis` |
//! | `redis+cluster://host:port[,host:port...]`, `rediss+cluster://...` | a Redis Cluster | `redis` |
//! | `dynamodb://TABLE?region=..&endpoint=..` | a DynamoDB table | `dynamodb` |
//! | `postgres://user:pass@host[:port]/db`, `postgresql://...` | a table in a PostgreSQL database (TLS: `postgres-tls`) | `postgres` |
//! | `etcd://[user:pass@]host:port[,host:port...]` | an etcd cluster (TLS: `etcd-tls`) | `etcd` (off by default: its build needs protoc) |
//!
//! Every URL takes `?namespace=NAME`: backends with different namespaces share the store
//! without seeing each other's keys. Adapters take further options of their own (see each
//! adapter crate's docs). Two `open` calls on the same file, directory, server or named store
//! are two handles on one store, which is how two parts (or, for SQLite files and servers, two
//! processes) of one application share it; `memory://` and `sqlite::memory:` are new and
//! private on every call.
//!
//! # Layers
//!
//! Every URL also takes options that put [`kv_layers`] around the store, whatever the
//! adapter (`redis://127.0.0.1?timeout=500ms&retries=3&metrics=sessions`):
//!
//! | option | layer |
//! | --- | --- |
//! | `timeout=DURATION` (`500ms`, `2s`) | [`Timeout`](kv_layers::Timeout): each attempt of each call |
//! | `retries=N`, `retry_budget=DURATION` | [`Retry`](kv_layers::Retry): N retries within the budget (10 s by default), only where the lost-reply rule allows |
//! | `concurrency=N` | [`ConcurrencyLimit`](kv_layers::ConcurrencyLimit): at most N calls at once |
//! | `metrics=NAME` | [`Metrics`](kv_layers::Metrics), labelled `store=NAME` |
//! | `chaos_unavailable=RATE`, `chaos_lost_reply=RATE`, `chaos_latency=DURATION`, `chaos_latency_rate=RATE`, `chaos_lagged=RATE`, `chaos_seed=N` | [`Chaos`](kv_layers::Chaos): injected faults for tests (rates from 0 to 1; a latency alone delays every call; `chaos_lagged` loses watch events, each replaced by `Lagged`) |
//!
//! They stack in one order: chaos innermost, then the limit, the timeout, the retries, and
//! metrics outermost. For another order, or a layer of your own, use
//! [`LayerExt::with`](kv_layers::LayerExt::with) on what `open` returns.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = kvkit::open("memory://?timeout=2s&retries=3&metrics=cache").await?;
//! store.set("k", b"v").await?;
//! let err = kvkit::open("memory://?timeout=2").await.unwrap_err();
//! assert!(err.to_string().contains("expected a duration with its unit"));
//! # Ok::<(), kvkit::KvError>(())
//! # }).unwrap();
//! ```
//!
//! An unknown scheme, a scheme whose feature is off, an unknown option or a malformed URL is
//! [`KvError::InvalidConfig`] naming the problem.
//!
//! This crate only opens stores: its dependencies are the adapters you enable. The `kvkit`
//! command line, which checks a URL against the contract (`kvkit check sqlite:///tmp/kv.db`)
//! and benchmarks it, is the `kvkit-cli` package.

mod adapters;
mod layers;
mod target;

use std::sync::Arc;

pub use kv_layers;
pub use kv_trait;
pub use kv_trait::{KvBackend, KvError};
pub use target::Target;

/// Opens the store at `url`. See the [crate docs](crate) for the URL forms.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let err = kvkit::open("carrier-pigeon://loft").await.unwrap_err();
/// assert!(err.to_string().contains("carrier-pigeon"));
/// # });
/// ```
pub async fn open(url: &str) -> Result<Arc<dyn KvBackend>, KvError> {
    Target::parse(url)?.open().await
}
