//! Change streams: [`KvBackend::watch`](crate::KvBackend::watch) and what in-process stores
//! build it from ([`ChangeFeed`]).
//!
//! A watcher subscribes to a prefix and receives a [`WatchEvent`] for every change of a key
//! under it, from the moment [`watch`](crate::KvBackend::watch) returned: each key's changes
//! in the order they took effect, each once. When a store cannot guarantee that (the watcher
//! fell behind, a connection dropped), the stream says so with [`WatchEvent::Lagged`] and goes
//! on: the watcher re-reads what it needs (`list_keys`, `get_many`) instead of trusting a
//! silent gap. [`Capabilities::watch`](crate::Capabilities::watch) declares who the events
//! come from ([`WatchScope`]).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use futures::StreamExt;
//! use kv_trait::{KvBackend, WatchEvent};
//!
//! let store = kv_memory::MemoryBackend::new();
//! let mut changes = store.watch("jobs/").await?;
//! store.set("jobs/1", b"queued").await?;
//! store.set("other", b"not watched").await?;
//! store.delete("jobs/1").await?;
//! assert_eq!(changes.next().await, Some(WatchEvent::Set { key: "jobs/1".into(), value: b"queued".to_vec() }));
//! assert_eq!(changes.next().await, Some(WatchEvent::Deleted { key: "jobs/1".into() }));
//! # Ok::<(), kv_trait::KvError>(())
//! # }).unwrap();
//! ```

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast;

/// One change of a key under a watched prefix, with the key as the watcher's backend names it
/// (without any namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The key was written: `set`, `set_with_ttl`, `increment`, a `compare_and_swap` that
    /// swapped, an entry of `set_many`. `value` is what it holds now.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Vec<u8>,
    },
    /// A live key was removed by `delete` or `delete_many` (a delete that removed nothing is
    /// no change).
    Deleted {
        /// The key.
        key: String,
    },
    /// The key expired, on stores that report expiry.
    Expired {
        /// The key.
        key: String,
    },
    /// Changes may have been missed here (the watcher fell behind, the connection to the
    /// store dropped): read again what you need. Events after it are complete again.
    Lagged,
}

impl WatchEvent {
    /// The key the event is about (`None` for [`Lagged`](WatchEvent::Lagged)).
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Set { key, .. }
            | WatchEvent::Deleted { key }
            | WatchEvent::Expired { key } => Some(key),
            WatchEvent::Lagged => None,
        }
    }
}

/// What [`watch`](crate::KvBackend::watch) returns: the events, until the store is gone.
pub type WatchStream = Pin<Box<dyn Stream<Item = WatchEvent> + Send + 'static>>;

/// Whose writes a backend's watchers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WatchScope {
    /// No `watch`: it fails with [`KvError::Unsupported`](crate::KvError::Unsupported).
    Unsupported,
    /// Writes made through handles of this process (an in-process feed: memory, and the
    /// embedded stores, whose other processes it cannot hear).
    Process,
    /// Writes made through handles that announce their changes, in any process: handles
    /// opened with the store's watch option (kv-redis `watch=true`), where the store itself
    /// has no change stream that carries values. Other clients of the store are not heard.
    Announcing,
    /// Every writer of the store, anywhere (the store's own change stream).
    Store,
}

/// The change feed of an in-process store: writes [`publish`](Self::publish) under the lock
/// that orders them, watchers [`watch`](Self::watch) a prefix of it. One feed per namespace.
///
/// A watcher more than `capacity` events behind gets [`WatchEvent::Lagged`] and goes on from
/// the oldest event still held. The buffer is made by the first `watch`: a store with many
/// namespaces nobody watches pays a few words for each, not `capacity` slots.
#[derive(Debug)]
pub struct ChangeFeed {
    capacity: usize,
    sender: std::sync::OnceLock<broadcast::Sender<Arc<WatchEvent>>>,
}

impl ChangeFeed {
    /// Events each watcher may fall behind by before it lags.
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// A feed holding up to `capacity` events per watcher (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            sender: std::sync::OnceLock::new(),
        }
    }

    /// Whether anyone watches: a store skips building events (and copying values) when not.
    pub fn is_watched(&self) -> bool {
        self.sender
            .get()
            .is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// Sends `event` to every watcher whose prefix it matches. Call it where the change takes
    /// effect, under the lock that orders changes of its key, so that watchers see each key's
    /// changes in their order.
    pub fn publish(&self, event: WatchEvent) {
        if let Some(sender) = self.sender.get() {
            // No receiver is not an error: nobody is watching.
            let _ = sender.send(Arc::new(event));
        }
    }

    /// The events of keys starting with `prefix`, from now on.
    pub fn watch(&self, prefix: &str) -> WatchStream {
        let sender = self
            .sender
            .get_or_init(|| broadcast::channel(self.capacity).0);
        let receiver = sender.subscribe();
        let state = (receiver, prefix.to_owned());
        Box::pin(futures::stream::unfold(
            state,
            |(mut receiver, prefix)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if event.key().is_none_or(|key| key.starts_with(&prefix)) => {
                            return Some((WatchEvent::clone(&event), (receiver, prefix)));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Some((WatchEvent::Lagged, (receiver, prefix)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn set(key: &str) -> WatchEvent {
        WatchEvent::Set {
            key: key.into(),
            value: b"v".to_vec(),
        }
    }

    #[tokio::test]
    async fn watchers_see_their_prefix_from_subscription_on_and_say_when_they_lag() {
        let feed = ChangeFeed::new(2);
        assert!(!feed.is_watched());
        feed.publish(set("a/before"));
        let mut a = feed.watch("a/");
        assert!(feed.is_watched());
        feed.publish(set("b/1"));
        feed.publish(set("a/1"));
        assert_eq!(a.next().await, Some(set("a/1")));
        // Three more than it holds: the watcher lags, then goes on.
        for key in ["a/2", "a/3", "a/4"] {
            feed.publish(set(key));
        }
        assert_eq!(a.next().await, Some(WatchEvent::Lagged));
        assert_eq!(a.next().await, Some(set("a/3")));
        assert_eq!(a.next().await, Some(set("a/4")));
        drop(feed);
        assert_eq!(a.next().await, None, "the stream ends with the store");
    }
}
