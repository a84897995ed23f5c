//! Redis Cluster failover: the primary of a hot key killed with `SIGKILL` during a concurrent
//! workload, in a private cluster whose `cluster-node-timeout` is 1 s, so that its replica
//! takes over within seconds. The same backend handle follows the new topology by itself,
//! every call returns within its timeouts, every error is `Unavailable`.
//!
//! Redis Cluster replicates asynchronously, so a write the old primary acknowledged before
//! its replica copied it is lost: without waiting for replicas the test counts those losses
//! (and prints them) but cannot demand none. With `wait_for_replicas(1, ..)` a write succeeds
//! only once the replica has it, and the test demands that none is lost and that the counter
//! ends between its acknowledged increments and those plus the unacknowledged ones.
//!
//! Run with `--nocapture` to see the figures.

mod common;

use std::time::Duration;

use kv_conformance::reliability::millis;
use kv_test_services::redis as services;
use kv_trait::{monotonic_now, KvBackend, KvError};

use common::{builder, counter_value, namespace, Workload};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const WAIT_TIMEOUT: Duration = Duration::from_millis(300);
const TASKS: usize = 4;
/// The counter every task increments; the test kills the primary of its slot. The hash tag
/// puts [`PROBE`] in the same slot.
const COUNTER: &str = "{hot}counter";
const PROBE: &str = "{hot}probe";
/// How long the failover may take, from the kill to the handle's first write on the slot:
/// the node timeout (1 s), the replica's election delay (0.5 to 1 s plus its rank), and
/// the client's discovery of the new owner, with room for a loaded machine.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

/// What a failover cost, for the report.
struct Outcome {
    acked_sets: usize,
    lost_sets: usize,
    acked_increments: u64,
    unknown_increments: u64,
    counter: u64,
    /// From the kill to `CLUSTER NODES` naming the new primary.
    promoted_after: Duration,
    /// From the kill to the handle's first successful write on the slot.
    recovered: Duration,
    slowest: Duration,
}

/// Runs the workload on a fresh private cluster with `wait` (`None`: no waiting for
/// replicas), kills the primary of [`COUNTER`]'s slot, and checks what every mode must keep.
async fn kill_a_primary_during_the_workload(label: &str, wait: Option<u32>) -> Option<Outcome> {
    let mut cluster = services::private_cluster()?;
    let mut settings = builder(&cluster, &namespace(label))
        .request_timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(replicas) = wait {
        settings = settings.wait_for_replicas(replicas, WAIT_TIMEOUT);
    }
    let store = settings.build().await.expect("open the backend");
    let counter_key = String::from_utf8(store.redis_key(COUNTER)).expect("an ASCII key");
    let victim = cluster
        .primary_of(&counter_key)
        .expect("the counter's primary");

    let workload = Workload::start(&store, TASKS, COUNTER);
    tokio::time::sleep(Duration::from_millis(600)).await;
    cluster.kill_node(&victim).expect("kill the primary");
    let killed = monotonic_now();
    let promoted = loop {
        match cluster.primary_of(&counter_key) {
            Ok(primary) if primary != victim => break primary,
            _ => {}
        }
        assert!(
            killed.elapsed() < RECOVERY_BOUND,
            "{label}: no replica took over {victim} within {RECOVERY_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let promoted_after = killed.elapsed();
    if wait.is_some() {
        // The promoted replica has no replica of its own until the old primary rejoins as
        // one: until then, writes to its slots cannot be replicated and fail `Unavailable`.
        cluster
            .restart_node(&victim)
            .expect("restart the old primary");
    }
    // The same handle, never rebuilt: how soon does it write to the slot again?
    let recovered = loop {
        let probe = store.set(PROBE, b"after").await;
        if probe.is_ok() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < RECOVERY_BOUND,
            "{label}: no write on the killed primary's slot succeeded within \
             {RECOVERY_BOUND:?}; the last: {probe:?}; {promoted} took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let tally = workload.finish().await;

    // A call may reconnect (the connect timeout) and then send (the request timeout); waiting
    // for replicas in a cluster, `WAIT` is a second request.
    let requests = if wait.is_some() { 2 } else { 1 };
    let bound = CONNECT_TIMEOUT + REQUEST_TIMEOUT * requests + Duration::from_millis(500);
    let slowest = tally.slowest;
    assert!(
        slowest <= bound,
        "{label}: a call took {slowest:?}, over {bound:?}"
    );
    let (acked_increments, unknown_increments) = (tally.acked_increments, tally.unknown_increments);
    assert!(
        acked_increments > 0 && unknown_increments > 0,
        "{label}: the workload must have run both before and during the failover"
    );
    let lost_sets = tally.lost_sets(&store).await.len();
    let counter = counter_value(&store, COUNTER).await;
    assert!(
        counter <= acked_increments + unknown_increments,
        "{label}: the counter is {counter}, over the {acked_increments} acknowledged and \
         {unknown_increments} unknown increments: one was applied twice"
    );
    let outcome = Outcome {
        acked_sets: tally.acked_sets.len(),
        lost_sets,
        acked_increments,
        unknown_increments,
        counter,
        promoted_after,
        recovered,
        slowest,
    };
    println!(
        "failover ({label}): a replica took over {:?} after the kill, the handle wrote to the \
         slot again after {:?}; {} acknowledged sets, {} lost; counter {} for {} acknowledged \
         + {} unknown increments ({} acknowledged lost); slowest call {:?}",
        outcome.promoted_after,
        outcome.recovered,
        outcome.acked_sets,
        outcome.lost_sets,
        outcome.counter,
        outcome.acked_increments,
        outcome.unknown_increments,
        outcome.acked_increments.saturating_sub(outcome.counter),
        outcome.slowest
    );
    kv_conformance::reliability::record(
        "redis-cluster",
        label,
        kv_conformance::reliability::json!({
            "wait_for_replicas": wait,
            "promoted_ms": millis(outcome.promoted_after),
            "recovered_ms": millis(outcome.recovered),
            "slowest_call_ms": millis(outcome.slowest),
            "acknowledged_writes": outcome.acked_sets,
            "lost_writes": outcome.lost_sets,
            "acknowledged_increments": outcome.acked_increments,
            "unavailable_increments": outcome.unknown_increments,
            "counter": outcome.counter,
            "lost_increments": outcome.acked_increments.saturating_sub(outcome.counter),
        }),
    );
    Some(outcome)
}

/// Without waiting, losses are possible (asynchronous replication) and only reported; the
/// handle must still follow the failover and never apply an increment twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_follows_a_failover_by_itself() {
    let Some(outcome) = kill_a_primary_during_the_workload("failover", None).await else {
        return;
    };
    assert!(outcome.acked_sets > 0);
}

/// Waiting for the one replica of each primary: the promoted replica had every acknowledged
/// write, so nothing acknowledged is lost. Writes to the failed-over slots succeed again once
/// the old primary, started again, has rejoined as the new primary's replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_replica_loses_no_acknowledged_write_in_a_failover() {
    let Some(outcome) = kill_a_primary_during_the_workload("failover-wait", Some(1)).await else {
        return;
    };
    assert_eq!(
        outcome.lost_sets, 0,
        "acknowledged writes lost although each waited for a replica"
    );
    assert!(
        outcome.counter >= outcome.acked_increments,
        "the counter is {}, under its {} acknowledged increments",
        outcome.counter,
        outcome.acked_increments
    );
}

/// A write that too few replicas acknowledged in time fails `Unavailable`, saying how many
/// had it, though the primary applied it: the contract's "may or may not have taken effect".
/// The shared standalone server has no replica at all; compare-and-swap takes the script path
/// (one connection) and is held to the same rule.
#[tokio::test]
async fn a_write_no_replica_acknowledged_is_unavailable_but_applied() {
    let Some(server) = services::standalone() else {
        return;
    };
    let store = builder(server, &namespace("no-replica"))
        .wait_for_replicas(1, Duration::from_millis(50))
        .build()
        .await
        .expect("open the backend");
    let started = monotonic_now();
    match store.set("k", b"v").await {
        Err(KvError::Unavailable(message)) => {
            let message = message.to_string();
            assert!(message.contains("0 of the 1 replicas"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "WAIT waited"
    );
    assert_eq!(store.get("k").await.expect("read"), Some(b"v".to_vec()));
    assert!(matches!(
        store.compare_and_swap("k", Some(b"v"), b"w").await,
        Err(KvError::Unavailable(_))
    ));
    assert_eq!(store.get("k").await.expect("read"), Some(b"w".to_vec()));
    assert!(matches!(
        store
            .set_many(&[("a", b"1".as_slice()), ("b", b"2")], None)
            .await,
        Err(KvError::Unavailable(_))
    ));
    assert_eq!(store.get("b").await.expect("read"), Some(b"2".to_vec()));
}
