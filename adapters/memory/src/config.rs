//! [`MemoryBackendBuilder`]: the few knobs an in-memory store has.

use kv_trait::{KvError, DEFAULT_MAX_VALUE_BYTES, MIN_MAX_VALUE_BYTES};

use crate::MemoryBackend;

/// Shards by default: enough that two cores rarely contend on one lock, few enough that a
/// `list_keys` over all of them stays cheap.
pub(crate) const DEFAULT_SHARDS: usize = 32;

/// Builds a [`MemoryBackend`] with non-default settings.
///
/// ```
/// let store = kv_memory::MemoryBackend::builder()
///     .max_value_bytes(64 * 1024)
///     .shards(8)
///     .build()
///     .unwrap();
/// assert_eq!(store.max_value_bytes(), 64 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBackendBuilder {
    pub(crate) max_value_bytes: usize,
    pub(crate) shards: usize,
}

impl Default for MemoryBackendBuilder {
    fn default() -> Self {
        Self {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            shards: DEFAULT_SHARDS,
        }
    }
}

impl MemoryBackendBuilder {
    /// The longest value accepted, in bytes (default 1 MiB, at least 64 KiB).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// How many independently locked shards hold the keys (default 32, at least 1).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// The backend; `InvalidConfig` when a setting is out of range.
    pub fn build(self) -> Result<MemoryBackend, KvError> {
        if self.max_value_bytes < MIN_MAX_VALUE_BYTES {
            return Err(KvError::InvalidConfig(format!(
                "max_value_bytes is {}; the contract requires at least {MIN_MAX_VALUE_BYTES}",
                self.max_value_bytes
            )));
        }
        if self.shards == 0 {
            return Err(KvError::InvalidConfig("shards must be at least 1".into()));
        }
        Ok(MemoryBackend::from_builder(&self))
    }
}
