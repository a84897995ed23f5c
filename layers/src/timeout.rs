//! [`Timeout`]: a bound on how long each call may take.

use std::future::Future;
use std::time::Duration;

use kv_trait::KvError;

use crate::{Around, Call, Operation};

/// Fails a call that has not finished within its limit with `Unavailable`
/// ([`TimedOut`] as its source), dropping the inner call's future.
///
/// A write that timed out may or may not have taken effect, as with any lost reply: every
/// adapter's operations are cancellation safe (the kit's `cancellation_linearizable` check
/// drops them at random points under concurrency and checks the history), so a dropped call
/// leaves the store as if it had run whole or not at all, though perhaps later. Placed inside
/// [`Retry`](crate::Retry) it bounds each attempt; the retry's budget bounds them all.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use kv_layers::{LayerExt, Operation, Timeout};
/// use kv_trait::KvBackend;
///
/// let store = kv_memory::MemoryBackend::new().with(
///     Timeout::new(Duration::from_secs(2)).for_operation(Operation::ListKeys, Duration::from_secs(30)),
/// );
/// store.set("k", b"v").await?;
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Timeout {
    limit: Duration,
    per_operation: Vec<(Operation, Duration)>,
}

impl Timeout {
    /// Every call gets at most `limit`.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            per_operation: Vec::new(),
        }
    }

    /// Calls of `operation` get `limit` instead (a listing of a large store may need longer
    /// than a `get`).
    pub fn for_operation(mut self, operation: Operation, limit: Duration) -> Self {
        self.per_operation.retain(|(known, _)| *known != operation);
        self.per_operation.push((operation, limit));
        self
    }

    /// The limit of `operation`.
    pub fn limit(&self, operation: Operation) -> Duration {
        self.per_operation
            .iter()
            .find(|(known, _)| *known == operation)
            .map_or(self.limit, |(_, limit)| *limit)
    }
}

/// The source of the `Unavailable` a [`Timeout`] returns.
#[derive(Debug, thiserror::Error)]
#[error("`{operation}` did not finish within {limit:?} (a write may or may not have taken effect)")]
pub struct TimedOut {
    /// The operation that timed out.
    pub operation: Operation,
    /// Its limit.
    pub limit: Duration,
}

impl Around for Timeout {
    fn around<'a, T, F, Fut>(
        &'a self,
        call: Call<'a>,
        mut run: F,
    ) -> impl Future<Output = Result<T, KvError>> + Send + 'a
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, KvError>> + Send + 'a,
    {
        let operation = call.operation();
        let limit = self.limit(operation);
        async move {
            match tokio::time::timeout(limit, run()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(KvError::unavailable(TimedOut { operation, limit })),
            }
        }
    }
}
