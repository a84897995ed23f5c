//! The kit's fault checks on a single etcd member behind the fault proxy: every fault of
//! `kv_conformance::faults` during a concurrent workload, with short timeouts, on one handle.
//!
//! The backend is given the proxy's address only (`etcd://127.0.0.1:PROXY`), so that every
//! request goes through it: with a multi-member URL the client would fail over to members the
//! proxy does not front, and the faults would test the failover instead. A test server
//! started here has no password; an environment's URL with one is not used by this test.
//!
//! Run with `--nocapture` to see the report.

mod common;

use std::time::Duration;

use kv_conformance::faults::FaultChecks;
use kv_etcd::EtcdBackend;

use common::namespace;

/// The backend's timeouts in this test: short, so that a black hole is over in a second.
const CONNECT_TIMEOUT_MS: u64 = 400;
const REQUEST_TIMEOUT_MS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_checks_pass_behind_the_fault_proxy() {
    let Some(service) = common::single() else {
        return;
    };
    let member = service.members[0].clone();
    // A call may have to connect (after a reset) and then send: both timeouts.
    let call_timeout = Duration::from_millis(CONNECT_TIMEOUT_MS + REQUEST_TIMEOUT_MS);
    let report = FaultChecks::new(member.as_str(), call_timeout, |proxy| {
        let url = format!(
            "etcd://{proxy}?namespace={}&connect_timeout_ms={CONNECT_TIMEOUT_MS}\
             &request_timeout_ms={REQUEST_TIMEOUT_MS}",
            namespace("faults")
        );
        async move { EtcdBackend::from_url(&url).await }
    })
    .run()
    .await;
    eprintln!("{report}");
    kv_conformance::reliability::record("etcd", "faults", report.to_json());
    assert!(report.passed(), "{report}");
}
