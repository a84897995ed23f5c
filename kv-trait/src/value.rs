//! Value rules: any byte string up to the backend's declared maximum.

use crate::KvError;

/// The maximum value length a backend declares unless its store cannot hold that much: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;

/// The smallest maximum value length any backend may declare: 64 KiB.
pub const MIN_MAX_VALUE_BYTES: usize = 64 * 1024;

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
