//! How keys and prefixes look in the table.
//!
//! A key is stored as `bytea`, its UTF-8 bytes exactly: `text` cannot hold NUL, and `bytea`
//! compares byte by byte whatever the database's collation, which is the contract's order.

use kv_trait::{validate_key, KvError};
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

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

/// A key read back from the table: a `Backend` error for one that no kvkit call could have
/// written (not UTF-8, empty, or longer than `MAX_KEY_BYTES`), which no caller could name.
pub(crate) fn key_from_row(bytes: Vec<u8>) -> Result<String, KvError> {
    let key = String::from_utf8(bytes).map_err(|err| {
        let bytes = err.as_bytes();
        KvError::backend(format!(
            "the table holds a key that is not UTF-8 ({} bytes, starting {}): it was not \
             written by kvkit",
            bytes.len(),
            preview(bytes)
        ))
    })?;
    validate_key(&key).map_err(|err| {
        let reason = match err {
            KvError::InvalidKey(reason) => reason,
            other => other.to_string(),
        };
        KvError::backend(format!(
            "the table holds a key kvkit cannot name ({reason}; starting {}): it was not \
             written by kvkit",
            preview(key.as_bytes())
        ))
    })?;
    Ok(key)
}

/// The first bytes of a foreign key, escaped, for an error message.
fn preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 32;
    let shown = &bytes[..bytes.len().min(SHOWN)];
    let ellipsis = if bytes.len() > SHOWN { "..." } else { "" };
    format!("b\"{}\"{ellipsis}", shown.escape_ascii())
}

/// Column `index` of a row, as `T`: a `Backend` error, not a panic (`Row::get`), when the
/// table no longer holds what the statement expects, as when another program changed a
/// column's type or let it hold NULL after the backend opened.
pub(crate) fn column<'a, T>(row: &'a Row, index: usize) -> Result<T, KvError>
where
    T: FromSql<'a>,
{
    row.try_get(index).map_err(|err| {
        let cause = std::error::Error::source(&err)
            .map(|cause| format!(": {cause}"))
            .unwrap_or_default();
        KvError::backend(format!(
            "a row of the table does not have the layout kv-postgres writes ({err}{cause}): \
             was the table changed by another program?"
        ))
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
    fn keys_no_kvkit_call_could_write_are_backend_errors() {
        assert_eq!(key_from_row(b"a\0\xc3\xa9".to_vec()).unwrap(), "a\0é");
        assert_eq!(key_from_row(vec![b'k'; 1024]).unwrap().len(), 1024);
        for (bytes, says) in [
            (
                b"a\xff".to_vec(),
                "not UTF-8 (2 bytes, starting b\"a\\xff\")",
            ),
            (Vec::new(), "the key is empty"),
            (vec![b'k'; 1025], "1025 bytes long"),
        ] {
            match key_from_row(bytes) {
                Err(KvError::Backend(err)) => {
                    let message = err.to_string();
                    assert!(message.contains(says), "{message}");
                    assert!(message.contains("not written by kvkit"), "{message}");
                    assert!(message.len() < 300, "a short message: {message}");
                }
                other => panic!("{other:?}"),
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
