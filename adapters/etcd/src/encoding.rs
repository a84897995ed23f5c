//! How keys, namespaces, values and deadlines look in etcd.
//!
//! A key `k` of namespace `ns` is the etcd key `kvkit/` + `escape(ns)` + `/` + `k`, its UTF-8
//! bytes exactly. The escaped namespace holds no `/` (`%` is written `%25` and `/` `%2F`), so the
//! first `/` after `kvkit/` ends it: no namespace's keys start with another namespace's prefix.
//!
//! A value is stored in an envelope: one tag byte, then for a key with a TTL its deadline (Unix
//! milliseconds, 8 bytes big-endian), then the value's bytes.
//!
//! | tag | then | meaning |
//! | --- | --- | --- |
//! | `0x00` | the value | no TTL |
//! | `0x01` | deadline, the value | live while the clock reads less than the deadline |

use kv_trait::{is_live_at, KvError};

/// The first segment of every key kv-etcd writes.
pub(crate) const ROOT: &str = "kvkit/";

const NO_DEADLINE: u8 = 0x00;
const WITH_DEADLINE: u8 = 0x01;
const DEADLINE_BYTES: usize = 8;

/// The largest envelope around a value: what a value adds to an etcd request.
pub(crate) const ENVELOPE_BYTES: usize = 1 + DEADLINE_BYTES;

/// `namespace` with `%` and `/` escaped, so that it holds no `/`.
pub(crate) fn escape_namespace(namespace: &str) -> String {
    let mut escaped = String::with_capacity(namespace.len());
    for c in namespace.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '/' => escaped.push_str("%2F"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Where a namespace's keys live in etcd: `kvkit/<escaped namespace>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySpace {
    prefix: Vec<u8>,
}

impl KeySpace {
    /// The key space of `namespace`.
    pub(crate) fn new(namespace: &str) -> Self {
        let prefix = format!("{ROOT}{}/", escape_namespace(namespace)).into_bytes();
        Self { prefix }
    }

    /// The bytes every key of the namespace starts with.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The etcd key of `key`.
    pub(crate) fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// The etcd key range `[start, end)` of the keys of this namespace that start with
    /// `prefix`. `end` is the start with its last byte raised by one, which never overflows:
    /// the start ends in `/` or in a byte of UTF-8, and neither is `0xFF`.
    pub(crate) fn range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(prefix);
        let mut end = start.clone();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        (start, end)
    }

    /// The caller's key of an etcd key of this namespace.
    pub(crate) fn user_key(&self, etcd_key: &[u8]) -> Result<String, KvError> {
        let rest = etcd_key
            .strip_prefix(self.prefix.as_slice())
            .ok_or_else(|| KvError::backend("etcd returned a key outside the namespace's range"))?;
        String::from_utf8(rest.to_vec()).map_err(|_| {
            KvError::backend("etcd holds a key that is not UTF-8: it was not written by kvkit")
        })
    }
}

/// The smallest etcd key after `key`: where the next page of a listing starts.
pub(crate) fn after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The stored form of `value` with no TTL.
pub(crate) fn plain(value: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(1 + value.len());
    stored.push(NO_DEADLINE);
    stored.extend_from_slice(value);
    stored
}

/// The stored form of `value` that expires at Unix millisecond `deadline_ms`.
pub(crate) fn with_deadline(value: &[u8], deadline_ms: u64) -> Vec<u8> {
    let mut stored = Vec::with_capacity(ENVELOPE_BYTES + value.len());
    stored.push(WITH_DEADLINE);
    stored.extend_from_slice(&deadline_ms.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

/// The stored form of `value` with `deadline_ms` when it has one.
pub(crate) fn envelope(value: &[u8], deadline_ms: Option<u64>) -> Vec<u8> {
    match deadline_ms {
        Some(deadline) => with_deadline(value, deadline),
        None => plain(value),
    }
}

/// A stored value, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The caller's bytes.
    pub(crate) value: Vec<u8>,
    /// When it expires (Unix milliseconds), if it has a TTL.
    pub(crate) deadline_ms: Option<u64>,
    /// etcd's revision of the last write to the key: what a transaction compares.
    pub(crate) mod_revision: i64,
}

impl Entry {
    /// Decodes the envelope of an etcd value.
    pub(crate) fn decode(stored: &[u8], mod_revision: i64) -> Result<Self, KvError> {
        let not_ours =
            || KvError::backend("etcd holds a value without kvkit's envelope under a kvkit key");
        let (&tag, rest) = stored.split_first().ok_or_else(not_ours)?;
        let (deadline_ms, value) = match tag {
            NO_DEADLINE => (None, rest),
            WITH_DEADLINE if rest.len() >= DEADLINE_BYTES => {
                let (deadline, value) = rest.split_at(DEADLINE_BYTES);
                let mut bytes = [0; DEADLINE_BYTES];
                bytes.copy_from_slice(deadline);
                (Some(u64::from_be_bytes(bytes)), value)
            }
            _ => return Err(not_ours()),
        };
        Ok(Self {
            value: value.to_vec(),
            deadline_ms,
            mod_revision,
        })
    }

    /// Whether the entry is live at clock reading `now_ms`.
    pub(crate) fn is_live_at(&self, now_ms: u64) -> bool {
        self.deadline_ms
            .is_none_or(|deadline| is_live_at(deadline, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_namespace_is_a_prefix_of_another() {
        let namespaces = ["", "a", "a/", "a/b", "a%2Fb", "ab", "%", "/", "a%"];
        for one in namespaces {
            for other in namespaces {
                if one == other {
                    continue;
                }
                let (one, other) = (KeySpace::new(one), KeySpace::new(other));
                assert!(
                    !other.prefix().starts_with(one.prefix()),
                    "{:?} starts with {:?}",
                    String::from_utf8_lossy(other.prefix()),
                    String::from_utf8_lossy(one.prefix()),
                );
            }
        }
        assert_eq!(KeySpace::new("a/b%").prefix(), b"kvkit/a%2Fb%25/");
    }

    #[test]
    fn a_range_holds_exactly_the_keys_with_the_prefix() {
        let space = KeySpace::new("ns");
        let other = KeySpace::new("ns0");
        let keys = ["a", "a\0", "ab", "a\u{10FFFF}", "b", "\u{7F}", "é", "éa"];
        for prefix in ["", "a", "é", "\u{10FFFF}", "a\0"] {
            let (start, end) = space.range(prefix);
            for key in keys {
                let etcd_key = space.key(key);
                let inside =
                    start.as_slice() <= etcd_key.as_slice() && etcd_key.as_slice() < end.as_slice();
                assert_eq!(inside, key.starts_with(prefix), "{prefix:?} {key:?}");
                let foreign = other.key(key);
                assert!(
                    !(start.as_slice() <= foreign.as_slice()
                        && foreign.as_slice() < end.as_slice()),
                    "{prefix:?} {key:?} of another namespace"
                );
            }
        }
        assert_eq!(space.user_key(&space.key("a/b")).unwrap(), "a/b");
        assert!(space.user_key(b"kvkit/other/a").is_err());
    }

    #[test]
    fn envelopes_round_trip() {
        for value in [&b""[..], b"v", b"\0\x01\xff"] {
            let entry = Entry::decode(&plain(value), 7).unwrap();
            assert_eq!((entry.value.as_slice(), entry.deadline_ms), (value, None));
            assert!(entry.is_live_at(u64::MAX));
            let entry = Entry::decode(&with_deadline(value, 1001), 7).unwrap();
            assert_eq!(
                (entry.value.as_slice(), entry.deadline_ms),
                (value, Some(1001))
            );
            assert!(entry.is_live_at(1000) && !entry.is_live_at(1001));
        }
        assert_eq!(with_deadline(b"x", 1).len(), ENVELOPE_BYTES + 1);
        for foreign in [&b""[..], b"\x01short", b"\x02x", b"hello"] {
            assert!(Entry::decode(foreign, 1).is_err(), "{foreign:?}");
        }
    }

    proptest::proptest! {
        /// Whatever bytes another program left under a kvkit key decode to an entry or to a
        /// `Backend` error, never a panic; and every envelope kvkit writes decodes back.
        #[test]
        fn decoding_any_bytes_never_panics(stored in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            match Entry::decode(&stored, 7) {
                Ok(entry) => proptest::prop_assert!(entry.value.len() < stored.len()),
                Err(err) => proptest::prop_assert!(matches!(err, KvError::Backend(_))),
            }
        }

        #[test]
        fn envelopes_decode_back(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            deadline in proptest::option::of(proptest::prelude::any::<u64>()),
        ) {
            let entry = Entry::decode(&envelope(&value, deadline), 3).unwrap();
            proptest::prop_assert_eq!(entry.value, value);
            proptest::prop_assert_eq!(entry.deadline_ms, deadline);
        }

        #[test]
        fn any_etcd_key_gives_a_key_or_an_error(etcd_key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)) {
            let _ = KeySpace::new("ns").user_key(&etcd_key);
        }
    }
}
