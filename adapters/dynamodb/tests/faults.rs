//! The kit's fault checks on the DynamoDB emulator behind the fault proxy: every fault of
//! `kv_conformance::faults` during a concurrent workload, with short timeouts, on one handle.
//! The emulator is the one kv-test-services provides (dynalite by default; ci/test-workspace
//! runs kv-dynamodb's tests again on moto, so this file covers both).
//!
//! Run with `--nocapture` to see the report.

mod common;

use std::time::Duration;

use kv_conformance::faults::FaultChecks;
use kv_dynamodb::DynamoDbBackend;

use common::{ensure_table, service, unique_namespace, TABLE};

/// The backend's timeouts in this test: short, so that a black hole is over in a second. The
/// operation timeout bounds a whole call, the SDK's retries included.
const CONNECT_TIMEOUT_MS: u64 = 400;
const ATTEMPT_TIMEOUT_MS: u64 = 400;
const OPERATION_TIMEOUT_MS: u64 = 800;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_checks_pass_behind_the_fault_proxy() {
    let Some(service) = service() else {
        return;
    };
    ensure_table(service);
    let address = service
        .endpoint
        .strip_prefix("http://")
        .expect("an http:// endpoint")
        .trim_end_matches('/')
        .to_owned();
    let url = service.url(TABLE, &unique_namespace("faults"));
    let call_timeout = Duration::from_millis(OPERATION_TIMEOUT_MS);
    let report = FaultChecks::new(address.as_str(), call_timeout, |proxy| {
        // The endpoint is percent-encoded in an option: `:` is `%3A`.
        let encoded = |address: &str| address.replace(':', "%3A");
        let through_proxy = url.replacen(&encoded(&address), &encoded(&proxy.to_string()), 1);
        assert_ne!(through_proxy, url, "the URL goes through the proxy");
        let url = format!(
            "{through_proxy}&connect_timeout_ms={CONNECT_TIMEOUT_MS}\
             &attempt_timeout_ms={ATTEMPT_TIMEOUT_MS}&operation_timeout_ms={OPERATION_TIMEOUT_MS}"
        );
        async move { DynamoDbBackend::from_url(&url).await }
    })
    .run()
    .await;
    eprintln!("{report}");
    kv_conformance::reliability::record("dynamodb", "faults", report.to_json());
    assert!(report.passed(), "{report}");
}
