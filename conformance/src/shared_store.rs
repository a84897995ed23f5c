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
                    while !add_one(handle.as_ref(), COUNTER).await? {}
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

/// One attempt to add 1 to the counter at `key` by compare-and-swap; whether it won.
async fn add_one(handle: &dyn KvBackend, key: &str) -> Result<bool, KvError> {
    let current = handle.get(key).await?;
    let next = current
        .as_deref()
        .and_then(kv_trait::parse_counter)
        .unwrap_or(0)
        + 1;
    handle
        .compare_and_swap(key, current.as_deref(), next.to_string().as_bytes())
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

/// Keys of the multi-process workload ([`process_workload`]).
const PROCESS_COUNTER: &str = "shared-store/processes/counter";
const PROCESS_CAS_COUNTER: &str = "shared-store/processes/cas-counter";

/// What one OS process of a multi-process test did in [`process_workload`]: every value its
/// increments returned, and how many compare-and-swaps it won. A child process prints it as
/// one line ([`to_line`](Self::to_line)); the parent reads it back from the child's output
/// ([`from_output`](Self::from_output)) and checks every process's tally together with
/// [`check_process_tallies`].
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use kv_conformance::shared_store::{check_process_tallies, process_workload, ProcessTally};
///
/// let store = Arc::new(kv_memory::MemoryBackend::new());
/// // In each process (here: one), on the same namespace:
/// let tally = process_workload(store.clone(), 4, 5, 3).await.unwrap();
/// let printed = format!("running 1 test\n{}\ntest child ... ok\n", tally.to_line());
/// // In the parent, from every child's output and its own tally:
/// let read = ProcessTally::from_output(&printed).unwrap();
/// assert_eq!(read, tally);
/// let lost = ProcessTally { increments: vec![], ..read.clone() };
/// assert!(check_process_tallies(store.as_ref(), &[lost], 4, 5, 3).await.is_err());
/// check_process_tallies(store.as_ref(), &[read], 4, 5, 3).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessTally {
    /// The results of this process's increments, in no particular order.
    pub increments: Vec<i64>,
    /// How many of this process's compare-and-swaps succeeded.
    pub swaps_won: usize,
}

impl ProcessTally {
    /// Precedes the tally on its line of a child's output.
    const MARKER: &'static str = "kv-conformance process tally: ";

    /// The tally as one line of text, for a child process to print.
    pub fn to_line(&self) -> String {
        let increments: Vec<String> = self.increments.iter().map(i64::to_string).collect();
        format!(
            "{}{}|{}",
            Self::MARKER,
            increments.join(","),
            self.swaps_won
        )
    }

    /// The tally a child printed with [`to_line`](Self::to_line), found in its whole output
    /// (test harness lines around it are skipped); `None` when there is none or it is garbled.
    pub fn from_output(output: &str) -> Option<Self> {
        let line = output
            .lines()
            .find_map(|line| line.split_once(Self::MARKER).map(|(_, rest)| rest.trim()))?;
        let (increments, won) = line.split_once('|')?;
        let increments = if increments.is_empty() {
            Vec::new()
        } else {
            increments
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?
        };
        Some(Self {
            increments,
            swaps_won: won.parse().ok()?,
        })
    }
}

/// One process's part of a multi-process test: `tasks` tasks on `store`, each incrementing a
/// counter `increments` times, then winning `swaps` get + compare-and-swap rounds on a second
/// counter. Run it in every process on the same namespace, then check all the tallies with
/// [`check_process_tallies`].
pub async fn process_workload(
    store: Arc<dyn KvBackend>,
    tasks: usize,
    increments: usize,
    swaps: usize,
) -> Result<ProcessTally, Failure> {
    let spawned = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(increments);
                for _ in 0..increments {
                    seen.push(store.increment(PROCESS_COUNTER, 1).await?);
                }
                let mut won = 0;
                while won < swaps {
                    if add_one(store.as_ref(), PROCESS_CAS_COUNTER).await? {
                        won += 1;
                    }
                }
                Ok((seen, won))
            })
        })
        .collect();
    let mut tally = ProcessTally::default();
    for (seen, won) in join_all(spawned).await? {
        tally.increments.extend(seen);
        tally.swaps_won += won;
    }
    Ok(tally)
}

/// Checks the tallies of every process of a [`process_workload`] run (each ran `tasks`
/// tasks, `increments` increments and `swaps` won compare-and-swaps per task) against
/// `store`: the increments returned exactly `1..=total`, each once, and both counters hold
/// their totals. Deletes both counters.
pub async fn check_process_tallies(
    store: &dyn KvBackend,
    tallies: &[ProcessTally],
    tasks: usize,
    increments: usize,
    swaps: usize,
) -> Result<(), Failure> {
    let mut returned: Vec<i64> = tallies
        .iter()
        .flat_map(|tally| tally.increments.iter().copied())
        .collect();
    returned.sort_unstable();
    let total = tallies.len() * tasks * increments;
    let expected: Vec<i64> = (1..=i64::try_from(total).unwrap_or(i64::MAX)).collect();
    if returned != expected {
        return Err(Failure::mismatch(
            "increments from several processes",
            format!("the values 1..={total}, each once"),
            format!(
                "{} values, {} distinct",
                returned.len(),
                returned.iter().collect::<BTreeSet<_>>().len()
            ),
        ));
    }
    let won: usize = tallies.iter().map(|tally| tally.swaps_won).sum();
    let swaps_total = tallies.len() * tasks * swaps;
    if won != swaps_total {
        return Err(Failure::mismatch(
            "compare-and-swaps won by several processes",
            swaps_total.to_string(),
            won.to_string(),
        ));
    }
    for (key, expected, what) in [
        (PROCESS_COUNTER, total, "the counter after the processes"),
        (
            PROCESS_CAS_COUNTER,
            swaps_total,
            "the get + CAS counter after the processes",
        ),
    ] {
        let stored = store.get(key).await.map_err(failed("get"))?;
        store.delete(key).await.map_err(failed("delete"))?;
        if stored != Some(expected.to_string().into_bytes()) {
            return Err(Failure::mismatch(
                what,
                expected.to_string(),
                format!("{stored:?}"),
            ));
        }
    }
    Ok(())
}
