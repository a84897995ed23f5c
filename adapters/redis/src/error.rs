//! Redis errors to [`KvError`], in one place; the crate docs hold the mapping table.

use std::fmt;
use std::time::Duration;

use kv_trait::KvError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Why a request to Redis failed, before it is turned into a [`KvError`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// The client library or the server reported an error.
    Redis(RedisError),
    /// No reply within the request timeout.
    TimedOut(Duration),
    /// Already decided (e.g. compare-and-swap gave up under contention).
    Kv(KvError),
}

impl From<RedisError> for Failure {
    fn from(err: RedisError) -> Self {
        Failure::Redis(err)
    }
}

impl From<Failure> for KvError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Redis(err) => from_redis(err),
            Failure::TimedOut(timeout) => KvError::unavailable(TimedOut(timeout)),
            Failure::Kv(err) => err,
        }
    }
}

/// A request that got no reply within its timeout.
#[derive(Debug)]
pub(crate) struct TimedOut(pub(crate) Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Redis did not reply within the request timeout of {:?}",
            self.0
        )
    }
}

impl std::error::Error for TimedOut {}

/// The general mapping (see the module docs).
///
/// An error that proves the command never ran ([`did_not_run`], a refused connection) is
/// `Unavailable` marked as not sent ([`KvError::not_sent`]), so a retry layer may send even a
/// write again.
pub(crate) fn from_redis(err: RedisError) -> KvError {
    if did_not_run(&err) || err.is_connection_refusal() {
        return KvError::not_sent(err);
    }
    if is_transient(&err) {
        return KvError::unavailable(err);
    }
    if is_out_of_memory(&err) {
        return KvError::QuotaExceeded(err.to_string());
    }
    KvError::backend(err)
}

/// `OOM`: `maxmemory` reached with eviction off, whether the write was a command or ran in a
/// script.
fn is_out_of_memory(err: &RedisError) -> bool {
    err.code() == Some("OOM")
}

/// The mapping for `increment`, whose arithmetic errors come from `INCRBY` (or the script's
/// canonical-form check, which answers with the same message).
pub(crate) fn from_increment(failure: Failure) -> KvError {
    if let Failure::Redis(err) = &failure {
        if let Some(detail) = err.detail() {
            if detail.contains("not an integer or out of range") {
                return KvError::NotAnInteger;
            }
            if detail.contains("would overflow") {
                return KvError::IntegerOverflow;
            }
        }
    }
    failure.into()
}

/// The mapping while connecting: refused credentials and databases are configuration errors.
pub(crate) fn from_connect(failure: Failure) -> KvError {
    if let Failure::Redis(err) = &failure {
        // The cluster client reports a refused handshake as an I/O error naming the reply.
        let text = err.to_string();
        let refused_credentials = err.kind() == ErrorKind::AuthenticationFailed
            || matches!(err.code(), Some("WRONGPASS" | "NOAUTH"))
            || text.contains("WRONGPASS")
            || text.contains("NOAUTH");
        if refused_credentials {
            return KvError::InvalidConfig(format!("the server refused the credentials: {err}"));
        }
        if err
            .detail()
            .is_some_and(|d| d.contains("DB index is out of range"))
        {
            return KvError::InvalidConfig(format!("the server refused the database: {err}"));
        }
    }
    failure.into()
}

/// Errors after which the same request may well succeed a moment later: a lost or slow
/// connection, a busy server, or anything that proves the command did not run.
fn is_transient(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        // A reply that cannot be parsed is one cut short by a connection closed in the middle of
        // it (redis-rs reads "unexpected end of input"): the command may have run and its reply
        // is lost, as after a reset. Was `Backend`, which tells the caller nothing happened; the
        // kit's `cut-mid-reply` fault check found it.
        || err.kind() == ErrorKind::Parse
        || err.is_connection_dropped()
        || did_not_run(err)
        || err.code() == Some("BUSY")
}

/// Errors that prove the server did not run the command, so sending it again is safe even for
/// a write: redirections during resharding or failover, a cluster still electing a primary,
/// a server still loading its data, or a node the client had no connection to.
pub(crate) fn did_not_run(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::ReadOnly
            )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str, detail: &str) -> RedisError {
        // The way the client builds an error from a reply line.
        let reply = format!("-{code} {detail}\r\n");
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(redis::Value::ServerError(err)) => err.into(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counter_errors_become_contract_errors() {
        let not_int = server_error("ERR", "value is not an integer or out of range");
        assert!(matches!(
            from_increment(not_int.into()),
            KvError::NotAnInteger
        ));
        let overflow = server_error("ERR", "increment or decrement would overflow");
        assert!(matches!(
            from_increment(overflow.into()),
            KvError::IntegerOverflow
        ));
        let wrong_type = server_error(
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value",
        );
        assert!(matches!(
            from_increment(wrong_type.into()),
            KvError::Backend(_)
        ));
    }

    #[test]
    fn transient_server_states_are_unavailable_and_oom_is_a_quota() {
        for (code, detail) in [
            ("LOADING", "Redis is loading the dataset in memory"),
            ("TRYAGAIN", "Multiple keys request during rehashing of slot"),
            ("CLUSTERDOWN", "The cluster is down"),
            ("MASTERDOWN", "Link with MASTER is down"),
            ("BUSY", "Redis is busy running a script."),
            ("MOVED", "3999 127.0.0.1:6381"),
        ] {
            let err = from_redis(server_error(code, detail));
            assert!(err.is_retryable(), "{code}: {err:?}");
        }
        let oom = from_redis(server_error(
            "OOM",
            "command not allowed when used memory > 'maxmemory'.",
        ));
        assert!(matches!(oom, KvError::QuotaExceeded(m) if m.contains("maxmemory")));
        assert!(matches!(
            from_redis(server_error("NOPERM", "this user has no permissions")),
            KvError::Backend(_)
        ));
    }

    #[test]
    fn lost_connections_and_timeouts_are_unavailable() {
        let reset: RedisError = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        let reset = from_redis(reset);
        assert!(reset.is_retryable() && !reset.is_not_sent(), "{reset}");
        // Proven not run: a retry may resend even a write.
        assert!(from_redis(server_error("MOVED", "3999 127.0.0.1:6381")).is_not_sent());
        let refused: RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert!(from_redis(refused).is_not_sent());
        let timed_out = KvError::from(Failure::TimedOut(Duration::from_millis(5)));
        assert!(timed_out.is_retryable());
        assert!(timed_out.to_string().contains("5ms"), "{timed_out}");
    }

    #[test]
    fn a_reply_cut_short_is_unavailable() {
        // What redis-rs reports for the rest of a cut reply (the fault proxy's cut shows
        // "Parse error at 1, Unexpected end of input"): a parse error.
        let cut = redis::parse_redis_value(b"$x\r\n").unwrap_err();
        assert_eq!(cut.kind(), ErrorKind::Parse);
        assert!(from_redis(cut).is_retryable());
    }

    #[test]
    fn refused_credentials_at_connect_are_configuration_errors() {
        let wrong = server_error(
            "WRONGPASS",
            "invalid username-password pair or user is disabled.",
        );
        assert!(matches!(
            from_connect(wrong.into()),
            KvError::InvalidConfig(_)
        ));
        let db = server_error("ERR", "DB index is out of range");
        assert!(matches!(from_connect(db.into()), KvError::InvalidConfig(_)));
        let refused: RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert!(from_connect(refused.into()).is_retryable());
    }

    #[test]
    fn only_errors_that_prove_nothing_ran_allow_a_resend() {
        assert!(did_not_run(&server_error("MOVED", "3999 127.0.0.1:6381")));
        assert!(did_not_run(&server_error("TRYAGAIN", "rehashing")));
        let reset: RedisError = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        assert!(
            !did_not_run(&reset),
            "a lost reply may hide a write that ran"
        );
        assert!(!did_not_run(&server_error("ERR", "anything")));
    }
}
