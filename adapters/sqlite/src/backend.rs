//! `impl Store for SqliteBackend`: one job on a pooled connection per call, which reads the
//! clock when it runs. `kv_trait` validates every input before it gets here.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kv_trait::store::{Key, Store, Ttl, Value};
use kv_trait::{
    apply_increment, async_trait, format_counter, unix_millis_now, Capabilities, ChangeFeed,
    KeyPage, KvError, Sharing, WatchScope, WatchStream,
};
use rusqlite::{Transaction, TransactionBehavior};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::batch::{self, Completion, Outcome, QueuedWrite, Slot, WriteQueue};
use crate::config::{Location, SqliteBackendBuilder, Synchronous};
use crate::encoding::{self, PURGE_BATCH_ROWS};
use crate::error::OpError;
use crate::pool::{self, Pool, Spawner};
use crate::watch::{Changes, FileChanges};

/// Every this many writes through one backend, the write also deletes a batch of expired rows.
const RECLAIM_EVERY_WRITES: u64 = 64;

/// How long after its deadline background reclaim leaves an expired row alone. Operations read
/// the clock when they run, so none needs a row already expired by then; the grace is for a
/// wall clock stepped back a little (NTP), under which a row could briefly be live again.
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
/// A call whose future is dropped before its work has started is withdrawn and does nothing;
/// one dropped later still runs to completion on its connection (entirely or not at all), like
/// a request already sent to a server. At most [`SqliteBackendBuilder::max_queued`]
/// operations are held at once; callers beyond that wait for a place.
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
    /// One permit per operation accepted and not yet answered: bounds every queue.
    admission: Arc<Semaphore>,
    max_queued: usize,
    /// Writes started through this backend, to pace reclaiming expired rows.
    writes: AtomicU64,
    /// The file's changes in this process (shared with its other backends here), and this
    /// namespace's feed of them.
    changes: Arc<FileChanges>,
    feed: Arc<ChangeFeed>,
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
        // After the pool opened (and so created) the file, whose canonical path names it.
        let changes = FileChanges::of(&settings.location);
        let feed = changes.feed(&settings.namespace);
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
                admission: Arc::new(Semaphore::new(settings.max_queued)),
                max_queued: settings.max_queued,
                writes: AtomicU64::new(0),
                changes,
                feed,
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

    /// How many operations this backend has accepted and not yet answered: queued for a
    /// connection or the group commit, or running. At most
    /// [`SqliteBackendBuilder::max_queued`]; callers beyond that wait for a place.
    pub fn queued_operations(&self) -> usize {
        self.shared.max_queued - self.shared.admission.available_permits()
    }

    /// Waits for a place among the operations this backend holds at once.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, KvError> {
        Arc::clone(&self.shared.admission)
            .acquire_owned()
            .await
            .map_err(|_| KvError::backend("the SQLite backend is closing"))
    }

    /// Runs a read on a pooled connection (a single statement: no transaction needed).
    async fn read_job<T, F>(&self, read: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection, &str) -> Result<T, OpError> + Send + 'static,
    {
        let admitted = self.admit().await?;
        let namespace = Arc::clone(&self.shared.namespace);
        self.shared
            .pool
            .run(move |conn| {
                let _admitted = admitted;
                read(conn, &namespace)
            })
            .await
    }

    /// Runs `read` on a pooled connection and, if it judged a row whose deadline had passed,
    /// once more in the write queue (see [`Self::write_job`]), behind every write that was
    /// queued or running when it found that row.
    ///
    /// A write that judged the row live just before its deadline (an `increment` or a
    /// compare-and-swap) may not have committed yet: answering "gone" and then letting its
    /// value appear would not be linearizable, since that write took effect while the key was
    /// live, before this read began. Run as a write, the read sees what such a write left.
    /// Live and absent keys cost one read as before; an expired row left for reclaim costs a
    /// turn in the group commit.
    async fn settled_read<T, F>(&self, read: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: Fn(&rusqlite::Connection, &str) -> Result<Reading<T>, OpError> + Clone + Send + 'static,
    {
        let again = read.clone();
        let first = self.read_job(read).await?;
        if !first.saw_expired {
            return Ok(first.answer);
        }
        self.write_job(move |tx, namespace, _| Ok(again(tx, namespace)?.answer))
            .await
    }

    /// Runs a write in the group commit (see [`crate::batch`]): in a savepoint of a
    /// `BEGIN IMMEDIATE` transaction that takes the file's write lock before reading, so a
    /// read-modify-write cannot interleave with another writer, and the lock is never
    /// upgraded (the upgrade is what can fail with `SQLITE_BUSY` at once). The write is kept
    /// when `write` returns `Ok` and rolled back otherwise; the reply waits for the commit.
    /// What `write` records in its [`Changes`] reaches watchers once the batch has committed.
    async fn write_job<T, F>(&self, write: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &str, &mut Changes) -> Result<T, OpError> + Send + 'static,
    {
        let admitted = self.admit().await?;
        let namespace = Arc::clone(&self.shared.namespace);
        let feed = Arc::clone(&self.shared.feed);
        let writes = self.shared.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, result) = oneshot::channel();
        let queued = QueuedWrite {
            reclaim: writes.is_multiple_of(RECLAIM_EVERY_WRITES),
            run: Box::new(move |slot| {
                if reply.is_closed() {
                    // Withdrawn before it started: nobody waits for it, so it does nothing.
                    return (Box::new(move |_| drop(admitted)), Outcome::Withdrawn);
                }
                // Asked when the write runs: a watcher subscribed before the call began is
                // counted by then.
                let mut changes = Changes::new(feed.is_watched());
                let outcome = match slot {
                    Slot::Alone(tx) => write(tx, &namespace, &mut changes),
                    Slot::Shared(tx) => {
                        batch::in_savepoint(tx, |tx| write(tx, &namespace, &mut changes))
                    }
                    Slot::NotRun => Err(OpError::Kv(KvError::backend("not run"))),
                }
                .map_err(KvError::from);
                let how = match &outcome {
                    Ok(_) => Outcome::Done,
                    Err(err) => Outcome::Failed(batch::duplicate(err)),
                };
                let completion: Completion = Box::new(move |committed| {
                    drop(admitted);
                    if committed.is_ok() && outcome.is_ok() {
                        changes.publish(&feed);
                    }
                    // The caller may have stopped waiting; the write is decided either way.
                    let _ = reply.send(committed.map_err(batch::duplicate).and(outcome));
                });
                (completion, how)
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
        let started = writer_turn(
            self.shared.pool.spawner().clone(),
            Arc::clone(&self.shared.queue),
            Arc::clone(&self.shared.changes),
        );
        if let Err(err) = &started {
            self.shared.queue.abandon(err);
        }
        started
    }
}

/// A read's answer, and whether it judged a row that had expired (see
/// [`SqliteBackend::settled_read`]).
struct Reading<T> {
    answer: T,
    saw_expired: bool,
}

/// Queues one turn of the group commit's writer on the pool: one batch, then, if writes are
/// still queued, the next turn behind whatever else waits for a connection.
fn writer_turn(
    spawner: Spawner,
    queue: Arc<WriteQueue>,
    changes: Arc<FileChanges>,
) -> Result<(), KvError> {
    let next = spawner.clone();
    spawner.spawn(move |conn| {
        if queue.drain_one(conn, &changes, reclaim_expired, pool::lock_waited) {
            if let Err(err) = writer_turn(next, Arc::clone(&queue), Arc::clone(&changes)) {
                queue.abandon(&err);
            }
        }
    })
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

/// Every operation reads the clock inside its job, on the connection, after any wait for the
/// pool, the queue or the file's write lock: the moment it decides.
#[async_trait]
impl Store for SqliteBackend {
    const KIND: &'static str = "sqlite";

    fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    fn namespace_name(&self) -> &str {
        &self.shared.namespace
    }

    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.as_str().to_owned();
        self.settled_read(move |conn, namespace| {
            let entry = encoding::select_entry(conn, namespace, &key)?;
            let now = unix_millis_now();
            let saw_expired = entry.as_ref().is_some_and(|entry| !entry.is_live_at(now));
            let answer = entry
                .filter(|entry| entry.is_live_at(now))
                .map(|entry| entry.value);
            Ok(Reading {
                answer,
                saw_expired,
            })
        })
        .await
    }

    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError> {
        let (key, value) = (key.as_str().to_owned(), value.to_vec());
        self.write_job(move |tx, namespace, changes| {
            let expires_at = ttl.map(|ttl| encoding::deadline_column(ttl.unix_deadline_ms()));
            encoding::upsert(tx, namespace, &key, &value, expires_at)?;
            changes.set(&key, &value);
            Ok(())
        })
        .await
    }

    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
        let key = key.as_str().to_owned();
        self.write_job(move |tx, namespace, changes| {
            // An expired row is deleted too (it is garbage), but was not a live key.
            let removed = encoding::delete_returning(tx, namespace, &key)?;
            let now = unix_millis_now();
            let live = removed.is_some_and(|expires_at| encoding::is_live(expires_at, now));
            if live {
                changes.deleted(&key);
            }
            Ok(live)
        })
        .await
    }

    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
        let key = key.as_str().to_owned();
        self.settled_read(move |conn, namespace| {
            let deadline = encoding::select_deadline(conn, namespace, &key)?;
            let now = unix_millis_now();
            let answer = deadline.is_some_and(|expires_at| encoding::is_live(expires_at, now));
            Ok(Reading {
                answer,
                saw_expired: deadline.is_some() && !answer,
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let prefix = prefix.as_bytes().to_vec();
        self.read_job(move |conn, namespace| {
            encoding::live_keys(conn, namespace, &prefix, unix_millis_now())
        })
        .await
    }

    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
        let key = key.as_str().to_owned();
        self.write_job(move |tx, namespace, changes| {
            let now = unix_millis_now();
            let live = encoding::select_entry(tx, namespace, &key)?.filter(|e| e.is_live_at(now));
            let next = apply_increment(live.as_ref().map(|e| e.value.as_slice()), delta)?;
            // A live counter keeps its deadline; a new (or expired) one gets none.
            let expires_at = live.and_then(|e| e.expires_at);
            let counter = format_counter(next);
            encoding::upsert(tx, namespace, &key, &counter, expires_at)?;
            changes.set(&key, &counter);
            Ok(next)
        })
        .await
    }

    async fn swap_if(
        &self,
        key: Key<'_>,
        expected: Option<&[u8]>,
        new: Value<'_>,
    ) -> Result<bool, KvError> {
        let (key, expected, new) = (
            key.as_str().to_owned(),
            expected.map(<[u8]>::to_vec),
            new.to_vec(),
        );
        self.write_job(move |tx, namespace, changes| {
            let now = unix_millis_now();
            let live = encoding::select_entry(tx, namespace, &key)?.filter(|e| e.is_live_at(now));
            if live.map(|e| e.value) != expected {
                return Ok(false);
            }
            encoding::upsert(tx, namespace, &key, &new, None)?;
            changes.set(&key, &new);
            Ok(true)
        })
        .await
    }

    /// One read transaction: in WAL mode it reads one snapshot, so no `get_many` sees part
    /// of a batch write. If it finds an expired row, it reads them all again as a write, for
    /// the reason `settled_read` gives (in the write transaction, which is one snapshot too).
    async fn read_many(&self, keys: &[Key<'_>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let keys: Vec<String> = keys.iter().map(|key| key.as_str().to_owned()).collect();
        self.settled_read(move |conn, namespace| {
            // Run as a write, the read is already inside the writer's transaction.
            let snapshot = conn
                .is_autocommit()
                .then(|| conn.unchecked_transaction())
                .transpose()?;
            let entries = keys
                .iter()
                .map(|key| encoding::select_entry(conn, namespace, key))
                .collect::<Result<Vec<_>, _>>()?;
            drop(snapshot);
            let now = unix_millis_now();
            let mut saw_expired = false;
            let answer = entries
                .into_iter()
                .map(|entry| {
                    let entry = entry?;
                    if entry.is_live_at(now) {
                        Some(entry.value)
                    } else {
                        saw_expired = true;
                        None
                    }
                })
                .collect();
            Ok(Reading {
                answer,
                saw_expired,
            })
        })
        .await
    }

    /// One write in the group commit, all of it or none of it.
    async fn write_many(
        &self,
        entries: &[(Key<'_>, Value<'_>)],
        ttl: Option<Ttl>,
    ) -> Result<(), KvError> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(key, value)| (key.as_str().to_owned(), value.to_vec()))
            .collect();
        self.write_job(move |tx, namespace, changes| {
            let expires_at = ttl.map(|ttl| encoding::deadline_column(ttl.unix_deadline_ms()));
            for (key, value) in &entries {
                encoding::upsert(tx, namespace, key, value, expires_at)?;
                changes.set(key, value);
            }
            Ok(())
        })
        .await
    }

    /// One write in the group commit; a key given twice is found the second time gone.
    async fn remove_many(&self, keys: &[Key<'_>]) -> Result<u64, KvError> {
        let keys: Vec<String> = keys.iter().map(|key| key.as_str().to_owned()).collect();
        self.write_job(move |tx, namespace, changes| {
            let now = unix_millis_now();
            let mut removed = 0;
            for key in &keys {
                let deadline = encoding::delete_returning(tx, namespace, key)?;
                if deadline.is_some_and(|at| encoding::is_live(at, now)) {
                    removed += 1;
                    changes.deleted(key);
                }
            }
            Ok(removed)
        })
        .await
    }

    /// One range read of at most `limit` rows of the primary key.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        let prefix = prefix.as_bytes().to_vec();
        let after = start_after.map(|after| after.as_bytes().to_vec());
        self.read_job(move |conn, namespace| {
            encoding::live_keys_page(
                conn,
                namespace,
                &prefix,
                after.as_deref(),
                limit.get(),
                unix_millis_now(),
            )
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        let sharing = match self.shared.location {
            Location::File(_) => Sharing::Machine,
            Location::Memory => Sharing::Handle,
        };
        Capabilities::new(self.shared.max_value_bytes)
            .with_atomic_batches(true)
            .with_sharing(sharing)
            .with_native_batches(true)
            .with_native_paging(true)
            .with_watch(WatchScope::Process)
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        Ok(self.shared.feed.watch(prefix))
    }
}

kv_trait::impl_kv_backend!(SqliteBackend);
