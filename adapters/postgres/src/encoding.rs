//! How keys and prefixes look in the table.
//!
//! A key is stored as `bytea`, its UTF-8 bytes exactly: `text` cannot hold NUL, and `bytea`
//! compares byte by byte whatever the database's collation, which is the contract's order.

use kv_trait::KvError;

/// The range of keys that start with `prefix`: `start <= key < end`, in byte order.
///
/// `end` is the prefix with its last byte raised by one. That never overflows: no byte of
/// UTF-8 is `0xFF`. For the empty prefix it is `[0xFF]`, above every UTF-8 key.
pub(crate) fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let start = prefix.as_bytes().to_vec();
    let mut end = start.clone();
    match end.last_mut() {
        Some(last) => *last += 1, // at most 0xF4 in UTF-8, so no overflow
        None => end.push(0xFF),
    }
    (start, end)
}

/// The smallest key after `key` in byte order: where the next page of a listing starts.
pub(crate) fn after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// A key read back from the table.
pub(crate) fn key_from_row(bytes: Vec<u8>) -> Result<String, KvError> {
    String::from_utf8(bytes).map_err(|_| {
        KvError::backend("the table holds a key that is not UTF-8: it was not written by kvkit")
    })
}

/// A TTL in milliseconds as the statement binds it. Every `u64` nanosecond TTL fits: at most
/// about 1.8e13 ms (584 years), far inside `timestamptz`'s range.
pub(crate) fn ttl_millis(millis_ceil: u64) -> i64 {
    i64::try_from(millis_ceil).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_holds_exactly_the_keys_with_the_prefix() {
        let keys = [
            "a",
            "a\0",
            "ab",
            "a\u{10FFFF}",
            "b",
            "",
            "\u{7F}",
            "é",
            "éa",
        ];
        for prefix in ["", "a", "é", "\u{10FFFF}", "a\0"] {
            let (start, end) = prefix_range(prefix);
            for key in keys {
                let inside = start.as_slice() <= key.as_bytes() && key.as_bytes() < end.as_slice();
                assert_eq!(inside, key.starts_with(prefix), "{prefix:?} {key:?}");
            }
        }
    }

    #[test]
    fn the_next_page_starts_right_after_the_last_key() {
        let next = after(b"ab");
        assert!(b"ab".as_slice() < next.as_slice());
        assert!(next.as_slice() <= b"ab\0".as_slice());
        assert!(next.as_slice() < b"ac".as_slice());
    }
}
