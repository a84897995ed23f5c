//! A standalone server killed with `SIGKILL` during a concurrent workload and started again on
//! its port, its append-only file fsynced before every reply (`appendfsync always`): the same
//! backend handle recovers by itself, every call returns within the request timeout, every
//! error is `Unavailable`, and no acknowledged write is lost; a counter ends between its
//! acknowledged increments and those plus the unacknowledged ones (none applied twice).
//!
//! Run with `--nocapture` to see the figures.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kv_redis::RedisBackend;
use kv_test_services::redis as services;
use kv_trait::{monotonic_now, KvBackend, KvError};

use common::{builder, namespace};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const TASKS: usize = 4;

/// What one workload task saw.
#[derive(Debug, Default)]
struct Tally {
    /// Keys whose `set` returned `Ok`, with the value written.
    acked_sets: Vec<(String, Vec<u8>)>,
    acked_increments: u64,
    unknown_increments: u64,
    slowest: Duration,
    errors: Vec<String>,
}

/// Writes unique keys and increments one counter until `stop`, timing every call.
async fn work(store: RedisBackend, task: usize, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut i = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("w{task}-{i}");
        let value = i.to_be_bytes().to_vec();
        let started = monotonic_now();
        let set = store.set(&key, &value).await;
        let took = started.elapsed();
        let started = monotonic_now();
        let increment = store.increment("counter", 1).await;
        let took = took.max(started.elapsed());
        tally.slowest = tally.slowest.max(took);
        match set {
            Ok(()) => tally.acked_sets.push((key, value)),
            Err(KvError::Unavailable(_)) => {}
            Err(other) => tally.errors.push(format!("set: {other}")),
        }
        match increment {
            Ok(_) => tally.acked_increments += 1,
            Err(KvError::Unavailable(_)) => tally.unknown_increments += 1,
            Err(other) => tally.errors.push(format!("increment: {other}")),
        }
        if took > REQUEST_TIMEOUT / 4 {
            // Failing fast while the server is down: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tally
}

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
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(work(store.clone(), task, Arc::clone(&stop))))
        .collect();

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
    stop.store(true, Ordering::Relaxed);
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.expect("a workload task"));
    }

    let errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
    assert!(
        errors.is_empty(),
        "errors other than Unavailable: {errors:?}"
    );
    let slowest = tallies.iter().map(|t| t.slowest).max().unwrap_or_default();
    // A call may reconnect (the connect timeout) and then send (the request timeout).
    let bound = CONNECT_TIMEOUT + REQUEST_TIMEOUT + Duration::from_millis(300);
    assert!(slowest <= bound, "a call took {slowest:?}, over {bound:?}");

    let acked: Vec<&(String, Vec<u8>)> = tallies.iter().flat_map(|t| &t.acked_sets).collect();
    let keys: Vec<&str> = acked.iter().map(|(key, _)| key.as_str()).collect();
    let stored = store.get_many(&keys).await.expect("read the writes back");
    let lost: Vec<&str> = acked
        .iter()
        .zip(&stored)
        .filter(|((_, value), stored)| stored.as_deref() != Some(value.as_slice()))
        .map(|((key, _), _)| key.as_str())
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );

    let acked_increments: u64 = tallies.iter().map(|t| t.acked_increments).sum();
    let unknown: u64 = tallies.iter().map(|t| t.unknown_increments).sum();
    let counter = store.get("counter").await.unwrap().unwrap_or_default();
    let counter: u64 = String::from_utf8_lossy(&counter).parse().unwrap_or(0);
    assert!(
        (acked_increments..=acked_increments + unknown).contains(&counter),
        "the counter is {counter}: {acked_increments} acknowledged increments, {unknown} unknown"
    );
    println!(
        "restart: killed {:?} before the restart; the handle answered {recovered:?} after it; \
         {} acknowledged writes kept, 0 lost; counter {counter} for {acked_increments} \
         acknowledged + {unknown} unknown increments; slowest call {slowest:?}",
        restarted.duration_since(killed),
        acked.len()
    );
    assert!(
        acked_increments > 0 && unknown > 0,
        "the workload must have run both before and during the outage"
    );
}
