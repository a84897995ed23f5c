//! The whole conformance suite against `MemoryBackend`, one test per check: once with a fresh
//! store per check, once with a fresh namespace of one shared store per check (the way a
//! shared server is tested).

use kv_memory::MemoryBackend;

kv_conformance::conformance_tests!(|| async { Ok(MemoryBackend::new()) });

mod namespaces_of_one_store {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    use kv_memory::MemoryBackend;

    fn fresh_namespace() -> MemoryBackend {
        static STORE: OnceLock<MemoryBackend> = OnceLock::new();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        STORE
            .get_or_init(MemoryBackend::new)
            .namespace(&format!("case-{n}"))
    }

    kv_conformance::conformance_tests!(|| async { Ok(fresh_namespace()) });
}

/// The suite run as a whole, the way `kvkit check` runs it, so its wall time is measured too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_passes() {
    let report = kv_conformance::Suite::new(|| async { Ok(MemoryBackend::new()) })
        .run()
        .await;
    println!("{report}");
    assert!(report.passed(), "{report}");
}
