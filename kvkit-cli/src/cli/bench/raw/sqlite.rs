//! Raw rusqlite, written the way a careful engineer serves SQLite from async code by hand: a
//! two-column table in the same file, the same pragmas as the adapter, and connections owned
//! by dedicated threads that keep their prepared statements (`prepare_cached`) for their
//! whole life.
//!
//! - **Readers**: as many threads as the adapter's pool (`pool_size`, default 4), each with its
//!   own connection, serving one shared queue. In WAL mode they read beside the writer.
//! - **One writer**: a single thread owns the connection every write goes through, so writes
//!   never wait on SQLite's file lock (and its busy handler's sleeps) for one another; each
//!   write is its own transaction, committed (synced, at `synchronous = FULL`) before its
//!   caller is answered. That is the part kv-sqlite does differently: it commits the writes
//!   queued meanwhile together (group commit), which no straightforward hand-written client
//!   does.
//! - Replies travel back over a `oneshot` channel, so no executor thread ever blocks on SQLite
//!   and no `spawn_blocking` thread is borrowed per call.
//!
//! A batch is one transaction on one connection, running the single-key statement once per
//! key: `get_many` one read transaction on a reader (in WAL mode, one snapshot: no part of a
//! concurrent batch write is seen), `set_many` one `BEGIN IMMEDIATE` write transaction on the
//! writer (one commit, so one WAL sync, for the whole batch). SQLite runs in the process, so
//! a statement costs a B-tree lookup and a few microseconds, not a round trip; a
//! `WHERE key IN (?, ..)` of the whole batch would save little of that, and would answer rows
//! in the index's order, to be put back in the order asked. The loop answers in that order as
//! it goes.

use std::path::PathBuf;
use std::time::Duration;

use crossbeam_channel::Sender;
use kv_trait::url_config::StoreUrl;
use kv_trait::{KvBackend, KvError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::next_counter;
use crate::cli::bench::driver::Driver;

/// kv-sqlite's defaults, which the raw side matches unless the URL sets them.
const DEFAULT_POOL: usize = 4;
const DEFAULT_SYNCHRONOUS: &str = "FULL";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const CREATE: &str = "CREATE TABLE IF NOT EXISTS kvkit_bench_raw (
    key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID";
const GET: &str = "SELECT value FROM kvkit_bench_raw WHERE key = ?1";
const SET: &str = "INSERT INTO kvkit_bench_raw (key, value) VALUES (?1, ?2)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const SWAP: &str = "UPDATE kvkit_bench_raw SET value = ?3 WHERE key = ?1 AND value = ?2";
const INSERT_NEW: &str =
    "INSERT INTO kvkit_bench_raw (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";

/// The raw SQLite side: reader threads and one writer thread, each owning a connection.
pub(crate) struct RawSqlite {
    readers: Threads,
    writer: Threads,
}

/// Work for a connection's thread; it answers its caller itself.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Threads serving one queue of jobs, each with a connection of its own. Dropping the sender
/// ends them once the queue is empty.
struct Threads {
    jobs: Sender<Job>,
}

impl Threads {
    /// `count` threads, each with a connection `open` made (on the caller's thread, so a
    /// failure to open is the caller's error).
    fn start(
        count: usize,
        open: impl Fn() -> rusqlite::Result<Connection>,
    ) -> rusqlite::Result<Self> {
        // Idle threads wait on the channel itself, so a job wakes exactly one of them.
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for _ in 0..count {
            let mut conn = open()?;
            let queue = queue.clone();
            std::thread::spawn(move || {
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            });
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on one of the threads' connections and awaits its answer.
    async fn run<T, F>(&self, work: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have stopped waiting; the work was done either way.
            let _ = reply.send(work(conn).map_err(from_sqlite));
        });
        self.jobs
            .send(job)
            .map_err(|_| KvError::backend("the raw SQLite threads are gone"))?;
        answer
            .await
            .map_err(|_| KvError::backend("a raw SQLite thread stopped mid-job"))?
    }
}

impl RawSqlite {
    /// Opens `url`'s file (or a private in-memory database) the way kv-sqlite does.
    pub(crate) fn open(url: &str) -> Result<Self, KvError> {
        let mut parsed = StoreUrl::parse(url, "sqlite")?;
        let memory = parsed.location().eq_ignore_ascii_case(":memory:");
        let synchronous = parsed
            .take("synchronous")
            .unwrap_or_else(|| DEFAULT_SYNCHRONOUS.to_owned());
        let pool_size = parsed.take_number("pool_size")?.unwrap_or(DEFAULT_POOL);
        let path = (!memory).then(|| parsed.file_path()).transpose()?;
        let open = || connect(path.as_ref(), &synchronous);
        let writer = Threads::start(1, open).map_err(from_sqlite)?;
        // Every connection to `:memory:` is a database of its own: there the writer's one
        // connection serves the reads too.
        let readers = match memory {
            true => Threads {
                jobs: writer.jobs.clone(),
            },
            false => Threads::start(pool_size, open).map_err(from_sqlite)?,
        };
        Ok(Self { readers, writer })
    }
}

fn connect(path: Option<&PathBuf>, synchronous: &str) -> rusqlite::Result<Connection> {
    let conn = match path {
        Some(path) => Connection::open(path)?,
        None => Connection::open_in_memory()?,
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if path.is_some() {
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", synchronous)?;
    }
    conn.execute(CREATE, [])?;
    Ok(conn)
}

fn from_sqlite(err: rusqlite::Error) -> KvError {
    KvError::backend(err)
}

impl Driver for RawSqlite {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.to_owned();
        self.readers
            .run(move |conn| {
                conn.prepare_cached(GET)?
                    .query_row([key.as_bytes()], |row| row.get(0))
                    .optional()
            })
            .await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.writer
            .run(move |conn| {
                conn.prepare_cached(SET)?
                    .execute(params![key.as_bytes(), value])
                    .map(drop)
            })
            .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let key = key.to_owned();
        let outcome = self
            .writer
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let current: Option<Vec<u8>> = tx
                    .prepare_cached(GET)?
                    .query_row([key.as_bytes()], |row| row.get(0))
                    .optional()?;
                let Some(next) = next_counter(current.as_deref(), delta) else {
                    return Ok(None);
                };
                tx.prepare_cached(SET)?
                    .execute(params![key.as_bytes(), next.to_string().as_bytes()])?;
                tx.commit()?;
                Ok(Some(next))
            })
            .await?;
        outcome.ok_or(KvError::NotAnInteger)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let (key, expected, new) = (key.to_owned(), expected.map(<[u8]>::to_vec), new.to_vec());
        self.writer
            .run(move |conn| {
                let changed = match expected {
                    Some(expected) => conn.prepare_cached(SWAP)?.execute(params![
                        key.as_bytes(),
                        expected,
                        new
                    ])?,
                    None => conn
                        .prepare_cached(INSERT_NEW)?
                        .execute(params![key.as_bytes(), new])?,
                };
                Ok(changed == 1)
            })
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let keys: Vec<String> = keys.iter().map(|&key| key.to_owned()).collect();
        self.readers
            .run(move |conn| {
                // Deferred: a read transaction, taking no write lock.
                let tx = conn.transaction()?;
                let values = {
                    let mut get = tx.prepare_cached(GET)?;
                    keys.iter()
                        .map(|key| get.query_row([key.as_bytes()], |row| row.get(0)).optional())
                        .collect::<rusqlite::Result<Vec<_>>>()?
                };
                tx.commit()?;
                Ok(values)
            })
            .await
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|&(key, value)| (key.to_owned(), value.to_vec()))
            .collect();
        self.writer
            .run(move |conn| {
                // IMMEDIATE takes the write lock first, waiting (busy timeout) for another
                // writer, instead of failing at the first write of a read-then-write transaction.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut set = tx.prepare_cached(SET)?;
                    // In order: a key given twice keeps its last value.
                    for (key, value) in &entries {
                        set.execute(params![key.as_bytes(), value])?;
                    }
                }
                tx.commit()
            })
            .await
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, _: Vec<String>) -> Result<(), KvError> {
        self.writer
            .run(|conn| {
                conn.execute("DROP TABLE IF EXISTS kvkit_bench_raw", [])
                    .map(drop)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batches of the raw side answer in the order asked, repeated and missing keys
    /// included, and a key written twice in one batch keeps its last value.
    #[tokio::test]
    async fn batches_answer_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("raw.db").display());
        let raw = RawSqlite::open(&url).unwrap();
        super::super::tests::batches_answer_in_the_order_asked(&raw).await;
        raw.set_many(&[]).await.unwrap();
        raw.clean_up(Vec::new()).await.unwrap();
    }
}
