//! [`Retry`]: sending a call again after `Unavailable`, where the contract allows it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_trait::{monotonic_now, KvError};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::{Around, Call, Operation};

/// Sends a call again after `Unavailable`, with exponential backoff and full jitter, within a
/// budget of attempts and of total time.
///
/// Only what the contract's lost-reply rule allows is resent (see [`Resend`](crate::Resend)):
/// reads (`get`, `exists`, `list_keys`, `get_many`, `list_keys_page`) after any
/// `Unavailable`; writes (`set`, `delete`, `increment`, `compare_and_swap`, the batch
/// writes) only after an `Unavailable` that never reached the store
/// ([`KvError::is_not_sent`]), since a resent `increment` could count twice and a resent
/// `set` could overwrite a newer value. Any other error is returned at once.
///
/// The wait before retry *n* (from 1) is a random duration up to
/// `min(max_backoff, first_backoff × 2^(n-1))` ("full jitter": many clients retrying after
/// one outage spread out instead of arriving together). A retry that would start after the
/// budget has run out is not made: the last error is returned. Each retry is a `tracing`
/// event at `DEBUG` (target `kv_layers::retry`) and, with [`on_retry`](Self::on_retry), a
/// call of the application's own function.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use kv_layers::{LayerExt, Retry, Timeout};
/// use kv_trait::KvBackend;
///
/// // Each attempt gets 500 ms; all of them together, with their waits, 3 s.
/// let store = kv_memory::MemoryBackend::new()
///     .with(Timeout::new(Duration::from_millis(500)))
///     .with(Retry::new(4).budget(Duration::from_secs(3)).on_retry(|event| {
///         eprintln!("retrying {} (attempt {}): {}", event.operation, event.attempt, event.error);
///     }));
/// assert_eq!(store.get("k").await?, None);
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Retry {
    max_retries: u32,
    first_backoff: Duration,
    max_backoff: Duration,
    budget: Duration,
    on_retry: Option<Arc<Observer>>,
    jitter: Arc<Mutex<SmallRng>>,
}

/// What [`Retry::on_retry`] calls.
type Observer = dyn Fn(&RetryEvent<'_>) + Send + Sync;

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_retries", &self.max_retries)
            .field("first_backoff", &self.first_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Default for Retry {
    /// Three retries, waits from 10 ms up to 1 s, 10 s in all.
    fn default() -> Self {
        Self::new(3)
    }
}

/// One retry about to be made, as [`Retry::on_retry`] is told it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a> {
    /// The operation being retried.
    pub operation: Operation,
    /// Which retry this is: 1 for the second attempt.
    pub attempt: u32,
    /// What the previous attempt failed with.
    pub error: &'a KvError,
    /// How long the layer waits before the attempt.
    pub backoff: Duration,
}

impl Retry {
    /// At most `max_retries` retries, with the default waits (10 ms, doubling, up to 1 s) and
    /// budget (10 s).
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            budget: Duration::from_secs(10),
            on_retry: None,
            jitter: Arc::new(Mutex::new(SmallRng::from_rng(&mut rand::rng()))),
        }
    }

    /// Waits start from at most `first` and double up to at most `max`.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// No retry starts later than `budget` after the call began.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Calls `observe` before each retry.
    pub fn on_retry(mut self, observe: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(observe));
        self
    }

    /// Draws the jitter from a generator seeded with `seed`, so a test sees the same waits on
    /// every run (the default seed is random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.jitter = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed)));
        self
    }

    /// The wait before retry `attempt` (from 1).
    fn wait_before(&self, attempt: u32) -> Duration {
        let doubled = self
            .first_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let ceiling = doubled.min(self.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        // A poisoned lock only means another caller panicked mid-draw; the generator is fine.
        let mut jitter = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
        Duration::from_nanos(jitter.random_range(0..=nanos))
    }
}

impl Around for Retry {
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
        async move {
            let started = monotonic_now();
            let mut attempt = 0;
            loop {
                let error = match run().await {
                    Ok(value) => return Ok(value),
                    Err(error) => error,
                };
                if attempt >= self.max_retries || !operation.resend().allows(&error) {
                    return Err(error);
                }
                attempt += 1;
                let backoff = self.wait_before(attempt);
                if monotonic_now().saturating_duration_since(started) + backoff > self.budget {
                    return Err(error);
                }
                tracing::debug!(
                    target: "kv_layers::retry",
                    op = operation.name(),
                    attempt,
                    ?backoff,
                    %error,
                    "retrying"
                );
                if let Some(observe) = &self.on_retry {
                    observe(&RetryEvent {
                        operation,
                        attempt,
                        error: &error,
                        backoff,
                    });
                }
                tokio::time::sleep(backoff).await;
            }
        }
    }
}
