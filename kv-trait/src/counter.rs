//! Counters: values that are the canonical decimal form of an `i64`.
//!
//! "Canonical" means exactly what `i64::to_string` produces: an optional `-`, then digits with
//! no leading zero (except `0` itself), and no `-0`. This is also the encoding Redis `INCRBY`
//! reads and writes, so a counter written by one is a counter to the other.

use crate::KvError;

/// Parses `bytes` as a canonical decimal `i64`; `None` for anything else.
///
/// ```
/// use kv_trait::parse_counter;
/// assert_eq!(parse_counter(b"-17"), Some(-17));
/// assert_eq!(parse_counter(b"9223372036854775807"), Some(i64::MAX));
/// for not_canonical in [&b"+1"[..], b"01", b"-0", b" 1", b"1 ", b"1.0", b"", b"-"] {
///     assert_eq!(parse_counter(not_canonical), None);
/// }
/// ```
pub fn parse_counter(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical_digits = match digits {
        [] => false,
        [b'0'] => digits.len() == bytes.len(), // "0" yes, "-0" no
        [b'0', ..] => false,
        _ => digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical_digits {
        return None;
    }
    // All ASCII digits (and maybe a leading '-'), so this is UTF-8; `parse` rejects overflow.
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The stored form of counter `n`: its canonical decimal bytes, e.g. `b"42"`.
///
/// ```
/// assert_eq!(kv_trait::format_counter(-5), b"-5");
/// ```
pub fn format_counter(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// The result of `increment(key, delta)` given the key's live value (`None` when absent).
///
/// Absent keys start from zero. Errors with [`KvError::NotAnInteger`] when the live value is not
/// a canonical counter and [`KvError::IntegerOverflow`] when the sum leaves the `i64` range.
///
/// ```
/// use kv_trait::{apply_increment, KvError};
/// assert_eq!(apply_increment(None, 5).unwrap(), 5);
/// assert_eq!(apply_increment(Some(b"40"), 2).unwrap(), 42);
/// assert!(matches!(apply_increment(Some(b"abc"), 1), Err(KvError::NotAnInteger)));
/// assert!(matches!(
///     apply_increment(Some(b"9223372036854775807"), 1),
///     Err(KvError::IntegerOverflow)
/// ));
/// ```
pub fn apply_increment(current: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    let base = match current {
        None => 0,
        Some(bytes) => parse_counter(bytes).ok_or(KvError::NotAnInteger)?,
    };
    base.checked_add(delta).ok_or(KvError::IntegerOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_formatted_value_parses_back() {
        for n in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 1234567890] {
            assert_eq!(parse_counter(&format_counter(n)), Some(n));
        }
    }

    #[test]
    fn out_of_range_and_foreign_forms_are_rejected() {
        for bytes in [
            &b"9223372036854775808"[..],
            b"-9223372036854775809",
            b"1e3",
            b"0x10",
            b"\xff",
            b"\x001",
            b"--1",
            b"-01",
            b"00",
            "١".as_bytes(), // Arabic-Indic digit one: a Unicode digit, not an ASCII one
        ] {
            assert_eq!(parse_counter(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn minimum_is_canonical() {
        assert_eq!(parse_counter(b"-9223372036854775808"), Some(i64::MIN));
        assert!(matches!(
            apply_increment(Some(b"-9223372036854775808"), -1),
            Err(KvError::IntegerOverflow)
        ));
    }
}
