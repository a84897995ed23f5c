//! Running a workload: pre-loading keys, then timed rounds of concurrent tasks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_trait::{apply_increment, format_counter, KvError};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::driver::Driver;
use super::requests;
use super::stats::{RoundStats, TaskStats};
use super::workload::{Keyspace, Op, Picker, Workload};

/// The TTL the mixed workload's `set_with_ttl` gives: long enough that keys outlive the run.
const MIXED_TTL_NS: u64 = 60_000_000_000;

/// When a round ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Length {
    /// After this long.
    Duration(Duration),
    /// After this many operations (all tasks together).
    Ops(u64),
}

/// Everything a round needs to know, shared by its tasks.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) workload: Workload,
    pub(crate) concurrency: usize,
    pub(crate) length: Length,
    pub(crate) keys: Keyspace,
    pub(crate) seed: u64,
}

/// Counts operations as tasks finish them, for the progress bar.
pub(crate) type Progress = Arc<AtomicU64>;

/// Writes every data key (and zeroes the counters) before timing starts, `concurrency` tasks
/// at a time.
pub(crate) async fn preload<D: Driver>(driver: &Arc<D>, plan: &Arc<Plan>) -> Result<(), KvError> {
    let mut tasks = Vec::new();
    for task in 0..plan.concurrency {
        let (driver, plan) = (Arc::clone(driver), Arc::clone(plan));
        tasks.push(tokio::spawn(async move {
            let mine = plan.keys.data.iter().skip(task).step_by(plan.concurrency);
            for key in mine {
                driver.set(key, &plan.keys.value).await?;
            }
            if task == 0 && plan.workload.uses_hot_keys() {
                for key in &plan.keys.hot {
                    driver.set(key, b"0").await?;
                }
            }
            Ok::<_, KvError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(joined)??;
    }
    Ok(())
}

/// One timed round: `plan.concurrency` tasks running the workload until the round's length is
/// reached. `round` varies the random sequence between rounds; the same `round` gives the
/// same operations and keys on every driver.
pub(crate) async fn run_round<D: Driver>(
    driver: &Arc<D>,
    plan: &Arc<Plan>,
    round: u64,
    progress: &Progress,
) -> Result<RoundStats, KvError> {
    let stop = Arc::new(Stop::new(plan.length));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..plan.concurrency {
        let (driver, plan, stop) = (Arc::clone(driver), Arc::clone(plan), Arc::clone(&stop));
        let progress = Arc::clone(progress);
        let seed = plan.seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ task as u64;
        tasks.push(tokio::spawn(async move {
            run_task(&*driver, &plan, &stop, seed, &progress).await
        }));
    }
    let mut round_stats = RoundStats::default();
    for task in tasks {
        round_stats.add(task.await.map_err(joined)??);
    }
    round_stats.elapsed = started.elapsed();
    Ok(round_stats)
}

/// One task's loop: draw an operation, time it, record it.
async fn run_task<D: Driver>(
    driver: &D,
    plan: &Plan,
    stop: &Stop,
    seed: u64,
    progress: &Progress,
) -> Result<TaskStats, KvError> {
    let picker = Picker::new(plan.workload);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut stats = TaskStats::default();
    while stop.another() {
        let op = picker.pick(&mut rng);
        let started = Instant::now();
        let retries = requests::attributed(op, execute(driver, op, &plan.keys, &mut rng)).await?;
        stats.record(op, started.elapsed(), retries);
        progress.fetch_add(1, Ordering::Relaxed);
    }
    Ok(stats)
}

/// Runs one operation on a key drawn from the keyspace (a batch operation on the batch that
/// starts at that key). Returns how many times a compare-and-swap lost to another writer and
/// went round again (0 for everything else).
async fn execute<D: Driver>(
    driver: &D,
    op: Op,
    keys: &Keyspace,
    rng: &mut SmallRng,
) -> Result<u64, KvError> {
    // Both indices are drawn for every operation, so that the random sequence (and with it
    // every later key) is the same whatever the operation.
    let start = rng.random_range(0..keys.data.len());
    let data = &keys.data[start];
    let hot = &keys.hot[rng.random_range(0..keys.hot.len())];
    match op {
        Op::GetMany => {
            let batch: Vec<&str> = keys.batch(start).collect();
            let values = driver.get_many(&batch).await?;
            // A side that answered some other number of keys did not do the work measured.
            if values.len() != batch.len() {
                return Err(KvError::backend(format!(
                    "get_many of {} keys answered {} values",
                    batch.len(),
                    values.len()
                )));
            }
        }
        Op::SetMany => {
            let batch: Vec<(&str, &[u8])> = keys
                .batch(start)
                .map(|key| (key, keys.value.as_slice()))
                .collect();
            driver.set_many(&batch).await?;
        }
        Op::Get => {
            driver.get(data).await?;
        }
        Op::Set => driver.set(data, &keys.value).await?,
        Op::Increment => {
            driver.increment(hot, 1).await?;
        }
        Op::CompareAndSwap => return cas_loop(driver, hot).await,
        Op::SetWithTtl | Op::Delete | Op::Exists | Op::ListKeys => {
            let backend = driver
                .backend()
                .ok_or_else(|| KvError::backend(format!("this driver cannot run `{op}`")))?;
            match op {
                Op::SetWithTtl => {
                    backend
                        .set_with_ttl(data, &keys.value, MIXED_TTL_NS)
                        .await?
                }
                Op::Delete => {
                    backend.delete(data).await?;
                }
                Op::Exists => {
                    backend.exists(data).await?;
                }
                _ => {
                    let prefix = &keys.prefixes[rng.random_range(0..keys.prefixes.len())];
                    backend.list_keys(prefix).await?;
                }
            }
        }
    }
    Ok(0)
}

/// Adds one to the counter at `key` by compare-and-swap: read, swap, and on a lost race read
/// again. What an application does to update a value that is not a counter.
async fn cas_loop<D: Driver>(driver: &D, key: &str) -> Result<u64, KvError> {
    let mut retries = 0;
    loop {
        let current = driver.get(key).await?;
        // The counter rules of the contract: absent counts as 0, anything else must be a
        // canonical decimal i64.
        let next = format_counter(apply_increment(current.as_deref(), 1)?);
        if driver
            .compare_and_swap(key, current.as_deref(), &next)
            .await?
        {
            return Ok(retries);
        }
        retries += 1;
    }
}

fn joined(err: tokio::task::JoinError) -> KvError {
    KvError::backend(format!("a benchmark task failed: {err}"))
}

/// The shared "keep going?" of a round's tasks.
struct Stop {
    deadline: Option<Instant>,
    /// Operations still to start, for a round of fixed length.
    remaining: AtomicU64,
}

impl Stop {
    fn new(length: Length) -> Self {
        match length {
            Length::Duration(duration) => Self {
                deadline: Some(Instant::now() + duration),
                remaining: AtomicU64::new(u64::MAX),
            },
            Length::Ops(ops) => Self {
                deadline: None,
                remaining: AtomicU64::new(ops),
            },
        }
    }

    /// Whether the calling task may start another operation.
    fn another(&self) -> bool {
        match self.deadline {
            Some(deadline) => Instant::now() < deadline,
            None => self
                .remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_length_round_starts_exactly_that_many_operations() {
        let stop = Stop::new(Length::Ops(3));
        let started = std::iter::from_fn(|| stop.another().then_some(())).count();
        assert_eq!(started, 3);
        assert!(!stop.another());
    }

    #[test]
    fn cas_loops_count_like_the_contract_says() {
        assert_eq!(apply_increment(Some(b"-12"), 1).unwrap(), -11);
        assert!(matches!(
            apply_increment(Some(b"x"), 1),
            Err(KvError::NotAnInteger)
        ));
    }
}
