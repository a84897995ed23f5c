//! The `KvBackend` trait: one async interface to any key-value store, and the contract every
//! kvkit adapter keeps.
//!
//! This crate holds the trait, its error type [`KvError`], and the shared core every adapter is
//! built on: the [`store`] module's [`Store`](store::Store) trait of already-validated
//! operations, which [`impl_kv_backend!`] turns into a `KvBackend` that validates and traces
//! every call; the clock ([`unix_millis_now`], [`monotonic_now`], [`store::Ttl`]'s
//! deadlines); the counter encoding ([`parse_counter`], [`format_counter`],
//! [`apply_increment`]); [`url_config`], the one URL parser and secret redactor; and the
//! [`watch`] module's change stream types with [`ChangeFeed`], the feed in-process stores
//! serve `watch` from. The `kv-conformance` crate checks a backend against every rule below;
//! `kv-layers` puts timeouts, retries, limits, metrics and faults around any backend.
//!
//! # Writing a backend
//!
//! Implement [`store::Store`] and write `kv_trait::impl_kv_backend!(YourStore);`. Your
//! operations then receive a [`store::Key`], a [`store::Value`] and a [`store::Ttl`] that
//! already passed the rules below, in the contract's order, and each call gets a `tracing`
//! span. (Implementing `KvBackend` by hand is possible too; then every rule is yours to
//! check.)
//!
//! # Tracing
//!
//! Every operation of a backend built this way runs in a `tracing` span named `kv`, at
//! `DEBUG` level, with the fields `store` (`"sqlite"`, `"redis"`...), `op` (`"get"`,
//! `"compare_and_swap"`...) and `namespace`; a failed operation adds a `DEBUG` event with the
//! error and whether it is retryable. Keys, values and secrets are never recorded. Adapters add
//! events for the decisions that matter (retries, reconnects, cluster redirects, aborted
//! transactions, batch sizes); their crate docs list them. Nothing is printed unless the
//! application installs a subscriber, for example with `tracing-subscriber`:
//!
//! ```text
//! tracing_subscriber::fmt().with_env_filter("kv_trait=debug,kv_sqlite=debug").init();
//! ```
//!
//! ```
//! use kv_trait::{KvBackend, KvError};
//!
//! async fn visit(store: &dyn KvBackend, page: &str) -> Result<i64, KvError> {
//!     let key = format!("visits/{page}");
//!     let n = store.increment(&key, 1).await?;
//!     assert_eq!(store.get(&key).await?, Some(n.to_string().into_bytes()));
//!     Ok(n)
//! }
//! ```
//!
//! # The contract
//!
//! ## Errors
//!
//! Every operation returns a [`KvError`]; see its variants for when each applies. When a call
//! has several invalid inputs, any one of their errors may be returned (the adapters here check
//! key, then value, then TTL). [`KvError::is_retryable`] is true for `Unavailable` only. An
//! operation that returns an error has changed nothing, except where `Unavailable` hides whether
//! a write reached the store (a lost reply); each adapter documents where that can happen. No
//! operation panics on any input.
//!
//! ## Keys
//!
//! - A key is a non-empty UTF-8 string of at most [`MAX_KEY_BYTES`] (1024) bytes.
//! - Every such key is accepted and stored exactly: any Unicode scalar value is allowed,
//!   including NUL, control characters, `*`, `?`, `[`, `]`, `%`, `_`, `\`, `/`, `:`, spaces
//!   and non-ASCII. Case is significant. A key read back from `list_keys` is byte-for-byte the
//!   key written.
//! - The empty key and over-long keys fail with [`KvError::InvalidKey`], before anything is
//!   sent to the store.
//!
//! ## Values
//!
//! - A value is any byte string, including the empty one and bytes that are not UTF-8.
//!   `get` of a key set to `b""` is `Some(vec![])`, never `None`.
//! - Each backend declares its maximum value length: [`DEFAULT_MAX_VALUE_BYTES`] (1 MiB) unless
//!   the store cannot hold that much, and never below [`MIN_MAX_VALUE_BYTES`] (64 KiB). A longer
//!   value fails with [`KvError::ValueTooLarge`] and nothing is written: the previous value, if
//!   any, is untouched.
//!
//! ## Expiry (TTL)
//!
//! - `set_with_ttl(k, v, ttl_ns)` writes `v` and makes the key expire `ttl_ns` nanoseconds
//!   later. `ttl_ns == 0` fails with `InvalidTtl(0)`. Any other value, up to `u64::MAX`, is
//!   accepted; a deadline beyond what the store can represent saturates to "effectively never":
//!   no overflow, no error, no immediate expiry.
//! - *Never early*: a read that ends before `call_start + ttl_ns` sees the key (`call_start`
//!   is when the `set_with_ttl` call began). A read still running at the deadline may go
//!   either way; see "the clock" under the decisions below.
//! - *Never much late*: a read that starts after `call_end + ttl_ns + granularity` does not see
//!   it, where `granularity` is the backend's declared rounding (at most 1 ms for the adapters
//!   here). Rounding of the TTL is always upward.
//! - An expired key is absent for every operation: `get` is `None`, `exists` is false, `delete`
//!   returns false, `list_keys` omits it, `increment` starts from 0, CAS with `expected = None`
//!   succeeds, CAS with `Some(_)` fails.
//! - `set` on a key removes any TTL it had. A successful `compare_and_swap` writes the new
//!   value with no TTL. `increment` on a live key keeps that key's TTL unchanged; `increment`
//!   that creates the key creates it without TTL. `set_with_ttl` on a key replaces its TTL.
//!
//! ## Operations
//!
//! - `get(k)`: the live value, or `None`.
//! - `set(k, v)`: writes unconditionally; last writer wins.
//! - `delete(k)`: removes the key; `true` iff a live key was removed.
//! - `exists(k)`: `true` iff the key is live.
//! - `list_keys(prefix)`: every live key that starts with `prefix` (a byte prefix: no
//!   wildcards, no case folding; `""` lists all), each once, sorted ascending by bytes (the
//!   order of Rust's `String`). The prefix is not validated as a key: `""` and prefixes longer
//!   than [`MAX_KEY_BYTES`] are fine (the latter simply match nothing).
//! - `increment(k, delta)`: values are counters when they are the canonical decimal form of an
//!   `i64`, exactly what `i64::to_string` produces (see [`parse_counter`]). Absent key: stores
//!   `delta` and returns it. Live counter `n`: stores and returns `n + delta`. Live non-counter:
//!   `NotAnInteger`, nothing changes. A result outside `i64`: `IntegerOverflow`, nothing
//!   changes. The stored value is always canonical decimal bytes, so `get` returns e.g.
//!   `b"42"`, the same encoding as Redis `INCRBY`.
//! - `compare_and_swap(k, expected, new)`: `expected = None` succeeds iff the key is absent (or
//!   expired); `expected = Some(e)` succeeds iff the key is live and its value equals `e` byte
//!   for byte (`Some(b"")` is not `None`). On success writes `new` (no TTL) and returns `true`;
//!   otherwise returns `false` and changes nothing. Key and `new` are validated first, whatever
//!   the outcome would be.
//!
//! ## Batches and pages
//!
//! - `get_many(keys)`: the live values, in the order asked; a key asked twice is answered
//!   twice. `set_many(entries, ttl_ns)`: writes every entry in order (a key given twice keeps
//!   its last value), each with the TTL, or none for `None` (as `set`). `delete_many(keys)`:
//!   removes them; returns how many live keys it removed (a key given twice counts once).
//! - Every key, value and TTL of a batch is checked before anything is read or written: a
//!   batch with one invalid input fails with that input's error and changes nothing. An empty
//!   batch succeeds without reaching the store.
//! - Each key's part of a batch is linearizable, as the single operation is; the batch as a
//!   whole is not atomic unless [`Capabilities::atomic_batches`] says so: other callers may
//!   see part of it, and a failure (`Unavailable` above all) may leave part of it applied.
//!   Batches larger than a store's own limit are split by the adapter, never refused.
//! - `list_keys_page(prefix, start_after, limit)`: the live keys with the prefix that sort
//!   after `start_after` (any string), ascending by bytes, at most `limit` (a `NonZeroUsize`:
//!   a page of nothing is not a question). `next` is the `start_after` of the next page, or
//!   `None` once the listing is complete; a page may hold fewer than `limit` keys, even none,
//!   and not be the last. Across the pages of one listing, every key live for the whole
//!   listing appears exactly once and every key absent for the whole listing never appears;
//!   the rest may go either way, as for `list_keys`.
//! - [`KvBackend::capabilities`] declares the maximum value size, the TTL granularity, whether
//!   batches are atomic, who may share the store ([`Sharing`]) and whether batches and paging
//!   are native. A backend that declares nothing gets the contract's defaults. The
//!   conformance kit derives its profile from the declaration and fails a backend whose
//!   declaration is false.
//!
//! ```
//! use std::num::NonZeroUsize;
//! use kv_trait::{KvBackend, KvError};
//!
//! /// Copies every key under `from/` to `to/`, a page of 500 at a time: memory stays bounded
//! /// by the page, whatever the number of keys (on stores with native paging).
//! async fn copy(store: &dyn KvBackend) -> Result<u64, KvError> {
//!     let page_size = NonZeroUsize::new(500).expect("not zero");
//!     let (mut after, mut copied) = (None, 0);
//!     loop {
//!         let page = store.list_keys_page("from/", after.as_deref(), page_size).await?;
//!         let names: Vec<&str> = page.keys.iter().map(String::as_str).collect();
//!         let values = store.get_many(&names).await?;
//!         let targets: Vec<String> = names.iter().map(|k| k.replacen("from/", "to/", 1)).collect();
//!         let entries: Vec<(&str, &[u8])> = targets
//!             .iter()
//!             .zip(&values)
//!             .filter_map(|(key, value)| Some((key.as_str(), value.as_deref()?)))
//!             .collect();
//!         store.set_many(&entries, None).await?;
//!         copied += entries.len() as u64;
//!         match page.next {
//!             Some(next) => after = Some(next),
//!             None => return Ok(copied),
//!         }
//!     }
//! }
//! ```
//!
//! ## Watch
//!
//! - `watch(prefix)` returns a stream of [`WatchEvent`]s for the keys starting with `prefix`,
//!   from the moment it returned: every change (a write, or the removal of a live key) of
//!   such a key appears once, in the order the key's changes took effect; keys outside the
//!   prefix or the namespace never appear. Changes of different keys may arrive in any
//!   relative order.
//! - Where a store cannot keep that promise (the watcher fell behind, a connection dropped
//!   and events were lost), the stream yields [`WatchEvent::Lagged`] at that point instead of
//!   a silent gap, and goes on; the watcher re-reads what it needs.
//! - [`Capabilities::watch`] declares whose writes a watcher sees ([`WatchScope`]): none
//!   (`watch` fails with [`KvError::Unsupported`]), those of this process's handles, those of
//!   every handle that announces its writes, or every writer of the store. Expiry appears as [`WatchEvent::Expired`] only on stores that report
//!   it; their docs say so.
//!
//! ## Consistency
//!
//! - Every operation on a single key is linearizable across all tasks, threads, processes and
//!   backend instances that point at the same store and namespace: concurrent increments never
//!   lose an update and each returns a distinct result; of concurrent CAS calls with the same
//!   `expected`, at most one succeeds; a completed write is visible to every read that starts
//!   after it.
//! - `list_keys` is not a snapshot across keys: it includes every key that was live for the
//!   whole call and excludes every key that was absent for the whole call; keys written or
//!   removed during the call may go either way.
//!
//! ## Namespaces
//!
//! Every adapter that talks to a shared server or file accepts a namespace. Two backends with
//! different namespaces never see each other's keys; `list_keys("")` lists only its own
//! namespace and returns keys without the namespace part.
//!
//! ## Hygiene
//!
//! - `Debug` output never contains a password, token or secret key.
//! - Keys and values reach the store as data (bound parameters, attribute values, escaped
//!   patterns), never spliced into a query, script or glob unescaped.
//! - Blocking work runs off the async executor's worker threads.
//! - A networked adapter has a bounded, configurable timeout on every request and reconnects
//!   after a dropped connection without the caller rebuilding the backend.
//!
//! # Decisions where the contract left room
//!
//! - **Configuration errors.** Constructors need an error for a malformed URL or option that is
//!   none of the contract's kinds; [`KvError::InvalidConfig`] is that error. The enum is
//!   `#[non_exhaustive]`, so adding it breaks no caller, and the eight operations never
//!   return it.
//! - **`set_with_ttl` on a live key** replaces both value and TTL (like Redis `SET PX`); the
//!   contract only says what `set`, CAS and `increment` do to a TTL.
//! - **Long prefixes.** A `list_keys` prefix longer than [`MAX_KEY_BYTES`] is not an error; no
//!   key can start with it, so the result is empty.
//! - **Expired leftovers.** Where a store keeps an expired entry until it is reclaimed (SQLite,
//!   RocksDB, DynamoDB), `delete` of that key removes the leftover too and still returns
//!   `false`. So a caller that deletes every key it wrote leaves nothing behind; the
//!   conformance kit cleans up after itself this way.
//! - **Shorter keys behind a prefix.** Every adapter here accepts every key of up to
//!   [`MAX_KEY_BYTES`]. A layer that puts a prefix before every key (kv-layers' `Prefixed`)
//!   cannot: the store's 1024 bytes hold the prefix too. Rather than refuse such layers or
//!   hash long keys (which `list_keys` could not give back), a backend may declare a smaller
//!   [`Capabilities::max_key_bytes`]; longer keys then fail with `InvalidKey` before anything is
//!   sent, and the conformance kit checks the declared maximum instead of 1024. Code that must
//!   take any 1024-byte key checks the declaration.
//! - **Watch where the store's own notifications carry no value.** The contract asks for each
//!   change with its value, once and in each key's order. Redis's keyspace notifications name
//!   a changed key but not its value, and a value read when the notification arrives may be a
//!   later one, so they cannot keep that promise. Rather than weaken the promise (a "latest
//!   value" event the kit could not check exactly), such a store's writes announce their own
//!   changes when opened with its watch option, and the store declares
//!   [`WatchScope::Announcing`]: every handle that announces is heard, in any process, and
//!   other clients of the store are not.
//! - **The empty namespace of a key-prefix store.** Where a namespace is a key prefix (Redis),
//!   the empty namespace, the default, is the raw keyspace with no prefix, so that plain data
//!   and other Redis clients interoperate. It therefore sees every key of the database,
//!   namespaced ones included; every two *non-empty* namespaces are isolated (prefixes are
//!   escaped so none is a prefix of another). Stores whose namespace is a separate column or
//!   partition (SQLite, RocksDB, DynamoDB, memory) isolate the empty namespace like any other.
//!   The conformance kit always runs in non-empty namespaces.
//! - **Lost replies.** `Unavailable` from `increment`, `compare_and_swap` or `delete` on a
//!   networked store may hide a write that happened (the reply was lost); the adapters never
//!   retry those blindly, since a resent `INCRBY` or `ADD` would count twice.
//! - **What `delete_many` returns.** A count of the live keys removed, not one `bool` per key:
//!   every store here reports a count natively (Redis `DEL`, SQL's row count), a count is
//!   what callers of a batch delete ask for, and per-key answers would cost DynamoDB its
//!   batch request.
//! - **When the clock is read.** The contract first said a read that *starts* before the
//!   deadline sees the key. Taken literally, a read that waited (for a lock, a queue, a retry)
//!   past the deadline would have to judge liveness by a clock read before it waited, and
//!   could then return a value that had already expired for every other operation: not
//!   linearizable. So a store reads the clock at the moment it decides, after any wait, and
//!   "never early" covers reads that *end* before `call_start + ttl_ns` (which is what the
//!   conformance kit has always checked). Deadlines are read the same way, where the write
//!   takes effect: later than `call_start`, so never early, and before the call returns, so
//!   never much late. The [`store`] module is the one place adapters read a clock. The other
//!   side of it: a read that finds an entry past its deadline must not answer "gone" while a
//!   `compare_and_swap` or `increment` that judged the entry live just before the deadline
//!   has yet to commit, since that write took effect first. So every adapter's read of an
//!   expired entry orders itself after such a write (it reads again under the key's lock or
//!   in the write queue, or deletes the entry conditional on the state it saw).
//! - **What "acknowledged" keeps.** An `Ok` write survives a crash or a failover only as far
//!   as the store promises. Consensus (etcd) and a single durable node (SQLite, RocksDB,
//!   PostgreSQL, Redis with `appendfsync always`) keep every acknowledged write, and their
//!   tests demand it. Asynchronous replication (Redis Cluster, a Redis primary with
//!   replicas) can lose a write acknowledged just before the primary died: kv-redis documents
//!   the window and offers `wait_for_replicas`, under which a write succeeds only once
//!   replicas have it and is `Unavailable` (may or may not have taken effect) otherwise.
//! - **Granularity and the clock.** Deadlines are measured on the clock of whatever decides
//!   expiry (the process for in-process stores, the wall clock for files shared between
//!   processes, the server for Redis and PostgreSQL). "Never much late" assumes that clock is
//!   not stepped backwards while a key is alive. The two clocks of one machine can disagree
//!   on rate (a wall clock slewed or stepped into line; on the machine this project is tested
//!   on it once ran 0.5% fast), so the conformance kit reads both and judges a read only when
//!   both agree the contract decides it.

#![deny(missing_docs)]

mod batch;
mod counter;
mod error;
mod key;
mod limit;
pub mod store;
mod ttl;
pub mod url_config;
mod value;
pub mod watch;

use std::fmt::Debug;
use std::num::NonZeroUsize;
use std::sync::Arc;

pub use async_trait::async_trait;

pub use batch::{Capabilities, KeyPage, Sharing};
pub use counter::{apply_increment, format_counter, parse_counter};
pub use error::{BoxError, KvError, NotSent};
pub use key::{validate_key, validate_key_up_to, MAX_KEY_BYTES};
pub use limit::{
    check_max_concurrent_requests, Place, RequestLimit, WithinLimit,
    LARGEST_MAX_CONCURRENT_REQUESTS,
};
pub use store::monotonic_now;
pub use ttl::{
    instant_deadline, is_live_at, round_up_ttl, ttl_millis_ceil, unix_deadline_ms, unix_millis,
    unix_millis_now, validate_ttl, NEVER_UNIX_MS,
};
pub use value::{
    check_max_value_bytes, check_timeouts, check_value_size, DEFAULT_MAX_VALUE_BYTES,
    MIN_MAX_VALUE_BYTES,
};
pub use watch::{ChangeFeed, WatchEvent, WatchScope, WatchStream};

/// An async key-value store that keeps the contract described in the [crate docs](crate).
///
/// Object safe: `Arc<dyn KvBackend>` works wherever a backend is expected, and so do `Box<T>`
/// and `&T` of any backend.
///
/// Implementations use [`macro@async_trait`]; write `#[kv_trait::async_trait]` on the `impl` block.
#[async_trait]
pub trait KvBackend: Send + Sync + Debug {
    /// The live value of `key`, or `None` when it is absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Writes `value` under `key` unconditionally and removes any TTL the key had.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;

    /// Writes `value` under `key`, expiring `ttl_ns` nanoseconds after the call began
    /// (rounded up to the backend's granularity; saturating to "never" when too large).
    /// `ttl_ns == 0` fails with [`KvError::InvalidTtl`].
    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError>;

    /// Removes `key`; `true` iff a live key was removed.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;

    /// `true` iff `key` is live.
    async fn exists(&self, key: &str) -> Result<bool, KvError>;

    /// Every live key starting with the byte prefix `prefix`, each once, sorted by bytes.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError>;

    /// Adds `delta` to the counter at `key` (absent keys start from 0) and returns the new value.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError>;

    /// Writes `new` (with no TTL) iff the key's live value equals `expected` (`None`: the key is
    /// absent); returns whether it did.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError>;

    /// The live values of `keys`, in the order asked (a key asked twice is answered twice).
    /// Every key is checked before anything is read. The default calls [`get`](Self::get)
    /// once per key.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        for key in keys {
            validate_key(key)?;
        }
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

    /// Writes every `(key, value)` of `entries`, in order (of a key given twice, the last
    /// value stays), each with the TTL `ttl_ns` (`None`: no TTL, as [`set`](Self::set)).
    /// Every key, value and the TTL are checked before anything is written. The default
    /// calls `set` or `set_with_ttl` once per entry.
    async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl_ns: Option<u64>,
    ) -> Result<(), KvError> {
        let max_value_bytes = self.capabilities().max_value_bytes;
        for (key, value) in entries {
            validate_key(key)?;
            check_value_size(value, max_value_bytes)?;
        }
        if let Some(ttl_ns) = ttl_ns {
            validate_ttl(ttl_ns)?;
        }
        for (key, value) in entries {
            match ttl_ns {
                Some(ttl_ns) => self.set_with_ttl(key, value, ttl_ns).await?,
                None => self.set(key, value).await?,
            }
        }
        Ok(())
    }

    /// Removes every key of `keys`; returns how many live keys it removed (a key given twice
    /// counts once). Every key is checked before anything is removed. The default calls
    /// [`delete`](Self::delete) once per key.
    async fn delete_many(&self, keys: &[&str]) -> Result<u64, KvError> {
        for key in keys {
            validate_key(key)?;
        }
        let mut removed = 0;
        for key in keys {
            removed += u64::from(self.delete(key).await?);
        }
        Ok(removed)
    }

    /// One page of [`list_keys`](Self::list_keys): the live keys starting with `prefix` that
    /// sort after `start_after` (any string, a key or not; `None`: from the first), ascending
    /// by bytes, at most `limit`. Continue from the page's [`next`](KeyPage::next) while it is
    /// `Some`. Every key live for the whole listing appears on exactly one page; keys written
    /// or removed meanwhile may go either way. The default cuts the page out of a whole
    /// `list_keys`; see [`Capabilities::native_paging`].
    async fn list_keys_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        let keys = self.list_keys(prefix).await?;
        Ok(KeyPage::cut(keys, start_after, limit))
    }

    /// The changes of keys starting with `prefix` from now on: each key's changes in the order
    /// they took effect, each once, or [`WatchEvent::Lagged`] where some may be missing (see
    /// the [`watch`] module). [`Capabilities::watch`] says whose writes it reports; the
    /// default is [`KvError::Unsupported`].
    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        let _ = prefix;
        Err(KvError::Unsupported("watch".into()))
    }

    /// What this backend declares about itself (see [`Capabilities`]; the kit checks it).
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
}

/// Forwards every operation to the backend behind a pointer-like wrapper.
macro_rules! forward_backend {
    ($($wrapper:ty),+) => {$(
        #[async_trait]
        impl<T: KvBackend + ?Sized> KvBackend for $wrapper {
            async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
                (**self).get(key).await
            }
            async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
                (**self).set(key, value).await
            }
            async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
                (**self).set_with_ttl(key, value, ttl_ns).await
            }
            async fn delete(&self, key: &str) -> Result<bool, KvError> {
                (**self).delete(key).await
            }
            async fn exists(&self, key: &str) -> Result<bool, KvError> {
                (**self).exists(key).await
            }
            async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
                (**self).list_keys(prefix).await
            }
            async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
                (**self).increment(key, delta).await
            }
            async fn compare_and_swap(
                &self,
                key: &str,
                expected: Option<&[u8]>,
                new: &[u8],
            ) -> Result<bool, KvError> {
                (**self).compare_and_swap(key, expected, new).await
            }
            async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
                (**self).get_many(keys).await
            }
            async fn set_many(
                &self,
                entries: &[(&str, &[u8])],
                ttl_ns: Option<u64>,
            ) -> Result<(), KvError> {
                (**self).set_many(entries, ttl_ns).await
            }
            async fn delete_many(&self, keys: &[&str]) -> Result<u64, KvError> {
                (**self).delete_many(keys).await
            }
            async fn list_keys_page(
                &self,
                prefix: &str,
                start_after: Option<&str>,
                limit: NonZeroUsize,
            ) -> Result<KeyPage, KvError> {
                (**self).list_keys_page(prefix, start_after, limit).await
            }
            async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
                (**self).watch(prefix).await
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }
    )+};
}

forward_backend!(Arc<T>, Box<T>, &T);

#[cfg(test)]
mod tests {
    use super::*;

    /// The trait must stay object safe and the wrappers must be backends.
    #[allow(dead_code)]
    fn wrappers_are_backends(backend: Arc<dyn KvBackend>) {
        fn takes(_: impl KvBackend) {}
        takes(Arc::clone(&backend));
        takes(Box::new(Arc::clone(&backend)) as Box<dyn KvBackend>);
        takes(&*backend);
    }
}
