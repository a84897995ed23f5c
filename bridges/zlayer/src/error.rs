//! kvkit's errors as zlayer's: the four kinds zlayer's WIT interface names keep their kind,
//! every other failure becomes `Storage` with kvkit's whole message.

use kv_trait::KvError;
use zlayer_agent::kv::KvError as ZlayerError;

/// zlayer's error for a kvkit error:
///
/// | kvkit | zlayer |
/// | --- | --- |
/// | `InvalidKey` | `InvalidKey` |
/// | `ValueTooLarge` | `ValueTooLarge` |
/// | `QuotaExceeded` | `QuotaExceeded` |
/// | `InvalidTtl`, `NotAnInteger`, `IntegerOverflow`, `Unavailable`, `Backend`, `InvalidConfig` | `Storage(message)` |
///
/// zlayer's own map reports a non-integer counter as `Storage` too. `Storage` says nothing of
/// retrying: a message starting `store unavailable:` is kvkit's `Unavailable`, the one
/// failure worth trying again (and the one after which a write may or may not have been
/// applied). kvkit's messages never contain a password.
///
/// ```
/// use kv_zlayer::to_zlayer;
/// use zlayer_agent::kv::KvError as ZlayerError;
///
/// let refused = to_zlayer(kv_trait::KvError::unavailable("connection refused"));
/// assert_eq!(refused, ZlayerError::Storage("store unavailable: connection refused".into()));
/// assert_eq!(to_zlayer(kv_trait::KvError::InvalidKey("empty".into())), ZlayerError::InvalidKey);
/// ```
pub fn to_zlayer(err: KvError) -> ZlayerError {
    match err {
        KvError::InvalidKey(_) => ZlayerError::InvalidKey,
        KvError::ValueTooLarge { .. } => ZlayerError::ValueTooLarge,
        KvError::QuotaExceeded(_) => ZlayerError::QuotaExceeded,
        other => ZlayerError::Storage(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_outside_the_four_kinds_keeps_its_message() {
        for (err, message) in [
            (
                KvError::InvalidTtl(0),
                "invalid TTL of 0 ns: a TTL must be at least 1 ns (use `set` for no expiry)",
            ),
            (
                KvError::NotAnInteger,
                "the stored value is not a canonical decimal i64 counter",
            ),
            (
                KvError::IntegerOverflow,
                "increment would overflow the i64 range",
            ),
            (
                KvError::backend("disk I/O error"),
                "backend error: disk I/O error",
            ),
        ] {
            assert_eq!(to_zlayer(err), ZlayerError::Storage(message.into()));
        }
        assert_eq!(
            to_zlayer(KvError::ValueTooLarge { size: 2, max: 1 }),
            ZlayerError::ValueTooLarge
        );
        assert_eq!(
            to_zlayer(KvError::QuotaExceeded("maxmemory".into())),
            ZlayerError::QuotaExceeded
        );
    }
}
