//! Group commit: writes that queue up while another commit is in flight share the next
//! transaction.
//!
//! A commit costs a sync of the write-ahead log (`synchronous = FULL`); with one transaction
//! per write, concurrent writers wait in line for the write lock and pay one sync each. Here
//! at most one connection of a backend writes at a time (the *writer*). Writers that arrive
//! while it works join a queue; when it is free it takes everything queued (up to
//! [`MAX_BATCH`]) into one `BEGIN IMMEDIATE` transaction, runs each write in a savepoint of its
//! own, commits once, and only then answers every caller. So:
//!
//! - **durability is unchanged**: no write is acknowledged before the commit that contains it
//!   has returned (synced, at `FULL`);
//! - **atomicity is unchanged**: a write that fails (`NotAnInteger`, a SQLite error) is rolled
//!   back to its savepoint, alone, and the rest of its batch commits; a failed commit fails
//!   every write of the batch, and none of them happened;
//! - **order is unchanged**: writes run one after another under the file's write lock, in the
//!   order they were queued; each takes effect at its batch's commit, between its call and its
//!   reply, so every operation stays linearizable.
//!
//! A write with nothing else queued runs alone in its transaction, without a savepoint: a
//! failure rolls the whole transaction back, as before group commit.

use std::sync::{Arc, Mutex, PoisonError};

use kv_trait::KvError;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::OpError;

/// The most writes one transaction takes: enough to amortise a sync over many writers, few
/// enough that other processes get the write lock often.
pub(crate) const MAX_BATCH: usize = 128;

/// What to tell a write's caller once its batch has committed (`Ok`) or failed (`Err`).
pub(crate) type Completion = Box<dyn FnOnce(Result<(), &KvError>) + Send>;

/// Where a write runs.
pub(crate) enum Slot<'a> {
    /// Alone in its transaction: no savepoint needed, the batch rolls back if it fails.
    Alone(&'a Transaction<'a>),
    /// Beside other writes: it must run in a savepoint ([`in_savepoint`]).
    Shared(&'a Transaction<'a>),
    /// Nowhere: the batch could not start. The write does nothing.
    NotRun,
}

/// Runs a write in its slot and returns how to answer its caller, and whether it succeeded.
pub(crate) type RunWrite = Box<dyn FnOnce(Slot<'_>) -> (Completion, bool) + Send>;

/// One queued write.
pub(crate) struct QueuedWrite {
    pub(crate) run: RunWrite,
    /// Whether this write asks for a batch of expired rows to be reclaimed too.
    pub(crate) reclaim: bool,
}

/// The queue of writes waiting for the writer, and whether a writer is at work.
#[derive(Default)]
pub(crate) struct WriteQueue {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queued: Vec<QueuedWrite>,
    writer_active: bool,
}

impl WriteQueue {
    /// Queues `write`. Returns `true` when no writer is at work, so the caller must start
    /// one (with [`WriteQueue::drain`] on a pooled connection); the queue now counts it as
    /// active, so exactly one caller is told to.
    pub(crate) fn push(&self, write: QueuedWrite) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.queued.push(write);
        !std::mem::replace(&mut state.writer_active, true)
    }

    /// The writer's work: commit batches until the queue is empty, then stop being the
    /// writer. Checking for more work and stepping down happen under one lock, so a write
    /// queued meanwhile is either taken by this loop or starts a new writer.
    pub(crate) fn drain(
        self: &Arc<Self>,
        conn: &mut Connection,
        reclaim: impl Fn(&mut Transaction<'_>),
    ) {
        // If a write panics (none should), its caller sees its reply channel dropped; this
        // guard answers everything still queued and lets the next write start a writer.
        let guard = StepDown(Arc::clone(self));
        while let Some(batch) = self.next_batch() {
            commit_batch(conn, batch, &reclaim);
        }
        std::mem::forget(guard);
    }

    fn next_batch(&self) -> Option<Vec<QueuedWrite>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.queued.is_empty() {
            state.writer_active = false;
            return None;
        }
        let take = state.queued.len().min(MAX_BATCH);
        Some(state.queued.drain(..take).collect())
    }

    /// Fails every queued write with `err` and stops counting a writer as active.
    pub(crate) fn abandon(&self, err: &KvError) {
        let queued = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.writer_active = false;
            std::mem::take(&mut state.queued)
        };
        fail_all(queued, err);
    }
}

/// Resets the queue when the writer unwinds.
struct StepDown(Arc<WriteQueue>);

impl Drop for StepDown {
    fn drop(&mut self) {
        self.0
            .abandon(&KvError::backend("a SQLite write failed unexpectedly"));
    }
}

/// Runs `batch` in one transaction and answers every write in it.
fn commit_batch(
    conn: &mut Connection,
    batch: Vec<QueuedWrite>,
    reclaim: &impl Fn(&mut Transaction<'_>),
) {
    let reclaim_due = batch.iter().any(|write| write.reclaim);
    let mut transaction = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(err) => return fail_all(batch, &KvError::from(OpError::from(err))),
    };
    let alone = batch.len() == 1;
    let mut completions = Vec::with_capacity(batch.len());
    let mut writes = batch.into_iter();
    for write in writes.by_ref() {
        let slot = match alone {
            true => Slot::Alone(&transaction),
            false => Slot::Shared(&transaction),
        };
        let (completion, succeeded) = (write.run)(slot);
        if alone && !succeeded {
            // Its own error is its answer; whatever it did goes with the transaction.
            drop(transaction);
            return completion(Ok(()));
        }
        completions.push(completion);
        // SQLite rolls a transaction back by itself after some errors (a full disk, an I/O
        // error). Nothing more may run then: it would run outside any transaction.
        if transaction.is_autocommit() {
            break;
        }
    }
    let aborted = transaction.is_autocommit();
    let committed = match aborted {
        true => Err(KvError::backend(
            "SQLite abandoned the transaction after an error; nothing in it was written",
        )),
        false => {
            if reclaim_due {
                reclaim(&mut transaction);
            }
            transaction
                .commit()
                .map_err(|err| KvError::from(OpError::from(err)))
        }
    };
    if let Err(err) = &committed {
        // Whatever did not get to run fails the same way.
        fail_all(writes.collect(), err);
    }
    for complete in completions {
        complete(committed.as_ref().map(|_| ()));
    }
}

/// The same error again, for the next write of a failed batch: the same variant (so
/// `Unavailable` stays retryable) and message. (`KvError` is not `Clone`: its sources are
/// arbitrary errors.)
pub(crate) fn duplicate(err: &KvError) -> KvError {
    match err {
        KvError::Unavailable(source) => KvError::unavailable(source.to_string()),
        KvError::QuotaExceeded(message) => KvError::QuotaExceeded(message.clone()),
        KvError::InvalidConfig(message) => KvError::InvalidConfig(message.clone()),
        other => KvError::backend(other.to_string()),
    }
}

fn fail_all(writes: Vec<QueuedWrite>, err: &KvError) {
    for write in writes {
        let (completion, _) = (write.run)(Slot::NotRun);
        completion(Err(err));
    }
}

/// Runs `write` inside a savepoint of `transaction`: on `Err` everything it did is rolled
/// back and the rest of the batch is unaffected.
pub(crate) fn in_savepoint<T>(
    transaction: &Transaction<'_>,
    write: impl FnOnce(&Transaction<'_>) -> Result<T, OpError>,
) -> Result<T, OpError> {
    transaction
        .prepare_cached("SAVEPOINT kv_write")?
        .execute([])?;
    match write(transaction) {
        Ok(value) => {
            transaction
                .prepare_cached("RELEASE kv_write")?
                .execute([])?;
            Ok(value)
        }
        Err(err) => {
            // If that fails, roll back the whole transaction rather than commit part of this
            // write; the batch sees the transaction gone and fails every write in it.
            if !transaction.is_autocommit()
                && transaction
                    .execute_batch("ROLLBACK TO kv_write; RELEASE kv_write")
                    .is_err()
            {
                let _ = transaction.execute_batch("ROLLBACK");
            }
            Err(err)
        }
    }
}
