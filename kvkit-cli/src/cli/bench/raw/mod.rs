//! The raw clients `kvkit bench --raw` compares the adapters with: for each store, the
//! simplest correct code an application would write by hand with that store's own Rust
//! client, doing what the adapter's operation does (`get`, `set`, `increment`,
//! `compare_and_swap`) on the same keys and values.
//!
//! `get_many` and `set_many` are the store's own batch (Redis `MGET`/`MSET`, one SQLite
//! transaction, RocksDB `multi_get`/`WriteBatch`, DynamoDB `BatchGetItem`/`BatchWriteItem`,
//! PostgreSQL `= ANY`/`unnest` upsert, one etcd transaction), as a careful engineer writes it
//! by hand: values answered in the order asked, a repeated key handled as the store needs it
//! (the last value written), the store's limits on a request's size kept. Each module says
//! what its batches do and why.

#[cfg(feature = "dynamodb")]
pub(crate) mod dynamodb;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "rocksdb")]
mod rocksdb;
#[cfg(feature = "sqlite")]
mod sqlite;

use kv_trait::{KvBackend, KvError};

use super::driver::Driver;

/// The raw side of a comparison, whichever store it is.
pub(crate) enum RawDriver {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::RawSqlite),
    #[cfg(feature = "rocksdb")]
    RocksDb(rocksdb::RawRocksDb),
    #[cfg(feature = "redis")]
    Redis(redis::RawRedis),
    #[cfg(feature = "dynamodb")]
    DynamoDb(dynamodb::RawDynamoDb),
    #[cfg(feature = "postgres")]
    Postgres(postgres::RawPostgres),
    /// Boxed: an etcd client holds one gRPC client per etcd service.
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd::RawEtcd>),
}

/// The schemes with a raw client, for messages.
pub(crate) const SCHEMES: &str = "sqlite, rocksdb, redis, redis+cluster, dynamodb, postgres, etcd";

impl RawDriver {
    /// The raw client for the store at `url`, or `None` when kvkit has none for its scheme
    /// (the memory backend has no client of its own to compare with).
    ///
    /// `run_id` names what the raw side creates (Redis keys, DynamoDB items), so that it
    /// never meets the adapter's data or another run's.
    pub(crate) async fn open(
        scheme: &str,
        url: &str,
        run_id: &str,
        requests: &super::requests::RequestCounts,
    ) -> Result<Option<Self>, KvError> {
        let _ = (url, run_id, requests);
        Ok(Some(match scheme {
            #[cfg(feature = "sqlite")]
            "sqlite" => RawDriver::Sqlite(sqlite::RawSqlite::open(url)?),
            #[cfg(feature = "rocksdb")]
            "rocksdb" => RawDriver::RocksDb(rocksdb::RawRocksDb::open(url)?),
            #[cfg(feature = "redis")]
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
                RawDriver::Redis(redis::RawRedis::open(url, run_id).await?)
            }
            #[cfg(feature = "dynamodb")]
            "dynamodb" => {
                RawDriver::DynamoDb(dynamodb::RawDynamoDb::open(url, run_id, requests).await?)
            }
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => {
                RawDriver::Postgres(postgres::RawPostgres::open(url, run_id).await?)
            }
            #[cfg(feature = "etcd")]
            "etcd" => RawDriver::Etcd(Box::new(etcd::RawEtcd::open(url, run_id).await?)),
            _ => return Ok(None),
        }))
    }
}

/// Calls the same method on whichever raw client this is.
macro_rules! each {
    ($self:ident, $raw:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            RawDriver::Sqlite($raw) => $call,
            #[cfg(feature = "rocksdb")]
            RawDriver::RocksDb($raw) => $call,
            #[cfg(feature = "redis")]
            RawDriver::Redis($raw) => $call,
            #[cfg(feature = "dynamodb")]
            RawDriver::DynamoDb($raw) => $call,
            #[cfg(feature = "postgres")]
            RawDriver::Postgres($raw) => $call,
            #[cfg(feature = "etcd")]
            RawDriver::Etcd($raw) => $call,
        }
    };
}

impl Driver for RawDriver {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        each!(self, raw => raw.get(key).await)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        each!(self, raw => raw.set(key, value).await)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        each!(self, raw => raw.increment(key, delta).await)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        each!(self, raw => raw.compare_and_swap(key, expected, new).await)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        each!(self, raw => raw.get_many(keys).await)
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        each!(self, raw => raw.set_many(entries).await)
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, keys: Vec<String>) -> Result<(), KvError> {
        each!(self, raw => raw.clean_up(keys).await)
    }
}

/// Each key of `entries` once, with the last value given for it (as writing the entries in
/// order leaves it), sorted by key: for stores whose batch write refuses a key named twice
/// (DynamoDB, etcd, a PostgreSQL upsert), and for PostgreSQL, whose upserts lock rows in the
/// order given, a lock order every batch shares, so that concurrent batches over
/// overlapping keys cannot deadlock.
#[cfg_attr(
    not(any(feature = "dynamodb", feature = "postgres", feature = "etcd")),
    allow(dead_code)
)]
fn last_of_each_sorted<'a>(entries: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a [u8])> {
    // Inserting in order, a key given again replaces its earlier value.
    let last: std::collections::BTreeMap<&str, &[u8]> = entries.iter().copied().collect();
    last.into_iter().collect()
}

/// The counter after adding `delta` to `current` (absent counts as 0); `None` when the value
/// is not a decimal integer or the sum overflows. What an application parsing its own
/// counters writes.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "rocksdb", feature = "etcd")),
    allow(dead_code)
)]
fn next_counter(current: Option<&[u8]>, delta: i64) -> Option<i64> {
    let current = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes).ok()?.parse::<i64>().ok()?,
    };
    current.checked_add(delta)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::cli::bench::driver::Driver;

    #[test]
    fn a_batch_write_keeps_the_last_value_of_each_key_in_key_order() {
        let entries: [(&str, &[u8]); 4] = [("b", b"1"), ("a", b"2"), ("b", b"3"), ("c", b"4")];
        assert_eq!(
            last_of_each_sorted(&entries),
            [("a", &b"2"[..]), ("b", b"3"), ("c", b"4")]
        );
        assert!(last_of_each_sorted(&[]).is_empty());
    }

    /// The batches of a raw side answer in the order asked, repeated and missing keys
    /// included, and a key written twice in one batch keeps its last value (the in-process
    /// raw sides' tests call it).
    #[cfg_attr(not(any(feature = "sqlite", feature = "rocksdb")), allow(dead_code))]
    pub(crate) async fn batches_answer_in_the_order_asked(raw: &impl Driver) {
        raw.set_many(&[("b", b"2"), ("a", b"1"), ("c", b"x"), ("c", b"3")])
            .await
            .unwrap();
        let values = raw
            .get_many(&["c", "missing", "a", "b", "a"])
            .await
            .unwrap();
        let expected: [Option<&[u8]>; 5] = [Some(b"3"), None, Some(b"1"), Some(b"2"), Some(b"1")];
        assert_eq!(
            values,
            expected.map(|value| value.map(<[u8]>::to_vec)).to_vec()
        );
        assert!(raw.get_many(&[]).await.unwrap().is_empty());
    }
}
