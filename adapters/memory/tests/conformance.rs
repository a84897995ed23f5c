//! The whole conformance suite against `MemoryBackend`, one test per check.

use kv_memory::MemoryBackend;

kv_conformance::conformance_tests!(|| async { Ok(MemoryBackend::new()) });

/// The suite run as a whole, the way `kvkit check` runs it, so its wall time is measured too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_passes() {
    let report = kv_conformance::Suite::new(|| async { Ok(MemoryBackend::new()) })
        .run()
        .await;
    println!("{report}");
    assert!(report.passed(), "{report}");
}
