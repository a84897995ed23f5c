//! The raw clients `kvkit bench --raw` compares the adapters with: for each store, the
//! simplest correct code an application would write by hand with that store's own Rust
//! client, doing what the adapter's operation does (`get`, `set`, `increment`,
//! `compare_and_swap`) on the same keys and values.

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

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, keys: Vec<String>) -> Result<(), KvError> {
        each!(self, raw => raw.clean_up(keys).await)
    }
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
