//! RocksDB errors as [`KvError`]s, in one place.

use kv_trait::KvError;
use rocksdb::ErrorKind;

/// Maps a RocksDB error: transient conditions are `Unavailable`, a full disk is
/// `QuotaExceeded`, another process's lock on the database is a `Backend` error that says so.
pub(crate) fn from_rocksdb(err: rocksdb::Error) -> KvError {
    let message = err.to_string();
    match err.kind() {
        ErrorKind::Busy | ErrorKind::TimedOut | ErrorKind::TryAgain | ErrorKind::Incomplete => {
            KvError::unavailable(err)
        }
        _ if message.contains("No space left on device") => KvError::QuotaExceeded(message),
        _ if message.contains("lock") && message.contains("LOCK") => KvError::backend(format!(
            "the database is locked by another process (RocksDB allows one process per path): {message}"
        )),
        _ => KvError::backend(err),
    }
}

/// A blocking task that did not finish (the runtime is shutting down, or the task panicked).
pub(crate) fn from_join(err: tokio::task::JoinError) -> KvError {
    KvError::backend(format!("a RocksDB task did not complete: {err}"))
}
