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
//! An unknown scheme, a scheme whose feature is off, an unknown option or a malformed URL is
//! [`KvError::InvalidConfig`] naming the problem.
//!
//! This crate only opens stores: its dependencies are the adapters you enable. The `kvkit`
//! command line, which checks a URL against the contract (`kvkit check sqlite:///tmp/kv.db`)
//! and benchmarks it, is the `kvkit-cli` package.

mod adapters;
mod target;

use std::sync::Arc;

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
