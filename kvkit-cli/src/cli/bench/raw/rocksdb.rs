//! Raw rust-rocksdb: a database of its own beside the adapter's (RocksDB lets one process
//! open a directory once), the same write options, blocking calls on `spawn_blocking`, and
//! one mutex around read-modify-writes.
//!
//! `get_many` is one `multi_get`: RocksDB's own batch read, which looks every key up at one
//! sequence number (a consistent view, as a snapshot gives) and answers in the order asked.
//! `set_many` is one `WriteBatch`, written with the same write options as `set`: applied
//! atomically and in order (a key given twice keeps its last value), with one WAL write
//! (and one sync under `sync_writes`) for the whole batch. Neither takes the
//! read-modify-write mutex, as `set` does not: a batch write is atomic by itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use kv_trait::url_config::StoreUrl;
use kv_trait::{KvBackend, KvError};
use rocksdb::{Options, WriteBatch, WriteOptions, DB};

use super::next_counter;
use crate::cli::bench::driver::Driver;

/// A RocksDB database next to the adapter's, removed when the run ends.
pub(crate) struct RawRocksDb {
    inner: Arc<Inner>,
    /// Declared after `inner`, so it runs after the database closes.
    _directory: RemoveOnDrop,
}

struct Inner {
    db: DB,
    sync: bool,
    /// Serializes increment and compare-and-swap, which read and then write.
    update: Mutex<()>,
}

impl RawRocksDb {
    /// Opens `PATH.kvkit-bench-raw` for `rocksdb://PATH`, with the URL's `sync_writes`.
    pub(crate) fn open(url: &str) -> Result<Self, KvError> {
        let mut parsed = StoreUrl::parse(url, "rocksdb")?;
        let sync = parsed.take_bool("sync_writes")?.unwrap_or(false);
        let mut path = parsed.file_path()?.into_os_string();
        path.push(".kvkit-bench-raw");
        let path = PathBuf::from(path);
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, &path).map_err(KvError::backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                sync,
                update: Mutex::new(()),
            }),
            _directory: RemoveOnDrop(path),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, rocksdb::Error> + Send + 'static,
    ) -> Result<T, KvError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(KvError::backend)?
            .map_err(KvError::backend)
    }
}

impl Inner {
    fn write_options(&self) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        options
    }
}

impl Driver for RawRocksDb {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.to_owned();
        self.blocking(move |inner| inner.db.get(key)).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.blocking(move |inner| inner.db.put_opt(key, value, &inner.write_options()))
            .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let key = key.to_owned();
        let next = self
            .blocking(move |inner| {
                let _update = inner.update.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(next) = next_counter(inner.db.get(&key)?.as_deref(), delta) else {
                    return Ok(None);
                };
                inner
                    .db
                    .put_opt(&key, next.to_string(), &inner.write_options())?;
                Ok(Some(next))
            })
            .await?;
        next.ok_or(KvError::NotAnInteger)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let (key, expected, new) = (key.to_owned(), expected.map(<[u8]>::to_vec), new.to_vec());
        self.blocking(move |inner| {
            let _update = inner.update.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.db.get(&key)? != expected {
                return Ok(false);
            }
            inner.db.put_opt(&key, new, &inner.write_options())?;
            Ok(true)
        })
        .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let keys: Vec<String> = keys.iter().map(|&key| key.to_owned()).collect();
        self.blocking(move |inner| inner.db.multi_get(&keys).into_iter().collect())
            .await
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            batch.put(key, value);
        }
        self.blocking(move |inner| inner.db.write_opt(batch, &inner.write_options()))
            .await
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, keys: Vec<String>) -> Result<(), KvError> {
        // The directory itself goes when the database closes.
        self.blocking(move |inner| {
            for key in keys {
                inner.db.delete(key)?;
            }
            Ok(())
        })
        .await
    }
}

/// Removes the raw database's directory.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
        let url = format!("rocksdb://{}", dir.path().join("db").display());
        let raw = RawRocksDb::open(&url).unwrap();
        super::super::tests::batches_answer_in_the_order_asked(&raw).await;
    }
}
