//! The store side of an adapter: operations on inputs that already passed the contract's
//! checks, and the one generic layer that checks them.
//!
//! An adapter implements [`Store`], whose operations take a [`Key`], a [`Value`] and a
//! [`Ttl`] instead of raw strings, bytes and nanoseconds. Those types can only be made by
//! validating (`Key::new`, `Value::new`, `Ttl::from_nanos`), so a store cannot be handed an
//! empty key, an oversize value or a zero TTL, and it cannot forget to check one. Then
//! [`impl_kv_backend!`](crate::impl_kv_backend) derives the [`KvBackend`](crate::KvBackend)
//! impl: it validates the inputs in the contract's order (key, then value, then TTL), opens a
//! `tracing` span for the operation, and calls the store.
//!
//! The clock is read through this module too. A [`Ttl`] turns into a deadline only when the
//! store asks ([`Ttl::unix_deadline_ms`], [`Ttl::instant_deadline`]), and liveness is judged
//! with [`unix_millis_now`](crate::unix_millis_now) or [`monotonic_now`] read by the store at
//! the moment it decides: after any lock, queue or retry wait, never at call start. A deadline
//! read late is still never early (it is at least `call_start + ttl`) and never much late (it
//! is read before the call returns), while a liveness check read early could call a key live
//! that had expired while the call waited.
//!
//! ```
//! use kv_trait::store::{Key, Store, Ttl, Value};
//! use kv_trait::{async_trait, KvBackend, KvError};
//!
//! /// A store that holds nothing and says so.
//! #[derive(Debug)]
//! struct Void;
//!
//! #[async_trait]
//! impl Store for Void {
//!     const KIND: &'static str = "void";
//!     fn max_value_bytes(&self) -> usize { kv_trait::MIN_MAX_VALUE_BYTES }
//!     fn namespace_name(&self) -> &str { "" }
//!     async fn read(&self, _: Key<'_>) -> Result<Option<Vec<u8>>, KvError> { Ok(None) }
//!     async fn write(&self, _: Key<'_>, _: Value<'_>, _: Option<Ttl>) -> Result<(), KvError> {
//!         Err(KvError::QuotaExceeded("the void is full".into()))
//!     }
//!     async fn remove(&self, _: Key<'_>) -> Result<bool, KvError> { Ok(false) }
//!     async fn contains(&self, _: Key<'_>) -> Result<bool, KvError> { Ok(false) }
//!     async fn list(&self, _: &str) -> Result<Vec<String>, KvError> { Ok(vec![]) }
//!     async fn add(&self, _: Key<'_>, _: i64) -> Result<i64, KvError> {
//!         Err(KvError::QuotaExceeded("the void is full".into()))
//!     }
//!     async fn swap_if(&self, _: Key<'_>, _: Option<&[u8]>, _: Value<'_>) -> Result<bool, KvError> {
//!         Ok(false)
//!     }
//! }
//! kv_trait::impl_kv_backend!(Void);
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // The generated impl checked the key before the store saw it.
//! assert!(matches!(Void.get("").await, Err(KvError::InvalidKey(_))));
//! assert!(matches!(Void.set_with_ttl("k", b"v", 0).await, Err(KvError::InvalidTtl(0))));
//! assert_eq!(Void.get("k").await?, None);
//! # Ok::<(), KvError>(())
//! # }).unwrap();
//! ```

use std::fmt::{self, Debug};
use std::future::Future;
use std::num::{NonZeroU64, NonZeroUsize};
use std::ops::Deref;
use std::time::{Instant, SystemTime};

use tracing::Instrument;

use crate::{
    check_value_size, instant_deadline, ttl_millis_ceil, unix_deadline_ms, validate_key,
    validate_ttl, Capabilities, KeyPage, KvError,
};

/// A key that passed [`validate_key`]: non-empty, at most [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES)
/// bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key<'a>(&'a str);

impl<'a> Key<'a> {
    /// Validates `key`; fails with [`KvError::InvalidKey`].
    pub fn new(key: &'a str) -> Result<Self, KvError> {
        validate_key(key)?;
        Ok(Self(key))
    }

    /// The key as the caller wrote it.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl Deref for Key<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl Debug for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(self.0, f)
    }
}

/// A value no longer than the store's declared maximum.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value<'a>(&'a [u8]);

impl<'a> Value<'a> {
    /// Checks `bytes` against `max_value_bytes`; fails with [`KvError::ValueTooLarge`].
    pub fn new(bytes: &'a [u8], max_value_bytes: usize) -> Result<Self, KvError> {
        check_value_size(bytes, max_value_bytes)?;
        Ok(Self(bytes))
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl Deref for Value<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0
    }
}

impl Debug for Value<'_> {
    /// The length only: values are the application's data and may be anything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({} bytes)", self.0.len())
    }
}

/// A time to live that passed [`validate_ttl`]: at least 1 ns.
///
/// It becomes a deadline only when the store asks, reading the clock at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(NonZeroU64);

impl Ttl {
    /// Validates `ttl_ns`; fails with [`KvError::InvalidTtl`] for 0.
    pub fn from_nanos(ttl_ns: u64) -> Result<Self, KvError> {
        // `validate_ttl` is the rule; a TTL it accepts is never zero.
        validate_ttl(ttl_ns)?;
        Ok(Self(NonZeroU64::new(ttl_ns).unwrap_or(NonZeroU64::MIN)))
    }

    /// The TTL in nanoseconds.
    pub fn as_nanos(self) -> u64 {
        self.0.get()
    }

    /// The TTL in whole milliseconds, rounded up (for stores that take a relative TTL, such
    /// as Redis `PX`, whose server's clock decides).
    pub fn millis_ceil(self) -> u64 {
        ttl_millis_ceil(self.as_nanos())
    }

    /// The wall-clock deadline, in Unix milliseconds, of this TTL started now: for stores
    /// shared between processes. Call it where the write takes effect (inside the
    /// transaction, after the lock), so the deadline is never earlier than
    /// `call_start + ttl`.
    pub fn unix_deadline_ms(self) -> u64 {
        unix_deadline_ms(wall_now(), self.as_nanos())
    }

    /// The monotonic deadline of this TTL started now (`None`: beyond what `Instant` holds,
    /// which means never): for in-process stores. Call it under the lock that makes the write
    /// take effect.
    pub fn instant_deadline(self) -> Option<Instant> {
        instant_deadline(monotonic_now(), self.as_nanos())
    }
}

/// The process's monotonic clock, for in-process stores' liveness checks. Read it at the
/// moment the store decides (under its lock), never before a wait.
#[allow(
    clippy::disallowed_methods,
    reason = "the one place an adapter's monotonic clock is read"
)]
pub fn monotonic_now() -> Instant {
    Instant::now()
}

/// The wall clock: what [`unix_millis_now`](crate::unix_millis_now) reads.
#[allow(
    clippy::disallowed_methods,
    reason = "the one place an adapter's wall clock is read"
)]
pub(crate) fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// A key-value store's own operations, on inputs already checked against the contract.
///
/// Implement this, then write [`impl_kv_backend!(YourStore)`](crate::impl_kv_backend) to get
/// the [`KvBackend`](crate::KvBackend) impl that validates and traces every call. The
/// semantics of each operation are those of the `KvBackend` method of the same row (see the
/// [crate docs](crate)); only the inputs differ.
///
/// Use `#[kv_trait::async_trait]` on the `impl` block.
#[crate::async_trait]
pub trait Store: Send + Sync + Debug {
    /// The kind of store, as trace spans name it: `"sqlite"`, `"redis"`...
    const KIND: &'static str;

    /// The longest value this store accepts, in bytes (see the contract's value rules).
    fn max_value_bytes(&self) -> usize;

    /// This handle's namespace, as trace spans name it (`""` for the default one).
    fn namespace_name(&self) -> &str;

    /// `get`: the live value of `key`, or `None`.
    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError>;

    /// `set` (`ttl: None`) and `set_with_ttl` (`Some`): writes `value`, replacing any TTL.
    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError>;

    /// `delete`: removes `key`; `true` iff a live key was removed.
    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError>;

    /// `exists`: `true` iff `key` is live.
    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError>;

    /// `list_keys`: every live key starting with `prefix` (not validated: any string), each
    /// once, sorted by bytes.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError>;

    /// `increment`: adds `delta` to the counter at `key` and returns the new value.
    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError>;

    /// `compare_and_swap`: writes `new` (no TTL) iff the live value equals `expected`.
    async fn swap_if(
        &self,
        key: Key<'_>,
        expected: Option<&[u8]>,
        new: Value<'_>,
    ) -> Result<bool, KvError>;

    /// `get_many`: the live values of `keys`, in their order. The default reads them one by
    /// one; override it with the store's own batch read.
    async fn read_many(&self, keys: &[Key<'_>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.read(*key).await?);
        }
        Ok(values)
    }

    /// `set_many`: writes `entries` in order (the last of a repeated key stays), each with
    /// `ttl`. The default writes them one by one.
    async fn write_many(
        &self,
        entries: &[(Key<'_>, Value<'_>)],
        ttl: Option<Ttl>,
    ) -> Result<(), KvError> {
        for (key, value) in entries {
            self.write(*key, *value, ttl).await?;
        }
        Ok(())
    }

    /// `delete_many`: removes `keys`; how many live keys were removed (a repeated key counts
    /// once). The default removes them one by one.
    async fn remove_many(&self, keys: &[Key<'_>]) -> Result<u64, KvError> {
        let mut removed = 0;
        for key in keys {
            removed += u64::from(self.remove(*key).await?);
        }
        Ok(removed)
    }

    /// `list_keys_page`. The default cuts the page out of [`list`](Self::list).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        Ok(KeyPage::cut(self.list(prefix).await?, start_after, limit))
    }

    /// `watch`: the changes under `prefix` from now on. The default: unsupported.
    async fn watch(&self, prefix: &str) -> Result<crate::WatchStream, KvError> {
        let _ = prefix;
        Err(KvError::Unsupported("watch".into()))
    }

    /// `capabilities`. The default declares [`max_value_bytes`](Self::max_value_bytes) and
    /// the contract's defaults for the rest.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.max_value_bytes())
    }
}

/// The entries of a batch write with each key once, holding the value it would end with if
/// the entries were written in order (the last one given), in the order of those last
/// occurrences: for stores whose batch write may not name a key twice (an SQL
/// `ON CONFLICT DO UPDATE`, an etcd transaction) or does not apply in order.
pub fn last_of_each<'k, 'v>(entries: &[(Key<'k>, Value<'v>)]) -> Vec<(Key<'k>, Value<'v>)> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, (key, _)) in entries.iter().enumerate() {
        last.insert(key.as_str(), i);
    }
    entries
        .iter()
        .enumerate()
        .filter(|(i, (key, _))| last.get(key.as_str()) == Some(i))
        .map(|(_, entry)| *entry)
        .collect()
}

/// Runs one operation of `store` inside its trace span, and records a failure as an event.
///
/// The span carries the store's kind, the operation and the namespace; never a key, a value or
/// a secret (keys may be personal data, and the span is for seeing where time goes).
async fn traced<S, T, F>(store: &S, op: &'static str, operation: F) -> Result<T, KvError>
where
    S: Store,
    F: Future<Output = Result<T, KvError>>,
{
    let span = tracing::debug_span!(
        "kv",
        store = S::KIND,
        op,
        namespace = store.namespace_name()
    );
    async move {
        let outcome = operation.await;
        if let Err(err) = &outcome {
            tracing::debug!(error = %err, retryable = err.is_retryable(), "operation failed");
        }
        outcome
    }
    .instrument(span)
    .await
}

/// What the [`impl_kv_backend!`](crate::impl_kv_backend) impl calls: each function validates
/// its inputs in the contract's order (key, value, TTL), then runs the store's operation in
/// its trace span.
pub mod checked {
    use super::{traced, Key, Store, Ttl, Value};
    use crate::KvError;

    /// `get`.
    pub async fn get<S: Store>(store: &S, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        traced(store, "get", async { store.read(Key::new(key)?).await }).await
    }

    /// `set`.
    pub async fn set<S: Store>(store: &S, key: &str, value: &[u8]) -> Result<(), KvError> {
        traced(store, "set", async {
            let key = Key::new(key)?;
            let value = Value::new(value, store.max_value_bytes())?;
            store.write(key, value, None).await
        })
        .await
    }

    /// `set_with_ttl`.
    pub async fn set_with_ttl<S: Store>(
        store: &S,
        key: &str,
        value: &[u8],
        ttl_ns: u64,
    ) -> Result<(), KvError> {
        traced(store, "set_with_ttl", async {
            let key = Key::new(key)?;
            let value = Value::new(value, store.max_value_bytes())?;
            let ttl = Ttl::from_nanos(ttl_ns)?;
            store.write(key, value, Some(ttl)).await
        })
        .await
    }

    /// `delete`.
    pub async fn delete<S: Store>(store: &S, key: &str) -> Result<bool, KvError> {
        traced(store, "delete", async {
            store.remove(Key::new(key)?).await
        })
        .await
    }

    /// `exists`.
    pub async fn exists<S: Store>(store: &S, key: &str) -> Result<bool, KvError> {
        traced(store, "exists", async {
            store.contains(Key::new(key)?).await
        })
        .await
    }

    /// `list_keys`: the prefix is not a key and is not validated.
    pub async fn list_keys<S: Store>(store: &S, prefix: &str) -> Result<Vec<String>, KvError> {
        traced(store, "list_keys", store.list(prefix)).await
    }

    /// `increment`.
    pub async fn increment<S: Store>(store: &S, key: &str, delta: i64) -> Result<i64, KvError> {
        traced(store, "increment", async {
            store.add(Key::new(key)?, delta).await
        })
        .await
    }

    /// `compare_and_swap`: key and `new` are validated whatever the outcome would be.
    pub async fn compare_and_swap<S: Store>(
        store: &S,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        traced(store, "compare_and_swap", async {
            let key = Key::new(key)?;
            let new = Value::new(new, store.max_value_bytes())?;
            store.swap_if(key, expected, new).await
        })
        .await
    }

    /// Every key of a batch, checked before anything is sent.
    fn keys<'a>(keys: &[&'a str]) -> Result<Vec<Key<'a>>, KvError> {
        keys.iter().map(|key| Key::new(key)).collect()
    }

    /// `get_many`.
    pub async fn get_many<S: Store>(
        store: &S,
        keys: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        traced(store, "get_many", async {
            let keys = self::keys(keys)?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            store.read_many(&keys).await
        })
        .await
    }

    /// `set_many`: every key and value, then the TTL, checked before anything is written.
    pub async fn set_many<S: Store>(
        store: &S,
        entries: &[(&str, &[u8])],
        ttl_ns: Option<u64>,
    ) -> Result<(), KvError> {
        traced(store, "set_many", async {
            let max_value_bytes = store.max_value_bytes();
            let entries = entries
                .iter()
                .map(|(key, value)| Ok((Key::new(key)?, Value::new(value, max_value_bytes)?)))
                .collect::<Result<Vec<_>, KvError>>()?;
            let ttl = ttl_ns.map(Ttl::from_nanos).transpose()?;
            if entries.is_empty() {
                return Ok(());
            }
            store.write_many(&entries, ttl).await
        })
        .await
    }

    /// `delete_many`.
    pub async fn delete_many<S: Store>(store: &S, keys: &[&str]) -> Result<u64, KvError> {
        traced(store, "delete_many", async {
            let keys = self::keys(keys)?;
            if keys.is_empty() {
                return Ok(0);
            }
            store.remove_many(&keys).await
        })
        .await
    }

    /// `list_keys_page`: neither the prefix nor `start_after` is a key, and neither is
    /// validated.
    pub async fn list_keys_page<S: Store>(
        store: &S,
        prefix: &str,
        start_after: Option<&str>,
        limit: std::num::NonZeroUsize,
    ) -> Result<crate::KeyPage, KvError> {
        traced(
            store,
            "list_keys_page",
            store.list_page(prefix, start_after, limit),
        )
        .await
    }
}

/// Implements [`KvBackend`](crate::KvBackend) for a type that implements
/// [`Store`](crate::store::Store): every call is validated, traced, then handed to the store.
///
/// ```text
/// kv_trait::impl_kv_backend!(MyStore);
/// ```
///
/// See the [`store`](crate::store) module for a whole example.
#[macro_export]
macro_rules! impl_kv_backend {
    ($store:ty) => {
        #[$crate::async_trait]
        impl $crate::KvBackend for $store {
            async fn get(
                &self,
                key: &str,
            ) -> ::std::result::Result<::std::option::Option<::std::vec::Vec<u8>>, $crate::KvError>
            {
                $crate::store::checked::get(self, key).await
            }
            async fn set(
                &self,
                key: &str,
                value: &[u8],
            ) -> ::std::result::Result<(), $crate::KvError> {
                $crate::store::checked::set(self, key, value).await
            }
            async fn set_with_ttl(
                &self,
                key: &str,
                value: &[u8],
                ttl_ns: u64,
            ) -> ::std::result::Result<(), $crate::KvError> {
                $crate::store::checked::set_with_ttl(self, key, value, ttl_ns).await
            }
            async fn delete(&self, key: &str) -> ::std::result::Result<bool, $crate::KvError> {
                $crate::store::checked::delete(self, key).await
            }
            async fn exists(&self, key: &str) -> ::std::result::Result<bool, $crate::KvError> {
                $crate::store::checked::exists(self, key).await
            }
            async fn list_keys(
                &self,
                prefix: &str,
            ) -> ::std::result::Result<::std::vec::Vec<::std::string::String>, $crate::KvError>
            {
                $crate::store::checked::list_keys(self, prefix).await
            }
            async fn increment(
                &self,
                key: &str,
                delta: i64,
            ) -> ::std::result::Result<i64, $crate::KvError> {
                $crate::store::checked::increment(self, key, delta).await
            }
            async fn compare_and_swap(
                &self,
                key: &str,
                expected: ::std::option::Option<&[u8]>,
                new: &[u8],
            ) -> ::std::result::Result<bool, $crate::KvError> {
                $crate::store::checked::compare_and_swap(self, key, expected, new).await
            }
            async fn get_many(
                &self,
                keys: &[&str],
            ) -> ::std::result::Result<
                ::std::vec::Vec<::std::option::Option<::std::vec::Vec<u8>>>,
                $crate::KvError,
            > {
                $crate::store::checked::get_many(self, keys).await
            }
            async fn set_many(
                &self,
                entries: &[(&str, &[u8])],
                ttl_ns: ::std::option::Option<u64>,
            ) -> ::std::result::Result<(), $crate::KvError> {
                $crate::store::checked::set_many(self, entries, ttl_ns).await
            }
            async fn delete_many(
                &self,
                keys: &[&str],
            ) -> ::std::result::Result<u64, $crate::KvError> {
                $crate::store::checked::delete_many(self, keys).await
            }
            async fn list_keys_page(
                &self,
                prefix: &str,
                start_after: ::std::option::Option<&str>,
                limit: ::std::num::NonZeroUsize,
            ) -> ::std::result::Result<$crate::KeyPage, $crate::KvError> {
                $crate::store::checked::list_keys_page(self, prefix, start_after, limit).await
            }
            async fn watch(
                &self,
                prefix: &str,
            ) -> ::std::result::Result<$crate::WatchStream, $crate::KvError> {
                $crate::store::Store::watch(self, prefix).await
            }
            fn capabilities(&self) -> $crate::Capabilities {
                $crate::store::Store::capabilities(self)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::KvBackend;

    /// Records what reached the store, so the tests can see what the checked layer let pass.
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
    }

    impl Recorder {
        fn record(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[crate::async_trait]
    impl Store for Recorder {
        const KIND: &'static str = "recorder";
        fn max_value_bytes(&self) -> usize {
            4
        }
        fn namespace_name(&self) -> &str {
            "ns"
        }
        async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
            self.record(format!("read {key:?}"));
            Ok(None)
        }
        async fn write(
            &self,
            key: Key<'_>,
            value: Value<'_>,
            ttl: Option<Ttl>,
        ) -> Result<(), KvError> {
            self.record(format!(
                "write {key:?} {value:?} {:?}",
                ttl.map(Ttl::as_nanos)
            ));
            Ok(())
        }
        async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
            self.record(format!("remove {key:?}"));
            Ok(false)
        }
        async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
            self.record(format!("contains {key:?}"));
            Ok(false)
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
            self.record(format!("list {prefix:?}"));
            Ok(vec![])
        }
        async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
            self.record(format!("add {key:?} {delta}"));
            Ok(delta)
        }
        async fn swap_if(
            &self,
            key: Key<'_>,
            expected: Option<&[u8]>,
            new: Value<'_>,
        ) -> Result<bool, KvError> {
            self.record(format!("swap_if {key:?} {expected:?} {new:?}"));
            Ok(false)
        }
    }

    crate::impl_kv_backend!(Recorder);

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn the_last_value_of_each_key_stays() {
        let key = |k| Key::new(k).unwrap();
        let value = |v: &'static [u8]| Value::new(v, 10).unwrap();
        let entries = [
            (key("a"), value(b"1")),
            (key("b"), value(b"2")),
            (key("a"), value(b"3")),
            (key("c"), value(b"4")),
        ];
        let distinct: Vec<(&str, &[u8])> = last_of_each(&entries)
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(distinct, [("b", &b"2"[..]), ("a", b"3"), ("c", b"4")]);
        assert!(last_of_each(&[]).is_empty());
    }

    #[test]
    fn invalid_input_never_reaches_the_store() {
        let store = Recorder::default();
        let long_key = "k".repeat(crate::MAX_KEY_BYTES + 1);
        block_on(async {
            assert!(matches!(store.get("").await, Err(KvError::InvalidKey(_))));
            assert!(store.exists(&long_key).await.is_err());
            assert!(store.delete("").await.is_err());
            assert!(store.increment("", 1).await.is_err());
            assert!(matches!(
                store.set("k", b"fives").await,
                Err(KvError::ValueTooLarge { size: 5, max: 4 })
            ));
            assert!(matches!(
                store.set_with_ttl("k", b"v", 0).await,
                Err(KvError::InvalidTtl(0))
            ));
            // Key before value before TTL.
            assert!(matches!(
                store.set_with_ttl("", b"fives", 0).await,
                Err(KvError::InvalidKey(_))
            ));
            assert!(matches!(
                store.set_with_ttl("k", b"fives", 0).await,
                Err(KvError::ValueTooLarge { .. })
            ));
            // CAS validates `new` even when `expected` could never match.
            assert!(store
                .compare_and_swap("k", Some(b"x"), b"fives")
                .await
                .is_err());
        });
        assert_eq!(store.calls(), Vec::<String>::new());
    }

    #[test]
    fn valid_input_reaches_the_store_unchanged() {
        let store = Recorder::default();
        block_on(async {
            store.get("k").await.unwrap();
            store.set("k", b"four").await.unwrap();
            store.set_with_ttl("k", b"", u64::MAX).await.unwrap();
            store.list_keys("").await.unwrap();
            store.list_keys(&"p".repeat(2000)).await.unwrap();
            assert_eq!(store.increment("n", -3).await.unwrap(), -3);
            store.compare_and_swap("k", None, b"v").await.unwrap();
        });
        let calls = store.calls();
        assert_eq!(calls[0], "read \"k\"");
        assert_eq!(calls[1], "write \"k\" Value(4 bytes) None");
        assert_eq!(
            calls[2],
            format!("write \"k\" Value(0 bytes) Some({})", u64::MAX)
        );
        assert_eq!(calls[3], "list \"\"");
        assert!(calls[4].starts_with("list \"ppp"));
        assert_eq!(calls[5], "add \"n\" -3");
        assert_eq!(calls[6], "swap_if \"k\" None Value(1 bytes)");
    }

    #[test]
    fn a_deadline_is_read_when_asked_not_when_the_ttl_was_made() {
        let ttl = Ttl::from_nanos(1_000_000).unwrap();
        let made = crate::unix_millis_now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Asked 20 ms after the TTL was made: the deadline counts from the asking.
        assert!(ttl.unix_deadline_ms() >= made + 20);
        let before = monotonic_now();
        let deadline = ttl.instant_deadline().unwrap();
        assert!(deadline >= before + std::time::Duration::from_millis(1));
        assert_eq!(Ttl::from_nanos(2_000_001).unwrap().millis_ceil(), 3);
    }
}
