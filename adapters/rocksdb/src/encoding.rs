//! How keys, values, expiry and namespaces are laid out in RocksDB; the layout is described in
//! the crate docs.

use kv_trait::KvError;

/// The version of this layout, stored in the database under the key `kvkit-rocksdb-format`.
pub const FORMAT_VERSION: u8 = 1;

/// The key of the metadata entry holding [`FORMAT_VERSION`]. It has no NUL byte, so no
/// namespaced key can equal it.
pub(crate) const FORMAT_KEY: &[u8] = b"kvkit-rocksdb-format";

/// Bytes before the user's value: the format tag and the deadline.
const HEADER_BYTES: usize = 9;

/// Separates the namespace from the key.
const NAMESPACE_END: u8 = 0;

/// The prefix every key of `namespace` starts with.
pub(crate) fn namespace_prefix(namespace: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(namespace.len() + 1);
    prefix.extend_from_slice(namespace.as_bytes());
    prefix.push(NAMESPACE_END);
    prefix
}

/// The RocksDB key of `key` under the namespace `prefix`.
pub(crate) fn stored_key(prefix: &[u8], key: &str) -> Vec<u8> {
    [prefix, key.as_bytes()].concat()
}

/// The smallest byte string greater than every string starting with `prefix`: the upper bound
/// of a prefix scan. `None` when there is none (all bytes 0xFF).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|byte| *byte != u8::MAX)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// A stored value, decoded: its deadline (Unix ms) and the user's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored<'a> {
    pub(crate) deadline: Option<u64>,
    pub(crate) value: &'a [u8],
}

impl Stored<'_> {
    /// Whether the entry is live at `now_ms` (Unix milliseconds).
    pub(crate) fn is_live_at(&self, now_ms: u64) -> bool {
        self.deadline
            .is_none_or(|deadline| kv_trait::is_live_at(deadline, now_ms))
    }
}

/// Encodes `value` with its `deadline` (Unix ms; `None`: never expires).
pub(crate) fn encode(value: &[u8], deadline: Option<u64>) -> Vec<u8> {
    let mut stored = Vec::with_capacity(HEADER_BYTES + value.len());
    stored.push(FORMAT_VERSION);
    // A saturated deadline is far beyond any clock reading, never 0, so 0 can mean "none".
    stored.extend_from_slice(&deadline.unwrap_or(0).to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

/// Sets the deadline of a value [`encode`] made: the deadline is read where the write takes
/// effect (under the key's lock), after the value was encoded.
pub(crate) fn set_deadline(stored: &mut [u8], deadline: Option<u64>) {
    stored[1..HEADER_BYTES].copy_from_slice(&deadline.unwrap_or(0).to_be_bytes());
}

/// The user's bytes of a value [`encode`] made (for watch events, without decoding again what
/// this process just encoded).
pub(crate) fn encoded_value(stored: &[u8]) -> &[u8] {
    &stored[HEADER_BYTES..]
}

/// Decodes a stored value; an error for bytes this release did not write.
pub(crate) fn decode(stored: &[u8]) -> Result<Stored<'_>, KvError> {
    let (header, value) = stored
        .split_at_checked(HEADER_BYTES)
        .filter(|(header, _)| header[0] == FORMAT_VERSION)
        .ok_or_else(|| {
            KvError::backend(format!(
                "a stored value is not in kv-rocksdb format {FORMAT_VERSION}"
            ))
        })?;
    let mut deadline = [0; 8];
    deadline.copy_from_slice(&header[1..]);
    let deadline = u64::from_be_bytes(deadline);
    Ok(Stored {
        deadline: (deadline != 0).then_some(deadline),
        value,
    })
}

/// The deadline of a raw stored value, for the compaction filter: `None` for entries that are
/// not values (the metadata entry) or never expire.
pub(crate) fn deadline_of(key: &[u8], stored: &[u8]) -> Option<u64> {
    if !key.contains(&NAMESPACE_END) {
        return None;
    }
    decode(stored).ok()?.deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_set_later_reads_back() {
        let mut stored = encode(b"value", None);
        set_deadline(&mut stored, Some(1_700_000_000_123));
        let decoded = decode(&stored).unwrap();
        assert_eq!(decoded.deadline, Some(1_700_000_000_123));
        assert_eq!(decoded.value, b"value");
        set_deadline(&mut stored, None);
        assert_eq!(decode(&stored).unwrap().deadline, None);
    }

    #[test]
    fn values_round_trip_with_and_without_deadline() {
        for (value, deadline) in [
            (&b""[..], None),
            (b"v\0\xff", Some(1)),
            (b"x", Some(u64::MAX)),
        ] {
            let stored = encode(value, deadline);
            assert_eq!(decode(&stored).unwrap(), Stored { deadline, value });
            assert_eq!(encoded_value(&stored), value);
        }
        assert!(decode(b"").is_err());
        assert!(decode(&[2; 12]).is_err());
    }

    #[test]
    fn namespaces_are_prefix_free_and_keys_sort_by_bytes() {
        let a = stored_key(&namespace_prefix("a"), "b:x");
        let ab = stored_key(&namespace_prefix("a:b"), "x");
        assert_ne!(a, ab);
        assert!(!ab.starts_with(&namespace_prefix("a")));
        assert!(
            stored_key(&namespace_prefix(""), "\u{ffff}")
                < stored_key(&namespace_prefix(""), "\u{10000}")
        );
    }

    #[test]
    fn prefix_end_bounds_the_scan() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn the_filter_ignores_metadata_and_eternal_values() {
        assert_eq!(deadline_of(FORMAT_KEY, &[FORMAT_VERSION]), None);
        assert_eq!(deadline_of(b"ns\0k", &encode(b"v", None)), None);
        assert_eq!(deadline_of(b"ns\0k", &encode(b"v", Some(42))), Some(42));
    }

    proptest::proptest! {
        /// Bytes another program put in the database decode to a value or to a `Backend`
        /// error, never a panic, and so does the compaction filter's look at them; every
        /// value kvkit encodes decodes back.
        #[test]
        fn decoding_any_bytes_never_panics(stored in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)) {
            match decode(&stored) {
                Ok(decoded) => proptest::prop_assert_eq!(decoded.value.len() + HEADER_BYTES, stored.len()),
                Err(err) => proptest::prop_assert!(matches!(err, KvError::Backend(_))),
            }
            let _ = deadline_of(b"ns\0key", &stored);
        }

        #[test]
        fn encoded_values_decode_back(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            deadline in proptest::option::of(1..u64::MAX),
        ) {
            let stored = encode(&value, deadline);
            let decoded = decode(&stored).unwrap();
            proptest::prop_assert_eq!(decoded.value, &value[..]);
            proptest::prop_assert_eq!(decoded.deadline, deadline);
        }
    }
}
