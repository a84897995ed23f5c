//! [`Metrics`]: counts, errors by kind and latencies of every call, through the `metrics`
//! facade.

use std::future::Future;

use kv_trait::{monotonic_now, KvError};
use metrics::SharedString;

use crate::{Around, Call};

/// The name of the counter of finished calls.
pub const CALLS: &str = "kvkit_calls_total";
/// The name of the histogram of call durations, in seconds.
pub const CALL_DURATION: &str = "kvkit_call_duration_seconds";
/// The name of the gauge of calls in flight.
pub const CALLS_IN_FLIGHT: &str = "kvkit_calls_in_flight";

/// Records every call through the [`metrics`] facade, so any of its exporters (Prometheus,
/// StatsD, OpenTelemetry...) publishes them:
///
/// | metric | kind | labels |
/// | --- | --- | --- |
/// | `kvkit_calls_total` | counter | `store`, `operation`, `outcome` |
/// | `kvkit_call_duration_seconds` | histogram | `store`, `operation` |
/// | `kvkit_calls_in_flight` | gauge | `store`, `operation` |
///
/// `store` is the name given to [`Metrics::new`]; `operation` is the method (`get`,
/// `compare_and_swap`...); `outcome` is `ok` or the error's [`KvError::kind`]
/// (`unavailable`, `not_an_integer`...). A call dropped before it finished (a timeout
/// outside this layer) counts as `cancelled`. Keys and values are never labels. Without a
/// recorder installed, recording costs next to nothing.
///
/// ```
/// use kv_layers::{LayerExt, Metrics};
///
/// let store = kv_memory::MemoryBackend::new().with(Metrics::new("sessions"));
/// assert_eq!(store.layer().store(), "sessions");
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    store: SharedString,
}

impl Metrics {
    /// Labels every metric with `store = name`.
    pub fn new(name: impl Into<String>) -> Self {
        // Shared, so that labelling each call's metrics copies a pointer, not the name.
        let name: std::sync::Arc<str> = name.into().into();
        Self {
            store: SharedString::from_shared(name),
        }
    }

    /// The `store` label.
    pub fn store(&self) -> &str {
        &self.store
    }
}

/// Counts a call from its start to its end, or to its drop.
struct InFlight {
    store: SharedString,
    operation: &'static str,
    started: std::time::Instant,
    outcome: &'static str,
}

impl InFlight {
    fn start(store: &SharedString, operation: &'static str) -> Self {
        metrics::gauge!(CALLS_IN_FLIGHT, "store" => store.clone(), "operation" => operation)
            .increment(1.0);
        Self {
            store: store.clone(),
            operation,
            started: monotonic_now(),
            outcome: "cancelled",
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (store, operation) = (&self.store, self.operation);
        let seconds = monotonic_now()
            .saturating_duration_since(self.started)
            .as_secs_f64();
        metrics::gauge!(CALLS_IN_FLIGHT, "store" => store.clone(), "operation" => operation)
            .decrement(1.0);
        metrics::histogram!(CALL_DURATION, "store" => store.clone(), "operation" => operation)
            .record(seconds);
        metrics::counter!(
            CALLS,
            "store" => store.clone(),
            "operation" => operation,
            "outcome" => self.outcome
        )
        .increment(1);
    }
}

impl Around for Metrics {
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
        let operation = call.operation().name();
        async move {
            let mut in_flight = InFlight::start(&self.store, operation);
            let outcome = run().await;
            in_flight.outcome = match &outcome {
                Ok(_) => "ok",
                Err(error) => error.kind(),
            };
            outcome
        }
    }
}
