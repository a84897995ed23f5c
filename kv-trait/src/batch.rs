//! What goes beyond the eight operations: batches of keys, listing by pages, and the
//! [`Capabilities`] a backend declares (and the conformance kit checks).
//!
//! Every backend has the batch and page operations: [`KvBackend`](crate::KvBackend)'s
//! defaults build them on the eight operations (one call per key; a page cut from
//! `list_keys`), and stores with a native way (Redis `MGET`, one SQLite transaction, RocksDB's
//! `multi_get`, DynamoDB's `BatchGetItem`...) override them.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::DEFAULT_MAX_VALUE_BYTES;

/// One page of [`list_keys_page`](crate::KvBackend::list_keys_page).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// Live keys that start with the prefix and sort after `start_after`, ascending by bytes,
    /// at most `limit` of them.
    pub keys: Vec<String>,
    /// The `start_after` of the next page, or `None` when the listing is complete. A page
    /// that is not the last may hold fewer than `limit` keys, even none (a store that reads a
    /// bounded amount per page stops early): go on while `next` is `Some`.
    pub next: Option<String>,
}

impl KeyPage {
    /// The page of `sorted` (every live key with the prefix, ascending, each once) after
    /// `start_after`, at most `limit` keys: for stores that hold the whole listing anyway.
    pub fn cut(sorted: Vec<String>, start_after: Option<&str>, limit: NonZeroUsize) -> Self {
        let skip = match start_after {
            Some(after) => sorted.partition_point(|key| key.as_str() <= after),
            None => 0,
        };
        let remaining = sorted.len() - skip;
        let keys: Vec<String> = sorted.into_iter().skip(skip).take(limit.get()).collect();
        let next = match remaining > keys.len() {
            true => keys.last().cloned(),
            false => None,
        };
        Self { keys, next }
    }
}

/// Who may share one store (a file, a server, a table) at the same time, each through a
/// backend of its own, and still see one linearizable store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sharing {
    /// Only clones of one backend handle (an in-process map).
    Handle,
    /// Backends of one process (a database that one process locks, as RocksDB does).
    Process,
    /// Processes of one machine (a file, as SQLite's).
    Machine,
    /// Processes anywhere that reach the server (Redis, PostgreSQL, etcd, DynamoDB).
    Network,
}

/// What a backend declares about itself: the facts the conformance kit needs to pick and
/// parameterise its checks, which it then checks instead of trusting (a backend claiming
/// atomic batches must pass an atomicity check; one claiming a TTL granularity must meet it).
///
/// Every operation of every backend is linearizable per key (the contract), so that is not
/// declared. The default, for a backend that declares nothing, is the contract's defaults:
/// [`DEFAULT_MAX_VALUE_BYTES`], 1 ms granularity, shared by handles only, nothing atomic or
/// native.
///
/// ```
/// use std::time::Duration;
/// use kv_trait::{Capabilities, Sharing};
///
/// let declared = Capabilities::new(512 * 1024)
///     .with_ttl_granularity(Duration::from_secs(1))
///     .with_sharing(Sharing::Network)
///     .with_native_batches(true);
/// assert_eq!(declared.max_value_bytes, 512 * 1024);
/// assert!(!declared.atomic_batches);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The longest value accepted, in bytes (as the contract's value rules say).
    pub max_value_bytes: usize,
    /// The longest key accepted, in bytes: [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES) for every
    /// adapter; less only behind a layer that prefixes keys (see the crate docs' decisions).
    pub max_key_bytes: usize,
    /// How much later than its deadline a key may still be seen (TTLs round up to it).
    pub ttl_granularity: Duration,
    /// Whether `set_many` and `delete_many` apply all at once: no read sees part of a batch,
    /// and a batch that fails applies nothing.
    pub atomic_batches: bool,
    /// Who may share the store.
    pub sharing: Sharing,
    /// Whether the batch operations are the store's own (fewer round trips than one per key),
    /// not the one-call-per-key defaults.
    pub native_batches: bool,
    /// Whether `list_keys_page` reads about one page from the store (memory bounded by the
    /// limit), not the whole listing.
    pub native_paging: bool,
    /// Whose writes `watch` reports, if it exists at all.
    pub watch: crate::WatchScope,
}

impl Capabilities {
    /// A backend of `max_value_bytes`, with the other facts at their defaults (see the type's
    /// docs).
    pub fn new(max_value_bytes: usize) -> Self {
        Self {
            max_value_bytes,
            max_key_bytes: crate::MAX_KEY_BYTES,
            ttl_granularity: Duration::from_millis(1),
            atomic_batches: false,
            sharing: Sharing::Handle,
            native_batches: false,
            native_paging: false,
            watch: crate::WatchScope::Unsupported,
        }
    }

    /// With this TTL granularity.
    pub fn with_ttl_granularity(mut self, granularity: Duration) -> Self {
        self.ttl_granularity = granularity;
        self
    }

    /// Declares whether batches are atomic.
    pub fn with_atomic_batches(mut self, atomic: bool) -> Self {
        self.atomic_batches = atomic;
        self
    }

    /// With this key maximum (at most [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES)).
    pub fn with_max_key_bytes(mut self, max_key_bytes: usize) -> Self {
        self.max_key_bytes = max_key_bytes.min(crate::MAX_KEY_BYTES);
        self
    }

    /// Declares who may share the store.
    pub fn with_sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// Declares whether the batch operations are native.
    pub fn with_native_batches(mut self, native: bool) -> Self {
        self.native_batches = native;
        self
    }

    /// Declares whose writes `watch` reports.
    pub fn with_watch(mut self, scope: crate::WatchScope) -> Self {
        self.watch = scope;
        self
    }

    /// Declares whether paging is native.
    pub fn with_native_paging(mut self, native: bool) -> Self {
        self.native_paging = native;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_VALUE_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn limit(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let all = keys(&["a", "b", "c", "d", "e"]);
        let first = KeyPage::cut(all.clone(), None, limit(2));
        assert_eq!(first.keys, keys(&["a", "b"]));
        assert_eq!(first.next.as_deref(), Some("b"));
        let second = KeyPage::cut(all.clone(), first.next.as_deref(), limit(2));
        assert_eq!(second.keys, keys(&["c", "d"]));
        let last = KeyPage::cut(all.clone(), second.next.as_deref(), limit(2));
        assert_eq!(
            last,
            KeyPage {
                keys: keys(&["e"]),
                next: None
            }
        );
        // A page that ends exactly at the end is the last one.
        let exact = KeyPage::cut(all.clone(), Some("c"), limit(2));
        assert_eq!(
            exact,
            KeyPage {
                keys: keys(&["d", "e"]),
                next: None
            }
        );
    }

    #[test]
    fn start_after_need_not_be_a_key() {
        let all = keys(&["a", "b\u{0}", "bb", "c"]);
        assert_eq!(
            KeyPage::cut(all.clone(), Some("b"), limit(9)).keys,
            keys(&["b\u{0}", "bb", "c"])
        );
        assert_eq!(
            KeyPage::cut(all.clone(), Some("z"), limit(9)),
            KeyPage::default()
        );
        assert_eq!(KeyPage::cut(Vec::new(), None, limit(1)), KeyPage::default());
    }
}
