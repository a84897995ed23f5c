//! Value rules: any byte string up to the backend's declared maximum.

use crate::KvError;

/// The maximum value length a backend declares unless its store cannot hold that much: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;

/// The smallest maximum value length any backend may declare: 64 KiB.
pub const MIN_MAX_VALUE_BYTES: usize = 64 * 1024;

/// Checks a backend's configured maximum value length: from [`MIN_MAX_VALUE_BYTES`] to
/// `largest`, the most its store can hold; else `InvalidConfig` saying so.
///
/// ```
/// use kv_trait::{check_max_value_bytes, KvError, MIN_MAX_VALUE_BYTES};
/// assert!(check_max_value_bytes(MIN_MAX_VALUE_BYTES, 1 << 20).is_ok());
/// assert!(matches!(check_max_value_bytes(1000, 1 << 20), Err(KvError::InvalidConfig(_))));
/// assert!(matches!(check_max_value_bytes(2 << 20, 1 << 20), Err(KvError::InvalidConfig(_))));
/// ```
pub fn check_max_value_bytes(max: usize, largest: usize) -> Result<(), KvError> {
    if (MIN_MAX_VALUE_BYTES..=largest).contains(&max) {
        return Ok(());
    }
    Err(KvError::InvalidConfig(format!(
        "max_value_bytes is {max}; it must be between {MIN_MAX_VALUE_BYTES} and {largest}"
    )))
}

/// Checks a backend's configured timeouts, each named: none may be zero (a zero timeout
/// would fail every call); else `InvalidConfig` naming the first that is.
///
/// ```
/// use std::time::Duration;
/// let ok = [("connect_timeout", Duration::from_secs(1))];
/// assert!(kv_trait::check_timeouts(ok).is_ok());
/// let zero = [("connect_timeout", Duration::from_secs(1)), ("request_timeout", Duration::ZERO)];
/// let err = kv_trait::check_timeouts(zero).unwrap_err();
/// assert!(err.to_string().contains("request_timeout must be longer than zero"));
/// ```
pub fn check_timeouts<'a>(
    timeouts: impl IntoIterator<Item = (&'a str, std::time::Duration)>,
) -> Result<(), KvError> {
    match timeouts.into_iter().find(|(_, timeout)| timeout.is_zero()) {
        Some((name, _)) => Err(KvError::InvalidConfig(format!(
            "{name} must be longer than zero"
        ))),
        None => Ok(()),
    }
}

/// Checks `value` against a backend's maximum length `max`.
///
/// ```
/// use kv_trait::{check_value_size, KvError};
/// assert!(check_value_size(b"", 4).is_ok());
/// assert!(check_value_size(b"four", 4).is_ok());
/// assert!(matches!(
///     check_value_size(b"fives", 4),
///     Err(KvError::ValueTooLarge { size: 5, max: 4 })
/// ));
/// ```
pub fn check_value_size(value: &[u8], max: usize) -> Result<(), KvError> {
    if value.len() > max {
        return Err(KvError::ValueTooLarge {
            size: value.len(),
            max,
        });
    }
    Ok(())
}
