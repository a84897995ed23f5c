//! `kv-rocksdb`: a [`KvBackend`](kv_trait::KvBackend) over an embedded RocksDB database.
//!
//! Pick it for large, write-heavy data sets on one machine: an LSM tree absorbs writes far
//! faster than a B-tree file, and its data can grow well beyond memory. One process opens a
//! path at a time (RocksDB's rule); inside that process any number of backends, in any
//! namespaces, share the open database.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use kv_trait::KvBackend;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("rocksdb://{}?namespace=app", dir.path().join("db").display());
//! let store = kv_rocksdb::RocksDbBackend::from_url(&url).await?;
//! store.set_with_ttl("session", b"token", 30_000_000_000).await?; // 30 s
//! assert!(store.compare_and_swap("lock", None, b"me").await?);
//! assert_eq!(store.increment("visits", 1).await?, 1);
//! # Ok::<(), kv_trait::KvError>(())
//! # }).unwrap();
//! ```
//!
//! # How it works
//!
//! - **Layout** ([format version](FORMAT_VERSION) 1): key = `namespace ++ 0x00 ++ key`;
//!   value = `format ++ deadline (u64 BE Unix ms, 0 = never) ++ bytes`. See the README.
//! - **Expiry**: an entry past its deadline is invisible to every operation at once; a
//!   compaction filter drops it from disk when RocksDB next compacts its file
//!   ([`RocksDbBackend::compact`] forces that).
//! - **Atomicity**: every write to a key takes that key's stripe of 1024 in-process locks, so
//!   read-modify-write (`increment`, CAS, `delete`'s report) is atomic without a global lock.
//!   This is sound because RocksDB admits one process per path. Striped locks were chosen over
//!   RocksDB's `TransactionDB`: the pessimistic transaction database takes the same kind of
//!   per-key lock inside its lock manager, but adds a transaction object, a lock table and
//!   deadlock detection to every operation; `OptimisticTransactionDB` would turn contention
//!   on a hot counter into retries. The `lock_stripes` example measures the striping.
//! - **Threads**: every RocksDB call runs on tokio's blocking pool.
//! - **Errors**: busy/timed-out conditions are `Unavailable`; a full disk is
//!   `QuotaExceeded`; another process holding the path is a `Backend` error naming the lock.

mod backend;
mod config;
mod encoding;
mod error;
mod registry;

pub use backend::RocksDbBackend;
pub use config::RocksDbBackendBuilder;
pub use encoding::FORMAT_VERSION;
