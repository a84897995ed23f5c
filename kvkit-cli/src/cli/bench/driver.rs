//! What a benchmark drives: a kvkit adapter, or a store's raw client doing the same work.

use std::future::Future;
use std::sync::Arc;

use kv_trait::{KvBackend, KvError};

/// The operations every side of a comparison runs. Native `async fn`s (no boxing), so a raw
/// client pays nothing for this trait; the adapter side pays what any user of
/// `Arc<dyn KvBackend>` pays.
pub(crate) trait Driver: Send + Sync + 'static {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, KvError>> + Send;

    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<(), KvError>> + Send;

    fn increment(&self, key: &str, delta: i64)
        -> impl Future<Output = Result<i64, KvError>> + Send;

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> impl Future<Output = Result<bool, KvError>> + Send;

    /// The values of `keys`, in the order asked: one batch call (the store's own batch read,
    /// on the raw side).
    fn get_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, KvError>> + Send;

    /// Writes every `(key, value)` of `entries`, without a TTL: one batch call (the store's
    /// own batch write, on the raw side).
    fn set_many(
        &self,
        entries: &[(&str, &[u8])],
    ) -> impl Future<Output = Result<(), KvError>> + Send;

    /// The whole trait, for the operations only the mixed workload runs; `None` for a raw
    /// client, which implements just the six above.
    fn backend(&self) -> Option<&dyn KvBackend>;

    /// Removes `keys` (everything the run wrote), and whatever else the side set up.
    fn clean_up(&self, keys: Vec<String>) -> impl Future<Output = Result<(), KvError>> + Send;
}

/// A kvkit adapter, used as an application uses it: through `Arc<dyn KvBackend>`.
pub(crate) struct AdapterDriver(pub(crate) Arc<dyn KvBackend>);

impl Driver for AdapterDriver {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.0.set(key, value).await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.0.increment(key, delta).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.0.compare_and_swap(key, expected, new).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.0.get_many(keys).await
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        self.0.set_many(entries, None).await
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        Some(&*self.0)
    }

    async fn clean_up(&self, _: Vec<String>) -> Result<(), KvError> {
        // The run has its own namespace: delete whatever is in it, including what the mixed
        // workload wrote with TTLs. Deleting an expired leftover removes it too.
        for key in self.0.list_keys("").await? {
            self.0.delete(&key).await?;
        }
        Ok(())
    }
}
