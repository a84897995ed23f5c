//! `impl KvBackend for SqliteBackend`: validate, read the clock, then one job on a pooled
//! connection per call.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kv_trait::{
    apply_increment, async_trait, check_value_size, format_counter, unix_deadline_ms,
    unix_millis_now, validate_key, validate_ttl, KvBackend, KvError,
};
use rusqlite::{Transaction, TransactionBehavior};

use tokio::sync::oneshot;

use crate::batch::{self, Completion, QueuedWrite, Slot, WriteQueue};
use crate::config::{Location, SqliteBackendBuilder, Synchronous};
use crate::encoding::{self, PURGE_BATCH_ROWS};
use crate::error::OpError;
use crate::pool::Pool;

/// Every this many writes through one backend, the write also deletes a batch of expired rows.
const RECLAIM_EVERY_WRITES: u64 = 64;

/// How long after its deadline an expired row may still be needed: an operation that started
/// before the deadline but waited in the queue judges liveness by its start time, so
/// background reclaim leaves rows this recently expired alone.
const RECLAIM_GRACE_MS: u64 = 1_000;

/// A key-value store in a SQLite database file (or in memory) that keeps the whole kvkit
/// contract, including across processes sharing the file.
///
/// Cloning is cheap: clones share one connection pool. Operations run on the pool's own
/// threads, never on the executor's; the backend works under any async executor. The pool's
/// threads close their connections when the last clone is dropped.
///
/// Every write runs under the file's write lock (`BEGIN IMMEDIATE`), so `increment` and
/// `compare_and_swap` are atomic across connections, backends and processes, and an
/// acknowledged write has been committed to the file. Writes that arrive while another commit
/// is in flight share the next transaction, one savepoint each (group commit: one sync for
/// many writers, each write still all or nothing; see the crate docs). TTL deadlines are wall-clock Unix
/// milliseconds (granularity 1 ms), shared by every process using the file.
///
/// A call whose future is dropped before it completes still runs to completion on its
/// connection (entirely or not at all), like a request already sent to a server.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use kv_sqlite::SqliteBackend;
/// use kv_trait::KvBackend;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteBackend::open(dir.path().join("kv.db")).await?;
/// store.set("greeting", b"hello").await?;
/// assert_eq!(store.get("greeting").await?, Some(b"hello".to_vec()));
/// assert_eq!(store.increment("hits", 3).await?, 3);
/// assert_eq!(store.list_keys("").await?, ["greeting", "hits"]);
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteBackend {
    shared: Arc<Shared>,
}

/// What all clones of one backend share.
struct Shared {
    pool: Pool,
    namespace: Arc<str>,
    location: Location,
    pool_size: usize,
    max_value_bytes: usize,
    busy_timeout: Duration,
    synchronous: Synchronous,
    /// Writes waiting for the connection that commits them (group commit).
    queue: Arc<WriteQueue>,
    /// Writes started through this backend, to pace reclaiming expired rows.
    writes: AtomicU64,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database file at `path` with the default settings:
    /// the empty namespace, 4 connections, `synchronous = FULL`, a 5 s busy timeout, 1 MiB
    /// values.
    ///
    /// Async because opening touches the disk and may wait for another process's lock; the
    /// work runs on the backend's own threads.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, KvError> {
        SqliteBackendBuilder::file(path).build().await
    }

    /// A new private in-memory database, independent of every other one, on one connection.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use kv_trait::KvBackend;
    ///
    /// let a = kv_sqlite::SqliteBackend::open_in_memory().await?;
    /// let b = kv_sqlite::SqliteBackend::open_in_memory().await?;
    /// a.set("k", b"v").await?;
    /// assert!(!b.exists("k").await?);
    /// # Ok::<(), kv_trait::KvError>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_in_memory() -> Result<Self, KvError> {
        SqliteBackendBuilder::in_memory().build().await
    }

    /// Opens the database a URL names: `sqlite:///abs/path.db`, `sqlite://rel/path.db` or
    /// `sqlite::memory:`, with options such as `?namespace=jobs`; see
    /// [`SqliteBackendBuilder::from_url`] for every form and option.
    pub async fn from_url(url: &str) -> Result<Self, KvError> {
        SqliteBackendBuilder::from_url(url)?.build().await
    }

    /// A builder for a file-backed backend with non-default settings; the same as
    /// [`SqliteBackendBuilder::file`].
    pub fn builder(path: impl Into<PathBuf>) -> SqliteBackendBuilder {
        SqliteBackendBuilder::file(path)
    }

    pub(crate) async fn from_builder(settings: SqliteBackendBuilder) -> Result<Self, KvError> {
        let pool = Pool::start(&settings).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                pool_size: settings.effective_pool_size(),
                namespace: settings.namespace.into(),
                location: settings.location,
                max_value_bytes: settings.max_value_bytes,
                busy_timeout: settings.busy_timeout,
                synchronous: settings.synchronous,
                queue: Arc::default(),
                writes: AtomicU64::new(0),
            }),
        })
    }

    /// The namespace this backend's keys live in (`""` unless configured).
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        match &self.shared.location {
            Location::File(path) => Some(path),
            Location::Memory => None,
        }
    }

    /// How many connections serve this backend.
    pub fn pool_size(&self) -> usize {
        self.shared.pool_size
    }

    /// The longest value this backend accepts, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    /// Deletes every expired row in the file, in every namespace, and returns how many.
    ///
    /// Never needed for correctness (expired rows are invisible at once) and rarely for space
    /// (every 64th write also deletes up to 256 rows that expired over a second ago). Useful
    /// after a burst of short-lived keys, or before `VACUUM`. Works in batches, each its own
    /// short transaction, so other writers are not locked out for long. Rows are judged by the
    /// clock at the moment of the purge, so a call that started just before a key's deadline
    /// but runs after the purge finds the key gone.
    pub async fn purge_expired(&self) -> Result<u64, KvError> {
        self.shared
            .pool
            .run(|conn| {
                let mut purged = 0;
                loop {
                    let transaction =
                        conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let batch =
                        encoding::purge_expired(&transaction, unix_millis_now(), PURGE_BATCH_ROWS)?;
                    transaction.commit()?;
                    purged += batch as u64;
                    if batch < PURGE_BATCH_ROWS {
                        return Ok(purged);
                    }
                }
            })
            .await
    }

    /// Runs a read on a pooled connection (a single statement: no transaction needed).
    async fn read<T, F>(&self, read: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection, &str) -> Result<T, OpError> + Send + 'static,
    {
        let namespace = Arc::clone(&self.shared.namespace);
        self.shared
            .pool
            .run(move |conn| read(conn, &namespace))
            .await
    }

    /// Runs a write in the group commit (see [`crate::batch`]): in a savepoint of a
    /// `BEGIN IMMEDIATE` transaction that takes the file's write lock before reading, so a
    /// read-modify-write cannot interleave with another writer, and the lock is never
    /// upgraded (the upgrade is what can fail with `SQLITE_BUSY` at once). The write is kept
    /// when `write` returns `Ok` and rolled back otherwise; the reply waits for the commit.
    async fn write<T, F>(&self, write: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &str) -> Result<T, OpError> + Send + 'static,
    {
        let namespace = Arc::clone(&self.shared.namespace);
        let writes = self.shared.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, result) = oneshot::channel();
        let queued = QueuedWrite {
            reclaim: writes.is_multiple_of(RECLAIM_EVERY_WRITES),
            run: Box::new(move |slot| {
                let outcome = match slot {
                    Slot::Alone(tx) => write(tx, &namespace),
                    Slot::Shared(tx) => batch::in_savepoint(tx, |tx| write(tx, &namespace)),
                    Slot::NotRun => Err(OpError::Kv(KvError::backend("not run"))),
                }
                .map_err(KvError::from);
                let succeeded = outcome.is_ok();
                let completion: Completion = Box::new(move |committed| {
                    // The caller may have stopped waiting; the write is decided either way.
                    let _ = reply.send(committed.map_err(batch::duplicate).and(outcome));
                });
                (completion, succeeded)
            }),
        };
        if self.shared.queue.push(queued) {
            self.start_writer()?;
        }
        result.await.map_err(|_| {
            KvError::backend("a SQLite connection thread failed while running this operation")
        })?
    }

    /// Puts a connection to work committing the queued writes.
    fn start_writer(&self) -> Result<(), KvError> {
        let queue = Arc::clone(&self.shared.queue);
        let started = self
            .shared
            .pool
            .spawn(move |conn| queue.drain(conn, reclaim_expired));
        if let Err(err) = &started {
            self.shared.queue.abandon(err);
        }
        started
    }

    /// Writes `value` at `key` with deadline `expires_at` (`None`: no TTL).
    async fn put(&self, key: &str, value: &[u8], expires_at: Option<i64>) -> Result<(), KvError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.write(move |tx, namespace| encoding::upsert(tx, namespace, &key, &value, expires_at))
            .await
    }
}

/// Deletes one batch of rows expired for over [`RECLAIM_GRACE_MS`], inside the caller's write
/// transaction (it already holds the write lock, and shares its commit). Best effort: in a
/// savepoint, so a failure here is undone without failing the caller's write. (An error after
/// which SQLite abandons the whole transaction, such as a full disk, makes the commit fail:
/// the caller's write then fails whole, never half done.)
fn reclaim_expired(transaction: &mut Transaction<'_>) {
    let Ok(savepoint) = transaction.savepoint() else {
        return;
    };
    let cutoff = unix_millis_now().saturating_sub(RECLAIM_GRACE_MS);
    if encoding::purge_expired(&savepoint, cutoff, PURGE_BATCH_ROWS).is_ok() {
        // If releasing fails the savepoint rolls back when dropped; the next batch retries.
        let _ = savepoint.commit();
    }
}

impl fmt::Debug for SqliteBackend {
    /// Shows where the data lives and how the pool is set up. There is nothing secret in a
    /// SQLite configuration; connections and queues are left out as noise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("SqliteBackend")
            .field("path", &format_args!("{}", shared.location))
            .field("namespace", &shared.namespace)
            .field("pool_size", &shared.pool_size)
            .field("max_value_bytes", &shared.max_value_bytes)
            .field("busy_timeout", &shared.busy_timeout)
            .field("synchronous", &shared.synchronous)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KvBackend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        validate_key(key)?;
        let now = unix_millis_now();
        let key = key.to_owned();
        self.read(move |conn, namespace| {
            let entry = encoding::select_entry(conn, namespace, &key)?;
            Ok(entry
                .filter(|entry| entry.is_live_at(now))
                .map(|entry| entry.value))
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        validate_key(key)?;
        check_value_size(value, self.shared.max_value_bytes)?;
        self.put(key, value, None).await
    }

    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        let call_start = SystemTime::now();
        validate_key(key)?;
        check_value_size(value, self.shared.max_value_bytes)?;
        validate_ttl(ttl_ns)?;
        let deadline = encoding::deadline_column(unix_deadline_ms(call_start, ttl_ns));
        self.put(key, value, Some(deadline)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        validate_key(key)?;
        let now = unix_millis_now();
        let key = key.to_owned();
        self.write(move |tx, namespace| {
            // An expired row is deleted too (it is garbage), but was not a live key.
            let removed = encoding::delete_returning(tx, namespace, &key)?;
            Ok(removed.is_some_and(|expires_at| encoding::is_live(expires_at, now)))
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        validate_key(key)?;
        let now = unix_millis_now();
        let key = key.to_owned();
        self.read(move |conn, namespace| {
            let deadline = encoding::select_deadline(conn, namespace, &key)?;
            Ok(deadline.is_some_and(|expires_at| encoding::is_live(expires_at, now)))
        })
        .await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let now = unix_millis_now();
        let prefix = prefix.as_bytes().to_vec();
        self.read(move |conn, namespace| encoding::live_keys(conn, namespace, &prefix, now))
            .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        validate_key(key)?;
        let now = unix_millis_now();
        let key = key.to_owned();
        self.write(move |tx, namespace| {
            let live = encoding::select_entry(tx, namespace, &key)?.filter(|e| e.is_live_at(now));
            let next = apply_increment(live.as_ref().map(|e| e.value.as_slice()), delta)?;
            // A live counter keeps its deadline; a new (or expired) one gets none.
            let expires_at = live.and_then(|e| e.expires_at);
            encoding::upsert(tx, namespace, &key, &format_counter(next), expires_at)?;
            Ok(next)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        validate_key(key)?;
        check_value_size(new, self.shared.max_value_bytes)?;
        let now = unix_millis_now();
        let (key, expected, new) = (key.to_owned(), expected.map(<[u8]>::to_vec), new.to_vec());
        self.write(move |tx, namespace| {
            let live = encoding::select_entry(tx, namespace, &key)?.filter(|e| e.is_live_at(now));
            if live.map(|e| e.value) != expected {
                return Ok(false);
            }
            encoding::upsert(tx, namespace, &key, &new, None)?;
            Ok(true)
        })
        .await
    }
}
