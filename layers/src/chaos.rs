//! [`Chaos`]: faults injected at configured rates, for testing an application's error
//! handling against any store without a network.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kv_trait::{Capabilities, KvError, WatchEvent, WatchStream, DEFAULT_MAX_VALUE_BYTES};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::{Around, Call};

/// Injects faults into the calls through it, each decided by a generator seeded with one
/// number, so a test that makes its calls in one order sees the same faults on every run:
///
/// - **unavailable** (rate [`unavailable`](Self::unavailable)): the call fails with
///   `Unavailable` *before* it reaches the store, which is left unchanged; the error says it
///   was not sent ([`KvError::is_not_sent`]), so [`Retry`](crate::Retry) may resend even a
///   write;
/// - **lost reply** (rate [`lost_reply`](Self::lost_reply), writes only): the write reaches
///   the store and takes effect, then the caller is told `Unavailable`, as when a connection
///   drops before the reply arrives;
/// - **latency** ([`latency`](Self::latency)): the call waits that long before it is sent;
/// - **lagged** ([`lagged`](Self::lagged)): a watch event is lost and the watcher gets
///   `WatchEvent::Lagged` in its place, as when a store's change stream drops events, so a
///   watcher's re-reading is tested too.
///
/// A call with invalid input always gets the contract's error for it, never a fault (a real
/// store checks the input before sending anything), and an empty batch, which never reaches a
/// store, never fails. [`stats`](Self::stats) counts what was injected.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use kv_layers::{Chaos, LayerExt};
/// use kv_trait::KvBackend;
///
/// let store = kv_memory::MemoryBackend::new().with(Chaos::new(7).lost_reply(1.0));
/// let err = store.set("k", b"v").await.unwrap_err();
/// assert!(err.is_retryable() && !err.is_not_sent()); // told it failed...
/// assert_eq!(store.inner().get("k").await?, Some(b"v".to_vec())); // ...but it happened
/// assert_eq!(store.layer().stats().lost_replies, 1);
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Chaos {
    unavailable: f64,
    lost_reply: f64,
    latency_rate: f64,
    latency: Duration,
    lagged: f64,
    max_value_bytes: usize,
    dice: Arc<Mutex<SmallRng>>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    calls: AtomicU64,
    unavailable: AtomicU64,
    lost_replies: AtomicU64,
    delayed: AtomicU64,
    lagged: AtomicU64,
}

/// What a [`Chaos`] layer has injected so far (its clones share the counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChaosStats {
    /// Calls with valid input that came through the layer.
    pub calls: u64,
    /// Calls failed with `Unavailable` before reaching the store.
    pub unavailable: u64,
    /// Writes applied, then reported `Unavailable`.
    pub lost_replies: u64,
    /// Calls delayed.
    pub delayed: u64,
    /// Watch events lost, each replaced by `Lagged`.
    pub lagged: u64,
}

/// The source of an injected `Unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("{0} (injected by the chaos layer)")]
pub struct InjectedFault(&'static str);

/// One call's faults, drawn together so the sequence depends only on the order of calls.
#[derive(Debug, Clone, Copy)]
struct Faults {
    unavailable: bool,
    lost_reply: bool,
    delayed: bool,
}

impl Chaos {
    /// A layer that injects nothing until rates are set, drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            unavailable: 0.0,
            lost_reply: 0.0,
            latency_rate: 0.0,
            latency: Duration::ZERO,
            lagged: 0.0,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            dice: Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))),
            counts: Arc::default(),
        }
    }

    /// Fails this share of calls (0.0 to 1.0) before they reach the store.
    pub fn unavailable(mut self, rate: f64) -> Self {
        self.unavailable = rate.clamp(0.0, 1.0);
        self
    }

    /// Applies this share of writes, then tells the caller `Unavailable`.
    pub fn lost_reply(mut self, rate: f64) -> Self {
        self.lost_reply = rate.clamp(0.0, 1.0);
        self
    }

    /// Delays this share of calls by `delay` before sending them.
    pub fn latency(mut self, rate: f64, delay: Duration) -> Self {
        self.latency_rate = rate.clamp(0.0, 1.0);
        self.latency = delay;
        self
    }

    /// Loses this share of watch events, each replaced by `WatchEvent::Lagged`.
    pub fn lagged(mut self, rate: f64) -> Self {
        self.lagged = rate.clamp(0.0, 1.0);
        self
    }

    /// What has been injected so far.
    pub fn stats(&self) -> ChaosStats {
        let read = |count: &AtomicU64| count.load(Ordering::Relaxed);
        ChaosStats {
            calls: read(&self.counts.calls),
            unavailable: read(&self.counts.unavailable),
            lost_replies: read(&self.counts.lost_replies),
            delayed: read(&self.counts.delayed),
            lagged: read(&self.counts.lagged),
        }
    }

    fn roll(&self) -> Faults {
        // A poisoned lock only means another caller panicked mid-roll; the dice are fine.
        let mut dice = self.dice.lock().unwrap_or_else(|e| e.into_inner());
        let mut hit = |rate: f64| dice.random::<f64>() < rate;
        Faults {
            unavailable: hit(self.unavailable),
            lost_reply: hit(self.lost_reply),
            delayed: hit(self.latency_rate),
        }
    }

    fn count(&self, count: &AtomicU64) {
        count.fetch_add(1, Ordering::Relaxed);
    }
}

impl Around for Chaos {
    async fn around<'a, T, F, Fut>(&'a self, call: Call<'a>, mut run: F) -> Result<T, KvError>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, KvError>> + Send + 'a,
    {
        if call.check(self.max_value_bytes).is_err() || call.is_empty_batch() {
            // The store's own answer: the contract's error, or an empty batch's success.
            return run().await;
        }
        self.count(&self.counts.calls);
        let faults = self.roll();
        if faults.delayed && !self.latency.is_zero() {
            self.count(&self.counts.delayed);
            tokio::time::sleep(self.latency).await;
        }
        if faults.unavailable {
            self.count(&self.counts.unavailable);
            return Err(KvError::not_sent(InjectedFault("store unreachable")));
        }
        let outcome = run().await;
        if outcome.is_ok() && faults.lost_reply && call.operation().is_write() {
            self.count(&self.counts.lost_replies);
            return Err(KvError::unavailable(InjectedFault("reply lost")));
        }
        outcome
    }

    fn attach(&mut self, inner: &Capabilities) {
        self.max_value_bytes = inner.max_value_bytes;
    }

    fn watch_stream(&self, events: WatchStream) -> WatchStream {
        if self.lagged == 0.0 {
            return events;
        }
        let (rate, dice, counts) = (
            self.lagged,
            Arc::clone(&self.dice),
            Arc::clone(&self.counts),
        );
        Box::pin(events.map(move |event| {
            if event == WatchEvent::Lagged {
                return event;
            }
            // A poisoned lock only means another caller panicked mid-roll; the dice are fine.
            let lost = dice
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .random::<f64>()
                < rate;
            if !lost {
                return event;
            }
            counts.lagged.fetch_add(1, Ordering::Relaxed);
            WatchEvent::Lagged
        }))
    }
}
