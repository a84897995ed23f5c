//! A standalone server killed with `SIGKILL` during a concurrent workload and started again on
//! its port, its append-only file fsynced before every reply (`appendfsync always`): the same
//! backend handle recovers by itself, every call returns within the request timeout, every
//! error is `Unavailable`, and no acknowledged write is lost; a counter ends between its
//! acknowledged increments and those plus the unacknowledged ones (none applied twice).
//!
//! Run with `--nocapture` to see the figures.

mod common;

use std::time::Duration;

use kv_conformance::reliability::millis;
use kv_test_services::redis as services;
use kv_trait::{monotonic_now, KvBackend};

use common::{builder, counter_value, namespace, Workload};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const TASKS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_no_acknowledged_write() {
    let Some(mut server) = services::private_durable_standalone() else {
        return;
    };
    let store = builder(&server, &namespace("restart"))
        .request_timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .await
        .expect("open the backend");
    let workload = Workload::start(&store, TASKS, "counter");

    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill().expect("kill the server");
    let killed = monotonic_now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.restart().expect("start the server again");
    let restarted = monotonic_now();
    // The same handle, never rebuilt: how soon does it answer again?
    let recovered = loop {
        if store.exists("probe").await.is_ok() {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the backend did not recover within 10 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let tally = workload.finish().await;

    // A call may reconnect (the connect timeout) and then send (the request timeout).
    let bound = CONNECT_TIMEOUT + REQUEST_TIMEOUT + Duration::from_millis(300);
    let slowest = tally.slowest;
    assert!(slowest <= bound, "a call took {slowest:?}, over {bound:?}");
    let lost = tally.lost_sets(&store).await;
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    let (acked, unknown) = (tally.acked_increments, tally.unknown_increments);
    let counter = counter_value(&store, "counter").await;
    assert!(
        (acked..=acked + unknown).contains(&counter),
        "the counter is {counter}: {acked} acknowledged increments, {unknown} unknown"
    );
    println!(
        "restart: killed {:?} before the restart; the handle answered {recovered:?} after it; \
         {} acknowledged writes kept, 0 lost; counter {counter} for {acked} acknowledged + \
         {unknown} unknown increments; slowest call {slowest:?}",
        restarted.duration_since(killed),
        tally.acked_sets.len()
    );
    assert!(
        acked > 0 && unknown > 0,
        "the workload must have run both before and during the outage"
    );
    kv_conformance::reliability::record(
        "redis",
        "restart",
        kv_conformance::reliability::json!({
            "down_ms": millis(restarted.duration_since(killed)),
            "recovered_ms": millis(recovered),
            "slowest_call_ms": millis(slowest),
            "acknowledged_writes": tally.acked_sets.len(),
            "lost_writes": lost.len(),
            "acknowledged_increments": acked,
            "unavailable_increments": unknown,
            "counter": counter,
            "applied_twice": counter.saturating_sub(acked + unknown),
        }),
    );
}
