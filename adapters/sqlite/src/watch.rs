//! `watch` within one process: a change feed per database file and namespace, fed by the
//! group commit once a batch has committed.
//!
//! SQLite has no change stream another process could hear, so a watcher sees the writes made
//! through the backends of its own process on the same file (`WatchScope::Process`), whichever
//! backend made them: the feeds live in a process-wide registry keyed by the file's canonical
//! path. Every writer of one file in this process commits and publishes under one lock
//! ([`FileChanges::commit_order`]), taken once it holds SQLite's write lock, so watchers see
//! batches in commit order and each key's changes in the order they took effect.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use kv_trait::{ChangeFeed, WatchEvent};

use crate::config::Location;

/// The change feeds of one database file in this process, and the lock its writers commit
/// and publish under.
#[derive(Debug, Default)]
pub(crate) struct FileChanges {
    commit_order: Mutex<()>,
    feeds: Mutex<HashMap<String, Arc<ChangeFeed>>>,
}

impl FileChanges {
    /// The changes of the file at `location`, shared by every backend of this process on it;
    /// an in-memory database is private to its backend, and so are its changes.
    pub(crate) fn of(location: &Location) -> Arc<Self> {
        let Location::File(path) = location else {
            return Arc::default();
        };
        // Two spellings of one file are one file.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        static FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<FileChanges>>>> = OnceLock::new();
        let mut files = FILES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Forget files no backend has open any more.
        files.retain(|_, changes| changes.strong_count() > 0);
        if let Some(changes) = files.get(&path).and_then(Weak::upgrade) {
            return changes;
        }
        let changes = Arc::<FileChanges>::default();
        files.insert(path, Arc::downgrade(&changes));
        changes
    }

    /// The feed of `namespace`.
    pub(crate) fn feed(&self, namespace: &str) -> Arc<ChangeFeed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(feeds.entry(namespace.to_owned()).or_default())
    }

    /// Held from a batch's commit until its changes are published. Take it only while holding
    /// SQLite's write lock (inside the batch's `BEGIN IMMEDIATE`): then no other writer of
    /// this process can be waiting for the write lock while holding this one.
    pub(crate) fn commit_order(&self) -> MutexGuard<'_, ()> {
        self.commit_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The changes one write made, collected only when someone watches, published once its
/// batch has committed.
#[derive(Debug)]
pub(crate) struct Changes {
    watched: bool,
    events: Vec<WatchEvent>,
}

impl Changes {
    /// Collects changes if `watched`, else ignores them.
    pub(crate) fn new(watched: bool) -> Self {
        Self {
            watched,
            events: Vec::new(),
        }
    }

    /// `key` now holds `value`.
    pub(crate) fn set(&mut self, key: &str, value: &[u8]) {
        if self.watched {
            self.events.push(WatchEvent::Set {
                key: key.to_owned(),
                value: value.to_vec(),
            });
        }
    }

    /// The live `key` was removed.
    pub(crate) fn deleted(&mut self, key: &str) {
        if self.watched {
            self.events.push(WatchEvent::Deleted {
                key: key.to_owned(),
            });
        }
    }

    /// Sends the changes to `feed`, in the order they were made.
    pub(crate) fn publish(self, feed: &ChangeFeed) {
        for event in self.events {
            feed.publish(event);
        }
    }
}
