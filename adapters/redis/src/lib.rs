//! `kv-redis`: a [`KvBackend`](kv_trait::KvBackend) over Redis, a standalone server or a Redis
//! Cluster, keeping the whole kvkit contract while storing plain Redis data.
//!
//! Pick it when several processes or machines share the data and Redis is at hand: counters
//! and compare-and-swap are linearizable across every client of the server, TTLs are Redis's
//! own expiry, and `redis-cli` reads and writes the same keys.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kv_trait::KvError> {
//! use kv_redis::RedisBackend;
//! use kv_trait::KvBackend;
//!
//! let store = RedisBackend::from_url("redis://:secret@cache.internal:6379/0?namespace=app").await?;
//! store.set_with_ttl("session/42", b"token", 30_000_000_000).await?; // Redis key `app:session/42`, PX 30000
//! let visits = store.increment("visits", 1).await?;                 // INCRBY: `redis-cli GET app:visits`
//! assert!(store.compare_and_swap("lock", None, b"me").await?);       // SET NX
//!
//! let cluster = RedisBackend::from_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000").await?;
//! # Ok(()) }
//! ```
//!
//! # Connecting
//!
//! - [`RedisBackend::from_url`]`(url)`, or [`RedisBackend::builder`]`(url)` /
//!   [`RedisBackendBuilder`] to change settings first, then `.build().await`.
//! - URLs: `redis://[user[:password]@]host[:port][/db]`, `rediss://...` (TLS, with the `tls`
//!   cargo feature; the application installs rustls's crypto provider first, as the README
//!   says), `redis+cluster://[user[:password]@]host:port[,host:port...]` and
//!   `rediss+cluster://...`. Options after `?`: `namespace`, `connect_timeout_ms` (default
//!   5000), `request_timeout_ms` (3000), `pool_size` (4) and `max_value_bytes` (1 MiB, from
//!   64 KiB to 512 MiB). Anything malformed or unknown is
//!   [`KvError::InvalidConfig`](kv_trait::KvError::InvalidConfig).
//! - `build` connects (so a wrong host fails there, with `Unavailable`, and a wrong password or
//!   database with `InvalidConfig`), speaking RESP3 when the server has `HELLO` (Redis 6+) and
//!   RESP2 otherwise. `Debug`, [`RedisBackend::endpoint`] and error messages never show the
//!   password.
//!
//! # The data in Redis
//!
//! | kvkit | Redis |
//! | --- | --- |
//! | key `k` in namespace `ns` | the string key [`namespace_prefix`]`(ns) + k`: `escape(ns) + ":" + k`, where `escape` writes `\` as `\\` and `:` as `\:` (`app` → `app:k`, `app:v2` → `app\:v2:k`) |
//! | key `k` in the empty namespace (the default) | the key `k` itself |
//! | value | the string's bytes, exactly (an empty value is an empty string) |
//! | TTL | the key's own expiry, `SET .. PX ms`, nanoseconds rounded **up** to milliseconds (`u64::MAX` ns is about 584 years, which Redis accepts) |
//! | counter | a Redis integer: canonical decimal text, what `INCRBY` reads and writes |
//!
//! Escaping makes every namespace's prefix end at its first unescaped `:`, so no namespace's
//! keys start with another's prefix (`a` and `a:b` are isolated). The one exception is the
//! empty namespace: it is the raw keyspace of the database, and so it sees, lists and can
//! delete every key in it, namespaced ones included (under their full Redis names). In a
//! cluster, a namespace containing a hash tag (`{tenant7}`) puts all its keys in one slot.
//!
//! # Operations and round trips
//!
//! | operation | standalone | cluster |
//! | --- | --- | --- |
//! | `get` | `GET`: 1 | 1 |
//! | `set` | `SET` (removes any TTL): 1 | 1 |
//! | `set_with_ttl` | `SET .. PX ms`: 1 | 1 |
//! | `delete` | `DEL`: 1 | 1 |
//! | `exists` | `EXISTS`: 1 | 1 |
//! | `increment` | a script: canonical-form check, then `INCRBY`: 1 (2 the first time on a server: `NOSCRIPT`, then `EVAL`) | 1 (2 the first time on a node) |
//! | `compare_and_swap(k, None, v)` | `SET k v NX`: 1 | 1 |
//! | `compare_and_swap(k, Some(e), v)` | `WATCH`+`GET`, then `MULTI`+`SET`+`EXEC`, on a dedicated connection: 2 (1 when the value differs; +1 to open a pooled connection) | a script on the key's primary: 1 (2 the first time on a node) |
//! | `list_keys(prefix)` | `SCAN cursor MATCH <escaped prefix>* COUNT 1000` to cursor 0: one per 1000 keys of the database | the same on every primary, concurrently |
//!
//! - **Counters.** The increment script refuses any value that is not the canonical form of an
//!   `i64` (`NotAnInteger`) and leaves the arithmetic and its overflow check to `INCRBY`
//!   (`IntegerOverflow`); it returns the stored string, never a Lua number, which is a double.
//!   Redis 7's own parser accepts exactly the canonical form (the tests pin this), so the
//!   check matters for servers that differ. `INCRBY` keeps the TTL, as the contract asks.
//! - **Compare-and-swap.** `WATCH` needs a connection no other task uses, so a small pool
//!   (`pool_size`) of dedicated connections serves it; an `EXEC` aborted by a concurrent write
//!   is retried after re-reading the key, never reported as a success or a mismatch. After 16
//!   aborts in a row (a stream of writes of the expected value itself) it runs the
//!   compare-and-swap script instead, which no write can interrupt. In cluster mode that script
//!   is the only way: it runs atomically on the key's primary, where `WATCH` would need a
//!   dedicated connection per node.
//! - **Listing** scans the whole database (in a cluster, every primary), matching on the
//!   server: its cost grows with the database, not with the namespace. Keys are deduplicated,
//!   sorted and stripped of the namespace; keys that are not UTF-8 (written by other clients)
//!   are left out, since no kvkit operation could name them.
//! - **Consistency.** Every operation goes to the primary that owns the key; replicas are never
//!   read, so a completed write is visible to every later read. Redis's replication is
//!   asynchronous: a write acknowledged by a primary that fails before its replicas copied it
//!   can be lost in a failover, as for any Redis client.
//!
//! # Connections, timeouts and errors
//!
//! - One multiplexed connection (one per node in a cluster) carries ordinary commands from all
//!   tasks and reconnects by itself; with RESP3 a dropped connection is noticed and replaced
//!   before the next request. Compare-and-swap's dedicated connections are kept while healthy.
//! - Every request is bounded by `request_timeout`; a timeout, a refused or lost connection
//!   is [`KvError::Unavailable`](kv_trait::KvError::Unavailable).
//! - Requests are resent only when Redis proves it did not run them: `ASK` (followed with
//!   `ASKING` to the node named) and `MOVED` during resharding, `TRYAGAIN`, `CLUSTERDOWN`,
//!   `LOADING`, `READONLY` after a failover. After a dropped connection reads are resent once;
//!   writes are not, because the lost reply may hide a write that ran: **a write that fails
//!   with `Unavailable` may or may not have been applied** (the contract's lost-reply case).
//! - `maxmemory` reached (`OOM`) is [`KvError::QuotaExceeded`](kv_trait::KvError::QuotaExceeded);
//!   anything else Redis refuses (`WRONGTYPE` on a key another client made a list, `NOPERM`)
//!   is [`KvError::Backend`](kv_trait::KvError::Backend).
//! - Commands used, for ACLs: `GET SET DEL EXISTS SCAN EVALSHA EVAL WATCH UNWATCH MULTI EXEC`
//!   (plus `INCRBY` inside the script).

mod backend;
mod client;
mod config;
mod encoding;
mod error;
mod pool;
mod scripts;

pub use backend::RedisBackend;
pub use config::{RedisBackendBuilder, Topology};
pub use encoding::namespace_prefix;
