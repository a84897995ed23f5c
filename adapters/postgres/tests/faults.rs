//! The kit's fault checks on PostgreSQL behind the fault proxy: every fault of
//! `kv_conformance::faults` during a concurrent workload, with short timeouts, on one handle
//! (one pool).
//!
//! Run with `--nocapture` to see the report.

mod common;

use std::time::Duration;

use kv_conformance::faults::FaultChecks;
use kv_postgres::PostgresBackend;

use common::{namespace, server};

/// The backend's timeouts in this test. Connecting is several round trips and a SCRAM
/// exchange, which a debug build on a loaded two-core machine took more than 400 ms for after a
/// heal (every pooled connection reconnects at once): 1.5 s, and 500 ms per request.
const CONNECT_TIMEOUT_MS: u64 = 1500;
const REQUEST_TIMEOUT_MS: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_checks_pass_behind_the_fault_proxy() {
    let Some(server) = server() else {
        return;
    };
    let address = format!("{}:{}", server.host, server.port);
    // A call may have to connect (after a reset) and then send: both timeouts.
    let call_timeout = Duration::from_millis(CONNECT_TIMEOUT_MS + REQUEST_TIMEOUT_MS);
    let report = FaultChecks::new(address.as_str(), call_timeout, |proxy| {
        let through_proxy = server
            .url
            .replacen(&format!("@{address}/"), &format!("@{proxy}/"), 1);
        assert_ne!(through_proxy, server.url, "the URL goes through the proxy");
        PostgresBackend::builder(&through_proxy)
            .expect("the URL parses")
            .namespace(namespace("faults"))
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .request_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
    })
    .run()
    .await;
    eprintln!("{report}");
    kv_conformance::reliability::record("postgres", "faults", report.to_json());
    assert!(report.passed(), "{report}");
}
