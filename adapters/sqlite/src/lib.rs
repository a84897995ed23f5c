//! `kv-sqlite`: a [`KvBackend`](kv_trait::KvBackend) over an embedded SQLite database, the
//! durable default of kvkit.
//!
//! Pick it when the data lives on one machine: it needs no server, survives restarts, and
//! keeps the whole contract (linearizable counters and compare-and-swap, TTLs, namespaces)
//! even between several processes sharing one file. SQLite is bundled, so nothing needs to
//! be installed.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use kv_sqlite::SqliteBackend;
//! use kv_trait::KvBackend;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}?namespace=app", dir.path().join("kv.db").display());
//! let store = SqliteBackend::from_url(&url).await?;
//! store.set_with_ttl("session", b"token", 30_000_000_000).await?; // 30 s
//! assert!(store.exists("session").await?);
//! assert!(store.compare_and_swap("lock", None, b"me").await?);
//! assert!(!store.compare_and_swap("lock", None, b"you").await?);
//! assert_eq!(store.increment("visits", 1).await?, 1);
//! # Ok::<(), kv_trait::KvError>(())
//! # }).unwrap();
//! ```
//!
//! # Opening
//!
//! - [`SqliteBackend::open`]`(path)`: a file, created if missing, with the defaults.
//! - [`SqliteBackend::open_in_memory`]`()`: a private in-memory database on a single
//!   connection (SQLite cannot share a private in-memory database between connections
//!   without table locks that fail instead of waiting).
//! - [`SqliteBackend::from_url`]`(url)`: `sqlite:///absolute/path.db`,
//!   `sqlite://relative/path.db` or `sqlite::memory:`, with options such as `?namespace=app`
//!   (see [`SqliteBackendBuilder::from_url`]).
//! - [`SqliteBackendBuilder`] for the namespace, busy timeout, [`Synchronous`] level, pool
//!   size and maximum value length.
//!
//! Constructors are `async`: they open connections on the backend's own threads, so they do
//! not block the executor even when another process holds the file's lock.
//!
//! # How it works
//!
//! - **Pool.** A fixed number of threads (4 by default) each own one connection and serve a
//!   shared queue; operations never run on the executor's threads, and statements are
//!   prepared once per connection and cached.
//! - **Transactions.** Every write runs in a `BEGIN IMMEDIATE` transaction, which takes the
//!   file's write lock up front and waits up to the busy timeout (5 s) for it. Read-modify-
//!   write operations are therefore atomic across connections and processes, and ordinary
//!   contention never surfaces as `SQLITE_BUSY`. Files use WAL mode, so reads do not wait
//!   for writers.
//! - **Group commit.** One connection of a backend writes at a time; writes that arrive
//!   while it commits wait in a queue, and the next transaction takes all of them (up to
//!   128), each in a savepoint of its own, with one commit (one sync) for the lot. Every
//!   caller is answered after that commit, so an acknowledged write is as durable as before;
//!   a write that fails is rolled back alone; a failed commit fails every write in it and
//!   none of them happened. Many concurrent writers therefore share syncs instead of queuing
//!   for one each.
//! - **Expiry.** Deadlines are stored as Unix milliseconds; an expired row is invisible to
//!   every operation at once and is deleted later: every 64th write deletes a batch of expired
//!   rows, and [`SqliteBackend::purge_expired`] deletes all of them.
//! - **Schema.** One `WITHOUT ROWID` table keyed by `(namespace, key)`, versioned by
//!   `PRAGMA user_version` ([`SCHEMA_VERSION`]); the crate README shows it and how to query
//!   it with the `sqlite3` shell.
//! - **Errors.** `SQLITE_BUSY`/`SQLITE_LOCKED` after the busy timeout are
//!   [`KvError::Unavailable`](kv_trait::KvError::Unavailable), `SQLITE_FULL` is
//!   [`KvError::QuotaExceeded`](kv_trait::KvError::QuotaExceeded), anything else
//!   [`KvError::Backend`](kv_trait::KvError::Backend). A failed write changed nothing.

mod backend;
mod batch;
mod config;
mod encoding;
mod error;
mod pool;

pub use backend::SqliteBackend;
pub use config::{SqliteBackendBuilder, Synchronous};
pub use encoding::SCHEMA_VERSION;
