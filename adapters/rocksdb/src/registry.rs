//! One open RocksDB per path per process, shared by every backend on that path.
//!
//! RocksDB lets one process open a path once. A second `open` of the same path in this
//! process (another namespace, or `kvkit::open` of the same URL twice) must therefore share
//! the database already open; the registry maps canonical paths to the open databases.
//!
//! When the last handle goes, the database is closed before the drop returns (which waits for
//! RocksDB's background work), without the registry's lock; the registry forgets the path
//! only once it is closed. An open of the
//! same path meanwhile sees a database nobody holds and waits (at most [`CLOSE_WAIT`]) for
//! that close, instead of tripping over RocksDB's lock file.
//!
//! The open database also holds each namespace's change feed ([`ChangeFeed`]): every
//! handle of this process on the path writes through this one database, so a feed here hears
//! every write a watcher could be told about (no other process can open the path).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use kv_trait::{unix_millis_now, ChangeFeed, KvError};
use rocksdb::compaction_filter::Decision;
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options, DB};

use crate::config::RocksDbBackendBuilder;
use crate::encoding::{deadline_of, FORMAT_KEY, FORMAT_VERSION};
use crate::error::from_rocksdb;

/// An open database, the write locks of its keys and the change feeds of its namespaces.
pub(crate) struct SharedDb {
    /// `Some` until the last handle drops it (see [`SharedDb::drop`]).
    db: Option<DB>,
    path: PathBuf,
    stripes: Box<[Mutex<()>]>,
    hasher: RandomState,
    /// Each namespace opened on this database, by name. Kept until the database closes: an
    /// unwatched entry is a few words, and watch streams end when their feed is dropped.
    feeds: Mutex<HashMap<String, Arc<ChangeFeed>>>,
}

impl SharedDb {
    pub(crate) fn db(&self) -> &DB {
        // Only `drop` takes the database out, and nothing uses a value being dropped.
        self.db
            .as_ref()
            .expect("the database is open until its last handle is dropped")
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Holds the write lock of `stored_key` (every read-modify-write and every plain write
    /// takes it, so that a CAS cannot interleave with a set of the same key).
    pub(crate) fn lock_key(&self, stored_key: &[u8]) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(stored_key)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the write locks of all `stored_keys` (a batch), taking each stripe once and in
    /// index order, so that two batches can never wait for each other's stripes.
    pub(crate) fn lock_keys<'k>(
        &self,
        stored_keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let stripes: std::collections::BTreeSet<usize> = stored_keys
            .into_iter()
            .map(|key| self.stripe(key))
            .collect();
        stripes
            .into_iter()
            .map(|stripe| {
                self.stripes[stripe]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            })
            .collect()
    }

    /// The change feed of `namespace`, the same for every handle on it.
    /// (`ChangeFeed` makes its buffer at the first watch, so an unwatched one is a few words.)
    pub(crate) fn namespace_feed(&self, namespace: &str) -> Arc<ChangeFeed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(feed) = feeds.get(namespace) {
            return feed.clone();
        }
        let feed = Arc::<ChangeFeed>::default();
        feeds.insert(namespace.to_owned(), feed.clone());
        feed
    }

    fn stripe(&self, stored_key: &[u8]) -> usize {
        (self.hasher.hash_one(stored_key) as usize) % self.stripes.len()
    }
}

impl Drop for SharedDb {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else { return };
        let closing = Closing {
            db: Some(db),
            path: self.path.clone(),
        };
        // Closed here, before the drop returns, so that whoever drops the last handle may
        // open the path with anything else at once; but without the registry's lock.
        drop(closing);
    }
}

/// A database whose last handle is gone. Dropping it closes the database, then lets the
/// registry forget the path and wakes the opens waiting for it.
struct Closing {
    db: Option<DB>,
    path: PathBuf,
}

impl Drop for Closing {
    fn drop(&mut self) {
        drop(self.db.take());
        let registry = registry();
        let mut open = registry.lock();
        if open
            .get(&self.path)
            .is_some_and(|entry| entry.strong_count() == 0)
        {
            open.remove(&self.path);
        }
        registry.closed.notify_all();
    }
}

/// How long an open waits for another handle's close of the same path before giving up.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(60);

/// Each open path's database (weakly: the backends hold it), and a condition signalled
/// whenever a database has finished closing.
struct Registry {
    open: Mutex<HashMap<PathBuf, Weak<SharedDb>>>,
    closed: Condvar,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Weak<SharedDb>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        open: Mutex::default(),
        closed: Condvar::new(),
    })
}

/// The database at `builder.path`: the one this process has open, or a newly opened one.
/// Blocking: call it off the executor.
pub(crate) fn open_shared(builder: &RocksDbBackendBuilder) -> Result<Arc<SharedDb>, KvError> {
    if builder.create_if_missing {
        std::fs::create_dir_all(&builder.path).map_err(|err| {
            KvError::backend(format!("cannot create {}: {err}", builder.path.display()))
        })?;
    }
    let path = std::fs::canonicalize(&builder.path).map_err(|err| {
        KvError::backend(format!(
            "no database directory at {}: {err}",
            builder.path.display()
        ))
    })?;
    let registry = registry();
    let mut open = registry.lock();
    let deadline = kv_trait::monotonic_now() + CLOSE_WAIT;
    while let Some(entry) = open.get(&path) {
        if let Some(shared) = entry.upgrade() {
            return Ok(shared);
        }
        // Its last handle is gone and it is being closed: wait until it is.
        let left = deadline.saturating_duration_since(kv_trait::monotonic_now());
        if left.is_zero() {
            return Err(KvError::unavailable(format!(
                "the RocksDB database at {} is still closing after {CLOSE_WAIT:?}",
                path.display()
            )));
        }
        open = registry
            .closed
            .wait_timeout(open, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    let db = DB::open(&options(builder), &path).map_err(from_rocksdb)?;
    check_format(&db, &path)?;
    let stripes = (0..builder.lock_stripes).map(|_| Mutex::new(())).collect();
    let shared = Arc::new(SharedDb {
        db: Some(db),
        path: path.clone(),
        stripes,
        hasher: RandomState::new(),
        feeds: Mutex::default(),
    });
    open.insert(path, Arc::downgrade(&shared));
    Ok(shared)
}

fn options(builder: &RocksDbBackendBuilder) -> Options {
    let mut options = Options::default();
    options.create_if_missing(builder.create_if_missing);
    // No compression library is compiled in (it would add minutes to every clean build).
    options.set_compression_type(DBCompressionType::None);
    options.set_compaction_filter("kvkit-expiry", drop_expired);
    if let Some(bytes) = builder.block_cache_bytes {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(bytes));
        options.set_block_based_table_factory(&table);
    }
    options
}

/// The compaction filter: drops entries whose deadline has passed, so dead keys do not take
/// disk space forever. (RocksDB turns a dropped entry into a tombstone where an older version
/// may still exist below, so nothing older resurfaces.)
fn drop_expired(_level: u32, key: &[u8], value: &[u8]) -> Decision {
    match deadline_of(key, value) {
        Some(deadline) if !kv_trait::is_live_at(deadline, unix_millis_now()) => Decision::Remove,
        _ => Decision::Keep,
    }
}

/// Records the format in a new database; refuses a database in another format, or one that
/// kv-rocksdb did not create.
fn check_format(db: &DB, path: &Path) -> Result<(), KvError> {
    match db.get(FORMAT_KEY).map_err(from_rocksdb)? {
        Some(version) if version == [FORMAT_VERSION] => Ok(()),
        Some(version) => Err(KvError::InvalidConfig(format!(
            "{} holds kv-rocksdb format {version:?}; this release reads format {FORMAT_VERSION}",
            path.display()
        ))),
        None if db.iterator(rocksdb::IteratorMode::Start).next().is_some() => {
            Err(KvError::InvalidConfig(format!(
                "{} is a RocksDB database that kv-rocksdb did not create",
                path.display()
            )))
        }
        None => db.put(FORMAT_KEY, [FORMAT_VERSION]).map_err(from_rocksdb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open that runs while the last handle of the same path is being dropped gets a
    /// database: the one still open, or a new one once the old one is closed, never
    /// RocksDB's "lock held" error. The test holds the registry's lock while another thread
    /// drops the last handle, then opens as soon as it lets go.
    #[test]
    fn an_open_racing_with_the_last_drop_waits_for_the_close() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let builder = RocksDbBackendBuilder::new(dir.path().join("db"));
        for round in 0..10 {
            let shared = open_shared(&builder).expect("first open");
            let held = registry().lock();
            let dropper = std::thread::spawn(move || drop(shared));
            // Let the dropper reach the registry's lock with the last handle gone.
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
            let reopened = open_shared(&builder);
            dropper.join().expect("dropper");
            let reopened = reopened.unwrap_or_else(|err| panic!("round {round}: {err}"));
            reopened
                .db()
                .put(b"k", b"v")
                .expect("the reopened database is usable");
        }
    }
}
