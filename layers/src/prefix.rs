//! [`Prefixed`]: a namespace made of a key prefix, around any backend.

use std::num::NonZeroUsize;

use futures::StreamExt;
use kv_trait::{
    async_trait, validate_key_up_to, Capabilities, KeyPage, KvBackend, KvError, WatchEvent,
    WatchStream,
};

/// Every key of the wrapped backend behind `prefix`: `get("k")` reads `PREFIX` + `k`,
/// `list_keys` lists only keys under the prefix and returns them without it. Two `Prefixed`
/// whose prefixes are not prefixes of each other never see each other's keys.
///
/// For backends without namespaces of their own (a `KvBackend` you wrote), or to divide one
/// namespace further. kvkit's adapters have namespaces that cost no key length (`namespace=`);
/// prefer those. A prefix takes part of the store's 1024 bytes per key, so a `Prefixed`
/// declares [`Capabilities::max_key_bytes`] as the inner maximum less the prefix, and a longer
/// key fails with `InvalidKey` before anything is sent (see kv-trait's decisions).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use kv_layers::Prefixed;
/// use kv_memory::MemoryBackend;
/// use kv_trait::KvBackend;
///
/// let store = MemoryBackend::new();
/// let jobs = Prefixed::new("jobs/", store.clone())?;
/// jobs.set("42", b"queued").await?;
/// assert_eq!(store.get("jobs/42").await?, Some(b"queued".to_vec()));
/// assert_eq!(jobs.list_keys("").await?, ["42"]);
/// assert_eq!(jobs.capabilities().max_key_bytes, 1024 - 5);
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Prefixed<B> {
    prefix: String,
    max_key_bytes: usize,
    inner: B,
}

impl<B: KvBackend> Prefixed<B> {
    /// `inner`'s keys under `prefix`. `InvalidConfig` if the prefix leaves no room for a key.
    pub fn new(prefix: impl Into<String>, inner: B) -> Result<Self, KvError> {
        let prefix = prefix.into();
        let inner_max = inner.capabilities().max_key_bytes;
        if prefix.len() >= inner_max {
            return Err(KvError::InvalidConfig(format!(
                "a key prefix of {} bytes leaves no room for keys of at most {inner_max} bytes",
                prefix.len()
            )));
        }
        Ok(Self {
            max_key_bytes: inner_max - prefix.len(),
            prefix,
            inner,
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The key as the wrapped backend stores it, once it passed this layer's key rules.
    fn stored(&self, key: &str) -> Result<String, KvError> {
        validate_key_up_to(key, self.max_key_bytes)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn stored_all(&self, keys: &[&str]) -> Result<Vec<String>, KvError> {
        keys.iter().map(|key| self.stored(key)).collect()
    }

    /// A key the wrapped backend listed, as this layer's callers know it.
    fn shown(&self, stored: String) -> String {
        match stored.strip_prefix(&self.prefix) {
            Some(key) => key.to_owned(),
            // Listed under the prefix, so never reached; kept whole rather than mangled.
            None => stored,
        }
    }
}

#[async_trait]
impl<B: KvBackend> KvBackend for Prefixed<B> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(&self.stored(key)?).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner.set(&self.stored(key)?, value).await
    }

    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        self.inner
            .set_with_ttl(&self.stored(key)?, value, ttl_ns)
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.inner.delete(&self.stored(key)?).await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.inner.exists(&self.stored(key)?).await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let listed = self
            .inner
            .list_keys(&format!("{}{prefix}", self.prefix))
            .await?;
        Ok(listed.into_iter().map(|key| self.shown(key)).collect())
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.inner.increment(&self.stored(key)?, delta).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.inner
            .compare_and_swap(&self.stored(key)?, expected, new)
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let stored = self.stored_all(keys)?;
        let stored: Vec<&str> = stored.iter().map(String::as_str).collect();
        self.inner.get_many(&stored).await
    }

    async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl_ns: Option<u64>,
    ) -> Result<(), KvError> {
        let keys: Vec<&str> = entries.iter().map(|(key, _)| *key).collect();
        let stored = self.stored_all(&keys)?;
        let entries: Vec<(&str, &[u8])> = stored
            .iter()
            .zip(entries)
            .map(|(key, (_, value))| (key.as_str(), *value))
            .collect();
        self.inner.set_many(&entries, ttl_ns).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, KvError> {
        let stored = self.stored_all(keys)?;
        let stored: Vec<&str> = stored.iter().map(String::as_str).collect();
        self.inner.delete_many(&stored).await
    }

    async fn list_keys_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        let start_after = start_after.map(|after| format!("{}{after}", self.prefix));
        let page = self
            .inner
            .list_keys_page(
                &format!("{}{prefix}", self.prefix),
                start_after.as_deref(),
                limit,
            )
            .await?;
        Ok(KeyPage {
            keys: page.keys.into_iter().map(|key| self.shown(key)).collect(),
            next: page.next.map(|key| self.shown(key)),
        })
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        let events = self
            .inner
            .watch(&format!("{}{prefix}", self.prefix))
            .await?;
        let layer_prefix = self.prefix.clone();
        let shown = move |key: String| match key.strip_prefix(layer_prefix.as_str()) {
            Some(key) => key.to_owned(),
            // Watched under the prefix, so never reached; kept whole rather than mangled.
            None => key,
        };
        Ok(Box::pin(events.map(move |event| match event {
            WatchEvent::Set { key, value } => WatchEvent::Set {
                key: shown(key),
                value,
            },
            WatchEvent::Deleted { key } => WatchEvent::Deleted { key: shown(key) },
            WatchEvent::Expired { key } => WatchEvent::Expired { key: shown(key) },
            other => other,
        })))
    }

    fn capabilities(&self) -> Capabilities {
        self.inner
            .capabilities()
            .with_max_key_bytes(self.max_key_bytes)
    }
}
