//! How kvkit's keys, values, expiry and namespaces map onto plain Redis data; the mapping is
//! described in the crate docs.

use kv_trait::store::Ttl;

/// The Redis key prefix of namespace `namespace`: `""` for the empty namespace, otherwise the
/// namespace with `\` written as `\\` and `:` as `\:`, then `:`.
///
/// Useful to find a namespace's keys with `redis-cli` (`SCAN 0 MATCH 'app:*'`, escaping glob
/// characters if the namespace has any).
///
/// ```
/// use kv_redis::namespace_prefix;
/// assert_eq!(namespace_prefix(""), "");
/// assert_eq!(namespace_prefix("app"), "app:");
/// assert_eq!(namespace_prefix("app:user42"), r"app\:user42:");
/// assert_eq!(namespace_prefix(r"c:\tmp"), r"c\:\\tmp:");
/// ```
pub fn namespace_prefix(namespace: &str) -> String {
    if namespace.is_empty() {
        return String::new();
    }
    let mut prefix = String::with_capacity(namespace.len() + 1);
    for c in namespace.chars() {
        if matches!(c, '\\' | ':') {
            prefix.push('\\');
        }
        prefix.push(c);
    }
    prefix.push(':');
    prefix
}

/// The longest expiry written, in milliseconds. Redis refuses a `PX` whose deadline (now + ms)
/// passes `i64::MAX` ms; half of that leaves the server's clock room for 146 million years.
/// No TTL reaches it in practice (`u64::MAX` ns is 18 446 744 073 710 ms, about 584 years),
/// so this only keeps the arithmetic total: beyond it a TTL saturates, as the contract asks.
pub(crate) const MAX_EXPIRY_MS: u64 = (i64::MAX / 2) as u64;

/// The `PX` argument for `ttl`: rounded up, at least 1, saturated. Relative, so the server's
/// clock decides, when the command runs.
pub(crate) fn expiry_millis(ttl: Ttl) -> u64 {
    ttl.millis_ceil().min(MAX_EXPIRY_MS)
}

/// One backend's view of the keyspace: its namespace prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keyspace {
    prefix: Vec<u8>,
}

impl Keyspace {
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            prefix: namespace_prefix(namespace).into_bytes(),
        }
    }

    /// The Redis key that stores kvkit key `key`.
    pub(crate) fn key(&self, key: &str) -> Vec<u8> {
        let mut stored = Vec::with_capacity(self.prefix.len() + key.len());
        stored.extend_from_slice(&self.prefix);
        stored.extend_from_slice(key.as_bytes());
        stored
    }

    /// The `SCAN MATCH` pattern for the keys starting with `prefix`; `None` when every key
    /// matches (the empty namespace and prefix), where `MATCH` would only cost time.
    pub(crate) fn pattern(&self, prefix: &str) -> Option<Vec<u8>> {
        let literal = self.key(prefix);
        (!literal.is_empty()).then(|| glob_for_prefix(&literal))
    }

    /// The kvkit key stored as Redis key `stored`, if it is one of this namespace's keys
    /// starting with `prefix`. Keys that are not UTF-8 (written by something else) cannot be
    /// named by any kvkit operation, so they are left out.
    pub(crate) fn decode(&self, stored: Vec<u8>, prefix: &str) -> Option<String> {
        let key = stored.strip_prefix(self.prefix.as_slice())?;
        if !key.starts_with(prefix.as_bytes()) {
            return None;
        }
        String::from_utf8(key.to_vec()).ok()
    }
}

/// A Redis glob matching exactly the byte strings that start with `literal`: every character
/// Redis's matcher treats specially (`*`, `?`, `[`, `]`, `\`) is escaped with `\`, then `*`
/// is appended. Other bytes, NUL and non-UTF-8 included, match themselves.
pub(crate) fn glob_for_prefix(literal: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(literal.len() + 8);
    for &byte in literal {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'*');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's `stringmatchlen` for the subset the patterns here use: literals, `\x` escapes
    /// and a trailing `*`. Enough to check the escaping round-trips.
    fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
        let mut p = 0;
        let mut t = 0;
        while p < pattern.len() {
            match pattern[p] {
                b'*' if p + 1 == pattern.len() => return true,
                b'\\' => {
                    if text.get(t) != pattern.get(p + 1) {
                        return false;
                    }
                    p += 2;
                    t += 1;
                }
                b'*' | b'?' | b'[' | b']' => panic!("unescaped special character in {pattern:?}"),
                byte => {
                    if text.get(t) != Some(&byte) {
                        return false;
                    }
                    p += 1;
                    t += 1;
                }
            }
        }
        t == text.len()
    }

    #[test]
    fn no_namespace_prefix_is_a_prefix_of_another() {
        let namespaces = [
            "a", "a:b", "a:", ":a", "a\\", "a\\:b", "ab", "a\\\\", "\\", ":", "a b",
        ];
        for x in namespaces {
            for y in namespaces {
                if x != y {
                    let (px, py) = (namespace_prefix(x), namespace_prefix(y));
                    assert!(
                        !py.starts_with(&px),
                        "{x:?} -> {px:?} is a prefix of {y:?} -> {py:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn keys_are_prefix_then_key_bytes() {
        let app = Keyspace::new("app");
        assert_eq!(app.key("user:42"), b"app:user:42");
        assert_eq!(Keyspace::new("").key("k\0*"), b"k\0*");
        assert_eq!(Keyspace::new("a:b").key("c"), br"a\:b:c");
    }

    #[test]
    fn glob_escaping_matches_the_literal_prefix_only() {
        let literal = br"a*b?c[d]e\f";
        let pattern = glob_for_prefix(literal);
        assert_eq!(pattern, br"a\*b\?c\[d\]e\\f*");
        assert!(glob_matches(&pattern, literal));
        assert!(glob_matches(&pattern, br"a*b?c[d]e\f and more"));
        assert!(!glob_matches(&pattern, br"aXb?c[d]e\f"));
        assert!(!glob_matches(&pattern, br"a*bXc[d]e\f"));
        assert!(!glob_matches(&pattern, br"a*b?cde\f"));
        assert_eq!(glob_for_prefix(b"\0\xff"), b"\0\xff*");
    }

    #[test]
    fn patterns_cover_namespace_and_prefix() {
        assert_eq!(Keyspace::new("").pattern(""), None);
        assert_eq!(Keyspace::new("").pattern("*").unwrap(), br"\**");
        assert_eq!(Keyspace::new("n[1]").pattern("").unwrap(), br"n\[1\]:*");
        assert_eq!(Keyspace::new("a:b").pattern("?").unwrap(), br"a\\:b:\?*");
    }

    #[test]
    fn decoding_strips_the_namespace_and_rejects_foreign_keys() {
        let ns = Keyspace::new("ns");
        assert_eq!(ns.decode(b"ns:k".to_vec(), ""), Some("k".into()));
        assert_eq!(ns.decode(b"ns:k".to_vec(), "k"), Some("k".into()));
        assert_eq!(ns.decode(b"ns:k".to_vec(), "x"), None);
        assert_eq!(ns.decode(b"other:k".to_vec(), ""), None);
        assert_eq!(ns.decode(b"ns:\xff".to_vec(), ""), None);
        assert_eq!(
            Keyspace::new("").decode(b"ns:k".to_vec(), ""),
            Some("ns:k".into())
        );
    }

    #[test]
    fn expiry_rounds_up_and_saturates() {
        let ttl = |ns| Ttl::from_nanos(ns).unwrap();
        assert_eq!(expiry_millis(ttl(1)), 1);
        assert_eq!(expiry_millis(ttl(1_000_000)), 1);
        assert_eq!(expiry_millis(ttl(1_000_001)), 2);
        assert_eq!(expiry_millis(ttl(u64::MAX)), 18_446_744_073_710);
        assert!(expiry_millis(ttl(u64::MAX)) < MAX_EXPIRY_MS);
    }
}
