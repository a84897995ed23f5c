//! The kit's fault checks on a standalone Redis server behind the fault proxy: every fault of
//! `kv_conformance::faults` during a concurrent workload, with short timeouts, on one handle.
//!
//! Run with `--nocapture` to see the report.

use std::time::Duration;

use kv_conformance::faults::FaultChecks;
use kv_redis::RedisBackend;
use kv_test_services::redis as services;

/// The backend's timeouts in this test: short, so that a black hole is over in a second.
const CONNECT_TIMEOUT_MS: u64 = 400;
const REQUEST_TIMEOUT_MS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_checks_pass_behind_the_fault_proxy() {
    let Some(server) = services::private_standalone() else {
        return;
    };
    let node = server.nodes[0].clone();
    let url = server.url.clone();
    // A call may have to connect (after a reset) and then send: both timeouts.
    let call_timeout = Duration::from_millis(CONNECT_TIMEOUT_MS + REQUEST_TIMEOUT_MS);
    let report = FaultChecks::new(node.as_str(), call_timeout, |proxy| {
        let through_proxy = url.replacen(&node, &proxy.to_string(), 1);
        assert_ne!(through_proxy, url, "the URL goes through the proxy");
        let url = format!(
            "{through_proxy}?namespace=faults-{}.&connect_timeout_ms={CONNECT_TIMEOUT_MS}\
             &request_timeout_ms={REQUEST_TIMEOUT_MS}",
            std::process::id()
        );
        async move { RedisBackend::from_url(&url).await }
    })
    .run()
    .await;
    eprintln!("{report}");
    kv_conformance::reliability::record("redis", "faults", report.to_json());
    assert!(report.passed(), "{report}");
    drop(server);
}
