//! `kv-memory`: an in-memory [`KvBackend`](kv_trait::KvBackend), the reference implementation
//! of the kvkit contract.
//!
//! Pick it for tests, caches that may be lost on restart, and as the model a new adapter is
//! compared with. It keeps every rule of the contract (including exact nanosecond TTLs and
//! linearizable counters and CAS) and passes the whole `kv-conformance` suite.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use kv_trait::KvBackend;
//!
//! let store = kv_memory::MemoryBackend::new();
//! store.set_with_ttl("session", b"token", 30_000_000_000).await?; // 30 s
//! assert!(store.exists("session").await?);
//! assert!(store.compare_and_swap("lock", None, b"me").await?);
//! assert!(!store.compare_and_swap("lock", None, b"you").await?);
//! # Ok::<(), kv_trait::KvError>(())
//! # }).unwrap();
//! ```

mod backend;
mod config;
mod store;

pub use backend::MemoryBackend;
pub use config::MemoryBackendBuilder;
