//! `increment`, combined: the increments of one key that wait in one backend (and its clones)
//! go to etcd together, as one transaction that adds their sum.
//!
//! A transaction whose comparison fails still costs a Raft round, so increments of one
//! counter racing each other would cost about N/2 rounds each; taking turns costs one round
//! each, but N of them in a row (10,000 tasks on 16 counters: the last of a counter waited 20
//! seconds behind 624 others). Combined, every increment that arrives while one transaction
//! is in flight joins the next one: a burst of N costs a few rounds.
//!
//! Within a batch the increments apply in arrival order, each to the result of the one
//! before: each gets its own result (distinct, as if they ran one after the other at the
//! moment the transaction commits, which lies within every one of their calls), one that
//! would overflow fails alone and changes nothing, and a stored value that is not a counter
//! fails them all. A failed transaction (`Unavailable`: it may or may not have committed)
//! fails every increment of its batch. A caller that gave up (its future dropped) before its
//! batch was sent is left out of it.

use std::collections::HashMap;
use std::sync::Mutex;

use kv_trait::{apply_increment, format_counter, unix_millis_now, KvError};
use tokio::sync::oneshot;

use crate::backend::{if_absent, if_unchanged, EtcdBackend};
use crate::encoding::{envelope, plain, Entry};

/// The increments waiting for each key's next transaction, in arrival order. A key is present
/// while a batch runner for it is running.
#[derive(Default)]
pub(crate) struct PendingIncrements(Mutex<HashMap<Vec<u8>, Vec<Waiting>>>);

/// One increment waiting for its batch.
struct Waiting {
    delta: i64,
    answer: oneshot::Sender<Result<i64, KvError>>,
}

impl PendingIncrements {
    /// Queues `delta` for `key`; `true` when no runner is running for the key, so that the
    /// caller must start one.
    fn push(&self, key: &[u8], waiting: Waiting) -> bool {
        let mut pending = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match pending.get_mut(key) {
            Some(queue) => {
                queue.push(waiting);
                false
            }
            None => {
                pending.insert(key.to_vec(), vec![waiting]);
                true
            }
        }
    }

    /// The next batch for `key`, or `None` (and the runner's end) when none waits.
    fn next_batch(&self, key: &[u8]) -> Option<Vec<Waiting>> {
        let mut pending = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let batch = pending.get_mut(key).map(std::mem::take).unwrap_or_default();
        if batch.is_empty() {
            pending.remove(key);
            return None;
        }
        Some(batch)
    }
}

impl EtcdBackend {
    /// Adds `delta` to etcd key `key` in the next transaction for the key (see the module
    /// docs) and returns the result.
    pub(crate) async fn combined_increment(
        &self,
        key: Vec<u8>,
        delta: i64,
    ) -> Result<i64, KvError> {
        let (answer, result) = oneshot::channel();
        if self
            .pending_increments()
            .push(&key, Waiting { delta, answer })
        {
            // Its own task, so that a caller who gives up does not stop the others' batches.
            let backend = self.clone();
            tokio::spawn(async move { backend.run_batches(key).await });
        }
        result.await.unwrap_or_else(|_| {
            Err(KvError::unavailable(
                "the increment's batch was abandoned (the runtime is shutting down)",
            ))
        })
    }

    /// Sends the key's batches one after another until none waits.
    async fn run_batches(&self, key: Vec<u8>) {
        while let Some(batch) = self.pending_increments().next_batch(&key) {
            let batch: Vec<Waiting> = batch
                .into_iter()
                .filter(|waiting| !waiting.answer.is_closed())
                .collect();
            if batch.is_empty() {
                continue;
            }
            let deltas: Vec<i64> = batch.iter().map(|waiting| waiting.delta).collect();
            match self.writing(self.add_in_order(&key, &deltas)).await {
                Ok(results) => {
                    for (waiting, result) in batch.into_iter().zip(results) {
                        let _ = waiting.answer.send(result);
                    }
                }
                Err(err) => {
                    for waiting in batch {
                        let _ = waiting.answer.send(Err(same_error(&err)));
                    }
                }
            }
        }
    }

    /// One transaction adding `deltas` in order to the key's counter, again after each
    /// comparison that fails (another writer changed the key): the result of each.
    async fn add_in_order(
        &self,
        key: &[u8],
        deltas: &[i64],
    ) -> Result<Vec<Result<i64, KvError>>, KvError> {
        // Assume the key absent first: the transaction reads it if not.
        let mut found: Option<Entry> = None;
        loop {
            let live = found
                .as_ref()
                .filter(|entry| entry.is_live_at(unix_millis_now()));
            // Absent or expired: a new counter without TTL or lease; live: the sum, keeping
            // the deadline and lease.
            let (sum, results) = add_each(live.map(|entry| entry.value.as_slice()), deltas);
            let Some(sum) = sum else {
                // Nothing to write: not a counter, or every increment would overflow.
                return Ok(results);
            };
            let counter = format_counter(sum);
            let txn = match (&found, live) {
                (None, _) => if_absent(key, plain(&counter)),
                (Some(entry), None) => {
                    if_unchanged(key, entry.mod_revision, plain(&counter), false)
                }
                (Some(entry), Some(_)) => {
                    let stored = envelope(&counter, entry.deadline_ms);
                    if_unchanged(key, entry.mod_revision, stored, entry.deadline_ms.is_some())
                }
            };
            match self.transact(txn).await? {
                None => return Ok(results),
                // The comparison failed: judge the key as the transaction read it.
                Some(current) => found = current,
            }
        }
    }
}

/// Applies `deltas` in order to `start` (`None`: absent), each to the result of the one
/// before, skipping those that fail: the last value (`None` if none applied) and each one's
/// result.
fn add_each(start: Option<&[u8]>, deltas: &[i64]) -> (Option<i64>, Vec<Result<i64, KvError>>) {
    let mut current = start.map(<[u8]>::to_vec);
    let mut last = None;
    let results = deltas
        .iter()
        .map(|&delta| {
            let sum = apply_increment(current.as_deref(), delta)?;
            current = Some(format_counter(sum));
            last = Some(sum);
            Ok(sum)
        })
        .collect();
    (last, results)
}

/// The error of a batch's transaction, for each of its increments.
fn same_error(err: &KvError) -> KvError {
    match err {
        KvError::Unavailable(inner) => KvError::unavailable(inner.to_string()),
        other => KvError::backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_of_a_batch_apply_in_order_and_fail_alone() {
        let (last, results) = add_each(None, &[2, 3, -10]);
        assert_eq!(last, Some(-5));
        let results: Vec<i64> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, [2, 5, -5]);

        let (last, results) = add_each(Some(b"40"), &[1, i64::MAX, 1]);
        assert_eq!(last, Some(42));
        assert_eq!(results[0].as_ref().ok(), Some(&41));
        assert!(matches!(results[1], Err(KvError::IntegerOverflow)));
        assert_eq!(results[2].as_ref().ok(), Some(&42));

        let (last, results) = add_each(Some(b"forty"), &[1, 2]);
        assert_eq!(last, None);
        assert!(results
            .iter()
            .all(|result| matches!(result, Err(KvError::NotAnInteger))));
    }
}
