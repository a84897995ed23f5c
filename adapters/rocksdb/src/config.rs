//! [`RocksDbBackendBuilder`]: where the database lives and how it is opened, from code or from a
//! `rocksdb://` URL.

use std::path::PathBuf;

use kv_trait::url_config::StoreUrl;
use kv_trait::{KvError, DEFAULT_MAX_VALUE_BYTES};

use crate::RocksDbBackend;

/// The options a `rocksdb:` URL takes.
const URL_OPTIONS: &[&str] = &[
    "namespace",
    "create_if_missing",
    "sync_writes",
    "block_cache_mb",
    "max_value_bytes",
];

/// The largest value accepted: RocksDB handles large values, but each one is copied whole
/// through the memtable, the WAL and every compaction.
const LARGEST_MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

/// Configures and opens a [`RocksDbBackend`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use kv_rocksdb::RocksDbBackendBuilder;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = RocksDbBackendBuilder::new(dir.path().join("db"))
///     .namespace("jobs")
///     .sync_writes(true)
///     .block_cache_bytes(64 << 20)
///     .build()
///     .await?;
/// assert_eq!(store.namespace(), "jobs");
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct RocksDbBackendBuilder {
    pub(crate) path: PathBuf,
    pub(crate) namespace: String,
    pub(crate) create_if_missing: bool,
    pub(crate) sync_writes: bool,
    pub(crate) block_cache_bytes: Option<usize>,
    pub(crate) max_value_bytes: usize,
    pub(crate) lock_stripes: usize,
}

/// Locks that serialize the writes to one key, by hash, unless configured otherwise.
pub(crate) const DEFAULT_LOCK_STRIPES: usize = 1024;

impl RocksDbBackendBuilder {
    /// A builder for the database directory `path`, with the defaults.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            namespace: String::new(),
            create_if_missing: true,
            sync_writes: false,
            block_cache_bytes: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            lock_stripes: DEFAULT_LOCK_STRIPES,
        }
    }

    /// A builder from a URL: `rocksdb:///absolute/path` or `rocksdb://relative/path`, with the
    /// options `namespace`, `create_if_missing` and `sync_writes` (`true`/`false`),
    /// `block_cache_mb` and `max_value_bytes`, meaning what the builder methods of those names
    /// mean. Anything else is [`KvError::InvalidConfig`] naming the problem.
    ///
    /// ```
    /// use kv_rocksdb::RocksDbBackendBuilder;
    /// let builder = RocksDbBackendBuilder::from_url("rocksdb:///srv/kv?namespace=jobs&sync_writes=true")?;
    /// assert!(RocksDbBackendBuilder::from_url("rocksdb:///srv/kv?compression=lz4").is_err());
    /// # Ok::<(), kv_trait::KvError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, KvError> {
        let mut parsed = StoreUrl::parse(url, "rocksdb")?;
        let mut builder = Self::new(parsed.file_path()?);
        if let Some(namespace) = parsed.take("namespace") {
            builder = builder.namespace(namespace);
        }
        if let Some(create) = parsed.take_bool("create_if_missing")? {
            builder = builder.create_if_missing(create);
        }
        if let Some(sync) = parsed.take_bool("sync_writes")? {
            builder = builder.sync_writes(sync);
        }
        if let Some(megabytes) = parsed.take_number::<usize>("block_cache_mb")? {
            builder = builder.block_cache_bytes(megabytes.saturating_mul(1 << 20));
        }
        if let Some(max) = parsed.take_number("max_value_bytes")? {
            builder = builder.max_value_bytes(max);
        }
        parsed.finish(URL_OPTIONS)?;
        Ok(builder)
    }

    /// The namespace this backend's keys live in (default `""`); any text without NUL.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Whether to create the database when the path holds none (default `true`).
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Whether each write waits for the write-ahead log to reach the disk (default `false`).
    ///
    /// Either way an acknowledged write survives the process crashing or the backend being
    /// dropped (it is in the WAL, in the operating system's hands); with `true` it also
    /// survives a power loss, at the cost of an `fsync` per write.
    pub fn sync_writes(mut self, sync: bool) -> Self {
        self.sync_writes = sync;
        self
    }

    /// The size of the LRU block cache shared by the database's reads (default: RocksDB's
    /// own, 32 MiB). Applies when this open is the first of the path in this process.
    pub fn block_cache_bytes(mut self, bytes: usize) -> Self {
        self.block_cache_bytes = Some(bytes);
        self
    }

    /// The longest value accepted (default 1 MiB; 64 KiB to 64 MiB).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// How many locks serialize writes, by key hash (default 1024, at least 1): operations on
    /// keys of different stripes never wait for each other. Applies when this open is the
    /// first of the path in this process; it exists mostly to measure what striping buys.
    pub fn lock_stripes(mut self, stripes: usize) -> Self {
        self.lock_stripes = stripes;
        self
    }

    /// Opens the database (or shares it, when this process already has it open) off the
    /// executor's threads.
    pub async fn build(self) -> Result<RocksDbBackend, KvError> {
        self.validate()?;
        RocksDbBackend::from_builder(self).await
    }

    fn validate(&self) -> Result<(), KvError> {
        if self.path.as_os_str().is_empty() {
            return Err(KvError::InvalidConfig("the database path is empty".into()));
        }
        if self.namespace.contains('\0') {
            return Err(KvError::InvalidConfig(
                "the namespace must not contain NUL characters".into(),
            ));
        }
        if self.lock_stripes == 0 {
            return Err(KvError::InvalidConfig(
                "lock_stripes must be at least 1".into(),
            ));
        }
        kv_trait::check_max_value_bytes(self.max_value_bytes, LARGEST_MAX_VALUE_BYTES)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_set_every_option() {
        let builder = RocksDbBackendBuilder::from_url(
            "rocksdb:///srv/kv%20db?namespace=a%3Ab&create_if_missing=false&sync_writes=true&block_cache_mb=8&max_value_bytes=70000",
        )
        .unwrap();
        assert_eq!(builder.path, PathBuf::from("/srv/kv db"));
        assert_eq!(builder.namespace, "a:b");
        assert!(!builder.create_if_missing);
        assert!(builder.sync_writes);
        assert_eq!(builder.block_cache_bytes, Some(8 << 20));
        assert_eq!(builder.max_value_bytes, 70_000);
        assert_eq!(
            RocksDbBackendBuilder::from_url("rocksdb://rel/kv")
                .unwrap()
                .path,
            PathBuf::from("rel/kv")
        );
    }

    #[test]
    fn bad_urls_and_settings_name_the_problem() {
        for (url, needle) in [
            ("redis://x", "not a rocksdb URL"),
            ("rocksdb://", "empty path"),
            ("rocksdb:///kv?sync_writes=yes", "sync_writes=yes"),
            ("rocksdb:///kv?colour=blue", "`colour`"),
        ] {
            let err = RocksDbBackendBuilder::from_url(url)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
        let builder = RocksDbBackendBuilder::new("kv");
        assert!(builder.clone().namespace("a\0b").validate().is_err());
        assert!(builder.clone().max_value_bytes(1024).validate().is_err());
        assert!(builder.max_value_bytes(1 << 30).validate().is_err());
    }
}
