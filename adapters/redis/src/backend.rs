//! `impl Store for RedisBackend`: encode the key, one Redis command (or script), decode or map
//! the error. `kv_trait` validates every input before it gets here.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kv_trait::store::{last_of_each, Key, Store, Ttl, Value};
use kv_trait::{async_trait, Capabilities, KvError, Sharing, WatchScope, WatchStream};
use redis::ProtocolVersion;

use crate::client::Client;
use crate::config::{RedisBackendBuilder, ReplicaWait, Topology};
use crate::encoding::{self, Keyspace};
use crate::error;
use crate::scripts;
use crate::server::Increments;
use crate::watch;

/// Keys per `MGET`, `MSET` or `DEL` of a batch: a few hundred keep each command's reply and
/// the server's time on it small (Redis serves one command at a time), while a batch of
/// thousands still takes a handful of round trips.
const BATCH_KEYS: usize = 500;

/// `SET PX` commands of one `set_many` with a TTL in flight at once, pipelined over the
/// multiplexed connection.
const BATCH_CONCURRENCY: usize = 64;

/// A key-value store on a Redis server or Redis Cluster that keeps the whole kvkit contract,
/// across every client of the same server and namespace.
///
/// The data is plain Redis: key `k` of namespace `ns` is the Redis string at
/// [`namespace_prefix`](crate::namespace_prefix)`(ns) + k`, a TTL is the key's own expiry,
/// and a counter is a Redis integer, so `redis-cli GET` reads what the backend wrote and
/// `redis-cli INCRBY` works on its counters.
///
/// Cloning is cheap: clones share the connections. Requests are multiplexed over one managed
/// connection (per cluster node in cluster mode), which reconnects by itself after the
/// connection is lost; every request is bounded by the request timeout, and a failure to
/// reach the server is [`KvError::Unavailable`].
///
/// ```no_run
/// # async fn demo() -> Result<(), kv_trait::KvError> {
/// use kv_redis::RedisBackend;
/// use kv_trait::KvBackend;
///
/// let store = RedisBackend::from_url("redis://localhost:6379?namespace=app").await?;
/// store.set("greeting", b"hello").await?; // the Redis key `app:greeting`
/// assert_eq!(store.get("greeting").await?, Some(b"hello".to_vec()));
/// assert_eq!(store.increment("hits", 3).await?, 3);
/// assert!(store.compare_and_swap("lock", None, b"me").await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    shared: Arc<Shared>,
}

/// What all clones of one backend share.
struct Shared {
    client: Client,
    keyspace: Keyspace,
    namespace: String,
    topology: Topology,
    endpoint: String,
    max_value_bytes: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    replica_wait: Option<ReplicaWait>,
    /// With `watch=true`: the channel every write announces its change on, and how watchers
    /// subscribe to it.
    watch: Option<Arc<watch::Setup>>,
}

impl RedisBackend {
    /// Connects to the server or cluster a URL names, e.g. `redis://localhost:6379/0`,
    /// `redis://:password@host?namespace=app` or
    /// `redis+cluster://10.0.0.1:7000,10.0.0.2:7000`; see [`RedisBackendBuilder::from_url`]
    /// for every form and option.
    pub async fn from_url(url: &str) -> Result<Self, KvError> {
        RedisBackendBuilder::from_url(url)?.build().await
    }

    /// A builder starting from `url`, to change settings before connecting; the same as
    /// [`RedisBackendBuilder::from_url`].
    pub fn builder(url: &str) -> Result<RedisBackendBuilder, KvError> {
        RedisBackendBuilder::from_url(url)
    }

    pub(crate) async fn from_builder(settings: RedisBackendBuilder) -> Result<Self, KvError> {
        let client = Client::connect(&settings).await?;
        let keyspace = Keyspace::new(&settings.namespace);
        let watch = match settings.watch {
            true => Some(Arc::new(watch::Setup {
                nodes: client.node_clients(&settings)?,
                channel: watch::channel(settings.database, &settings.namespace),
                expirations: (settings.topology == Topology::Standalone)
                    .then(|| format!("__keyevent@{}__:expired", settings.database)),
                keyspace: keyspace.clone(),
                timeout: settings.connect_timeout + settings.request_timeout,
            })),
            false => None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                keyspace,
                watch,
                endpoint: settings.endpoint(),
                namespace: settings.namespace,
                topology: settings.topology,
                max_value_bytes: settings.max_value_bytes,
                connect_timeout: settings.connect_timeout,
                request_timeout: settings.request_timeout,
                replica_wait: settings.replica_wait,
            }),
        })
    }

    /// The namespace this backend's keys live in (`""` unless configured).
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// Whether `increment` is a bare `INCRBY` (Redis or Valkey 6 and later, whose own integer
    /// parsing is exactly the contract's) rather than the script that checks the counter's
    /// form first (any other server). Read from `INFO server` when the backend connected.
    pub fn native_increments(&self) -> bool {
        self.shared.client.increments() == Increments::Native
    }

    /// Whether this backend talks to one server or to a cluster.
    pub fn topology(&self) -> Topology {
        self.shared.topology
    }

    /// The longest value this backend accepts, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    /// Where this backend connects, with any password replaced by `***`.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// The Redis key under which kvkit key `key` is stored (namespace prefix + key bytes),
    /// e.g. to inspect it with `redis-cli`: in namespace `app:v2`, key `user/42` is the Redis
    /// key `app\:v2:user/42`.
    pub fn redis_key(&self, key: &str) -> Vec<u8> {
        self.shared.keyspace.key(key)
    }

    fn key(&self, key: &str) -> Vec<u8> {
        self.shared.keyspace.key(key)
    }

    fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The channel writes announce their changes on: empty unless opened with `watch=true`.
    fn announce(&self) -> &[u8] {
        self.shared
            .watch
            .as_ref()
            .map_or(&[][..], |watch| watch.channel.as_bytes())
    }

    /// Whether writes announce their changes (`watch=true`), and so run as scripts.
    fn announcing(&self) -> bool {
        self.shared.watch.is_some()
    }

    /// `SET key value [PX millis]`, or with `watch=true` the script that also announces it.
    async fn put(&self, key: &[u8], value: &[u8], millis: Option<u64>) -> Result<(), KvError> {
        if self.announcing() {
            let millis = millis.map(|millis| millis.to_string());
            let mut args = vec![self.announce(), value];
            args.extend(millis.as_ref().map(String::as_bytes));
            return Ok(self.client().script(&scripts::SET, key, &args).await?);
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(millis) = millis {
            cmd.arg("PX").arg(millis);
        }
        Ok(self.client().write(key, &cmd).await?)
    }

    /// `DEL key`, or with `watch=true` the script that also announces a removal: whether the
    /// key was there.
    async fn del(&self, key: &[u8]) -> Result<bool, KvError> {
        let removed: i64 = match self.announcing() {
            true => {
                let args = [self.announce()];
                self.client().script(&scripts::DELETE, key, &args).await?
            }
            false => self.client().write(key, redis::cmd("DEL").arg(key)).await?,
        };
        Ok(removed > 0)
    }
}

impl fmt::Debug for RedisBackend {
    /// Shows where and how the backend connects. The password never appears: the endpoint is
    /// printed with `***` in its place, and connections are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        let protocol = match shared.client.protocol() {
            ProtocolVersion::RESP2 => "RESP2",
            _ => "RESP3",
        };
        f.debug_struct("RedisBackend")
            .field("endpoint", &shared.endpoint)
            .field("topology", &shared.topology)
            .field("namespace", &shared.namespace)
            .field("protocol", &protocol)
            .field("max_value_bytes", &shared.max_value_bytes)
            .field("native_increments", &self.native_increments())
            .field("connect_timeout", &shared.connect_timeout)
            .field("request_timeout", &shared.request_timeout)
            .field("replica_wait", &shared.replica_wait)
            .finish_non_exhaustive()
    }
}

/// The server's clock decides every expiry: TTLs travel as relative `PX` milliseconds.
#[async_trait]
impl Store for RedisBackend {
    const KIND: &'static str = "redis";

    fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    fn namespace_name(&self) -> &str {
        &self.shared.namespace
    }

    /// `GET`: one round trip.
    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
        let key = self.key(&key);
        Ok(self.client().read(redis::cmd("GET").arg(key)).await?)
    }

    /// `SET key value` (which also removes any TTL) or `SET key value PX ms`, the TTL rounded
    /// up to whole milliseconds: one round trip (with `watch=true`, the `SET` script).
    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError> {
        let key = self.key(&key);
        self.put(&key, value.as_bytes(), ttl.map(encoding::expiry_millis))
            .await
    }

    /// `DEL`: one round trip (with `watch=true`, the `DELETE` script). An expired key is
    /// already absent to Redis, so it counts 0.
    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
        self.del(&self.key(&key)).await
    }

    /// `EXISTS`: one round trip.
    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
        let key = self.key(&key);
        let found: i64 = self.client().read(redis::cmd("EXISTS").arg(key)).await?;
        Ok(found > 0)
    }

    /// `SCAN MATCH <escaped prefix>* COUNT 1000` followed to cursor 0 (on every primary in
    /// cluster mode); then namespace stripped, duplicates removed, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let keyspace = &self.shared.keyspace;
        let found = self
            .client()
            .scan(keyspace.pattern(prefix).as_deref())
            .await?;
        let keys: BTreeSet<String> = found
            .into_iter()
            .filter_map(|stored| keyspace.decode(stored, prefix))
            .collect();
        Ok(keys.into_iter().collect())
    }

    /// `INCRBY` where the server parses counters as the contract does, else the increment
    /// script (a canonical-form check, then `INCRBY`; see `server.rs`): one round trip. With
    /// `watch=true` always the script, which announces the new count (checking the form only
    /// where `INCRBY` alone would not).
    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
        let key = self.key(&key);
        let increments = self.client().increments();
        let added = if increments == Increments::Native && !self.announcing() {
            let cmd = redis::cmd("INCRBY").arg(&key).arg(delta).to_owned();
            self.client().write(&key, &cmd).await
        } else {
            let delta = delta.to_string();
            let mut args = vec![self.announce(), delta.as_bytes()];
            if increments == Increments::Scripted {
                args.push(b"check");
            }
            self.client().script(&scripts::INCREMENT, &key, &args).await
        };
        added.map_err(error::from_increment)
    }

    /// `expected = None`: `SET key new NX` (with `watch=true`, the `CREATE` script);
    /// `expected = Some(_)`: the compare-and-swap script on the key's primary. One round trip
    /// either way.
    async fn swap_if(
        &self,
        key: Key<'_>,
        expected: Option<&[u8]>,
        new: Value<'_>,
    ) -> Result<bool, KvError> {
        let key = self.key(&key);
        let Some(expected) = expected else {
            if self.announcing() {
                let args = [self.announce(), new.as_bytes()];
                let created: i64 = self.client().script(&scripts::CREATE, &key, &args).await?;
                return Ok(created == 1);
            }
            let cmd = redis::cmd("SET")
                .arg(&key)
                .arg(new.as_bytes())
                .arg("NX")
                .to_owned();
            let written: Option<()> = self.client().write(&key, &cmd).await?;
            return Ok(written.is_some());
        };
        Ok(self
            .client()
            .swap_if_equal(&key, self.announce(), expected, &new)
            .await?)
    }

    /// `MGET` per `BATCH_KEYS` keys (split by slot and recombined by the cluster client in
    /// cluster mode): one round trip per chunk (per node in a cluster).
    async fn read_many(&self, keys: &[Key<'_>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_KEYS) {
            let mut cmd = redis::cmd("MGET");
            for key in chunk {
                cmd.arg(self.key(key));
            }
            let chunk_values: Vec<Option<Vec<u8>>> = self.client().read(&cmd).await?;
            values.extend(chunk_values);
        }
        Ok(values)
    }

    /// Without a TTL, `MSET` per `BATCH_KEYS` entries (duplicates keep their last value, as
    /// `MSET` does); with one, `SET PX` per distinct key (the last value of a repeated key),
    /// `BATCH_CONCURRENCY` at a time, since `MSET` takes no TTL. With `watch=true`, the `SET`
    /// script per distinct key, the same way, since each change is announced by its own
    /// script.
    async fn write_many(
        &self,
        entries: &[(Key<'_>, Value<'_>)],
        ttl: Option<Ttl>,
    ) -> Result<(), KvError> {
        if ttl.is_none() && !self.announcing() {
            for chunk in entries.chunks(BATCH_KEYS) {
                let mut cmd = redis::cmd("MSET");
                for (key, value) in chunk {
                    cmd.arg(self.key(key)).arg(value.as_bytes());
                }
                let () = self.client().write_batch(&cmd).await?;
            }
            return Ok(());
        }
        let millis = ttl.map(encoding::expiry_millis);
        let entries = last_of_each(entries);
        let writes: Vec<(Vec<u8>, &[u8])> = entries
            .iter()
            .map(|(key, value)| (self.key(key), value.as_bytes()))
            .collect();
        // By index: a closure taking the borrowed pairs themselves trips the compiler's
        // higher-ranked lifetime check for `Send` futures.
        let writes = &writes;
        futures::stream::iter(0..writes.len())
            .map(|n| async move { self.put(&writes[n].0, writes[n].1, millis).await })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// `DEL` per `BATCH_KEYS` keys, which counts a repeated key once. With `watch=true`, the
    /// `DELETE` script per distinct key, `BATCH_CONCURRENCY` at a time, so that each removal
    /// is announced.
    async fn remove_many(&self, keys: &[Key<'_>]) -> Result<u64, KvError> {
        if self.announcing() {
            let distinct: BTreeSet<Vec<u8>> = keys.iter().map(|key| self.key(key)).collect();
            let removed: Vec<bool> = futures::stream::iter(distinct)
                .map(|key| async move { self.del(&key).await })
                .buffer_unordered(BATCH_CONCURRENCY)
                .try_collect()
                .await?;
            return Ok(removed.into_iter().filter(|&removed| removed).count() as u64);
        }
        let mut removed = 0;
        for chunk in keys.chunks(BATCH_KEYS) {
            let mut cmd = redis::cmd("DEL");
            for key in chunk {
                cmd.arg(self.key(key));
            }
            let count: u64 = self.client().write_batch(&cmd).await?;
            removed += count;
        }
        Ok(removed)
    }

    /// With `watch=true`: subscribed to the namespace's channel (and, on a standalone server,
    /// to its expirations) on a connection of its own before this returns; see `watch.rs`.
    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        match &self.shared.watch {
            Some(setup) => watch::watch(setup.clone(), self.client(), prefix).await,
            None => Err(KvError::Unsupported(
                "watch: open the backend with watch=true (every write then announces its \
                 change; see kv-redis' docs)"
                    .into(),
            )),
        }
    }

    fn capabilities(&self) -> Capabilities {
        let watch = match self.announcing() {
            true => WatchScope::Announcing,
            false => WatchScope::Unsupported,
        };
        Capabilities::new(self.shared.max_value_bytes)
            .with_sharing(Sharing::Network)
            .with_native_batches(true)
            .with_watch(watch)
    }
}

kv_trait::impl_kv_backend!(RedisBackend);
