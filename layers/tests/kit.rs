//! The whole conformance suite around each layer over the in-memory reference store, and
//! around all of them at once. (tests/every_store.rs runs the stack over every adapter.)

use std::time::Duration;

use kv_layers::{Chaos, ConcurrencyLimit, LayerExt, Metrics, Retry, Timeout};
use kv_memory::MemoryBackend;
use kv_trait::KvBackend;

/// Every layer at once, in the order the crate docs recommend; the chaos layer delays calls
/// (faults would fail the suite's exact checks by design: they have checks of their own).
fn stacked(store: impl KvBackend + 'static) -> impl KvBackend {
    store
        .with(Chaos::new(7).latency(0.05, Duration::from_micros(200)))
        .with(ConcurrencyLimit::new(8).expect("a valid bound"))
        .with(Timeout::new(Duration::from_secs(5)))
        .with(Retry::new(3).seed(7))
        .with(Metrics::new("memory"))
}

mod timeout {
    use super::*;
    kv_conformance::conformance_tests!(|| async {
        Ok(MemoryBackend::new().with(Timeout::new(Duration::from_secs(5))))
    });
}

mod retry {
    use super::*;
    kv_conformance::conformance_tests!(|| async { Ok(MemoryBackend::new().with(Retry::new(3))) });
}

mod concurrency_limit {
    use super::*;
    // One place: every concurrent check runs its calls one at a time and must still pass.
    kv_conformance::conformance_tests!(|| async {
        Ok(MemoryBackend::new().with(ConcurrencyLimit::new(1)?))
    });
}

mod metrics {
    use super::*;
    kv_conformance::conformance_tests!(|| async {
        Ok(MemoryBackend::new().with(Metrics::new("memory")))
    });
}

mod chaos_latency {
    use super::*;
    kv_conformance::conformance_tests!(|| async {
        Ok(MemoryBackend::new().with(Chaos::new(1).latency(0.2, Duration::from_millis(1))))
    });
}

mod all_layers {
    use super::*;
    kv_conformance::conformance_tests!(|| async { Ok(stacked(MemoryBackend::new())) });
}
