//! `kv-layers`: behaviour around any [`KvBackend`], one layer at a time: timeouts, retries,
//! a bound on calls in flight, metrics, and injected faults for tests.
//!
//! Each layer is an [`Around`], which [`LayerExt::with`] puts around a backend; the result is
//! a [`KvBackend`] again, so layers stack (the last one added is the outermost) and anything
//! that takes a backend takes a layered one. Every layer keeps the kvkit contract: the
//! conformance kit passes around each of them and around all of them at once, on every
//! adapter (this crate's `tests/`).
//!
//! | layer | what it does |
//! | --- | --- |
//! | [`Timeout`] | fails a call that takes longer than its limit with `Unavailable` |
//! | [`Retry`] | resends after `Unavailable` with backoff and jitter, where the lost-reply rule allows |
//! | [`ConcurrencyLimit`] | at most N calls in flight; the others wait their turn |
//! | [`Metrics`] | counts, errors by kind, latencies and calls in flight, through the `metrics` facade |
//! | [`Chaos`] | injects `Unavailable`, lost replies and latency at set rates, from a seed |
//! | [`Prefixed`] | every key under a prefix: a namespace for a backend without one |
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use kv_layers::{LayerExt, Metrics, Retry, Timeout};
//! use kv_trait::KvBackend;
//!
//! // Each attempt bounded by 2 s, up to three retries, every call counted.
//! let store = kv_memory::MemoryBackend::new()
//!     .with(Timeout::new(Duration::from_secs(2)))
//!     .with(Retry::new(3))
//!     .with(Metrics::new("sessions"));
//! store.set("user/1", b"ada").await?;
//! assert_eq!(store.get("user/1").await?, Some(b"ada".to_vec()));
//! # Ok::<(), kv_trait::KvError>(())
//! # }).unwrap();
//! ```
//!
//! # Order
//!
//! A call passes the layers from the outermost in. Put [`Retry`] outside [`Timeout`] to
//! bound each attempt (and the retry's budget all of them), [`Metrics`] outermost to measure
//! what the application sees, or innermost to count what reaches the store, and [`Chaos`]
//! innermost, where the store would fail.
//!
//! `kvkit::open` builds the same stack from URL options (`?timeout=2s&retries=3`); see the
//! kvkit crate.
//!
//! # Writing a layer
//!
//! Implement [`Around`]: one function that gets each [`Call`] (the operation and its inputs)
//! and a closure that starts it on the inner backend, to call once, again, or not at all.

#![deny(missing_docs)]

mod around;
mod call;
mod chaos;
mod limit;
mod metrics;
mod prefix;
mod retry;
mod timeout;

pub use around::{Around, Layered};
pub use call::{Call, Operation, Resend};
pub use chaos::{Chaos, ChaosStats, InjectedFault};
pub use limit::ConcurrencyLimit;
pub use metrics::{Metrics, CALLS, CALLS_IN_FLIGHT, CALL_DURATION};
pub use prefix::Prefixed;
pub use retry::{Retry, RetryEvent};
pub use timeout::{TimedOut, Timeout};

use kv_trait::KvBackend;

/// Putting layers around a backend: `store.with(Timeout::new(..)).with(Retry::new(3))`.
pub trait LayerExt: KvBackend + Sized {
    /// This backend with `layer` around every call.
    fn with<A: Around>(self, layer: A) -> Layered<A, Self> {
        Layered::new(layer, self)
    }

    /// This backend's keys under `prefix` (see [`Prefixed`]).
    fn prefixed(self, prefix: impl Into<String>) -> Result<Prefixed<Self>, kv_trait::KvError> {
        Prefixed::new(prefix, self)
    }
}

impl<B: KvBackend> LayerExt for B {}
