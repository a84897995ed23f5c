//! The sharded map behind [`MemoryBackend`](crate::MemoryBackend): per-shard locks, ordered
//! keys and a deadline index; the layout is described in the crate docs.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use kv_trait::{monotonic_now, ChangeFeed, WatchEvent};

/// One stored value and the moment it expires (`None`: never).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    pub(crate) deadline: Option<Instant>,
}

/// One lock's worth of keys: the entries, ordered by key, and their deadlines.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    entries: BTreeMap<String, Entry>,
    deadlines: BTreeSet<(Instant, String)>,
}

impl Shard {
    /// Drops every entry whose deadline is at or before `now`.
    fn purge_expired(&mut self, now: Instant) {
        while let Some(first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    /// The live entry at `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Writes `entry` at `key`, replacing the old entry and its deadline.
    pub(crate) fn put(&mut self, key: &str, entry: Entry) {
        let new_deadline = entry.deadline;
        // The old deadline goes first: when both are the same instant, forgetting it after
        // indexing the new one would remove the new index entry, and the key would never
        // expire.
        if let Some(old) = self.entries.insert(key.to_owned(), entry) {
            self.forget_deadline(key, old.deadline);
        }
        if let Some(deadline) = new_deadline {
            self.deadlines.insert((deadline, key.to_owned()));
        }
    }

    /// Replaces the value at a live `key`, keeping its deadline.
    pub(crate) fn replace_value(&mut self, key: &str, value: Vec<u8>) {
        match self.entries.get_mut(key) {
            Some(entry) => entry.value = value,
            None => self.put(
                key,
                Entry {
                    value,
                    deadline: None,
                },
            ),
        }
    }

    /// Removes `key`; whether a live entry was there.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(old) => {
                self.forget_deadline(key, old.deadline);
                true
            }
            None => false,
        }
    }

    /// Appends the keys starting with `prefix`, in order.
    fn collect_prefixed(&self, prefix: &str, into: &mut Vec<String>) {
        let matching = self
            .entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix));
        into.extend(matching.cloned());
    }

    fn forget_deadline(&mut self, key: &str, deadline: Option<Instant>) {
        if let Some(deadline) = deadline {
            self.deadlines.remove(&(deadline, key.to_owned()));
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// All shards, the hasher that picks a key's shard, and the namespace's change feed.
#[derive(Debug)]
pub(crate) struct ShardedStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    changes: ChangeFeed,
}

impl ShardedStore {
    pub(crate) fn new(shard_count: usize) -> Self {
        let shards = (0..shard_count.max(1)).map(|_| Mutex::default()).collect();
        Self {
            shards,
            hasher: RandomState::new(),
            changes: ChangeFeed::default(),
        }
    }

    /// The namespace's change feed. Publish to it while holding the key's shard, so that
    /// watchers see each key's changes in the order they took effect.
    pub(crate) fn changes(&self) -> &ChangeFeed {
        &self.changes
    }

    /// Tells watchers, if any, that `key` now holds `value` (built only when watched).
    pub(crate) fn publish_set(&self, key: &str, value: impl FnOnce() -> Vec<u8>) {
        if self.changes.is_watched() {
            self.changes.publish(WatchEvent::Set {
                key: key.to_owned(),
                value: value(),
            });
        }
    }

    /// Tells watchers, if any, that the live `key` was removed.
    pub(crate) fn publish_deleted(&self, key: &str) {
        if self.changes.is_watched() {
            self.changes.publish(WatchEvent::Deleted {
                key: key.to_owned(),
            });
        }
    }

    /// Locks the shard that holds `key`, with its expired entries already dropped.
    pub(crate) fn shard_for(&self, key: &str) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) % self.shards.len() as u64) as usize;
        lock_purged(&self.shards[index])
    }

    /// Every live key starting with `prefix`, sorted by bytes.
    pub(crate) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            lock_purged(shard).collect_prefixed(prefix, &mut keys);
        }
        keys.sort_unstable();
        keys
    }

    /// Drops every expired entry in every shard; returns how many entries remain.
    pub(crate) fn purge_all(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock_purged(shard).len())
            .sum()
    }
}

/// Locks a shard and drops its expired entries, judged by the clock read once the lock is
/// held: a caller that waited for the lock must not see a key that expired while it waited.
///
/// Poisoning is ignored: no code path here panics while holding the lock, and a shard's
/// invariants hold after every statement that mutates it.
fn lock_purged(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    let mut guard = shard.lock().unwrap_or_else(PoisonError::into_inner);
    guard.purge_expired(monotonic_now());
    guard
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn liveness_is_judged_after_the_lock_is_taken() {
        let store = ShardedStore::new(1);
        store.shard_for("k").put(
            "k",
            Entry {
                value: b"v".to_vec(),
                deadline: Some(monotonic_now() + Duration::from_millis(30)),
            },
        );
        // Another caller holds the shard past the deadline; the waiting one, though it
        // started before the deadline, decides after it and must find the key gone.
        let held = store.shard_for("other");
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| store.shard_for("k").get("k").is_some());
            std::thread::sleep(Duration::from_millis(60));
            drop(held);
            assert!(
                !waiter.join().unwrap(),
                "judged on the clock read before the wait"
            );
        });
    }

    #[test]
    fn expired_entries_leave_both_maps() {
        let start = monotonic_now();
        let mut shard = Shard::default();
        let soon = Some(start + Duration::from_millis(5));
        shard.put(
            "a",
            Entry {
                value: b"1".to_vec(),
                deadline: soon,
            },
        );
        shard.put(
            "b",
            Entry {
                value: b"2".to_vec(),
                deadline: None,
            },
        );
        shard.purge_expired(start + Duration::from_millis(5));
        assert!(shard.get("a").is_none());
        assert_eq!(shard.deadlines.len(), 0);
        assert_eq!(shard.len(), 1);
    }

    #[test]
    fn overwriting_with_the_same_deadline_still_expires() {
        let start = monotonic_now();
        let mut shard = Shard::default();
        let deadline = Some(start + Duration::from_millis(5));
        for value in [b"1", b"2"] {
            shard.put(
                "a",
                Entry {
                    value: value.to_vec(),
                    deadline,
                },
            );
        }
        assert_eq!(shard.deadlines.len(), 1, "the deadline is indexed once");
        shard.purge_expired(start + Duration::from_millis(5));
        assert!(shard.get("a").is_none(), "the key expired at its deadline");
        assert_eq!(shard.len(), 0);
    }

    #[test]
    fn overwriting_forgets_the_old_deadline() {
        let start = monotonic_now();
        let mut shard = Shard::default();
        let soon = Some(start + Duration::from_millis(5));
        shard.put(
            "a",
            Entry {
                value: b"1".to_vec(),
                deadline: soon,
            },
        );
        shard.put(
            "a",
            Entry {
                value: b"2".to_vec(),
                deadline: None,
            },
        );
        assert!(shard.deadlines.is_empty());
        shard.purge_expired(start + Duration::from_secs(1));
        assert_eq!(shard.get("a").map(|e| e.value.clone()), Some(b"2".to_vec()));
    }
}
