//! `impl Store for RocksDbBackend`: one blocking task per call, which reads the clock after
//! taking the key's lock, and tells the namespace's watchers, if any, of each change while
//! still holding it. `kv_trait` validates every input before it gets here.

use kv_trait::store::{Key, Store, Ttl, Value};
use kv_trait::{
    apply_increment, async_trait, format_counter, unix_millis_now, Capabilities, KeyPage, KvError,
    Sharing, WatchEvent, WatchScope, WatchStream,
};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use crate::config::RocksDbBackendBuilder;
use crate::encoding::{
    decode, encode, encoded_value, namespace_prefix, prefix_end, set_deadline, stored_key,
};
use crate::error::{from_join, from_rocksdb};
use crate::registry::{open_shared, SharedDb};

/// A key-value store in a RocksDB database directory, keeping the whole kvkit contract.
///
/// Cheap to clone. Every call runs on tokio's blocking threads, never on the executor's
/// workers. Writes to one key are serialized by a striped lock (1024 stripes), so `increment`
/// and `compare_and_swap` are atomic while operations on different keys run in parallel;
/// reads take no lock, unless the entry they find has expired.
///
/// [`watch`](kv_trait::KvBackend::watch) reports the writes of every handle of this process on
/// the same database and namespace ([`WatchScope::Process`]; no other process can open the
/// database while this one has it).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use kv_trait::KvBackend;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = kv_rocksdb::RocksDbBackend::open(dir.path().join("db")).await?;
/// store.set("greeting", b"hello").await?;
/// assert_eq!(store.increment("visits", 1).await?, 1);
/// assert_eq!(store.list_keys("").await?, ["greeting", "visits"]);
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RocksDbBackend {
    shared: Arc<SharedDb>,
    namespace: Arc<str>,
    /// `namespace ++ 0x00`: every stored key of this backend starts with it.
    prefix: Arc<[u8]>,
    /// The namespace's change feed, shared with every handle on it through `shared`.
    changes: Changes,
    sync_writes: bool,
    max_value_bytes: usize,
}

impl fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("path", &self.shared.path())
            .field("namespace", &self.namespace)
            .field("sync_writes", &self.sync_writes)
            .field("max_value_bytes", &self.max_value_bytes)
            .finish_non_exhaustive()
    }
}

/// Runs blocking RocksDB work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KvError> + Send + 'static,
) -> Result<T, KvError> {
    tokio::task::spawn_blocking(work).await.map_err(from_join)?
}

impl RocksDbBackend {
    /// Opens (creating if missing) the database directory at `path`, in the default namespace.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, KvError> {
        RocksDbBackendBuilder::new(path.as_ref()).build().await
    }

    /// Opens the database a `rocksdb://` URL names (see [`RocksDbBackendBuilder::from_url`]).
    pub async fn from_url(url: &str) -> Result<Self, KvError> {
        RocksDbBackendBuilder::from_url(url)?.build().await
    }

    /// A builder for the other settings.
    pub fn builder(path: impl AsRef<Path>) -> RocksDbBackendBuilder {
        RocksDbBackendBuilder::new(path.as_ref())
    }

    pub(crate) async fn from_builder(builder: RocksDbBackendBuilder) -> Result<Self, KvError> {
        let (sync_writes, max_value_bytes) = (builder.sync_writes, builder.max_value_bytes);
        let namespace: Arc<str> = Arc::from(builder.namespace.as_str());
        let shared = blocking(move || open_shared(&builder)).await?;
        let prefix: Arc<[u8]> = namespace_prefix(&namespace).into();
        let changes = Changes {
            feed: shared.namespace_feed(&namespace),
            namespace_len: prefix.len(),
        };
        Ok(Self {
            shared,
            prefix,
            changes,
            namespace,
            sync_writes,
            max_value_bytes,
        })
    }

    /// This backend's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The database directory (canonical).
    pub fn path(&self) -> &Path {
        self.shared.path()
    }

    /// The longest value accepted, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Compacts the whole database now, which also drops every expired entry (of every
    /// namespace) from disk. RocksDB does this by itself over time; call it to reclaim space
    /// at once.
    pub async fn compact(&self) -> Result<(), KvError> {
        let shared = self.shared.clone();
        blocking(move || {
            shared.db().compact_range::<&[u8], &[u8]>(None, None);
            Ok(())
        })
        .await
    }

    /// How many entries this namespace holds on disk, live or expired-but-not-yet-compacted:
    /// what [`compact`](Self::compact) shrinks.
    pub async fn stored_entries(&self) -> Result<u64, KvError> {
        let (shared, prefix) = (self.shared.clone(), self.prefix.clone());
        blocking(move || {
            let mut count = 0;
            for entry in scan(shared.db(), &prefix) {
                entry?;
                count += 1;
            }
            Ok(count)
        })
        .await
    }

    fn key(&self, key: &str) -> Vec<u8> {
        stored_key(&self.prefix, key)
    }

    fn write_options(&self) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync_writes);
        options
    }
}

/// A namespace's change feed as the writes use it: each write, still holding its key's lock,
/// publishes what it did, so that watchers see each key's changes in the order they took
/// effect. Events name the key as the caller does, without the namespace.
#[derive(Clone)]
struct Changes {
    feed: Arc<kv_trait::ChangeFeed>,
    /// The length of the namespace's prefix, which every stored key starts with.
    namespace_len: usize,
}

impl Changes {
    /// Tells the watchers, if any, of a change of `stored_key`: `event` (given the caller's
    /// key) builds it, and so copies the key and value, only when someone watches.
    fn publish(&self, stored_key: &[u8], event: impl FnOnce(String) -> WatchEvent) {
        if self.feed.is_watched() {
            // Stored keys are built from a `&str` (`stored_key`), so this part is UTF-8 and
            // nothing is replaced.
            let key = String::from_utf8_lossy(&stored_key[self.namespace_len..]).into_owned();
            self.feed.publish(event(key));
        }
    }

    /// Publishes `Set` for a write of the encoded value `stored` at `stored_key`.
    fn set(&self, stored_key: &[u8], stored: &[u8]) {
        self.publish(stored_key, |key| WatchEvent::Set {
            key,
            value: encoded_value(stored).to_vec(),
        });
    }

    /// Publishes what a delete of `stored_key` removed: `Deleted` for a live key, `Expired`
    /// for a leftover past its deadline (the key had expired; now its entry is gone too),
    /// nothing when there was no entry.
    fn removed(&self, stored_key: &[u8], removal: Removal) {
        match removal {
            Removal::Live => self.publish(stored_key, |key| WatchEvent::Deleted { key }),
            Removal::Expired => self.publish(stored_key, |key| WatchEvent::Expired { key }),
            Removal::Nothing => {}
        }
    }
}

/// What a delete removed, without the value (a batch keeps one per key until it is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Live,
    Expired,
    Nothing,
}

impl Removal {
    fn of(found: &Found) -> Self {
        match found {
            Found::Live(_) => Removal::Live,
            Found::Expired => Removal::Expired,
            Found::Absent => Removal::Nothing,
        }
    }
}

/// A live entry, read back: its value and deadline (Unix ms; `None`: never).
struct Live {
    value: Vec<u8>,
    deadline: Option<u64>,
}

/// What a read of one stored key found.
enum Found {
    Absent,
    /// An entry whose deadline has passed: absent to callers, but see `read_entry`.
    Expired,
    Live(Live),
}

/// What `stored` (the raw entry of a key, if any) holds at the clock read now.
fn judge(stored: Option<&[u8]>) -> Result<Found, KvError> {
    let Some(stored) = stored else {
        return Ok(Found::Absent);
    };
    let entry = decode(stored)?;
    Ok(if entry.is_live_at(unix_millis_now()) {
        Found::Live(Live {
            value: entry.value.to_vec(),
            deadline: entry.deadline,
        })
    } else {
        Found::Expired
    })
}

impl Found {
    fn live(self) -> Option<Live> {
        match self {
            Found::Live(live) => Some(live),
            Found::Absent | Found::Expired => None,
        }
    }
}

/// What is at `key`, judged by the clock read once the entry is in hand; for writers, which
/// hold the key's lock.
fn entry_at(shared: &SharedDb, key: &[u8]) -> Result<Found, KvError> {
    let stored = shared.db().get_pinned(key).map_err(from_rocksdb)?;
    judge(stored.as_deref())
}

/// The live entry at `key`, as [`entry_at`] judges it.
fn live_entry(shared: &SharedDb, key: &[u8]) -> Result<Option<Live>, KvError> {
    Ok(entry_at(shared, key)?.live())
}

/// The live entry at `key`, for readers, which take no lock, except when the entry they find
/// has expired: then they read it again under the key's lock. A writer holding that lock
/// (`compare_and_swap`, `increment`) may have judged the entry live just before its deadline
/// and not have written yet; a reader that answered "gone" meanwhile, and then the writer's
/// value appearing, is a history no order of the calls explains (the kit's
/// `concurrent_history_linearizable` caught one). Waiting for the writer orders the read
/// after it. A live or absent entry needs no wait: a writer could only have judged it the
/// same way.
fn read_entry(shared: &SharedDb, key: &[u8]) -> Result<Option<Live>, KvError> {
    let stored = shared.db().get_pinned(key).map_err(from_rocksdb)?;
    match judge(stored.as_deref())? {
        Found::Expired => {
            let _guard = shared.lock_key(key);
            live_entry(shared, key)
        }
        found => Ok(found.live()),
    }
}

/// What each of a `multi_get`'s answers holds at the clock read now.
fn judge_all(answers: Vec<Result<Option<Vec<u8>>, rocksdb::Error>>) -> Result<Vec<Found>, KvError> {
    answers
        .into_iter()
        .map(|stored| judge(stored.map_err(from_rocksdb)?.as_deref()))
        .collect()
}

/// A raw RocksDB entry: stored key and stored value.
type RawEntry = (Box<[u8]>, Box<[u8]>);

/// Every raw entry whose key starts with `start`, in order. Stops at the first key past the
/// prefix itself rather than trusting the iterator's bound alone.
fn scan<'a>(
    db: &'a rocksdb::DB,
    start: &'a [u8],
) -> impl Iterator<Item = Result<RawEntry, KvError>> + 'a {
    let mut options = ReadOptions::default();
    if let Some(end) = prefix_end(start) {
        options.set_iterate_upper_bound(end);
    }
    db.iterator_opt(IteratorMode::From(start, Direction::Forward), options)
        .map(|entry| entry.map_err(from_rocksdb))
        .take_while(move |entry| {
            entry
                .as_ref()
                .map_or(true, |(key, _)| key.starts_with(start))
        })
}

/// Each operation reads the clock on its blocking thread, after taking the key's lock: the
/// moment it decides.
#[async_trait]
impl Store for RocksDbBackend {
    const KIND: &'static str = "rocksdb";

    fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    fn namespace_name(&self) -> &str {
        &self.namespace
    }

    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
        let (shared, key) = (self.shared.clone(), self.key(&key));
        blocking(move || Ok(read_entry(&shared, &key)?.map(|live| live.value))).await
    }

    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError> {
        let (shared, key, mut stored, options) = (
            self.shared.clone(),
            self.key(&key),
            encode(&value, None),
            self.write_options(),
        );
        let changes = self.changes.clone();
        blocking(move || {
            let _guard = shared.lock_key(&key);
            set_deadline(&mut stored, ttl.map(Ttl::unix_deadline_ms));
            shared
                .db()
                .put_opt(&key, &stored, &options)
                .map_err(from_rocksdb)?;
            changes.set(&key, &stored);
            Ok(())
        })
        .await
    }

    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
        let (shared, key, options) = (self.shared.clone(), self.key(&key), self.write_options());
        let changes = self.changes.clone();
        blocking(move || {
            let _guard = shared.lock_key(&key);
            let removal = Removal::of(&entry_at(&shared, &key)?);
            // An expired leftover is deleted too; it just was not a live key.
            shared
                .db()
                .delete_opt(&key, &options)
                .map_err(from_rocksdb)?;
            changes.removed(&key, removal);
            Ok(removal == Removal::Live)
        })
        .await
    }

    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
        let (shared, key) = (self.shared.clone(), self.key(&key));
        blocking(move || Ok(read_entry(&shared, &key)?.is_some())).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let (shared, start) = (self.shared.clone(), self.key(prefix));
        let namespace_len = self.prefix.len();
        blocking(move || {
            let now = unix_millis_now();
            let mut keys = Vec::new();
            for entry in scan(shared.db(), &start) {
                let (key, stored) = entry?;
                if decode(&stored)?.is_live_at(now) {
                    let key = std::str::from_utf8(&key[namespace_len..])
                        .map_err(|_| KvError::backend("a stored key is not UTF-8"))?;
                    keys.push(key.to_owned());
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
        let (shared, key, options) = (self.shared.clone(), self.key(&key), self.write_options());
        let changes = self.changes.clone();
        blocking(move || {
            let _guard = shared.lock_key(&key);
            let current = live_entry(&shared, &key)?;
            let next = apply_increment(current.as_ref().map(|live| live.value.as_slice()), delta)?;
            let deadline = current.and_then(|live| live.deadline);
            let stored = encode(&format_counter(next), deadline);
            shared
                .db()
                .put_opt(&key, &stored, &options)
                .map_err(from_rocksdb)?;
            changes.set(&key, &stored);
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
        let (shared, key, options) = (self.shared.clone(), self.key(&key), self.write_options());
        let (expected, stored) = (expected.map(<[u8]>::to_vec), encode(&new, None));
        let changes = self.changes.clone();
        blocking(move || {
            let _guard = shared.lock_key(&key);
            let current = live_entry(&shared, &key)?;
            if current.as_ref().map(|live| live.value.as_slice()) != expected.as_deref() {
                return Ok(false);
            }
            shared
                .db()
                .put_opt(&key, &stored, &options)
                .map_err(from_rocksdb)?;
            changes.set(&key, &stored);
            Ok(true)
        })
        .await
    }

    /// One `multi_get` from one snapshot: no `get_many` sees part of a batch write. If it
    /// finds an expired entry, it reads them all again under the locks of all its keys, for
    /// the reason `read_entry` gives (with every lock held, no write to them is half done).
    async fn read_many(&self, keys: &[Key<'_>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let shared = self.shared.clone();
        let keys: Vec<Vec<u8>> = keys.iter().map(|key| self.key(key)).collect();
        blocking(move || {
            let db = shared.db();
            let snapshot = db.snapshot();
            let mut options = ReadOptions::default();
            options.set_snapshot(&snapshot);
            let mut found = judge_all(db.multi_get_opt(&keys, &options))?;
            if found.iter().any(|found| matches!(found, Found::Expired)) {
                let _guards = shared.lock_keys(keys.iter().map(Vec::as_slice));
                found = judge_all(db.multi_get(&keys))?;
            }
            Ok(found
                .into_iter()
                .map(|found| found.live().map(|live| live.value))
                .collect())
        })
        .await
    }

    /// One `WriteBatch` under the locks of all its keys: all of it or none of it, and a
    /// repeated key keeps its last value (a batch applies in order). Watchers get a `Set` per
    /// entry, in the caller's order, once the batch is written.
    async fn write_many(
        &self,
        entries: &[(Key<'_>, Value<'_>)],
        ttl: Option<Ttl>,
    ) -> Result<(), KvError> {
        let shared = self.shared.clone();
        let options = self.write_options();
        let changes = self.changes.clone();
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(key, value)| (self.key(key), encode(value.as_bytes(), None)))
            .collect();
        blocking(move || {
            let _guards = shared.lock_keys(entries.iter().map(|(key, _)| key.as_slice()));
            let deadline = ttl.map(Ttl::unix_deadline_ms);
            let mut batch = WriteBatch::default();
            for (key, stored) in &mut entries {
                set_deadline(stored, deadline);
                batch.put(key.as_slice(), stored.as_slice());
            }
            shared
                .db()
                .write_opt(batch, &options)
                .map_err(from_rocksdb)?;
            for (key, stored) in &entries {
                changes.set(key, stored);
            }
            Ok(())
        })
        .await
    }

    /// One `WriteBatch` of deletes under the locks of all its keys, counting the keys that
    /// were live (a repeated key once). Watchers get what each removal was (see `remove`) in
    /// the caller's order, once the batch is written.
    async fn remove_many(&self, keys: &[Key<'_>]) -> Result<u64, KvError> {
        let shared = self.shared.clone();
        let options = self.write_options();
        let changes = self.changes.clone();
        let keys: Vec<Vec<u8>> = keys.iter().map(|key| self.key(key)).collect();
        blocking(move || {
            let _guards = shared.lock_keys(keys.iter().map(Vec::as_slice));
            let mut seen = HashSet::with_capacity(keys.len());
            let mut removals = Vec::with_capacity(keys.len());
            let mut batch = WriteBatch::default();
            for key in &keys {
                // A repeated key is one removal: the first finds the entry, and then it is gone.
                if seen.insert(key.as_slice()) {
                    removals.push((key.as_slice(), Removal::of(&entry_at(&shared, key)?)));
                    // An expired leftover is deleted too.
                    batch.delete(key);
                }
            }
            shared
                .db()
                .write_opt(batch, &options)
                .map_err(from_rocksdb)?;
            let mut removed = 0;
            for (key, removal) in removals {
                removed += u64::from(removal == Removal::Live);
                changes.removed(key, removal);
            }
            Ok(removed)
        })
        .await
    }

    /// An iterator from just after `start_after`, reading at most `limit` entries.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        let (shared, start) = (self.shared.clone(), self.key(prefix));
        let namespace_len = self.prefix.len();
        // Just after `start_after` in byte order: the same key with a NUL appended.
        let from = start_after.map(|after| {
            let mut from = self.key(after);
            from.push(0);
            from
        });
        blocking(move || {
            let now = unix_millis_now();
            let from = match from {
                Some(from) if from > start => from,
                _ => start.clone(),
            };
            let mut options = ReadOptions::default();
            if let Some(end) = prefix_end(&start) {
                options.set_iterate_upper_bound(end);
            }
            let (mut keys, mut read) = (Vec::new(), 0);
            for entry in shared
                .db()
                .iterator_opt(IteratorMode::From(&from, Direction::Forward), options)
            {
                let (key, stored) = entry.map_err(from_rocksdb)?;
                if !key.starts_with(&start) {
                    break;
                }
                let name = std::str::from_utf8(&key[namespace_len..])
                    .map_err(|_| KvError::backend("a stored key is not UTF-8"))?
                    .to_owned();
                let live = decode(&stored)?.is_live_at(now);
                read += 1;
                if read == limit.get() {
                    let next = Some(name.clone());
                    if live {
                        keys.push(name);
                    }
                    return Ok(KeyPage { keys, next });
                }
                if live {
                    keys.push(name);
                }
            }
            Ok(KeyPage { keys, next: None })
        })
        .await
    }

    /// The namespace's feed, made by its first watch; the stream ends when the database
    /// closes (its last handle in this process is dropped).
    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        Ok(self.changes.feed.watch(prefix))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.max_value_bytes)
            .with_atomic_batches(true)
            .with_sharing(Sharing::Process)
            .with_native_batches(true)
            .with_native_paging(true)
            .with_watch(WatchScope::Process)
    }
}

kv_trait::impl_kv_backend!(RocksDbBackend);
