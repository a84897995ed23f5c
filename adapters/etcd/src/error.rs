//! etcd failures to [`KvError`], in one place (the table is in the crate README).
//!
//! A failure that says nothing about the data (no leader, a member that is gone, a deadline
//! that passed, a connection refused or lost) is `Unavailable`: the same call may succeed
//! later. A full database is `QuotaExceeded`. Everything else is `Backend`. Messages come from
//! etcd and tonic, which never quote the password.

use etcd_client::Error;
use kv_trait::KvError;
use tonic::Code;

/// Words of the messages etcd and tonic give to failures of the cluster or the connection
/// under a status code that also serves other failures (`Unknown`, `Internal`).
const UNAVAILABLE_MESSAGES: [&str; 10] = [
    "no leader",
    // etcd 3.4 answers its overload with this message under `Unknown`, not only under
    // `ResourceExhausted` (a 10,000-task burst on one member saw it so).
    "too many requests",
    "leader changed",
    "timed out",
    "timeout",
    "transport",
    "connect",
    "connection",
    "broken pipe",
    "not capable",
];

/// Maps a failure of etcd-client to the contract's error. A request that never reached etcd
/// ([`never_sent`], [`refused_before_proposal`]) is `Unavailable` marked as not sent
/// ([`KvError::not_sent`]), so a retry layer may send even a write again.
pub(crate) fn from_etcd(err: Error) -> KvError {
    if never_sent(&err) || refused_before_proposal(&err) {
        return KvError::not_sent(err);
    }
    match &err {
        Error::GRpcStatus(status) => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                KvError::unavailable(err)
            }
            // "etcdserver: mvcc: database space exceeded" (the backend quota); otherwise
            // "too many requests", which passes.
            Code::ResourceExhausted if status.message().contains("space exceeded") => {
                KvError::QuotaExceeded(format!("etcd: {}", status.message()))
            }
            Code::ResourceExhausted => KvError::unavailable(err),
            Code::Unknown | Code::Internal
                if UNAVAILABLE_MESSAGES
                    .iter()
                    .any(|words| status.message().to_ascii_lowercase().contains(words)) =>
            {
                KvError::unavailable(err)
            }
            _ => KvError::backend(err),
        },
        Error::TransportError(_) | Error::IoError(_) => KvError::unavailable(err),
        _ => KvError::backend(err),
    }
}

/// Maps a failure of opening: etcd refusing the credentials (a wrong password, a missing
/// user, no credentials where authentication is on, a user without rights) or a member's
/// certificate that TLS does not trust is `InvalidConfig`, since only a different
/// configuration helps; the rest as [`from_etcd`].
pub(crate) fn from_etcd_opening(err: Error) -> KvError {
    if let Error::GRpcStatus(status) = &err {
        let refused = matches!(
            status.code(),
            Code::Unauthenticated | Code::PermissionDenied
        ) || (matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition
        ) && [
            "authentication failed",
            "user name is empty",
            "user name not found",
        ]
        .iter()
        .any(|words| status.message().contains(words)));
        if refused {
            return KvError::InvalidConfig(format!(
                "etcd refused the credentials: {}",
                status.message()
            ));
        }
        // rustls refused the member's certificate (unknown authority, another name,
        // expired): only other TLS settings help.
        if status.code() == Code::Unavailable
            && status_and_causes(status).contains("invalid peer certificate")
        {
            return KvError::InvalidConfig(format!(
                "the TLS handshake failed, the member's certificate is not trusted ({}): set \
                 `ca_file` to the authority that signed it, or `tls_server_name` to a name it \
                 carries",
                status.message()
            ));
        }
    }
    from_etcd(err)
}

/// Whether a request failed before it left this process: no connection to the member it was
/// routed to could be made (refused, unreachable). Such a request was never seen by etcd, so
/// sending it again, to whichever member the channel picks, cannot apply it twice. A failure
/// on a connection that was up (reset, closed, timed out) may have been seen, and is not
/// this.
pub(crate) fn never_sent(err: &Error) -> bool {
    let Error::GRpcStatus(status) = err else {
        return false;
    };
    if status.code() != Code::Unavailable {
        return false;
    }
    let text = status_and_causes(status);
    text.contains("tcp connect error")
        || text.contains("error trying to connect")
        || text.contains("connection refused")
}

/// Whether etcd refused the request before proposing it to Raft: `etcdserver: too many
/// requests`, which a member answers while the entries it has committed but not yet applied
/// number more than 5,000 (it is still applying a burst). Nothing of such a request was
/// applied, so any request, a write or an increment too, may be sent again after a pause.
pub(crate) fn refused_before_proposal(err: &Error) -> bool {
    matches!(err, Error::GRpcStatus(status) if status.message().contains("too many requests"))
}

/// The status's message and the messages of its causes, lower case, joined by `: `.
fn status_and_causes(status: &tonic::Status) -> String {
    let mut text = status.message().to_ascii_lowercase();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string().to_ascii_lowercase());
        source = cause.source();
    }
    text
}

/// Whether etcd refused a put because its lease is gone (expired or revoked): nothing was
/// written, so the put may be sent again with another lease.
pub(crate) fn lease_not_found(err: &Error) -> bool {
    matches!(err, Error::GRpcStatus(status)
        if status.code() == Code::NotFound && status.message().contains("lease not found"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    fn map(code: Code, message: &str) -> KvError {
        from_etcd(Error::GRpcStatus(Status::new(code, message)))
    }

    #[test]
    fn cluster_failures_are_unavailable_and_the_rest_is_not() {
        for (code, message) in [
            (Code::Unavailable, "etcdserver: no leader"),
            (Code::Unavailable, "etcdserver: leader changed"),
            (Code::Unavailable, "etcdserver: request timed out"),
            (Code::DeadlineExceeded, "context deadline exceeded"),
            (Code::Unknown, "transport error"),
            (Code::ResourceExhausted, "etcdserver: too many requests"),
            (Code::Unknown, "etcdserver: too many requests"),
        ] {
            assert!(map(code, message).is_retryable(), "{code:?} {message}");
        }
        for code in [Code::ResourceExhausted, Code::Unknown] {
            let overloaded = Error::GRpcStatus(Status::new(code, "etcdserver: too many requests"));
            assert!(refused_before_proposal(&overloaded), "{code:?}");
        }
        assert!(!refused_before_proposal(&Error::GRpcStatus(Status::new(
            Code::Unavailable,
            "etcdserver: request timed out"
        ))));
        assert!(matches!(
            map(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded"
            ),
            KvError::QuotaExceeded(_)
        ));
        for (code, message) in [
            (Code::InvalidArgument, "etcdserver: request is too large"),
            (Code::PermissionDenied, "etcdserver: permission denied"),
            (Code::Unknown, "something else"),
        ] {
            assert!(
                matches!(map(code, message), KvError::Backend(_)),
                "{code:?} {message}"
            );
        }
        assert!(from_etcd(Error::GRpcStatus(Status::new(
            Code::Unavailable,
            "tcp connect error: Connection refused (os error 111)",
        )))
        .is_not_sent());
        assert!(!from_etcd(Error::GRpcStatus(Status::new(
            Code::Unavailable,
            "connection reset"
        )))
        .is_not_sent());
        assert!(never_sent(&Error::GRpcStatus(Status::new(
            Code::Unavailable,
            "tcp connect error"
        ))));
        assert!(!never_sent(&Error::GRpcStatus(Status::new(
            Code::Unavailable,
            "etcdserver: leader changed"
        ))));
        assert!(!never_sent(&Error::GRpcStatus(Status::new(
            Code::Unknown,
            "connection reset by peer"
        ))));
        assert!(lease_not_found(&Error::GRpcStatus(Status::new(
            Code::NotFound,
            "etcdserver: requested lease not found"
        ))));
    }
}
