//! The whole conformance suite over the in-memory reference store around all the layers at
//! once, around a one-place concurrency limit (every concurrent check then runs its calls one
//! at a time) and around `Prefixed` alone. (kvkit's tests/layers.rs runs the stack of URL
//! layers around every adapter.)

use std::time::Duration;

use kv_layers::{Chaos, ConcurrencyLimit, LayerExt, Metrics, Retry, Timeout};
use kv_memory::MemoryBackend;
use kv_trait::KvBackend;
use kv_trait::KvError;

/// Every layer at once, in the order the crate docs recommend; the chaos layer delays calls
/// (faults would fail the suite's exact checks by design: they have checks of their own).
fn stacked(store: impl KvBackend + 'static) -> Result<impl KvBackend, KvError> {
    Ok(store
        .prefixed("tenant-7/")?
        .with(Chaos::new(7).latency(0.05, Duration::from_micros(200)))
        .with(ConcurrencyLimit::new(8).expect("a valid bound"))
        .with(Timeout::new(Duration::from_secs(5)))
        .with(Retry::new(3).seed(7))
        .with(Metrics::new("memory")))
}

mod concurrency_limit {
    use super::*;
    // One place: every concurrent check runs its calls one at a time and must still pass.
    kv_conformance::conformance_tests!(|| async {
        Ok(MemoryBackend::new().with(ConcurrencyLimit::new(1)?))
    });
}

mod prefixed {
    use super::*;
    // A shared store, a prefix per check: each check's keys are isolated as in a namespace.
    fn fresh_prefix() -> Result<impl KvBackend, KvError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::OnceLock;
        static STORE: OnceLock<MemoryBackend> = OnceLock::new();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        STORE
            .get_or_init(MemoryBackend::new)
            .clone()
            .prefixed(format!("case-{n:05}/"))
    }
    // The prefix takes 11 of the store's 1024 bytes per key; the kit checks what is left.
    kv_conformance::conformance_tests!(
        || async { fresh_prefix() },
        kv_conformance::Profile::default().with_max_key_bytes(1024 - 11)
    );
}

mod all_layers {
    use super::*;
    kv_conformance::conformance_tests!(
        || async { stacked(MemoryBackend::new()) },
        kv_conformance::Profile::default().with_max_key_bytes(1024 - "tenant-7/".len())
    );
}
