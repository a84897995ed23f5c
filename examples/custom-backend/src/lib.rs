//! An example of the path a user with their own store takes: implement
//! [`KvBackend`] for it, then prove it with `kv-conformance`
//! (see `tests/conformance.rs` and `src/main.rs`).
//!
//! The store here is deliberately plain, one mutex around an ordered map, so that what it takes
//! to keep the contract stands out: validate with the kv-trait helpers first, treat an expired
//! entry as absent everywhere, and do each read-modify-write under one lock.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use kv_trait::{
    apply_increment, async_trait, check_value_size, format_counter, instant_deadline, validate_key,
    validate_ttl, KvBackend, KvError, DEFAULT_MAX_VALUE_BYTES,
};

/// A value and when it stops being visible (`None`: never).
#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    deadline: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.deadline.is_none_or(|deadline| now < deadline)
    }
}

/// Your store: here, a map behind one lock.
#[derive(Debug, Default)]
pub struct MyStore {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl MyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, key: &str, value: &[u8], deadline: Option<Instant>) {
        self.lock().insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                deadline,
            },
        );
    }
}

/// The live value at `key` in `entries`.
fn live<'a>(entries: &'a BTreeMap<String, Entry>, key: &str) -> Option<&'a Entry> {
    entries
        .get(key)
        .filter(|entry| entry.is_live(Instant::now()))
}

#[async_trait]
impl KvBackend for MyStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        validate_key(key)?;
        Ok(live(&self.lock(), key).map(|entry| entry.value.clone()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        validate_key(key)?;
        check_value_size(value, DEFAULT_MAX_VALUE_BYTES)?;
        self.write(key, value, None);
        Ok(())
    }

    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        let call_start = Instant::now();
        validate_key(key)?;
        check_value_size(value, DEFAULT_MAX_VALUE_BYTES)?;
        validate_ttl(ttl_ns)?;
        self.write(key, value, instant_deadline(call_start, ttl_ns));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        validate_key(key)?;
        let removed = self.lock().remove(key);
        Ok(removed.is_some_and(|entry| entry.is_live(Instant::now())))
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        validate_key(key)?;
        Ok(live(&self.lock(), key).is_some())
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let now = Instant::now();
        let entries = self.lock();
        let from = (Bound::Included(prefix), Bound::Unbounded);
        Ok(entries
            .range::<str, _>(from)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, entry)| entry.is_live(now))
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        validate_key(key)?;
        let mut entries = self.lock();
        let current = live(&entries, key);
        let next = apply_increment(current.map(|entry| entry.value.as_slice()), delta)?;
        let deadline = current.and_then(|entry| entry.deadline);
        entries.insert(
            key.to_owned(),
            Entry {
                value: format_counter(next),
                deadline,
            },
        );
        Ok(next)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        validate_key(key)?;
        check_value_size(new, DEFAULT_MAX_VALUE_BYTES)?;
        let mut entries = self.lock();
        if live(&entries, key).map(|entry| entry.value.as_slice()) != expected {
            return Ok(false);
        }
        entries.insert(
            key.to_owned(),
            Entry {
                value: new.to_vec(),
                deadline: None,
            },
        );
        Ok(true)
    }
}
