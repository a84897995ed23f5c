//! Any kvkit backend as zlayer-agent's pluggable [`zlayer_agent::kv::KvBackend`], so that a
//! host's [`KvStore`] (its "cluster mode") keeps its data in SQLite, RocksDB, Redis, DynamoDB,
//! PostgreSQL or etcd.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use kv_zlayer::ZlayerBackend;
//!
//! // Any kvkit backend: here one in memory; with the `kvkit` crate, `kvkit::open(url).await?`.
//! let store = ZlayerBackend::new(kv_memory::MemoryBackend::new()).into_store();
//! assert!(store.is_clustered());
//!
//! store.set_async("jobs/1", b"queued").await?;
//! assert_eq!(store.get_async("jobs/1").await?, Some(b"queued".to_vec()));
//! assert_eq!(store.increment_async("jobs/count", 5).await?, 5);
//! // Created only if absent, as KvStore's compare-and-swap promises.
//! assert!(store.compare_and_swap_async("jobs/owner", None, b"a").await?);
//! assert!(!store.compare_and_swap_async("jobs/owner", None, b"b").await?);
//! # Ok::<(), zlayer_agent::kv::KvError>(())
//! # }).unwrap();
//! ```
//!
//! Only the `*_async` methods of a [`KvStore`] reach the backend: its synchronous methods,
//! `clear` and its watch events keep working on the store's own in-memory map, as zlayer
//! documents for every pluggable backend. The README lists, point by point, where a kvkit
//! backend answers differently from that local map.

#![deny(missing_docs)]

mod error;

use std::fmt;
use std::sync::Arc;

use zlayer_agent::kv::{KvError as ZlayerError, KvStore};

pub use error::to_zlayer;

/// A kvkit backend `B` serving zlayer-agent's [`KvStore`]: every call goes to `B` unchanged
/// (keys, values, TTLs in nanoseconds, compare-and-swap with `None` for "absent"), and kvkit's
/// errors become zlayer's (see [`to_zlayer`]).
///
/// `B` is any [`kv_trait::KvBackend`]: an adapter's backend, or the
/// `Arc<dyn KvBackend>` that `kvkit::open` returns.
pub struct ZlayerBackend<B> {
    inner: B,
}

impl<B: kv_trait::KvBackend + 'static> ZlayerBackend<B> {
    /// Serves zlayer's calls from `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }

    /// A new [`KvStore`] in cluster mode on this backend:
    /// `KvStore::new().with_backend(Arc::new(self))`.
    pub fn into_store(self) -> KvStore {
        KvStore::new().with_backend(Arc::new(self))
    }

    /// The kvkit backend, for what zlayer's trait has no method for (batches, pages, a
    /// backend's own settings).
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Gives the kvkit backend back.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for ZlayerBackend<B> {
    // The inner backend's own `Debug`, which never shows a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZlayerBackend")
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait::async_trait]
impl<B: kv_trait::KvBackend + 'static> zlayer_agent::kv::KvBackend for ZlayerBackend<B> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ZlayerError> {
        self.inner.get(key).await.map_err(to_zlayer)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), ZlayerError> {
        self.inner.set(key, value).await.map_err(to_zlayer)
    }

    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), ZlayerError> {
        self.inner
            .set_with_ttl(key, value, ttl_ns)
            .await
            .map_err(to_zlayer)
    }

    async fn delete(&self, key: &str) -> Result<bool, ZlayerError> {
        self.inner.delete(key).await.map_err(to_zlayer)
    }

    async fn exists(&self, key: &str) -> Result<bool, ZlayerError> {
        self.inner.exists(key).await.map_err(to_zlayer)
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, ZlayerError> {
        self.inner.list_keys(prefix).await.map_err(to_zlayer)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, ZlayerError> {
        self.inner.increment(key, delta).await.map_err(to_zlayer)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ZlayerError> {
        self.inner
            .compare_and_swap(key, expected, new)
            .await
            .map_err(to_zlayer)
    }
}
