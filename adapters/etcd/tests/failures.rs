//! Member loss on private three-member clusters: with one member killed during a concurrent
//! workload, every call returns within the request timeout, the same backend goes on with the
//! other two, and no acknowledged write is lost; with two killed, calls fail `Unavailable`
//! within the timeout, and the same backend works again once a member is back.
//!
//! Run with `--nocapture` to see what was measured.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_conformance::reliability;
use kv_etcd::EtcdBackend;
use kv_test_services::etcd::{self, EtcdService};
use kv_trait::{monotonic_now, KvBackend, KvError};

/// The backends' request timeout here.
const TIMEOUT: Duration = Duration::from_millis(2000);
/// What a call may take beyond the timeout: the scheduling of a loaded two-core machine
/// (ci/test runs every test binary against its servers at once).
const MARGIN: Duration = Duration::from_millis(1000);
/// How long after the leader's death calls may still fail: an election (etcd's election
/// timeout is 1 s, randomized up to 2 s) and the requests in flight to the dead member.
const FAILOVER: Duration = Duration::from_secs(5);

async fn backend(cluster: &EtcdService) -> EtcdBackend {
    EtcdBackend::builder(&cluster.url)
        .expect("the cluster's URL parses")
        .namespace(common::namespace("failures"))
        .request_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .await
        .expect("open the backend")
}

/// Runs `operation`, checking it returned within the timeout; `Ok` or the error.
async fn timed<T>(
    what: &str,
    operation: impl std::future::Future<Output = Result<T, KvError>>,
) -> Result<T, KvError> {
    let started = monotonic_now();
    let outcome = operation.await;
    let took = started.elapsed();
    assert!(
        took <= TIMEOUT + MARGIN,
        "{what} took {took:?}, more than the timeout {TIMEOUT:?} + {MARGIN:?}"
    );
    if let Err(err) = &outcome {
        assert!(
            err.is_retryable(),
            "{what} failed with a non-retryable error: {err:?}"
        );
    }
    outcome
}

/// `f(service)` on a blocking thread (killing and waiting for members sleeps).
async fn blocking<T: Send + 'static>(
    service: &Arc<Mutex<EtcdService>>,
    f: impl FnOnce(&mut EtcdService) -> T + Send + 'static,
) -> T {
    let service = Arc::clone(service);
    tokio::task::spawn_blocking(move || f(&mut service.lock().expect("the cluster")))
        .await
        .expect("a blocking task")
}

/// Which of `members` (`host:port`) is the leader now.
async fn leader_index(members: &[String]) -> usize {
    for (index, member) in members.iter().enumerate() {
        let mut client = etcd_client::Client::connect([format!("http://{member}")], None)
            .await
            .expect("a plain client of one member");
        let status = client.status().await.expect("the member's status");
        let me = status.header().expect("a header").member_id();
        if status.leader() == me {
            return index;
        }
    }
    panic!("no member says it is the leader");
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unavailable: AtomicU64,
    ok_after_kill: AtomicU64,
    /// When the last call failed, in milliseconds since the workload started.
    last_failure_ms: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_member_of_three_loses_no_acknowledged_write() {
    let Some(cluster) = etcd::private_cluster(3) else {
        return;
    };
    let store = backend(&cluster).await;
    let cluster = Arc::new(Mutex::new(cluster));
    let tally = Arc::new(Tally::default());
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workload = Duration::from_secs(10);
    let started = monotonic_now();

    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let (store, tally, killed) = (store.clone(), Arc::clone(&tally), Arc::clone(&killed));
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut increments = Vec::new();
                let mut maybe_applied = 0u64;
                let mut n = 0;
                while started.elapsed() < workload {
                    n += 1;
                    let key = format!("w/{task}/{n}");
                    let after_kill = killed.load(Ordering::SeqCst);
                    let count = |ok: bool| {
                        let counter = if ok { &tally.ok } else { &tally.unavailable };
                        counter.fetch_add(1, Ordering::Relaxed);
                        if !ok {
                            let now_ms = started.elapsed().as_millis() as u64;
                            tally.last_failure_ms.fetch_max(now_ms, Ordering::Relaxed);
                        }
                        if ok && after_kill {
                            tally.ok_after_kill.fetch_add(1, Ordering::Relaxed);
                        }
                    };
                    match timed("set", store.set(&key, key.as_bytes())).await {
                        Ok(()) => {
                            count(true);
                            acknowledged.push(key);
                        }
                        Err(_) => count(false),
                    }
                    match timed("increment", store.increment("counter", 1)).await {
                        Ok(value) => {
                            count(true);
                            increments.push(value);
                        }
                        Err(_) => {
                            count(false);
                            maybe_applied += 1;
                        }
                    }
                    let _ = timed("get", store.get("counter"))
                        .await
                        .map(|_| count(true));
                }
                (acknowledged, increments, maybe_applied)
            })
        })
        .collect();

    // The leader, the member whose loss costs most (an election).
    let members = cluster.lock().unwrap().members.clone();
    let leader = leader_index(&members).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    blocking(&cluster, move |cluster| cluster.kill_member(leader))
        .await
        .expect("kill the leader");
    killed.store(true, Ordering::SeqCst);
    let killed_at = started.elapsed();

    let mut acknowledged = Vec::new();
    let mut increments = Vec::new();
    let mut maybe_applied = 0;
    for task in tasks {
        let (keys, values, unknown) = task.await.expect("a workload task");
        acknowledged.extend(keys);
        increments.extend(values);
        maybe_applied += unknown;
    }
    let ok_after_kill = tally.ok_after_kill.load(Ordering::Relaxed);
    let last_failure = Duration::from_millis(tally.last_failure_ms.load(Ordering::Relaxed));
    println!(
        "member {leader} (the leader) killed at {killed_at:?} of {workload:?}: {} calls ok \
         ({ok_after_kill} after the kill), {} Unavailable, the last at {last_failure:?}; \
         every call within {TIMEOUT:?} + {MARGIN:?}",
        tally.ok.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
    );
    assert!(
        ok_after_kill > 20,
        "the backend did not go on with two members: {ok_after_kill} calls ok after the kill"
    );
    // Failures only while the cluster elects a new leader and the dead member's connections
    // fail: after that, every call succeeds on the two members left.
    assert!(
        last_failure < killed_at + FAILOVER,
        "calls still failed {:?} after the kill",
        last_failure.saturating_sub(killed_at)
    );

    // Every acknowledged write is there, read through the two members left.
    for key in &acknowledged {
        let value = timed("get", store.get(key))
            .await
            .expect("a read after the kill");
        assert_eq!(value.as_deref(), Some(key.as_bytes()), "{key} was lost");
    }
    // Every acknowledged increment counted once; an unanswered one may have counted too.
    let distinct: std::collections::BTreeSet<i64> = increments.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        increments.len(),
        "an increment result twice"
    );
    let counter: i64 = String::from_utf8(store.get("counter").await.unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    let acked = increments.len() as i64;
    assert!(
        (acked..=acked + maybe_applied as i64).contains(&counter),
        "counter {counter}: {acked} acknowledged, {maybe_applied} unanswered"
    );
    // A backend opened now, with the dead member still in its URL, works too.
    let url = cluster.lock().unwrap().url.clone();
    for attempt in 0..5 {
        let late = EtcdBackend::builder(&url)
            .unwrap()
            .namespace(store.namespace())
            .request_timeout(TIMEOUT)
            .build()
            .await
            .expect("open with a member down");
        let key = format!("late/{attempt}");
        timed("set", late.set(&key, b"v"))
            .await
            .expect("a write with a member down");
        assert_eq!(late.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    println!(
        "{} acknowledged sets all present; counter {counter} = {acked} acknowledged \
         increments + {} of {maybe_applied} unanswered",
        acknowledged.len(),
        counter - acked
    );
    reliability::record(
        "etcd-cluster",
        "leader-killed",
        reliability::json!({
            "killed_at_ms": reliability::millis(killed_at),
            "calls_ok": tally.ok.load(Ordering::Relaxed),
            "calls_ok_after_kill": ok_after_kill,
            "unavailable": tally.unavailable.load(Ordering::Relaxed),
            "failures_until_ms": reliability::millis(last_failure.saturating_sub(killed_at)),
            "acknowledged_writes": acknowledged.len(),
            "lost_writes": 0,
            "acknowledged_increments": acked,
            "unavailable_increments": maybe_applied,
            "counter": counter,
            "applied_twice": 0,
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_two_members_is_unavailable_in_time_and_the_backend_recovers() {
    let Some(cluster) = etcd::private_cluster(3) else {
        return;
    };
    let store = backend(&cluster).await;
    store.set("k", b"before").await.unwrap();
    let cluster = Arc::new(Mutex::new(cluster));
    blocking(&cluster, |cluster| {
        cluster.kill_member(1)?;
        cluster.kill_member(2)
    })
    .await
    .expect("kill members 1 and 2");

    // No quorum: every operation fails Unavailable, each within the timeout. A read may
    // still be answered for the first moments, until member 0 notices it lost its leader,
    // so wait for the first failure before checking that each operation fails.
    let give_up = monotonic_now() + Duration::from_secs(15);
    while timed("get", store.get("k")).await.is_ok() {
        assert!(monotonic_now() < give_up, "reads still answered after 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (what, outcome) in [
        ("get", timed("get", store.get("k")).await.map(drop)),
        ("exists", timed("exists", store.exists("k")).await.map(drop)),
        ("set", timed("set", store.set("k", b"x")).await),
        (
            "set_with_ttl",
            timed("set_with_ttl", store.set_with_ttl("t", b"x", 1_000_000_000)).await,
        ),
        ("delete", timed("delete", store.delete("k")).await.map(drop)),
        (
            "increment",
            timed("increment", store.increment("n", 1)).await.map(drop),
        ),
        (
            "compare_and_swap",
            timed("cas", store.compare_and_swap("k", None, b"x"))
                .await
                .map(drop),
        ),
        (
            "list_keys",
            timed("list", store.list_keys("")).await.map(drop),
        ),
    ] {
        assert!(
            matches!(outcome, Err(KvError::Unavailable(_))),
            "{what} without quorum: {outcome:?}"
        );
    }

    // One member back is a quorum again: the same backend works without being rebuilt.
    let restarted_at = monotonic_now();
    blocking(&cluster, |cluster| {
        cluster.start_member(1)?;
        cluster.wait_healthy(Duration::from_secs(30))
    })
    .await
    .expect("restart member 1");
    let give_up = monotonic_now() + Duration::from_secs(20);
    let value = loop {
        match store.get("k").await {
            Ok(value) => break value,
            Err(err) => {
                assert!(
                    monotonic_now() < give_up,
                    "no recovery within 20 s: {err:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // A write that failed may still have reached member 0's log and been committed once the
    // quorum was back (that is what `Unavailable` leaves open); nothing else can be there.
    assert!(
        matches!(value.as_deref(), Some(b"before") | Some(b"x") | None),
        "{value:?}"
    );
    assert!(store
        .compare_and_swap("k", value.as_deref(), b"after")
        .await
        .unwrap());
    assert_eq!(
        store.get("k").await.unwrap().as_deref(),
        Some(&b"after"[..])
    );
    assert!(store.increment("n", 1).await.unwrap() >= 1);
    let recovered = restarted_at.elapsed();
    println!(
        "without quorum every operation failed Unavailable within {TIMEOUT:?} + {MARGIN:?}; \
         recovered {recovered:?} after restarting a member",
    );
    reliability::record(
        "etcd-cluster",
        "quorum-lost",
        reliability::json!({
            "call_bound_ms": reliability::millis(TIMEOUT + MARGIN),
            "recovered_ms": reliability::millis(recovered),
        }),
    );
}
