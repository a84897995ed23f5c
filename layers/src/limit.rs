//! [`ConcurrencyLimit`]: a bound on the calls in flight through one layer.

use std::future::Future;
use std::sync::Arc;

use kv_trait::{check_max_concurrent_requests, KvError, RequestLimit, WithinLimit};

use crate::{Around, Call};

/// At most `max` calls in flight at once through this layer (and its clones, which share the
/// bound); the others wait their turn, first come, first served. kvkit's networked adapters
/// bound their own requests already (`max_concurrent_requests`); this bounds any backend, or
/// a part of an application's calls to one.
///
/// Waiting for a place has no limit of its own: put a [`Timeout`](crate::Timeout) outside
/// this layer to bound the wait and the call together, inside it to bound only the call.
///
/// ```
/// use kv_layers::{ConcurrencyLimit, LayerExt};
///
/// let store = kv_memory::MemoryBackend::new().with(ConcurrencyLimit::new(16)?);
/// assert_eq!(store.layer().max(), 16);
/// # Ok::<(), kv_trait::KvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    limit: Arc<RequestLimit>,
}

impl ConcurrencyLimit {
    /// At most `max` calls at once: 1 to 65,536, else `InvalidConfig`.
    pub fn new(max: usize) -> Result<Self, KvError> {
        check_max_concurrent_requests(max, usize::MAX)?;
        Ok(Self {
            limit: Arc::new(RequestLimit::new(max)),
        })
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.limit.max()
    }

    /// How many more calls could start now.
    pub fn available(&self) -> usize {
        self.limit.available()
    }
}

impl Around for ConcurrencyLimit {
    fn around<'a, T, F, Fut>(
        &'a self,
        _call: Call<'a>,
        mut run: F,
    ) -> impl Future<Output = Result<T, KvError>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, KvError>> + Send + 'a,
    {
        async move { run().await }.within(&self.limit)
    }
}
