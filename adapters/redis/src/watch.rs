//! `watch` (with `watch=true`): each write announces its change on the namespace's channel,
//! and each watcher subscribes to it on a connection of its own.
//!
//! **Why not keyspace notifications.** Redis can notify every change of every key, from any
//! client, but the notification names only the key and the command: the value would have to
//! be read when the notification arrives, and may by then be a later one (two quick sets of
//! one key would both be seen with the second value). So the writes announce themselves: with
//! `watch=true`, every write of the backend is a script that also `PUBLISH`es the kind of
//! change, the key and the new value in the same atomic step (`scripts.rs`). Redis sends a
//! channel's messages to each subscriber in the order they were published, so each key's
//! changes arrive in the order they took effect. The price: only writers opened with
//! `watch=true` are seen.
//!
//! **Channels.** A namespace's changes go to `kvkit:watch:<db>:<namespace prefix>` (pub/sub
//! ignores databases, so the number is part of the name). In a Redis Cluster a `PUBLISH` reaches
//! the subscribers of every node, so a watcher subscribes at one node, the first seed node it
//! can reach.
//!
//! **From the moment of subscription, in a cluster.** Another primary's messages travel to the
//! watcher's node over the cluster bus, so a change acknowledged before the watcher subscribed
//! can still be on its way, and would arrive as if it were later. So before `watch` returns,
//! the watcher has every primary publish a marker of its own on the channel, and drops what
//! arrives until each marker has: the bus keeps each node's messages in order, so what came
//! before a primary's marker was published before the watcher existed (or while `watch` was
//! running, which may go either way). A standalone server delivers a message to the
//! subscribers it has when it is published, so there is nothing to wait for.
//!
//! On a standalone server a watcher also subscribes to
//! `__keyevent@<db>__:expired`, which Redis fills when the server's `notify-keyspace-events`
//! includes `E` and `x` (say `CONFIG SET notify-keyspace-events Ex`): expirations are then
//! `Expired` events, and without that setting they are not reported. A cluster sends each
//! node's expirations to that node's subscribers only, so a watcher there reports none.
//!
//! **At most once.** Redis keeps no message for a subscriber that is not connected, and
//! disconnects one that falls too far behind (`client-output-buffer-limit pubsub`). A watcher
//! whose connection drops yields `Lagged` and subscribes again; one whose consumer falls
//! as many events behind as an in-process feed holds ([`ChangeFeed::DEFAULT_CAPACITY`])
//! drops events until there is room, then yields `Lagged`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kv_trait::{ChangeFeed, KvError, WatchEvent, WatchStream};
use redis::aio::PubSubStream;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::encoding::{namespace_prefix, Keyspace};
use crate::scripts;

/// The pause before subscribing again after the connection dropped or could not be made.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// What every watcher of one backend needs to subscribe.
pub(crate) struct Setup {
    /// The nodes a watcher may subscribe at, tried in turn: the server, or a cluster's seeds.
    pub(crate) nodes: Vec<redis::Client>,
    /// The namespace's channel, where the scripts announce changes.
    pub(crate) channel: String,
    /// Redis's channel of expirations, on a standalone server.
    pub(crate) expirations: Option<String>,
    pub(crate) keyspace: Keyspace,
    /// How long subscribing may take.
    pub(crate) timeout: Duration,
}

/// The channel where the scripts announce the changes of `namespace` in database `database`.
pub(crate) fn channel(database: u32, namespace: &str) -> String {
    format!("kvkit:watch:{database}:{}", namespace_prefix(namespace))
}

/// The changes of the keys under `prefix` from now on: subscribed before this returns, and in
/// a cluster past every primary's earlier messages.
pub(crate) async fn watch(
    setup: Arc<Setup>,
    client: &Client,
    prefix: &str,
) -> Result<WatchStream, KvError> {
    let mut messages = subscribe(&setup, 0).await?;
    tokio::time::timeout(
        setup.timeout,
        past_earlier_messages(&setup, client, &mut messages),
    )
    .await
    .unwrap_or_else(|_| {
        Err(KvError::unavailable(format!(
            "the primaries' watch markers did not arrive within {:?}",
            setup.timeout
        )))
    })?;
    let (events, receiver) = mpsc::channel(ChangeFeed::DEFAULT_CAPACITY);
    let watcher = Watcher {
        setup,
        prefix: prefix.to_owned(),
        events,
    };
    tokio::spawn(watcher.run(messages));
    Ok(Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|event| (event, receiver)) },
    )))
}

/// In a cluster: has every primary publish a marker, and drops the messages that arrive
/// before the last marker (see the module docs).
async fn past_earlier_messages(
    setup: &Setup,
    client: &Client,
    messages: &mut PubSubStream,
) -> Result<(), KvError> {
    let marker = marker();
    let Some(primaries) = client
        .publish_on_every_primary(&setup.channel, &marker)
        .await?
    else {
        return Ok(());
    };
    let mut arrived = 0;
    while arrived < primaries {
        let Some(message) = messages.next().await else {
            return Err(KvError::unavailable(
                "the watch subscription's connection dropped while it started",
            ));
        };
        if message.get_payload_bytes() == marker.as_slice() {
            arrived += 1;
        }
    }
    Ok(())
}

/// A marker no other watcher uses: `m` (a kind no write announces) and random digits.
fn marker() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // A fresh `RandomState` is randomly keyed; the counter makes each marker of this process
    // differ even where keys repeat.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("m{:016x}", hasher.finish()).into_bytes()
}

/// A subscription at the first node that takes it, starting with `nodes[first]`.
async fn subscribe(setup: &Setup, first: usize) -> Result<PubSubStream, KvError> {
    let mut last_error = None;
    for n in 0..setup.nodes.len() {
        let node = &setup.nodes[(first + n) % setup.nodes.len()];
        let subscribing = async {
            let mut pubsub = node.get_async_pubsub().await?;
            pubsub.subscribe(&setup.channel).await?;
            if let Some(expirations) = &setup.expirations {
                pubsub.subscribe(expirations).await?;
            }
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        match tokio::time::timeout(setup.timeout, subscribing).await {
            Ok(Ok(messages)) => return Ok(messages),
            Ok(Err(err)) => last_error = Some(crate::error::from_redis(err)),
            Err(_) => {
                last_error = Some(KvError::unavailable(format!(
                    "Redis did not confirm the watch subscription within {:?}",
                    setup.timeout
                )))
            }
        }
    }
    Err(last_error.unwrap_or_else(|| KvError::unavailable("no Redis node to subscribe at")))
}

/// One watcher's task: from the subscription to the consumer's buffer.
struct Watcher {
    setup: Arc<Setup>,
    prefix: String,
    events: mpsc::Sender<WatchEvent>,
}

impl Watcher {
    /// Forwards until the consumer drops the stream; after a lost connection, says `Lagged`
    /// and subscribes again (at the next node, in a cluster).
    async fn run(self, mut messages: PubSubStream) {
        let mut node = 0;
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                () = self.events.closed() => return,
            };
            match message {
                Some(message) => {
                    let Some(event) = self.decode(&message) else {
                        continue;
                    };
                    if !self.deliver(event, &mut messages).await {
                        return;
                    }
                }
                None => {
                    tracing::debug!("the watch subscription's connection dropped");
                    if self.events.send(WatchEvent::Lagged).await.is_err() {
                        return;
                    }
                    loop {
                        node += 1;
                        let again = tokio::select! {
                            again = subscribe(&self.setup, node) => again,
                            () = self.events.closed() => return,
                        };
                        match again {
                            Ok(subscribed) => {
                                messages = subscribed;
                                break;
                            }
                            Err(err) => {
                                tracing::debug!(error = %err, "cannot subscribe again; trying later");
                                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Hands `event` to the consumer. When its buffer is full, the messages that arrive are
    /// dropped until there is room, then `Lagged` takes the place of all of them. `false`
    /// once the consumer is gone.
    async fn deliver(&self, event: WatchEvent, messages: &mut PubSubStream) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let mut connected = true;
                loop {
                    tokio::select! {
                        room = self.events.reserve() => return match room {
                            Ok(room) => {
                                room.send(WatchEvent::Lagged);
                                true
                            }
                            Err(_) => false,
                        },
                        // Dropped. A lost connection is handled once there is room.
                        message = messages.next(), if connected => connected = message.is_some(),
                    }
                }
            }
        }
    }

    /// The event a message means for this watcher: `None` for another prefix, a key this
    /// backend cannot name, or a message no script of this crate wrote.
    fn decode(&self, message: &redis::Msg) -> Option<WatchEvent> {
        let keyspace = &self.setup.keyspace;
        let payload = message.get_payload_bytes();
        if message.get_channel_name() != self.setup.channel {
            // An expiration: the payload is the Redis key.
            let key = keyspace.decode(payload.to_vec(), &self.prefix)?;
            return Some(WatchEvent::Expired { key });
        }
        let (kind, key, value) = scripts::announcement(payload)?;
        let key = keyspace.decode(key.to_vec(), &self.prefix)?;
        match kind {
            b's' => Some(WatchEvent::Set {
                key,
                value: value.to_vec(),
            }),
            b'd' => Some(WatchEvent::Deleted { key }),
            _ => None,
        }
    }
}
