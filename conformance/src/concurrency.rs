//! Concurrency checks: many tasks on one key, on a multi-threaded runtime.
//!
//! Linearizability of single-key operations has sharp consequences that can be checked
//! without knowing the interleaving: concurrent increments return distinct values that
//! together are exactly 1..=N; of CAS calls that all expect the current value exactly one
//! wins; of concurrent deletes of a live key exactly one returns `true`; a reader never sees
//! a value nobody wrote; a write is visible to every read that starts after it returned.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use kv_trait::{KvBackend, KvError};
use tokio::sync::Barrier;

use crate::model::{Op, Outcome};
use crate::probe::{ensure, CheckResult, Probe};
use crate::report::Failure;
use crate::{Checker, Workload};

/// Increments each task performs in the lost-update check.
const INCREMENTS_PER_TASK: usize = 40;
/// Rounds of the single-winner checks.
const ROUNDS: usize = 12;

/// Runs `body(task_index, backend)` in `tasks` spawned tasks started together, and collects
/// their results in task order.
async fn in_parallel<T, F, Fut>(t: &Probe, tasks: usize, body: F) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    F: Fn(usize, Arc<dyn KvBackend>) -> Fut,
    Fut: Future<Output = Result<T, KvError>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (barrier, work) = (barrier.clone(), body(i, t.backend.clone()));
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks);
    for handle in handles {
        match handle.await {
            Ok(Ok(value)) => results.push(value),
            Ok(Err(err)) => {
                return Err(Failure::new(format!(
                    "a concurrent operation failed: {err}"
                )))
            }
            Err(join) => {
                return Err(Failure::new(format!(
                    "a concurrent task panicked or was cancelled: {join}"
                )))
            }
        }
    }
    Ok(results)
}

fn note_runtime(t: &Probe) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
        t.note("(current-thread runtime: tasks interleave but do not run in parallel)");
    }
}

/// Concurrent increments never lose an update and each returns a distinct result.
pub(crate) async fn increments_never_lost(t: Probe) -> CheckResult {
    note_runtime(&t);
    let tasks = t.profile.tasks;
    let per_task = in_parallel(&t, tasks, |_, kv| async move {
        let mut seen = Vec::with_capacity(INCREMENTS_PER_TASK);
        for _ in 0..INCREMENTS_PER_TASK {
            seen.push(kv.increment("counter", 1).await?);
        }
        Ok(seen)
    })
    .await?;
    let total = (tasks * INCREMENTS_PER_TASK) as i64;
    let returned: BTreeSet<i64> = per_task.iter().flatten().copied().collect();
    t.note(format!(
        "{tasks} tasks x {INCREMENTS_PER_TASK} increment(\"counter\", 1)"
    ));
    ensure(
        returned.len() == per_task.iter().map(Vec::len).sum::<usize>(),
        || "two increments returned the same value".into(),
    )?;
    ensure(returned == (1..=total).collect(), || {
        format!(
            "increments returned {} distinct values, not exactly 1..={total}",
            returned.len()
        )
    })?;
    t.expect_value("counter", Some(total.to_string().as_bytes()))
        .await
}

/// Of concurrent CAS calls that all expect the current value, exactly one succeeds, and its
/// value is what remains.
pub(crate) async fn cas_single_winner(t: Probe) -> CheckResult {
    note_runtime(&t);
    t.put("k", "start").await?;
    let mut current = b"start".to_vec();
    for round in 0..ROUNDS {
        let expected = current.clone();
        let won = in_parallel(&t, t.profile.tasks, |task, kv| {
            let expected = expected.clone();
            async move {
                kv.compare_and_swap("k", Some(&expected), format!("{round}-{task}").as_bytes())
                    .await
            }
        })
        .await?;
        current = single_winner(&won, round, |task| format!("{round}-{task}"))?;
        t.expect_value("k", Some(&current)).await?;
    }
    Ok(())
}

/// Of concurrent `compare_and_swap(k, None, _)` calls on an absent key, exactly one succeeds.
pub(crate) async fn cas_absent_single_winner(t: Probe) -> CheckResult {
    note_runtime(&t);
    for round in 0..ROUNDS {
        let key = format!("absent-{round}");
        let won = in_parallel(&t, t.profile.tasks, |task, kv| {
            let key = key.clone();
            async move {
                kv.compare_and_swap(&key, None, task.to_string().as_bytes())
                    .await
            }
        })
        .await?;
        let winner = single_winner(&won, round, |task| task.to_string())?;
        t.expect_value(&key, Some(&winner)).await?;
    }
    Ok(())
}

/// Checks that exactly one task won a round and returns the winner's value.
fn single_winner(
    won: &[bool],
    round: usize,
    value_of: impl Fn(usize) -> String,
) -> Result<Vec<u8>, Failure> {
    let winners: Vec<usize> = won
        .iter()
        .enumerate()
        .filter(|(_, w)| **w)
        .map(|(i, _)| i)
        .collect();
    match winners.as_slice() {
        [task] => Ok(value_of(*task).into_bytes()),
        _ => Err(Failure::mismatch(
            format!(
                "round {round}: {} concurrent CAS calls expecting the same value succeeded",
                winners.len()
            ),
            "exactly one winner",
            format!("winners {winners:?}"),
        )),
    }
}

/// A counter built from get + CAS retry loops in many tasks ends exact.
pub(crate) async fn cas_loop_counter_exact(t: Probe) -> CheckResult {
    note_runtime(&t);
    const PER_TASK: usize = 15;
    let tasks = t.profile.tasks;
    in_parallel(&t, tasks, |_, kv| async move {
        for _ in 0..PER_TASK {
            loop {
                let current = kv.get("n").await?;
                let next = match &current {
                    Some(bytes) => kv_trait::parse_counter(bytes).unwrap_or(i64::MIN) + 1,
                    None => 1,
                };
                if kv
                    .compare_and_swap("n", current.as_deref(), next.to_string().as_bytes())
                    .await?
                {
                    break;
                }
            }
        }
        Ok(())
    })
    .await?;
    t.note(format!(
        "{tasks} tasks x {PER_TASK} get + compare_and_swap loops on \"n\""
    ));
    t.expect_value("n", Some((tasks * PER_TASK).to_string().as_bytes()))
        .await
}

/// Of concurrent deletes of one live key, exactly one reports `true`.
pub(crate) async fn deletes_single_true(t: Probe) -> CheckResult {
    note_runtime(&t);
    for round in 0..ROUNDS {
        t.put("k", round.to_string()).await?;
        let removed = in_parallel(
            &t,
            t.profile.tasks,
            |_, kv| async move { kv.delete("k").await },
        )
        .await?;
        let trues = removed.iter().filter(|r| **r).count();
        ensure(trues == 1, || {
            format!("round {round}: {trues} concurrent deletes of one live key returned true")
        })?;
        t.expect(Op::exists("k"), Outcome::Bool(false)).await?;
    }
    Ok(())
}

/// Reads, at most, that each reader task makes while the writers work.
const MAX_READS_PER_TASK: usize = 5_000;

/// Runs `writers` tasks, each running `write(task, backend)` once, and `readers` tasks that
/// call `read(backend)` over and over for as long as any writer is still at work. Returns
/// every read's result.
async fn read_while_writing<T, W, WFut, R, RFut>(
    t: &Probe,
    writers: usize,
    readers: usize,
    write: W,
    read: R,
) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    W: Fn(usize, Arc<dyn KvBackend>) -> WFut,
    WFut: Future<Output = Result<(), KvError>> + Send + 'static,
    R: Fn(Arc<dyn KvBackend>) -> RFut + Send + Sync + 'static,
    RFut: Future<Output = Result<T, KvError>> + Send + 'static,
{
    let writers_done = Arc::new(AtomicUsize::new(0));
    let read = Arc::new(read);
    let per_task = in_parallel(
        t,
        writers + readers,
        |task, kv| -> BoxFuture<'static, Result<Vec<T>, KvError>> {
            let writers_done = writers_done.clone();
            if task < writers {
                let work = write(task, kv);
                return Box::pin(async move {
                    let result = work.await;
                    writers_done.fetch_add(1, Ordering::SeqCst);
                    result.map(|()| Vec::new())
                });
            }
            let read = read.clone();
            Box::pin(async move {
                let mut seen = Vec::new();
                for _ in 0..MAX_READS_PER_TASK {
                    seen.push(read(kv.clone()).await?);
                    if writers_done.load(Ordering::SeqCst) == writers {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Ok(seen)
            })
        },
    )
    .await?;
    Ok(per_task.into_iter().flatten().collect())
}

/// Readers racing writers and deleters only ever see a whole value that some writer wrote, and
/// `exists` agrees with `get` once the race is over.
pub(crate) async fn racing_writes_are_whole(t: Probe) -> CheckResult {
    note_runtime(&t);
    const VALUE_BYTES: usize = 16 * 1024;
    const WRITES_PER_TASK: usize = 30;
    let writers = t.profile.tasks.max(3) - 2;
    let reads = read_while_writing(
        &t,
        writers,
        2,
        |task, kv| async move {
            for round in 0..WRITES_PER_TASK {
                if task % 2 == 0 {
                    kv.set("k", &vec![(task + round) as u8; VALUE_BYTES])
                        .await?;
                } else {
                    kv.delete("k").await?;
                }
                tokio::task::yield_now().await;
            }
            Ok(())
        },
        |kv| async move {
            let value = kv.get("k").await?;
            kv.exists("k").await?;
            Ok(value.is_none_or(|v| v.len() == VALUE_BYTES && v.iter().all(|b| *b == v[0])))
        },
    )
    .await?;
    let torn = reads.iter().filter(|whole| !**whole).count();
    t.note(format!(
        "{} reads raced {writers} writers and deleters",
        reads.len()
    ));
    ensure(torn == 0, || {
        format!("{torn} reads returned a value no writer wrote (torn or mixed)")
    })?;
    let value = t.ok(Op::get("k")).await?;
    let exists = t.ok(Op::exists("k")).await?;
    ensure(
        exists == Outcome::Bool(matches!(value, Outcome::Value(Some(_)))),
        || format!("after the race, exists says {exists} but get says {value}"),
    )
}

/// A write that has returned is visible to every read that starts after it, in any task.
///
/// A writer task and a reader (this task) take turns: each write returns, then the reader
/// reads, then the next write starts; so every read must see exactly the latest write.
pub(crate) async fn writes_visible_to_later_reads(t: Probe) -> CheckResult {
    note_runtime(&t);
    const WRITES: u64 = 100;
    let (written_tx, mut written_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (read_tx, mut read_rx) = tokio::sync::mpsc::channel::<()>(1);
    let kv = t.backend.clone();
    let writer = tokio::spawn(async move {
        for i in 1..=WRITES {
            kv.set("k", i.to_string().as_bytes()).await?;
            if written_tx.send(i).await.is_err() || read_rx.recv().await.is_none() {
                break;
            }
        }
        Ok::<_, KvError>(())
    });
    while let Some(written) = written_rx.recv().await {
        let read = t
            .backend
            .get("k")
            .await
            .map_err(|e| Failure::new(format!("get failed: {e}")))?;
        let seen: Option<u64> = read
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
        ensure(seen == Some(written), || {
            format!("a read that started after set(\"k\", \"{written}\") returned (in another task) saw {seen:?}")
        })?;
        let _ = read_tx.send(()).await;
    }
    t.note(format!(
        "{WRITES} writes in one task, each read back in another"
    ));
    writer
        .await
        .map_err(|e| Failure::new(format!("writer task failed: {e}")))?
        .map_err(|e| Failure::new(format!("set failed: {e}")))
}

/// `list_keys` during writes to other keys still includes every key live throughout and never
/// includes a key that was absent throughout; its output stays sorted and unique.
pub(crate) async fn list_during_writes(t: Probe) -> CheckResult {
    note_runtime(&t);
    let stable: Vec<String> = (0..20).map(|i| format!("s-{i:02}")).collect();
    for key in &stable {
        t.put(key, "v").await?;
    }
    let listings = read_while_writing(
        &t,
        2,
        2,
        |task, kv| async move {
            for i in 0..25 {
                let key = format!("c-{task}-{}", i % 5);
                kv.set(&key, b"v").await?;
                kv.delete(&key).await?;
            }
            Ok(())
        },
        |kv| async move { kv.list_keys("").await },
    )
    .await?;
    t.note(format!(
        "{} listings raced 2 tasks writing and deleting c-* keys",
        listings.len()
    ));
    for listing in &listings {
        ensure(listing.windows(2).all(|w| w[0] < w[1]), || {
            format!("a listing was not sorted and unique: {listing:?}")
        })?;
        for key in &stable {
            ensure(listing.contains(key), || {
                format!("a listing during writes missed {key:?}, live throughout")
            })?;
        }
        ensure(
            listing
                .iter()
                .all(|k| k.starts_with("s-") || k.starts_with("c-")),
            || format!("a listing held a key that was never written: {listing:?}"),
        )?;
    }
    Ok(())
}

/// Steps each task takes in the history check (a get-then-CAS step is two calls).
const HISTORY_STEPS_PER_TASK: usize = 40;

/// The history check's TTL for a backend of `granularity`: long enough to outlive a few calls
/// on a networked store, short enough to expire during the run; at least 20 of the backend's
/// rounding steps, at least 20 ms, at most 1 s.
pub(crate) fn history_ttl(granularity: std::time::Duration) -> std::time::Duration {
    (granularity * 20).clamp(
        std::time::Duration::from_millis(20),
        std::time::Duration::from_secs(1),
    )
}

/// The history check's workload: `tasks` tasks, a counter, a register and an expiring counter,
/// with pauses of up to one TTL so that keys expire while they are read and written.
pub(crate) fn history_workload(tasks: usize, steps: usize, ttl: std::time::Duration) -> Workload {
    Workload::new()
        .tasks(tasks)
        .steps_per_task(steps)
        .hot_keys(3)
        .ttl(ttl)
        .pause(ttl.min(std::time::Duration::from_millis(50)))
}

/// Checks `history` with the suite's checker settings; on success, the one-line summary.
pub(crate) fn check_history(
    history: &crate::History,
    ttl: std::time::Duration,
    checker: Checker,
) -> Result<String, Failure> {
    // A store that decides expiry on another clock (a server's, the wall clock) may run at a
    // slightly different rate: 2 ms and 2% of the TTL of room either way.
    let slack = std::time::Duration::from_millis(2) + ttl / 50;
    let result = checker
        .with_ttl_slack(slack)
        .with_time_limit(std::time::Duration::from_secs(30))
        .check(history);
    if let Some(violation) = result.violation() {
        let mut failure = Failure::new(format!(
            "a concurrent history is not linearizable on key {:?}",
            violation.key
        ));
        failure.operations = violation.to_string().lines().map(str::to_owned).collect();
        return Err(failure);
    }
    if let Some((key, why)) = result.inconclusive().next() {
        return Err(Failure::new(format!(
            "the linearizability check of key {key:?} was inconclusive: {why}"
        )));
    }
    Ok(result
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// A contended history over a few hot keys (a counter, a register, an expiring counter whose
/// short TTL runs out while the contention goes on) from many tasks is linearizable: the
/// [`Checker`] finds an order of all its calls that the model accepts.
pub(crate) async fn history_linearizable(t: Probe) -> CheckResult {
    note_runtime(&t);
    let ttl = history_ttl(t.profile.ttl_granularity);
    let workload = history_workload(t.profile.tasks, HISTORY_STEPS_PER_TASK, ttl);
    for key in workload.keys() {
        t.remember_written(&key);
    }
    let history = workload.run(t.backend.clone()).await;
    let summary = check_history(&history, ttl, Checker::for_profile(&t.profile))?;
    t.note(format!(
        "{} tasks x {HISTORY_STEPS_PER_TASK} steps on {:?} (TTL {ttl:?}): {summary}",
        t.profile.tasks,
        workload.keys(),
    ));
    Ok(())
}
