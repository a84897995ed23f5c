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
//!
//! Three rules keep the writer from crowding anyone out:
//!
//! - **One batch per turn.** The writer commits one batch, then queues itself again on the
//!   pool behind whatever is waiting there, so a pool of one connection still answers reads
//!   between batches instead of after the last queued write.
//! - **A turn for other processes.** While writes keep coming, a writer that has held the
//!   file's write lock back to back for [`HOLD_WHILE_CONTENDED`] (or [`HOLD_UNCONTENDED`] when
//!   it has not had to wait for the lock lately) pauses for [`TURN_GAP`] before its next
//!   `BEGIN IMMEDIATE`. Another process's writer, polling the lock every millisecond (see the
//!   pool's busy handler), takes it in that gap; otherwise it could wait out its whole busy
//!   timeout while this one re-took the lock microseconds after every commit.
//! - **Withdrawn writes do not run.** A write whose caller dropped its future before the
//!   write started is skipped; one already running completes (all or nothing), as before.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use kv_trait::{monotonic_now, KvError};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::OpError;
use crate::watch::FileChanges;

/// The most writes one transaction takes: enough to amortise a sync over many writers, few
/// enough that other processes get the write lock often.
pub(crate) const MAX_BATCH: usize = 128;

/// How long the writer holds the write lock back to back, when it has had to wait for the lock
/// lately (another process writes too), before it leaves a [`TURN_GAP`].
pub(crate) const HOLD_WHILE_CONTENDED: Duration = Duration::from_millis(20);

/// The same when it has not had to wait: long enough that a process writing alone loses about
/// 1% of its lock time, short enough that a newly arrived process gets its first turn soon,
/// after which the writer sees contention and takes turns every [`HOLD_WHILE_CONTENDED`].
pub(crate) const HOLD_UNCONTENDED: Duration = Duration::from_millis(100);

/// The pause between two batches that lets another process take the write lock: twice the
/// busy handler's polling interval.
pub(crate) const TURN_GAP: Duration = Duration::from_millis(2);

/// How long one wait for the lock counts as "contended lately".
const CONTENTION_MEMORY: Duration = Duration::from_secs(1);

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

/// How a write went in its slot.
pub(crate) enum Outcome {
    /// It did its work (which is kept if the batch commits).
    Done,
    /// It failed and was rolled back; the error, again, in case SQLite abandoned the whole
    /// transaction because of it (a full disk), so the rest of the batch fails the same way.
    Failed(KvError),
    /// Its caller had stopped waiting before it started: it did nothing.
    Withdrawn,
}

/// Runs a write in its slot and returns how to answer its caller, and how it went.
pub(crate) type RunWrite = Box<dyn FnOnce(Slot<'_>) -> (Completion, Outcome) + Send>;

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

/// What the writer does after a batch.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    /// Nothing is queued: it is no longer the writer.
    StepDown,
    /// Writes are queued: take the next turn, after `gap` if there is one.
    Again { gap: Option<Duration> },
}

#[derive(Default)]
struct State {
    queued: Vec<QueuedWrite>,
    writer_active: bool,
    /// When the writer's current run of back-to-back batches began.
    holding_since: Option<Instant>,
    /// When the writer last had to wait for the file's write lock.
    last_contended: Option<Instant>,
}

impl State {
    /// No writer is at work any more, and its run of batches has ended.
    fn step_down(&mut self) {
        self.writer_active = false;
        self.holding_since = None;
    }
}

impl WriteQueue {
    /// Queues `write`. Returns `true` when no writer is at work, so the caller must start
    /// one (with [`WriteQueue::drain_one`] on a pooled connection); the queue now counts it as
    /// active, so exactly one caller is told to.
    pub(crate) fn push(&self, write: QueuedWrite) -> bool {
        let mut state = self.lock();
        state.queued.push(write);
        !std::mem::replace(&mut state.writer_active, true)
    }

    /// One turn of the writer: commit one batch, then say whether more writes are queued. If
    /// so, the writer stays active and the caller must queue this again (on the pool, behind
    /// the reads waiting there); if not, it has stepped down, under the same lock that checked,
    /// so a write queued meanwhile either is seen here or starts a new writer.
    ///
    /// `lock_waited` tells whether the last `BEGIN IMMEDIATE` on `conn` had to wait.
    pub(crate) fn drain_one(
        self: &Arc<Self>,
        conn: &mut Connection,
        commit_order: &FileChanges,
        reclaim: impl Fn(&mut Transaction<'_>),
        lock_waited: impl Fn() -> bool,
    ) -> bool {
        // If a write panics (none should), its caller sees its reply channel dropped; this
        // guard answers everything still queued and lets the next write start a writer.
        let guard = StepDown(Arc::clone(self));
        let Some(batch) = self.next_batch() else {
            std::mem::forget(guard);
            return false;
        };
        let size = batch.len();
        commit_batch(conn, batch, commit_order, &reclaim);
        std::mem::forget(guard);
        let waited = lock_waited();
        tracing::debug!(writes = size, waited_for_lock = waited, "group commit");
        match self.end_turn(waited) {
            Turn::StepDown => false,
            Turn::Again { gap: None } => true,
            Turn::Again { gap: Some(gap) } => {
                tracing::debug!(
                    ?gap,
                    "leaving the write lock to other processes for a moment"
                );
                thread::sleep(gap);
                true
            }
        }
    }

    fn next_batch(&self) -> Option<Vec<QueuedWrite>> {
        let mut state = self.lock();
        if state.queued.is_empty() {
            state.step_down();
            return None;
        }
        state.holding_since.get_or_insert_with(monotonic_now);
        let take = state.queued.len().min(MAX_BATCH);
        Some(state.queued.drain(..take).collect())
    }

    /// After a batch, under one lock: step down when nothing is queued; otherwise go again,
    /// after a [`TURN_GAP`] when the writer has held the lock back to back for long enough.
    fn end_turn(&self, waited_for_lock: bool) -> Turn {
        let mut state = self.lock();
        let now = monotonic_now();
        if waited_for_lock {
            state.last_contended = Some(now);
        }
        if state.queued.is_empty() {
            state.step_down();
            return Turn::StepDown;
        }
        let contended = state
            .last_contended
            .is_some_and(|at| now.duration_since(at) < CONTENTION_MEMORY);
        let hold = match contended {
            true => HOLD_WHILE_CONTENDED,
            false => HOLD_UNCONTENDED,
        };
        let held_long_enough = state
            .holding_since
            .is_some_and(|since| now.duration_since(since) >= hold);
        if !held_long_enough {
            return Turn::Again { gap: None };
        }
        state.holding_since = None;
        Turn::Again {
            gap: Some(TURN_GAP),
        }
    }

    /// How many writes wait for the writer.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().queued.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails every queued write with `err` and stops counting a writer as active.
    pub(crate) fn abandon(&self, err: &KvError) {
        let queued = {
            let mut state = self.lock();
            state.step_down();
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

/// Runs `batch` in one transaction and answers every write in it. The commit and the answers
/// (which publish the batch's changes to watchers) happen under `changes`' commit-order lock.
fn commit_batch(
    conn: &mut Connection,
    batch: Vec<QueuedWrite>,
    changes: &FileChanges,
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
    let mut abandoned_by = None;
    for write in writes.by_ref() {
        let slot = match alone {
            true => Slot::Alone(&transaction),
            false => Slot::Shared(&transaction),
        };
        let (completion, outcome) = (write.run)(slot);
        if alone && matches!(outcome, Outcome::Failed(_)) {
            // Its own error is its answer; whatever it did goes with the transaction.
            drop(transaction);
            return completion(Ok(()));
        }
        completions.push(completion);
        // SQLite rolls a transaction back by itself after some errors (a full disk, an I/O
        // error). Nothing more may run then: it would run outside any transaction.
        if transaction.is_autocommit() {
            if let Outcome::Failed(cause) = outcome {
                abandoned_by = Some(cause);
            }
            break;
        }
    }
    // Taken inside the transaction, so under SQLite's write lock (see `commit_order`).
    let _in_commit_order = changes.commit_order();
    let committed = match transaction.is_autocommit() {
        true => Err(abandoned(abandoned_by)),
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
        tracing::debug!(error = %err, "group commit failed; no write of the batch happened");
        // Whatever did not get to run fails the same way.
        fail_all(writes.collect(), err);
    }
    for complete in completions {
        complete(committed.as_ref().map(|_| ()));
    }
}

/// The error of a batch SQLite abandoned: the kind of the error that made it do so (a full
/// disk stays `QuotaExceeded` for every write of the batch), and what it means.
fn abandoned(cause: Option<KvError>) -> KvError {
    const NOTHING_WRITTEN: &str =
        "SQLite abandoned the transaction after an error; nothing in it was written";
    match cause {
        Some(KvError::QuotaExceeded(message)) => {
            KvError::QuotaExceeded(format!("{message} ({NOTHING_WRITTEN})"))
        }
        Some(KvError::Unavailable(source)) => {
            KvError::unavailable(format!("{source} ({NOTHING_WRITTEN})"))
        }
        Some(other) => KvError::backend(format!("{other} ({NOTHING_WRITTEN})")),
        None => KvError::backend(NOTHING_WRITTEN),
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// What each write of a test batch was told.
    type Answers = Arc<Mutex<Vec<Result<(), String>>>>;

    /// A queued write that runs `work` in its slot and records its answer.
    fn write(
        answers: &Answers,
        work: impl FnOnce(&Transaction<'_>) -> Outcome + Send + 'static,
    ) -> QueuedWrite {
        let answers = Arc::clone(answers);
        QueuedWrite {
            reclaim: false,
            run: Box::new(move |slot| {
                let outcome = match slot {
                    Slot::Alone(tx) | Slot::Shared(tx) => work(tx),
                    Slot::NotRun => Outcome::Withdrawn,
                };
                let completion: Completion = Box::new(move |committed| {
                    let answer = committed.map_err(|err| format!("{err:?}"));
                    answers.lock().unwrap().push(answer);
                });
                (completion, outcome)
            }),
        }
    }

    #[test]
    fn a_batch_abandoned_on_a_full_disk_fails_whole_as_quota_exceeded() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        let answers = Answers::default();
        let batch = vec![
            write(&answers, |tx| {
                tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
                Outcome::Done
            }),
            // What SQLite does after some SQLITE_FULL errors: it rolls the whole transaction
            // back by itself (here by hand, as no test can fill a disk on cue).
            write(&answers, |tx| {
                tx.execute_batch("ROLLBACK").unwrap();
                Outcome::Failed(KvError::QuotaExceeded("database or disk is full".into()))
            }),
            write(&answers, |_| {
                unreachable!("nothing runs after the transaction is gone")
            }),
        ];
        commit_batch(&mut conn, batch, &FileChanges::default(), &|_| {});
        let answers = answers.lock().unwrap().clone();
        assert_eq!(answers.len(), 3);
        for answer in &answers {
            let err = answer.as_ref().unwrap_err();
            assert!(err.starts_with("QuotaExceeded"), "{err}");
            assert!(err.contains("nothing in it was written"), "{err}");
        }
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 0, "the first write went with the transaction");
    }

    #[test]
    fn a_writer_that_held_the_lock_long_enough_leaves_a_gap_only_while_writes_wait() {
        let queue = Arc::new(WriteQueue::default());
        let answers = Answers::default();
        for _ in 0..2 {
            queue.push(write(&answers, |_| Outcome::Done));
        }
        assert!(queue.next_batch().is_some());
        queue.lock().holding_since = Some(monotonic_now() - HOLD_UNCONTENDED);
        // Nothing queued: no gap, however long it held; the writer steps down.
        assert_eq!(queue.end_turn(true), Turn::StepDown);
        assert!(!queue.lock().writer_active);
        queue.push(write(&answers, |_| Outcome::Done));
        queue.lock().holding_since = Some(monotonic_now() - HOLD_WHILE_CONTENDED);
        // Contended (it waited) and held for the contended hold: a gap.
        let gap = Some(TURN_GAP);
        assert_eq!(queue.end_turn(true), Turn::Again { gap });
        // The run starts again after the gap.
        assert_eq!(queue.lock().holding_since, None);
        // Uncontended lately? The longer hold applies.
        queue.lock().last_contended = None;
        queue.lock().holding_since = Some(monotonic_now() - HOLD_WHILE_CONTENDED);
        assert_eq!(queue.end_turn(false), Turn::Again { gap: None });
        queue.lock().holding_since = Some(monotonic_now() - HOLD_UNCONTENDED);
        assert_eq!(queue.end_turn(false), Turn::Again { gap });
        assert_eq!(queue.len(), 1);
    }
}
