//! One open RocksDB per path per process, shared by every backend on that path.
//!
//! RocksDB lets one process open a path once. A second `open` of the same path in this
//! process (another namespace, or `kvkit::open` of the same URL twice) must therefore share
//! the database already open; the registry maps canonical paths to the open databases. The
//! last handle to go closes the database, under the registry's lock, so that an open racing
//! with that close waits for it instead of tripping over RocksDB's lock file.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use kv_trait::{unix_millis_now, KvError};
use rocksdb::compaction_filter::Decision;
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options, DB};

use crate::config::RocksDbBackendBuilder;
use crate::encoding::{deadline_of, FORMAT_KEY, FORMAT_VERSION};
use crate::error::from_rocksdb;

/// An open database and the write locks of its keys.
pub(crate) struct SharedDb {
    /// `Some` until the last handle drops it (see [`SharedDb::drop`]).
    db: Option<DB>,
    path: PathBuf,
    stripes: Box<[Mutex<()>]>,
    hasher: RandomState,
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
        let stripe = (self.hasher.hash_one(stored_key) as usize) % self.stripes.len();
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SharedDb {
    fn drop(&mut self) {
        let mut open = registry();
        drop(self.db.take());
        if open
            .get(&self.path)
            .is_some_and(|entry| entry.strong_count() == 0)
        {
            open.remove(&self.path);
        }
    }
}

fn registry() -> MutexGuard<'static, HashMap<PathBuf, Weak<SharedDb>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<SharedDb>>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
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
    let mut open = registry();
    if let Some(shared) = open.get(&path).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    let db = DB::open(&options(builder), &path).map_err(from_rocksdb)?;
    check_format(&db, &path)?;
    let stripes = (0..builder.lock_stripes).map(|_| Mutex::new(())).collect();
    let shared = Arc::new(SharedDb {
        db: Some(db),
        path: path.clone(),
        stripes,
        hasher: RandomState::new(),
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
