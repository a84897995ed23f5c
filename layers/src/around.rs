//! [`Around`], what a layer does around each call, and [`Layered`], the backend that runs every
//! call of an inner backend through it.

use std::fmt::Debug;
use std::future::Future;
use std::num::NonZeroUsize;

use kv_trait::{async_trait, Capabilities, KeyPage, KvBackend, KvError, WatchStream};

use crate::Call;

/// What a layer does around each call of the backend it wraps: wait for a place, start a
/// timer, count, resend, inject a fault. [`Layered`] makes a [`KvBackend`] of it.
///
/// `run` starts the call on the inner backend; calling it again sends the call again (a
/// retry), and not calling it skips the store (a fault injected before the call). Implement
/// it with an `async fn`:
///
/// ```
/// use std::future::Future;
/// use kv_layers::{Around, Call, LayerExt};
/// use kv_trait::KvError;
///
/// /// Says when a write fails.
/// #[derive(Debug)]
/// struct WarnOnFailedWrites;
///
/// impl Around for WarnOnFailedWrites {
///     async fn around<'a, T, F, Fut>(&'a self, call: Call<'a>, mut run: F) -> Result<T, KvError>
///     where
///         T: Send + 'a,
///         F: FnMut() -> Fut + Send + 'a,
///         Fut: Future<Output = Result<T, KvError>> + Send + 'a,
///     {
///         let outcome = run().await;
///         if let (Err(err), true) = (&outcome, call.operation().is_write()) {
///             eprintln!("{} failed: {err}", call.operation());
///         }
///         outcome
///     }
/// }
///
/// let store = kv_memory::MemoryBackend::new().with(WarnOnFailedWrites);
/// ```
pub trait Around: Send + Sync + Debug {
    /// Runs `call`, whose inner call `run` starts, with this layer's behaviour around it.
    fn around<'a, T, F, Fut>(
        &'a self,
        call: Call<'a>,
        run: F,
    ) -> impl Future<Output = Result<T, KvError>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, KvError>> + Send + 'a;

    /// Called once when the layer is put around a backend, with what that backend declares
    /// (a layer that checks inputs needs its `max_value_bytes`).
    fn attach(&mut self, inner: &Capabilities) {
        let _ = inner;
    }

    /// The wrapped backend's watch stream, as this layer changes it (most change nothing: a
    /// subscription is not a call to time, resend or count).
    fn watch_stream(&self, events: WatchStream) -> WatchStream {
        events
    }

    /// What the wrapped backend declares, as this layer changes it (most change nothing).
    fn capabilities(&self, inner: Capabilities) -> Capabilities {
        inner
    }
}

/// A backend whose every call runs through a layer ([`Around`]) before it reaches `inner`.
///
/// Made by [`LayerExt::with`](crate::LayerExt::with); layers stack, the last one added
/// outermost.
#[derive(Debug, Clone)]
pub struct Layered<A, B> {
    around: A,
    inner: B,
}

impl<A: Around, B: KvBackend> Layered<A, B> {
    /// `inner`, with `around` around its every call.
    pub fn new(mut around: A, inner: B) -> Self {
        around.attach(&inner.capabilities());
        Self { around, inner }
    }

    /// The layer.
    pub fn layer(&self) -> &A {
        &self.around
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped backend, without the layer.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

#[async_trait]
impl<A: Around, B: KvBackend> KvBackend for Layered<A, B> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let inner = &self.inner;
        self.around.around(Call::Get(key), || inner.get(key)).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let inner = &self.inner;
        let call = Call::Set(key, value);
        self.around.around(call, || inner.set(key, value)).await
    }

    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        let inner = &self.inner;
        let call = Call::SetWithTtl(key, value, ttl_ns);
        let run = || inner.set_with_ttl(key, value, ttl_ns);
        self.around.around(call, run).await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let inner = &self.inner;
        self.around
            .around(Call::Delete(key), || inner.delete(key))
            .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        let inner = &self.inner;
        self.around
            .around(Call::Exists(key), || inner.exists(key))
            .await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let inner = &self.inner;
        let run = || inner.list_keys(prefix);
        self.around.around(Call::ListKeys(prefix), run).await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let inner = &self.inner;
        let run = || inner.increment(key, delta);
        self.around.around(Call::Increment(key, delta), run).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let inner = &self.inner;
        let call = Call::CompareAndSwap(key, expected, new);
        let run = || inner.compare_and_swap(key, expected, new);
        self.around.around(call, run).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let inner = &self.inner;
        let run = || inner.get_many(keys);
        self.around.around(Call::GetMany(keys), run).await
    }

    async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl_ns: Option<u64>,
    ) -> Result<(), KvError> {
        let inner = &self.inner;
        let run = || inner.set_many(entries, ttl_ns);
        self.around
            .around(Call::SetMany(entries, ttl_ns), run)
            .await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, KvError> {
        let inner = &self.inner;
        let run = || inner.delete_many(keys);
        self.around.around(Call::DeleteMany(keys), run).await
    }

    async fn list_keys_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        let inner = &self.inner;
        let call = Call::ListKeysPage(prefix, start_after, limit);
        let run = || inner.list_keys_page(prefix, start_after, limit);
        self.around.around(call, run).await
    }

    /// The inner backend's watch, its stream passed through the layer's
    /// [`Around::watch_stream`].
    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        Ok(self.around.watch_stream(self.inner.watch(prefix).await?))
    }

    fn capabilities(&self) -> Capabilities {
        self.around.capabilities(self.inner.capabilities())
    }
}
