//! `watch`: etcd's own watch on the namespace's key range, from the revision after the one
//! current when `watch` was called, resumed from the next revision whenever its stream drops.
//!
//! etcd keeps its history until it is compacted, so a watcher that lost its connection (a
//! member killed, a network fault) picks up exactly where it stopped: no change is lost and
//! none is repeated. Only when the revisions it missed were compacted away does it yield
//! `Lagged`, and then it goes on from the oldest revision etcd still has.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{
    EventType, GetOptions, WatchClient, WatchOptions, WatchStream as EtcdWatchStream,
};
use kv_trait::{unix_millis_now, KvError, WatchEvent, WatchStream};

use crate::encoding::{Entry, KeySpace};
use crate::error::from_etcd;

/// The pause before opening a watch again after its stream dropped or could not be opened.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// One watcher's place in etcd's history and its connection, if any.
struct Watching {
    client: WatchClient,
    space: KeySpace,
    /// The watched range `[start, end)`: the namespace's keys under the watched prefix.
    start: Vec<u8>,
    end: Vec<u8>,
    /// The first revision not yet delivered: where a new watch starts.
    next_revision: i64,
    stream: Option<EtcdWatchStream>,
    /// Events of the last response not yet delivered.
    pending: VecDeque<WatchEvent>,
}

/// The changes of the keys under `prefix` in `space` from the revision after `current`.
pub(crate) async fn watch(
    client: WatchClient,
    space: KeySpace,
    prefix: &str,
    current: i64,
    timeout: Duration,
) -> Result<WatchStream, KvError> {
    let (start, end) = space.range(prefix);
    let mut watching = Watching {
        client,
        space,
        start,
        end,
        next_revision: current + 1,
        stream: None,
        pending: VecDeque::new(),
    };
    // Opened before `watch` returns, so that a failure to subscribe is the caller's to see.
    let opened = tokio::time::timeout(timeout, watching.open())
        .await
        .map_err(|_| {
            KvError::unavailable(format!("etcd did not open a watch within {timeout:?}"))
        })?;
    watching.stream = Some(opened?);
    Ok(Box::pin(futures::stream::unfold(watching, Watching::next)))
}

/// The count-only read whose reply carries the revision a watch starts after.
pub(crate) fn revision_probe() -> GetOptions {
    GetOptions::new().with_count_only()
}

impl Watching {
    async fn open(&mut self) -> Result<EtcdWatchStream, KvError> {
        let options = WatchOptions::new()
            .with_range(self.end.clone())
            .with_prev_key()
            .with_start_revision(self.next_revision);
        self.client
            .watch(self.start.clone(), Some(options))
            .await
            .map_err(from_etcd)
    }

    /// The next event, waiting for etcd (and reconnecting) as long as it takes.
    async fn next(mut self) -> Option<(WatchEvent, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((event, self));
            }
            let Some(stream) = self.stream.as_mut() else {
                match self.open().await {
                    Ok(stream) => self.stream = Some(stream),
                    Err(err) => {
                        tracing::debug!(error = %err, "cannot open the etcd watch; trying again");
                        tokio::time::sleep(REOPEN_PAUSE).await;
                    }
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(reply)) if reply.canceled() => {
                    self.stream = None;
                    let compacted = reply.compact_revision();
                    if compacted > 0 {
                        // The revisions from `next_revision` to `compacted` are gone.
                        tracing::debug!(
                            from = self.next_revision,
                            compacted,
                            "watch lagged behind a compaction"
                        );
                        self.next_revision = compacted;
                        self.pending.push_back(WatchEvent::Lagged);
                    }
                }
                Ok(Some(reply)) => {
                    for event in reply.events() {
                        let Some(kv) = event.kv() else { continue };
                        self.next_revision = self.next_revision.max(kv.mod_revision() + 1);
                        let decoded = match event.event_type() {
                            EventType::Put => self.set(kv.key(), kv.value(), kv.mod_revision()),
                            EventType::Delete => self.removed(kv.key(), event.prev_kv()),
                        };
                        match decoded {
                            Ok(change) => self.pending.push_back(change),
                            Err(err) => {
                                tracing::debug!(error = %err, "skipped a change that is not kvkit's")
                            }
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    tracing::debug!(
                        resume = self.next_revision,
                        "etcd watch stream dropped; resuming"
                    );
                    self.stream = None;
                    tokio::time::sleep(REOPEN_PAUSE).await;
                }
            }
        }
    }

    fn set(&self, key: &[u8], stored: &[u8], revision: i64) -> Result<WatchEvent, KvError> {
        Ok(WatchEvent::Set {
            key: self.space.user_key(key)?,
            value: Entry::decode(stored, revision)?.value,
        })
    }

    /// A removal: `Expired` when the entry it removed was past its deadline (removed by its
    /// lease, or by a read that found it expired), else `Deleted`.
    fn removed(
        &self,
        key: &[u8],
        previous: Option<&etcd_client::KeyValue>,
    ) -> Result<WatchEvent, KvError> {
        let key = self.space.user_key(key)?;
        let expired = previous
            .and_then(|kv| Entry::decode(kv.value(), kv.mod_revision()).ok())
            .is_some_and(|entry| !entry.is_live_at(unix_millis_now()));
        Ok(match expired {
            true => WatchEvent::Expired { key },
            false => WatchEvent::Deleted { key },
        })
    }
}
