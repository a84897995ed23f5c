//! `impl Store for MemoryBackend`: one short critical section per call, the clock read under
//! the shard's lock. `kv_trait` validates every input before it gets here.

use kv_trait::store::{Key, Store, Ttl, Value};
use kv_trait::{
    apply_increment, async_trait, format_counter, Capabilities, KvError, WatchScope, WatchStream,
};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::config::MemoryBackendBuilder;
use crate::store::{Entry, ShardedStore};

/// An in-memory key-value store that keeps the whole kvkit contract.
///
/// Cloning is cheap and every clone shares one store, like handles on one server. Nothing is
/// persisted: the data lives as long as the last clone. TTLs are exact to the nanosecond
/// (measured on the process's monotonic clock), and expired entries are removed as soon as
/// their shard is next touched, or by [`purge_expired`](Self::purge_expired).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use kv_memory::MemoryBackend;
/// use kv_trait::KvBackend;
///
/// let store = MemoryBackend::new();
/// store.set("greeting", b"hello").await?;
/// assert_eq!(store.get("greeting").await?, Some(b"hello".to_vec()));
/// assert_eq!(store.increment("hits", 3).await?, 3);
/// assert_eq!(store.list_keys("").await?, ["greeting", "hits"]);
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    /// Every namespace of this store, so that [`namespace`](Self::namespace) can hand out
    /// handles on the same data.
    namespaces: Arc<Namespaces>,
    /// This handle's namespace and its keys.
    namespace: Arc<str>,
    store: Arc<ShardedStore>,
    shards: usize,
    max_value_bytes: usize,
}

/// The key spaces of one store, by name.
type Namespaces = Mutex<HashMap<Arc<str>, Arc<ShardedStore>>>;

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("namespace", &self.namespace)
            .field("shards", &self.shards)
            .field("max_value_bytes", &self.max_value_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An empty store with the default settings (1 MiB values, 32 shards).
    pub fn new() -> Self {
        Self::from_builder(&MemoryBackendBuilder::default())
    }

    /// A builder for non-default settings.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    pub(crate) fn from_builder(builder: &MemoryBackendBuilder) -> Self {
        let root = Self {
            namespaces: Arc::default(),
            namespace: Arc::from(""),
            store: Arc::new(ShardedStore::new(builder.shards)),
            shards: builder.shards,
            max_value_bytes: builder.max_value_bytes,
        };
        root.namespaces_lock()
            .insert(root.namespace.clone(), root.store.clone());
        root
    }

    /// A handle on namespace `name` of the same store: its keys are invisible to every other
    /// namespace, and every handle on `name` (from any clone of this store) sees the same keys.
    /// The default namespace is `""`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use kv_trait::KvBackend;
    /// let store = kv_memory::MemoryBackend::new();
    /// store.namespace("tenant-a").set("k", b"a").await?;
    /// assert_eq!(store.namespace("tenant-b").get("k").await?, None);
    /// assert_eq!(store.namespace("tenant-a").get("k").await?, Some(b"a".to_vec()));
    /// # Ok::<(), kv_trait::KvError>(())
    /// # }).unwrap();
    /// ```
    pub fn namespace(&self, name: &str) -> MemoryBackend {
        let store = self
            .namespaces_lock()
            .entry(Arc::from(name))
            .or_insert_with(|| Arc::new(ShardedStore::new(self.shards)))
            .clone();
        Self {
            namespace: Arc::from(name),
            store,
            ..self.clone()
        }
    }

    /// This handle's namespace.
    pub fn namespace_name(&self) -> &str {
        &self.namespace
    }

    fn namespaces_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<ShardedStore>>> {
        self.namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The longest value this store accepts, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Removes every expired entry of this namespace now and returns how many entries remain
    /// (all live).
    ///
    /// Not needed for correctness or to bound memory under ordinary use (each access reclaims
    /// its shard's expired entries); useful after a burst of short-lived keys.
    pub fn purge_expired(&self) -> usize {
        self.store.purge_all()
    }
}

#[async_trait]
impl Store for MemoryBackend {
    const KIND: &'static str = "memory";

    fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    fn namespace_name(&self) -> &str {
        &self.namespace
    }

    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
        let shard = self.store.shard_for(&key);
        Ok(shard.get(&key).map(|entry| entry.value.clone()))
    }

    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError> {
        let mut shard = self.store.shard_for(&key);
        // Under the shard's lock, where the write takes effect.
        let deadline = ttl.and_then(Ttl::instant_deadline);
        shard.put(
            &key,
            Entry {
                value: value.to_vec(),
                deadline,
            },
        );
        self.store.publish_set(&key, || value.to_vec());
        Ok(())
    }

    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
        let mut shard = self.store.shard_for(&key);
        let removed = shard.remove(&key);
        if removed {
            self.store.publish_deleted(&key);
        }
        Ok(removed)
    }

    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
        Ok(self.store.shard_for(&key).get(&key).is_some())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        Ok(self.store.keys_with_prefix(prefix))
    }

    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
        let mut shard = self.store.shard_for(&key);
        let current = shard.get(&key).map(|entry| entry.value.as_slice());
        let next = apply_increment(current, delta)?;
        shard.replace_value(&key, format_counter(next));
        self.store.publish_set(&key, || format_counter(next));
        Ok(next)
    }

    async fn swap_if(
        &self,
        key: Key<'_>,
        expected: Option<&[u8]>,
        new: Value<'_>,
    ) -> Result<bool, KvError> {
        let mut shard = self.store.shard_for(&key);
        let current = shard.get(&key).map(|entry| entry.value.as_slice());
        if current != expected {
            return Ok(false);
        }
        shard.put(
            &key,
            Entry {
                value: new.to_vec(),
                deadline: None,
            },
        );
        self.store.publish_set(&key, || new.to_vec());
        Ok(true)
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        Ok(self.store.changes().watch(prefix))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.max_value_bytes).with_watch(WatchScope::Process)
    }
}

kv_trait::impl_kv_backend!(MemoryBackend);
