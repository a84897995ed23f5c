//! The connection pool: a fixed set of threads, each owning one SQLite connection, serving a
//! shared queue of operations.
//!
//! SQLite calls block (on disk I/O, and on another writer's lock for up to the busy timeout),
//! so they never run on the async executor's threads. Giving each connection its own thread
//! rather than borrowing `spawn_blocking` threads means:
//!
//! - at most `pool_size` operations touch the database at once, and no connection is ever
//!   opened per operation: each thread opens its connection once and keeps its prepared
//!   statements cached for its whole life;
//! - a caller that stops waiting (its future is dropped) cannot leak a connection: the
//!   operation still runs to completion on its thread, committing or rolling back as a whole,
//!   and the connection goes back to serving the queue;
//! - the backend needs no particular executor: replies travel over a `oneshot` channel, which
//!   any executor can await.
//!
//! The queue is bounded by the backend, which admits at most `max_queued` operations at once
//! (callers beyond that wait, asynchronously, for a place). A queued operation whose caller
//! stopped waiting before it started is skipped.
//!
//! Serialising writers is SQLite's job, not the pool's: every write is a `BEGIN IMMEDIATE`
//! transaction that waits up to the busy timeout for the file's write lock. The wait is this
//! module's busy handler rather than SQLite's default one, which sleeps up to 100 ms between
//! tries: polling every millisecond lets a writer take the lock in the short gaps another
//! process's writer leaves between its batches (see [`crate::batch`]).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use kv_trait::{monotonic_now, KvError};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::config::{Location, SqliteBackendBuilder};
use crate::encoding;
use crate::error::OpError;

/// Prepared statements each connection keeps: comfortably more than the backend uses, so none
/// is ever evicted and re-prepared.
const STATEMENT_CACHE_CAPACITY: usize = 32;

/// How often a connection waiting for another's lock tries again.
const BUSY_POLL: Duration = Duration::from_millis(1);

/// One unit of work for whichever connection thread is free.
type Job = Box<dyn FnOnce(&mut Connection) + Send + 'static>;

/// The queue of a running pool. Dropping it (with the last backend clone) lets each thread
/// finish the jobs already queued, close its connection and exit.
pub(crate) struct Pool {
    jobs: Spawner,
}

/// A handle that queues jobs on the pool, for a job that must queue a follow-up (the group
/// commit's writer, one batch per turn). It keeps the threads alive only while held.
#[derive(Clone)]
pub(crate) struct Spawner(Sender<Job>);

impl Spawner {
    /// Queues `job` for the next free connection without waiting for it.
    pub(crate) fn spawn(
        &self,
        job: impl FnOnce(&mut Connection) + Send + 'static,
    ) -> Result<(), KvError> {
        self.0
            .send(Box::new(job))
            .map_err(|_| KvError::backend("the SQLite connection threads have stopped"))
    }
}

impl Pool {
    /// Starts `settings.effective_pool_size()` connection threads and waits until every
    /// connection is open and the schema is current.
    ///
    /// Connections open one after another: the first one switches a new file to WAL mode and
    /// creates the schema, which later ones then find done, instead of all racing for the
    /// exclusive lock those steps take.
    pub(crate) async fn start(settings: &SqliteBackendBuilder) -> Result<Self, KvError> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for index in 0..settings.effective_pool_size() {
            let (ready, opened) = oneshot::channel();
            let settings = settings.clone();
            let queue = queue.clone();
            thread::Builder::new()
                .name(format!("kv-sqlite-{index}"))
                .spawn(move || match open_connection(&settings) {
                    Ok(conn) => {
                        if ready.send(Ok(())).is_ok() {
                            serve(conn, &queue);
                        }
                    }
                    Err(err) => {
                        // The constructor is waiting for exactly this; if it stopped
                        // waiting there is no one left to tell.
                        let _ = ready.send(Err(err));
                    }
                })
                .map_err(|err| {
                    KvError::backend(format!("cannot start a SQLite connection thread: {err}"))
                })?;
            opened
                .await
                .map_err(|_| KvError::backend("a SQLite connection thread stopped while opening"))?
                .map_err(KvError::from)?;
        }
        Ok(Self {
            jobs: Spawner(jobs),
        })
    }

    /// The handle that queues jobs.
    pub(crate) fn spawner(&self) -> &Spawner {
        &self.jobs
    }

    /// Runs `operation` on the next free connection and returns its result; not at all if the
    /// caller stops waiting before a connection is free.
    pub(crate) async fn run<T, F>(&self, operation: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, OpError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        self.jobs.spawn(move |conn| {
            if reply.is_closed() {
                return; // withdrawn: nobody waits for it
            }
            // The caller may stop waiting meanwhile; the operation completes either way.
            let _ = reply.send(operation(conn).map_err(KvError::from));
        })?;
        result.await.map_err(|_| {
            KvError::backend("a SQLite connection thread failed while running this operation")
        })?
    }
}

/// Opens and configures one connection, and brings the schema up to date, waiting up to the
/// busy timeout for other connections' locks.
///
/// The busy handler covers most waits, but SQLite returns `SQLITE_BUSY` at once, without
/// calling it, where waiting could deadlock, and while another connection recovers or resets
/// the WAL (seen when many connections open and close on one file: "database is locked"
/// after 1 ms). Opening holds no lock between tries, so trying again is safe; it is bounded
/// by the same busy timeout.
fn open_connection(settings: &SqliteBackendBuilder) -> Result<Connection, OpError> {
    let started = monotonic_now();
    loop {
        match try_open_connection(settings) {
            Err(OpError::Sqlite(err))
                if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && monotonic_now().duration_since(started) < settings.busy_timeout =>
            {
                thread::sleep(BUSY_POLL);
            }
            result => return result,
        }
    }
}

fn try_open_connection(settings: &SqliteBackendBuilder) -> Result<Connection, OpError> {
    let mut conn = match &settings.location {
        // No SQLITE_OPEN_URI: the path is a file name, never a `file:` URI with options.
        Location::File(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?,
        Location::Memory => Connection::open_in_memory()?,
    };
    // First, so that the pragmas below wait for other processes' locks too. The connection
    // lives on this thread for good, so the thread's busy settings are the connection's.
    BUSY.with(|busy| busy.timeout.set(settings.busy_timeout));
    conn.busy_handler(Some(wait_for_lock))?;
    if let Location::File(_) = settings.location {
        // WAL lets readers run beside the writer. It is a property of the file, so this is a
        // no-op after the first connection; a filesystem without shared memory support keeps
        // the rollback journal, which is slower but just as correct.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", settings.synchronous.as_pragma())?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    encoding::migrate(&mut conn)?;
    Ok(conn)
}

/// The busy state of this thread's connection.
struct Busy {
    timeout: Cell<Duration>,
    /// When the current wait began (SQLite calls the handler with `attempt == 0` first).
    waiting_since: Cell<Option<Instant>>,
    /// Whether the connection has waited for a lock since [`lock_waited`] last asked.
    waited: Cell<bool>,
}

thread_local! {
    static BUSY: Busy = const {
        Busy {
            timeout: Cell::new(Duration::ZERO),
            waiting_since: Cell::new(None),
            waited: Cell::new(false),
        }
    };
}

/// SQLite's busy handler for the pool's connections: try again every [`BUSY_POLL`] until the
/// busy timeout has passed since the first try (then SQLite returns `SQLITE_BUSY`).
fn wait_for_lock(attempt: i32) -> bool {
    BUSY.with(|busy| {
        let now = monotonic_now();
        let since = match (attempt, busy.waiting_since.get()) {
            (0, _) | (_, None) => now,
            (_, Some(since)) => since,
        };
        busy.waiting_since.set(Some(since));
        busy.waited.set(true);
        if now.duration_since(since) >= busy.timeout.get() {
            return false;
        }
        thread::sleep(BUSY_POLL);
        true
    })
}

/// Whether this thread's connection waited for a lock since the last call.
pub(crate) fn lock_waited() -> bool {
    BUSY.with(|busy| busy.waited.replace(false))
}

/// A connection thread's life: runs the queue's jobs on `conn` until the queue's senders are gone. Idle threads wait on
/// the channel itself, so each job wakes one of them. (Behind a shared `Mutex<Receiver>`, the
/// thread that took a job woke the next one waiting for the lock on its way out: two thread
/// switches per job, on top of the caller's, which cost a fifth of a single writer's
/// throughput on two cores.)
fn serve(mut conn: Connection, queue: &Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        // No job is meant to panic; if one does, its caller gets an error (its reply channel
        // is dropped) and this connection keeps serving the others.
        if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() && !conn.is_autocommit() {
            // A transaction dropped while unwinding rolls back by itself; this is a backstop.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}
