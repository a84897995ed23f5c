//! SQLite errors to [`KvError`], in one place; the crate docs hold the mapping table.

use kv_trait::KvError;
use rusqlite::ErrorCode;

/// What the code running on a connection's thread can fail with: a SQLite error still to be
/// mapped, or a contract error (`NotAnInteger`, `IntegerOverflow`, a refused schema, ...)
/// that passes through unchanged. Both convert with `?`.
#[derive(Debug)]
pub(crate) enum OpError {
    Sqlite(rusqlite::Error),
    Kv(KvError),
}

impl From<rusqlite::Error> for OpError {
    fn from(err: rusqlite::Error) -> Self {
        OpError::Sqlite(err)
    }
}

impl From<KvError> for OpError {
    fn from(err: KvError) -> Self {
        OpError::Kv(err)
    }
}

impl From<OpError> for KvError {
    fn from(err: OpError) -> Self {
        match err {
            OpError::Kv(err) => err,
            OpError::Sqlite(err) => from_sqlite(err),
        }
    }
}

/// Maps a SQLite error by its primary result code (see the table in the module docs).
pub(crate) fn from_sqlite(err: rusqlite::Error) -> KvError {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => KvError::unavailable(err),
        Some(ErrorCode::DiskFull) => KvError::QuotaExceeded(err.to_string()),
        _ => KvError::backend(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite_failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn busy_and_locked_are_retryable() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_BUSY_SNAPSHOT,
            ffi::SQLITE_LOCKED_SHAREDCACHE,
        ] {
            let err = from_sqlite(sqlite_failure(code));
            assert!(matches!(err, KvError::Unavailable(_)), "{code}: {err:?}");
            assert!(err.is_retryable());
        }
    }

    #[test]
    fn full_disk_is_a_quota_and_the_rest_are_backend_errors() {
        assert!(matches!(
            from_sqlite(sqlite_failure(ffi::SQLITE_FULL)),
            KvError::QuotaExceeded(_)
        ));
        for err in [
            sqlite_failure(ffi::SQLITE_CORRUPT),
            sqlite_failure(ffi::SQLITE_IOERR_WRITE),
            sqlite_failure(ffi::SQLITE_NOTADB),
            rusqlite::Error::QueryReturnedNoRows,
        ] {
            assert!(matches!(from_sqlite(err), KvError::Backend(_)));
        }
    }

    #[test]
    fn contract_errors_pass_through() {
        let err: KvError = OpError::from(KvError::NotAnInteger).into();
        assert!(matches!(err, KvError::NotAnInteger));
    }
}
