//! Raw redis-rs: one multiplexed connection (a cluster connection for a cluster), `GET`,
//! `SET`, `INCRBY`, and a compare-and-swap script, on keys under a prefix of the run's own.
//!
//! Batches are one `MGET` or `MSET` of all their keys: one round trip on a server. In a
//! cluster a command may only name keys of one slot (else `CROSSSLOT`), and the batch's keys
//! hash to many; redis-rs 1.8's cluster connection handles that itself (checked in its
//! source, `cluster_handling/routing.rs`: `MGET` and `MSET` route as `MultiShard`, split into
//! one command per slot, sent to their primaries at once, `MGET`'s answers put back in the
//! order asked by `combine_and_sort_array_results`, `MSET` answered once all parts
//! succeeded). Grouping by slot by hand would send the same commands, since keys of
//! different slots cannot share one even on the same node. As on a server, an `MSET` is
//! atomic only within each slot's part.

use kv_trait::{KvBackend, KvError};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError, Script};

use crate::cli::bench::driver::Driver;

/// Swaps `KEYS[1]` to `ARGV[3]` when it holds `ARGV[2]` (`ARGV[1] == "1"`) or is absent
/// (`ARGV[1] == "0"`); returns 1 when it swapped. A script, so it is one round trip and atomic.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '0' then matches = (current == false) else matches = (current == ARGV[2]) end
if matches then redis.call('SET', KEYS[1], ARGV[3]) return 1 end
return 0";

/// A connection to a server or a cluster.
#[derive(Clone)]
enum Connection {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// The raw Redis side: a connection and the prefix its keys live under.
pub(crate) struct RawRedis {
    connection: Connection,
    prefix: String,
    cas: Script,
}

impl RawRedis {
    /// Connects to the server or cluster `url` names (kvkit's options are left out).
    pub(crate) async fn open(url: &str, run_id: &str) -> Result<Self, KvError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| KvError::InvalidConfig(format!("not a Redis URL: {url}")))?;
        let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
        let connection = match scheme.strip_suffix("+cluster") {
            None => {
                let client = redis::Client::open(format!("{scheme}://{rest}")).map_err(failed)?;
                Connection::Server(
                    client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(failed)?,
                )
            }
            Some(plain) => {
                let client = ClusterClient::new(node_urls(plain, rest)).map_err(failed)?;
                Connection::Cluster(client.get_async_connection().await.map_err(failed)?)
            }
        };
        Ok(Self {
            connection,
            prefix: format!("{run_id}:raw:"),
            cas: Script::new(CAS_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, KvError> {
        match self.connection.clone() {
            Connection::Server(mut conn) => command.query_async(&mut conn).await,
            Connection::Cluster(mut conn) => command.query_async(&mut conn).await,
        }
        .map_err(failed)
    }

    async fn swap(
        &self,
        key: String,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let mut invocation = self.cas.key(key);
        invocation
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new);
        let swapped: i64 = match self.connection.clone() {
            Connection::Server(mut conn) => invoke(&invocation, &mut conn).await,
            Connection::Cluster(mut conn) => invoke(&invocation, &mut conn).await,
        }
        .map_err(failed)?;
        Ok(swapped == 1)
    }
}

async fn invoke<C: ConnectionLike + Send>(
    invocation: &redis::ScriptInvocation<'_>,
    conn: &mut C,
) -> Result<i64, RedisError> {
    invocation.invoke_async(conn).await
}

/// `redis+cluster://user:pw@a:1,b:2` as one URL per node, each with the credentials.
fn node_urls(scheme: &str, rest: &str) -> Vec<String> {
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    hosts
        .trim_end_matches('/')
        .split(',')
        .map(|host| format!("{scheme}://{credentials}{host}"))
        .collect()
}

fn failed(err: RedisError) -> KvError {
    // INCRBY on a value that is not a decimal integer: "ERR value is not an integer...".
    if err.to_string().contains("not an integer") {
        return KvError::NotAnInteger;
    }
    KvError::backend(err)
}

impl Driver for RawRedis {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.query(redis::cmd("GET").arg(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.query(redis::cmd("SET").arg(self.key(key)).arg(value))
            .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.query(redis::cmd("INCRBY").arg(self.key(key)).arg(delta))
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.swap(self.key(key), expected, new).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        // `MGET` with no key is a syntax error: an empty batch answers itself.
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for key in keys {
            mget.arg(self.key(key));
        }
        self.query(&mget).await
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        if entries.is_empty() {
            return Ok(());
        }
        // A key given twice keeps its last value: `MSET` sets its pairs in order.
        let mut mset = redis::cmd("MSET");
        for (key, value) in entries {
            mset.arg(self.key(key)).arg(*value);
        }
        self.query(&mset).await
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, keys: Vec<String>) -> Result<(), KvError> {
        // One DEL per key: in a cluster, keys live in different slots.
        for key in keys {
            let _: i64 = self.query(redis::cmd("DEL").arg(self.key(&key))).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_become_one_url_per_node() {
        assert_eq!(
            node_urls("redis", ":pw@127.0.0.1:7000,127.0.0.1:7001/"),
            ["redis://:pw@127.0.0.1:7000", "redis://:pw@127.0.0.1:7001"]
        );
        assert_eq!(node_urls("rediss", "h:1"), ["rediss://h:1"]);
    }
}
