//! PostgreSQL failures to [`KvError`], in one place (the table is in the crate docs).
//!
//! The SQLSTATE decides where the server sent one; a failure without one (a refused or lost
//! connection, a TLS or I/O error) is `Unavailable`. Messages come from tokio-postgres and the
//! server, which never quote the password.

use kv_trait::KvError;
use tokio_postgres::error::{Severity, SqlState};

/// Which failures a statement may be sent again after: a serialization failure or a deadlock
/// rolled the statement back, so sending it again cannot apply it twice. Single-key
/// statements under `READ COMMITTED` (which every connection sets) see neither; a server
/// configured otherwise still never shows them to the caller.
pub(crate) fn rolled_back_by_conflict(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

/// Whether the server ended the session instead of running the statement (a `FATAL` error:
/// an administrator terminated it, or the server is shutting down). An error reply means the
/// statement's transaction was rolled back, so it may be sent again on another connection,
/// whatever it does.
pub(crate) fn session_ended(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        matches!(
            db.parsed_severity(),
            Some(Severity::Fatal) | Some(Severity::Panic)
        )
    })
}

/// Whether the connection broke with no reply from the server: the statement may or may not
/// have run.
pub(crate) fn connection_lost(err: &tokio_postgres::Error) -> bool {
    // Every reply from the server is a database error, which has a SQLSTATE.
    err.code().is_none() && !wrong_type(err)
}

/// Whether tokio-postgres refused to convert a parameter or a column before or after the
/// server ran anything: the table's columns are no longer of the types the statement was
/// written for (another program changed them after the backend opened). Nothing went wrong
/// with the connection, and sending the statement again would fail the same way.
fn wrong_type(err: &tokio_postgres::Error) -> bool {
    std::error::Error::source(err).is_some_and(|cause| {
        cause.is::<tokio_postgres::types::WrongType>()
            || cause.is::<tokio_postgres::types::WasNull>()
    })
}

/// Maps a failure of tokio-postgres to the contract's error.
pub(crate) fn from_pg(err: tokio_postgres::Error) -> KvError {
    let Some(code) = err.code() else {
        if wrong_type(&err) {
            return KvError::backend(format!(
                "{err}: {}: the table's columns are not of the types kv-postgres writes (was \
                 the table changed by another program?)",
                std::error::Error::source(&err).map_or_else(String::new, ToString::to_string)
            ));
        }
        // No SQLSTATE: the connection failed (refused, reset, closed, timed out, TLS).
        return KvError::unavailable(err);
    };
    let class = &code.code()[..2];
    match class {
        // Connection exceptions; operator intervention (shutdown, statement_timeout, the
        // server not yet accepting connections); a standby answering during a failover.
        "08" | "57" => KvError::unavailable(err),
        // Insufficient resources: a full disk is a quota, the rest passes.
        "53" if *code == SqlState::DISK_FULL => {
            KvError::QuotaExceeded(format!("PostgreSQL: {err}"))
        }
        "53" => KvError::unavailable(err),
        // Serialization failures and deadlocks that outlasted the resends.
        "40" => KvError::unavailable(err),
        _ if *code == SqlState::READ_ONLY_SQL_TRANSACTION
            || *code == SqlState::LOCK_NOT_AVAILABLE =>
        {
            KvError::unavailable(err)
        }
        _ => KvError::backend(err),
    }
}
