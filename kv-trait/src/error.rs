//! [`KvError`]: the one error type every backend returns.

use std::error::Error as StdError;

/// A boxed error from the underlying store or its client library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything a [`KvBackend`](crate::KvBackend) operation can fail with.
///
/// The first five variants are the caller's fault and are decided before anything is sent to
/// the store; an operation that returns one of them has changed nothing. `Unavailable` is the
/// only retryable kind (see [`KvError::is_retryable`]); it is also the only kind that may hide
/// whether a write reached the store (a lost reply).
///
/// Code outside this repository matches on these variants, so their names and shapes are part
/// of the contract. The enum is `#[non_exhaustive]`: match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key breaks the key rules (empty, or longer than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES)).
    /// The string says why.
    #[error("invalid key: {0}")]
    InvalidKey(String),

    /// A value is longer than the backend's declared maximum.
    #[error("value of {size} bytes is larger than this backend's maximum of {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value, in bytes.
        size: usize,
        /// The backend's maximum value length, in bytes.
        max: usize,
    },

    /// `set_with_ttl` got a TTL of zero; carries the rejected value.
    #[error("invalid TTL of {0} ns: a TTL must be at least 1 ns (use `set` for no expiry)")]
    InvalidTtl(u64),

    /// `increment` found a live value that is not the canonical decimal form of an `i64`.
    #[error("the stored value is not a canonical decimal i64 counter")]
    NotAnInteger,

    /// `increment` would leave the `i64` range.
    #[error("increment would overflow the i64 range")]
    IntegerOverflow,

    /// A backend-side quota or capacity limit refused the write.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),

    /// The store could not be reached, the connection was lost, the request timed out or was
    /// throttled: the same call may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),

    /// Any other failure of the underlying store.
    #[error("backend error: {0}")]
    Backend(#[source] BoxError),

    /// A backend could not be configured: a malformed URL, an unknown scheme, a bad option.
    /// Returned by constructors, never by the eight operations.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The backend does not offer this operation (its [`Capabilities`](crate::Capabilities)
    /// say so: `watch` where the scope is `Unsupported`); names the operation. Never returned
    /// by the eight operations.
    #[error("not supported by this backend: {0}")]
    Unsupported(String),
}

impl KvError {
    /// True when the same call may succeed if retried later: `Unavailable` only.
    ///
    /// ```
    /// use kv_trait::KvError;
    /// assert!(KvError::unavailable("connection refused").is_retryable());
    /// assert!(!KvError::NotAnInteger.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, KvError::Unavailable(_))
    }

    /// The variant's name in `snake_case` (`"invalid_key"`, `"unavailable"`...): a label for
    /// metrics and logs that stays the same whatever the message says.
    ///
    /// ```
    /// use kv_trait::KvError;
    /// assert_eq!(KvError::NotAnInteger.kind(), "not_an_integer");
    /// assert_eq!(KvError::not_sent("refused").kind(), "unavailable");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            KvError::InvalidKey(_) => "invalid_key",
            KvError::ValueTooLarge { .. } => "value_too_large",
            KvError::InvalidTtl(_) => "invalid_ttl",
            KvError::NotAnInteger => "not_an_integer",
            KvError::IntegerOverflow => "integer_overflow",
            KvError::QuotaExceeded(_) => "quota_exceeded",
            KvError::Unavailable(_) => "unavailable",
            KvError::Backend(_) => "backend",
            KvError::InvalidConfig(_) => "invalid_config",
            KvError::Unsupported(_) => "unsupported",
        }
    }

    /// Wraps a transient failure (refused or lost connection, timeout, throttling).
    pub fn unavailable(err: impl Into<BoxError>) -> Self {
        KvError::Unavailable(err.into())
    }

    /// Wraps any other failure of the underlying store.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        KvError::Backend(err.into())
    }

    /// An `Unavailable` raised before the request left the client (no connection could be
    /// made, no place in a queue was free, a fault injected before the call): nothing reached
    /// the store, so even a write may be sent again without breaking the lost-reply rule.
    ///
    /// ```
    /// use kv_trait::KvError;
    /// let refused = KvError::not_sent("connection refused");
    /// assert!(refused.is_retryable() && refused.is_not_sent());
    /// assert!(refused.to_string().contains("not sent"));
    /// assert!(!KvError::unavailable("reply lost").is_not_sent());
    /// ```
    pub fn not_sent(err: impl Into<BoxError>) -> Self {
        KvError::Unavailable(Box::new(NotSent(err.into())))
    }

    /// True for an `Unavailable` made by [`KvError::not_sent`]: the store never saw the
    /// request. Any other `Unavailable` may hide a write that happened.
    pub fn is_not_sent(&self) -> bool {
        matches!(self, KvError::Unavailable(source) if source.is::<NotSent>())
    }
}

/// The cause of an `Unavailable` that never reached the store; see [`KvError::not_sent`].
#[derive(Debug)]
pub struct NotSent(BoxError);

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (not sent)", self.0)
    }
}

impl StdError for NotSent {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}
