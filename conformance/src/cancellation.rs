//! Cancellation safety: the `concurrent_cancellation_linearizable` check.
//!
//! An application drops a call's future whenever a timeout fires, a `select!` picks another
//! branch or a request handler is cancelled, at whatever await point the call had reached. A
//! backend is cancellation safe when no such drop leaves the store in a state no whole call
//! could have made (half a transaction, a lock held forever, a pooled connection mid-request
//! handed to the next caller). The check runs the contended history workload through
//! [`Dropping`], which drops calls at random points, and then demands that the history is
//! still linearizable, with each dropped call as one that may or may not have taken effect,
//! and that the backend still answers every key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kv_trait::{KvBackend, KvError};

use crate::concurrency::{check_history, history_ttl, history_workload};
use crate::each_call::{AroundCall, EachCall};
use crate::history::SplitMix;
use crate::probe::{ensure, CheckResult, Probe};
use crate::Checker;

/// Steps each task takes, as in the history check.
const STEPS_PER_TASK: usize = 40;

/// One write in this many is raced against a timer. Each dropped write may have taken effect
/// at any later time, which the checker must try both ways: with a third of the writes
/// dropped, a counter on a 3-member etcd cluster (where a 2 ms timer drops nearly every call it
/// races) gave the checker some 30 maybe-applied increments on one key and its search ran out
/// of time; one in eight leaves a handful per key.
const WRITES_RACED_ONE_IN: u64 = 8;
/// One read in this many is raced: a dropped read observed nothing and costs the checker
/// nothing, so reads are dropped more often.
const READS_RACED_ONE_IN: u64 = 2;

/// What drops some calls' futures (one write in `writes_one_in`, one read in
/// [`READS_RACED_ONE_IN`]) after a random delay of 0 to 2 ms (the call is dropped only if it is
/// still running then) and answers those `Unavailable`: where a call is dropped depends on how
/// far it got, so over a workload the drops land on every await point a call has.
#[derive(Debug)]
pub(crate) struct Dropping {
    dice: Mutex<SplitMix>,
    writes_one_in: u64,
    dropped: AtomicU64,
}

impl Dropping {
    /// `inner` with some of its calls dropped, from the dice `seed`.
    pub(crate) fn around(
        inner: Arc<dyn KvBackend>,
        seed: u64,
        writes_one_in: u64,
    ) -> EachCall<Dropping> {
        let around = Self {
            dice: Mutex::new(SplitMix(seed)),
            writes_one_in,
            dropped: AtomicU64::new(0),
        };
        EachCall { inner, around }
    }

    /// How many calls were dropped before they finished.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The delay after which this call is dropped, if it is one to drop.
    fn roll(&self, one_in: u64) -> Option<Duration> {
        let mut dice = self.dice.lock().unwrap_or_else(|e| e.into_inner());
        (dice.below(one_in) == 0).then(|| Duration::from_micros(dice.below(2_001)))
    }
}

impl AroundCall for Dropping {
    fn around<'a, T: Send + 'a>(
        &'a self,
        write: bool,
        call: BoxFuture<'a, Result<T, KvError>>,
    ) -> BoxFuture<'a, Result<T, KvError>> {
        let one_in = if write {
            self.writes_one_in
        } else {
            READS_RACED_ONE_IN
        };
        let Some(delay) = self.roll(one_in) else {
            return call;
        };
        Box::pin(async move {
            tokio::select! {
                biased;
                outcome = call => outcome,
                () = tokio::time::sleep(delay) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Err(KvError::unavailable(
                        "the call was dropped by the cancellation check before it finished",
                    ))
                }
            }
        })
    }
}

/// The contended history workload with some of its calls dropped at random points is
/// linearizable, and afterwards every key answers.
pub(crate) async fn history_with_dropped_calls(t: Probe) -> CheckResult {
    let ttl = history_ttl(t.profile.ttl_granularity);
    let workload = history_workload(t.profile.tasks, STEPS_PER_TASK, ttl);
    for key in workload.keys() {
        t.remember_written(&key);
    }
    let seed = t.profile.seed.unwrap_or(0x5EED_CA9C);
    let dropping = Arc::new(Dropping::around(
        t.backend.clone(),
        seed,
        WRITES_RACED_ONE_IN,
    ));
    let history = workload.run(dropping.clone()).await;
    let summary = check_history(&history, ttl, Checker::for_profile(&t.profile))?;
    // Nothing left behind that blocks the next caller: each key reads and writes at once.
    for key in workload.keys() {
        let read = t.backend.get(&key).await;
        ensure(read.is_ok(), || {
            format!("after dropped calls, get({key:?}) failed: {read:?}")
        })?;
        let written = t.backend.set(&key, b"after").await;
        ensure(written.is_ok(), || {
            format!("after dropped calls, set({key:?}) failed: {written:?}")
        })?;
    }
    t.note(format!(
        "{} tasks x {STEPS_PER_TASK} steps, {} calls dropped before they finished: {summary}",
        t.profile.tasks,
        dropping.around.dropped(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Suite;
    use kv_memory::MemoryBackend;
    use kv_trait::async_trait;

    /// Writes (`set`, `set_with_ttl`) in two steps with an await between them, a placeholder and then the value, under
    /// one lock that every call takes: whole calls never see the placeholder (the backend is
    /// linearizable), but a `set` dropped between its steps gives the lock up and leaves the
    /// placeholder behind: not cancellation safe.
    #[derive(Debug, Clone, Default)]
    struct TwoStepWrites {
        store: MemoryBackend,
        lock: Arc<tokio::sync::Mutex<()>>,
    }

    #[async_trait]
    impl KvBackend for TwoStepWrites {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
            let _turn = self.lock.lock().await;
            self.store.get(key).await
        }
        async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
            let _turn = self.lock.lock().await;
            self.store.set(key, b"placeholder").await?;
            tokio::time::sleep(Duration::from_millis(3)).await;
            self.store.set(key, value).await
        }
        async fn set_with_ttl(&self, key: &str, value: &[u8], ttl: u64) -> Result<(), KvError> {
            let _turn = self.lock.lock().await;
            self.store.set_with_ttl(key, b"placeholder", ttl).await?;
            tokio::time::sleep(Duration::from_millis(3)).await;
            self.store.set_with_ttl(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<bool, KvError> {
            let _turn = self.lock.lock().await;
            self.store.delete(key).await
        }
        async fn exists(&self, key: &str) -> Result<bool, KvError> {
            let _turn = self.lock.lock().await;
            self.store.exists(key).await
        }
        async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
            let _turn = self.lock.lock().await;
            self.store.list_keys(prefix).await
        }
        async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
            let _turn = self.lock.lock().await;
            self.store.increment(key, delta).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            new: &[u8],
        ) -> Result<bool, KvError> {
            let _turn = self.lock.lock().await;
            self.store.compare_and_swap(key, expected, new).await
        }
    }

    async fn check<B: KvBackend + 'static>(make: fn() -> B, check: &str) -> crate::Report {
        Suite::new(move || async move { Ok(make()) })
            .only([check])
            .run()
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backend_that_drops_cleanly_passes_and_calls_were_dropped() {
        let report = check(MemoryBackend::new, "concurrent_cancellation_linearizable").await;
        assert!(report.passed(), "{report}");
        // The drops really happen: a slow backend is raced and loses.
        let slow = Dropping::around(Arc::new(TwoStepWrites::default()), 1, 2);
        for i in 0..64 {
            let _ = slow.set(&format!("k{i}"), b"v").await;
        }
        assert!(slow.around.dropped() > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backend_that_leaves_half_a_write_behind_is_caught() {
        // Linearizable while its calls run whole...
        let whole = check(TwoStepWrites::default, "concurrent_history_linearizable").await;
        assert!(whole.passed(), "{whole}");
        // ...but not once writes are dropped (here one in two, so that every run drops some
        // between their steps; the suite's check drops fewer to keep the search small).
        let ttl = Duration::from_millis(50);
        let workload = history_workload(8, STEPS_PER_TASK, ttl);
        let backend = Arc::new(TwoStepWrites::default());
        let history = workload
            .run(Arc::new(Dropping::around(backend, 7, 2)))
            .await;
        let failure = check_history(&history, ttl, Checker::new()).unwrap_err();
        assert!(failure.message.contains("not linearizable"), "{failure:?}");
    }
}
