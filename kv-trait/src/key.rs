//! Key rules: a key is a non-empty UTF-8 string of at most [`MAX_KEY_BYTES`] bytes.

use crate::KvError;

/// The longest key, in UTF-8 bytes, that every backend accepts.
pub const MAX_KEY_BYTES: usize = 1024;

/// Checks `key` against the key rules: non-empty and at most [`MAX_KEY_BYTES`] bytes.
///
/// Any other string is a valid key, including NUL, control characters, glob and `LIKE`
/// wildcards and non-ASCII text; adapters must store it exactly. Call this before anything is
/// sent to the store.
///
/// ```
/// use kv_trait::{validate_key, KvError, MAX_KEY_BYTES};
/// assert!(validate_key("users/42:*[%_]\0").is_ok());
/// assert!(matches!(validate_key(""), Err(KvError::InvalidKey(_))));
/// assert!(validate_key(&"é".repeat(MAX_KEY_BYTES / 2)).is_ok()); // 1024 bytes
/// assert!(validate_key(&"x".repeat(MAX_KEY_BYTES + 1)).is_err());
/// ```
pub fn validate_key(key: &str) -> Result<(), KvError> {
    validate_key_up_to(key, MAX_KEY_BYTES)
}

/// Checks `key` against the key rules of a backend that declares a shorter maximum than
/// [`MAX_KEY_BYTES`] ([`Capabilities::max_key_bytes`](crate::Capabilities::max_key_bytes): a
/// layer that prefixes every key leaves the rest of the store's maximum to its callers).
///
/// ```
/// use kv_trait::validate_key_up_to;
/// assert!(validate_key_up_to("abcd", 4).is_ok());
/// let err = validate_key_up_to("abcde", 4).unwrap_err();
/// assert!(err.to_string().contains("the maximum is 4 bytes"));
/// ```
pub fn validate_key_up_to(key: &str, max_key_bytes: usize) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::InvalidKey("the key is empty".into()));
    }
    if key.len() > max_key_bytes {
        return Err(KvError::InvalidKey(format!(
            "the key is {} bytes long; the maximum is {max_key_bytes} bytes",
            key.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_counted_in_bytes_not_chars() {
        // 342 three-byte chars = 1026 bytes, well under 1024 chars.
        let key = "€".repeat(342);
        assert!(key.chars().count() < MAX_KEY_BYTES);
        assert!(matches!(validate_key(&key), Err(KvError::InvalidKey(_))));
        assert!(validate_key(&"€".repeat(341)).is_ok());
    }

    #[test]
    fn exactly_max_is_valid_and_one_more_is_not() {
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        let err = validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert!(err.to_string().contains("1025"), "{err}");
    }
}
