//! [`EachCall`]: a backend that runs each of the eight operations of another through one
//! function, which is what the kit's wrappers share (the fault checks' guard and pacing, the
//! cancellation check's drops).

use std::fmt::Debug;
use std::sync::Arc;

use futures::future::BoxFuture;
use kv_trait::{async_trait, Capabilities, KvBackend, KvError};

/// What a wrapper does around one call; `write` says whether the call may change the store.
pub(crate) trait AroundCall: Send + Sync + Debug + 'static {
    fn around<'a, T: Send + 'a>(
        &'a self,
        write: bool,
        call: BoxFuture<'a, Result<T, KvError>>,
    ) -> BoxFuture<'a, Result<T, KvError>>;
}

/// `inner`, with `around` around each of its calls; it declares what `inner` declares.
#[derive(Debug)]
pub(crate) struct EachCall<A> {
    pub(crate) inner: Arc<dyn KvBackend>,
    pub(crate) around: A,
}

#[async_trait]
impl<A: AroundCall> KvBackend for EachCall<A> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.around.around(false, self.inner.get(key)).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.around.around(true, self.inner.set(key, value)).await
    }
    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        let call = self.inner.set_with_ttl(key, value, ttl_ns);
        self.around.around(true, call).await
    }
    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.around.around(true, self.inner.delete(key)).await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.around.around(false, self.inner.exists(key)).await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.around
            .around(false, self.inner.list_keys(prefix))
            .await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.around
            .around(true, self.inner.increment(key, delta))
            .await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let call = self.inner.compare_and_swap(key, expected, new);
        self.around.around(true, call).await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
