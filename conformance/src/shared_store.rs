//! Checks for several handles on one store: two backends on one file, two connections to one
//! server, two processes' worth of clients. The suite's factory makes *isolated* backends, so
//! it cannot reach this part of the contract ("linearizable across backend instances that
//! point at the same store and namespace"); call these from your own tests with handles you
//! opened on the same namespace.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use kv_trait::KvBackend;
//!
//! let store = kv_memory::MemoryBackend::new();
//! let handles: [Arc<dyn KvBackend>; 2] = [Arc::new(store.clone()), Arc::new(store)];
//! kv_conformance::shared_store::increments_across(&handles, 4, 25).await.unwrap();
//! kv_conformance::shared_store::cas_rounds_across(&handles, 10, 4).await.unwrap();
//! let summary = kv_conformance::shared_store::history_across(&handles, 4, 30).await.unwrap();
//! assert!(summary.contains("3 linearizable"), "{summary}");
//! # });
//! ```
//!
//! Each works on keys under `shared-store/` and deletes them at the end.

use std::collections::BTreeSet;
use std::sync::Arc;

use kv_trait::{KvBackend, KvError};

use crate::report::Failure;

const COUNTER: &str = "shared-store/counter";
const LOCK: &str = "shared-store/lock";

fn failed(what: &str) -> impl Fn(KvError) -> Failure + '_ {
    move |err| Failure::new(format!("{what} failed: {err}"))
}

/// Checks that `key` holds `expected` through the first handle, then deletes it.
async fn expect_final(
    handles: &[Arc<dyn KvBackend>],
    key: &str,
    expected: String,
    what: &str,
) -> Result<(), Failure> {
    let stored = handles[0].get(key).await.map_err(failed("get"))?;
    handles[0].delete(key).await.map_err(failed("delete"))?;
    if stored != Some(expected.clone().into_bytes()) {
        return Err(Failure::mismatch(what, expected, format!("{stored:?}")));
    }
    Ok(())
}

/// Awaits spawned tasks, turning a panic or an error into a [`Failure`].
async fn join_all<T>(
    tasks: Vec<tokio::task::JoinHandle<Result<T, KvError>>>,
) -> Result<Vec<T>, Failure> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        let result = task
            .await
            .map_err(|err| Failure::new(format!("a task panicked: {err}")))?;
        results.push(result.map_err(failed("a concurrent operation"))?);
    }
    Ok(results)
}

/// `tasks_per_handle` tasks on each handle increment one counter `per_task` times: no update
/// may be lost and every returned value must be distinct (together exactly `1..=total`).
pub async fn increments_across(
    handles: &[Arc<dyn KvBackend>],
    tasks_per_handle: usize,
    per_task: usize,
) -> Result<(), Failure> {
    let mut tasks = Vec::new();
    for handle in handles {
        for _ in 0..tasks_per_handle {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    seen.push(handle.increment(COUNTER, 1).await?);
                }
                Ok(seen)
            }));
        }
    }
    let returned: Vec<i64> = join_all(tasks).await?.into_iter().flatten().collect();
    let total = i64::try_from(returned.len()).unwrap_or(i64::MAX);
    let distinct: BTreeSet<i64> = returned.iter().copied().collect();
    if distinct != (1..=total).collect() {
        return Err(Failure::mismatch(
            "increments through several handles lost updates or returned a value twice",
            format!("the values 1..={total}, each once"),
            format!(
                "{} distinct values, from {:?} to {:?}",
                distinct.len(),
                distinct.first(),
                distinct.last()
            ),
        ));
    }
    expect_final(
        handles,
        COUNTER,
        total.to_string(),
        "the counter after the race",
    )
    .await
}

/// In each of `rounds` rounds, `contenders_per_handle` tasks on each handle try to swap the
/// current value for their own: exactly one may win, and its value must be what is stored.
pub async fn cas_rounds_across(
    handles: &[Arc<dyn KvBackend>],
    rounds: usize,
    contenders_per_handle: usize,
) -> Result<(), Failure> {
    let mut current: Option<Vec<u8>> = None;
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for (side, handle) in handles.iter().enumerate() {
            for contender in 0..contenders_per_handle {
                let (handle, expected) = (handle.clone(), current.clone());
                let proposal = format!("round {round} by {side}/{contender}").into_bytes();
                tasks.push(tokio::spawn(async move {
                    let won = handle
                        .compare_and_swap(LOCK, expected.as_deref(), &proposal)
                        .await?;
                    Ok(won.then_some(proposal))
                }));
            }
        }
        let winners: Vec<Vec<u8>> = join_all(tasks).await?.into_iter().flatten().collect();
        if winners.len() != 1 {
            return Err(Failure::mismatch(
                format!("round {round}: concurrent CAS calls through several handles"),
                "exactly one winner",
                format!("{} winners", winners.len()),
            ));
        }
        let stored = handles[0].get(LOCK).await.map_err(failed("get"))?;
        if stored.as_ref() != winners.first() {
            return Err(Failure::mismatch(
                format!("round {round}: the stored value"),
                "the winner's",
                format!("{stored:?}"),
            ));
        }
        current = stored;
    }
    handles[0].delete(LOCK).await.map_err(failed("delete"))?;
    Ok(())
}

/// `tasks_per_handle` tasks on each handle each add 1 to a counter `per_task` times with a
/// get + compare-and-swap retry loop: the counter must end exact.
pub async fn cas_loop_counter_across(
    handles: &[Arc<dyn KvBackend>],
    tasks_per_handle: usize,
    per_task: usize,
) -> Result<(), Failure> {
    let mut tasks = Vec::new();
    for handle in handles {
        for _ in 0..tasks_per_handle {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    while !add_one(handle.as_ref()).await? {}
                }
                Ok(())
            }));
        }
    }
    join_all(tasks).await?;
    let total = handles.len() * tasks_per_handle * per_task;
    expect_final(
        handles,
        COUNTER,
        total.to_string(),
        "the get + CAS counter after the race",
    )
    .await
}

/// One attempt to add 1 to [`COUNTER`] by compare-and-swap; whether it won.
async fn add_one(handle: &dyn KvBackend) -> Result<bool, KvError> {
    let current = handle.get(COUNTER).await?;
    let next = current
        .as_deref()
        .and_then(kv_trait::parse_counter)
        .unwrap_or(0)
        + 1;
    handle
        .compare_and_swap(COUNTER, current.as_deref(), next.to_string().as_bytes())
        .await
}

/// `tasks_per_handle` tasks on each handle run the suite's `concurrent_history_linearizable`
/// workload together, `steps_per_task` steps each, on keys under `shared-store/history/`: a
/// counter, a register and an expiring counter (TTL 20 ms, expiring during the run). The one
/// history of all handles must be linearizable ([`Checker`](crate::Checker), values up to
/// 1 MiB, TTL granularity 1 ms, 2.4 ms of clock slack; an inconclusive search fails too). The
/// keys are deleted at the end. Returns the checker's one-line summary.
pub async fn history_across(
    handles: &[Arc<dyn KvBackend>],
    tasks_per_handle: usize,
    steps_per_task: usize,
) -> Result<String, Failure> {
    if handles.is_empty() {
        return Err(Failure::new("history_across needs at least one handle"));
    }
    let ttl = crate::concurrency::history_ttl(std::time::Duration::from_millis(1));
    let workload = crate::concurrency::history_workload(
        handles.len() * tasks_per_handle.max(1),
        steps_per_task,
        ttl,
    )
    .key_prefix("shared-store/history/");
    let history = workload.run_on(handles.to_vec()).await;
    for key in workload.keys() {
        handles[0].delete(&key).await.map_err(failed("delete"))?;
    }
    crate::concurrency::check_history(&history, ttl, crate::Checker::new())
}
