//! A bound on one backend's requests in flight (`max_concurrent_requests`), shared by its
//! clones: a burst of calls on one handle waits here, in the client, for a place, and only
//! then is sent, with its request timeout starting once it has one.
//!
//! Without a bound a burst of thousands of calls reaches the store's client at once. Every
//! one of them then starts its timeout while it queues behind the others (in a Redis Cluster
//! client's one routing task, in an HTTP pool opening a connection per request, in etcd's
//! apply queue, which refuses requests once it lags), so calls time out that the store would
//! have answered in milliseconds. Waiting for a place is bounded too: every holder of a place
//! is itself under a timeout, so the queue moves.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use kv_trait::{RequestLimit, WithinLimit};
//!
//! let limit = RequestLimit::new(2);
//! let answer = async { 42 }.within(&limit).await;
//! assert_eq!(answer, 42);
//! assert_eq!(limit.available(), 2);
//! # });
//! ```

use std::future::Future;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::KvError;

/// The most places any backend accepts: beyond it a bound bounds nothing a store could serve.
pub const LARGEST_MAX_CONCURRENT_REQUESTS: usize = 65_536;

/// Checks a configured `max_concurrent_requests`: 1 to `largest` (at most
/// [`LARGEST_MAX_CONCURRENT_REQUESTS`]); else `InvalidConfig` saying so.
///
/// ```
/// use kv_trait::{check_max_concurrent_requests, KvError};
/// assert!(check_max_concurrent_requests(64, 4096).is_ok());
/// let err = check_max_concurrent_requests(0, 4096).unwrap_err();
/// assert!(matches!(err, KvError::InvalidConfig(_)));
/// assert!(err.to_string().contains("between 1 and 4096"));
/// ```
pub fn check_max_concurrent_requests(max: usize, largest: usize) -> Result<(), KvError> {
    let largest = largest.min(LARGEST_MAX_CONCURRENT_REQUESTS);
    if (1..=largest).contains(&max) {
        return Ok(());
    }
    Err(KvError::InvalidConfig(format!(
        "max_concurrent_requests is {max}; it must be between 1 and {largest}"
    )))
}

/// The places of one backend's requests in flight. Share it between clones (behind the
/// backend's `Arc`).
#[derive(Debug)]
pub struct RequestLimit {
    places: Semaphore,
    max: usize,
}

/// A place among a backend's requests in flight, held until dropped.
#[derive(Debug)]
#[must_use = "the place is given up when dropped"]
pub struct Place<'a> {
    // `None` only if the semaphore were closed, which `RequestLimit` never does: the request
    // then goes unbounded rather than failing.
    _permit: Option<SemaphorePermit<'a>>,
}

impl RequestLimit {
    /// `max` places (at least one). Check a configured value with
    /// [`check_max_concurrent_requests`] first.
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, LARGEST_MAX_CONCURRENT_REQUESTS);
        Self {
            places: Semaphore::new(max),
            max,
        }
    }

    /// How many places there are.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many places are free now.
    pub fn available(&self) -> usize {
        self.places.available_permits()
    }

    /// Waits for a place (first come, first served). A caller holding a place must not wait
    /// for a second one: with every place so held, both would wait forever.
    pub async fn place(&self) -> Place<'_> {
        Place {
            _permit: self.places.acquire().await.ok(),
        }
    }
}

/// Sending a request once it has a place among its backend's requests in flight.
pub trait WithinLimit: Future + Sized + Send {
    /// This request, started once `limit` has a place free, which it holds until the answer
    /// is in (resends included). Start the request's timeout inside it, so that the wait for
    /// a place does not count.
    fn within<'a>(self, limit: &'a RequestLimit) -> impl Future<Output = Self::Output> + Send + 'a
    where
        Self: 'a;
}

impl<F> WithinLimit for F
where
    F: Future + Send,
    F::Output: Send,
{
    // Written out rather than `async fn`: the trait promises `Send`, which the `async_trait`
    // methods that await it need, and clippy's rewrite would not state it.
    #[allow(clippy::manual_async_fn)]
    fn within<'a>(self, limit: &'a RequestLimit) -> impl Future<Output = F::Output> + Send + 'a
    where
        Self: 'a,
    {
        async move {
            let _place = limit.place().await;
            self.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_requests_run_at_once_than_there_are_places() {
        let limit = Arc::new(RequestLimit::new(3));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (limit, running, most) = (limit.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    async {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                    .within(&limit)
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(limit.available(), 3);
    }

    #[test]
    fn a_limit_has_at_least_one_place_and_at_most_the_largest() {
        assert_eq!(RequestLimit::new(0).max(), 1);
        assert_eq!(
            RequestLimit::new(usize::MAX).max(),
            LARGEST_MAX_CONCURRENT_REQUESTS
        );
        assert!(
            check_max_concurrent_requests(LARGEST_MAX_CONCURRENT_REQUESTS + 1, usize::MAX).is_err()
        );
        assert!(check_max_concurrent_requests(1, 1).is_ok());
    }
}
