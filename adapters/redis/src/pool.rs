//! Dedicated connections for `WATCH` transactions on a standalone server.
//!
//! `WATCH` belongs to a connection, not to a request: on the shared multiplexed connection,
//! another task's commands would run between this call's `WATCH` and `EXEC`, and its `EXEC`
//! or `UNWATCH` would end this call's watch. So `compare_and_swap` leases a connection that no
//! other call uses until it is given back. Connections are opened on demand, at most
//! `pool_size` at once, and kept for reuse only when the exchange on them completed cleanly;
//! one that failed, timed out, or whose call was dropped midway is closed, because its
//! transaction state is unknown.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Failure;

/// A pool of connections, each used by one call at a time.
pub(crate) struct WatchPool {
    client: Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    request_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
}

/// A connection waiting in the pool.
struct Idle {
    conn: MultiplexedConnection,
    /// Whether a `WATCH` may still be in force on it (a compare that did not match leaves one;
    /// the next lease clears it in the same round trip as its own `WATCH`).
    watching: bool,
}

impl WatchPool {
    pub(crate) fn new(
        client: Client,
        config: AsyncConnectionConfig,
        size: usize,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        Self {
            client,
            config,
            connect_timeout,
            request_timeout,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size),
        }
    }

    /// A connection for this call alone: an idle one, or a new one. Waits while `pool_size`
    /// calls hold one.
    /// The wait for a slot is bounded by the request timeout: a call never waits forever
    /// behind others that hang.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, Failure> {
        let slot = match tokio::time::timeout(self.request_timeout, self.slots.acquire()).await {
            Err(_) => return Err(Failure::TimedOut(self.request_timeout)),
            Ok(slot) => slot
                .map_err(|_| Failure::Kv(kv_trait::KvError::backend("the WATCH pool is closed")))?,
        };
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (conn, reused, watching) = match idle {
            Some(idle) => (idle.conn, true, idle.watching),
            None => (self.connect().await?, false, false),
        };
        Ok(Lease {
            pool: self,
            _slot: slot,
            conn,
            reused,
            watching,
        })
    }

    async fn connect(&self) -> Result<MultiplexedConnection, Failure> {
        let connecting = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config);
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(Failure::TimedOut(self.connect_timeout)),
        }
    }
}

/// What an `EXEC` reply says: `None` (nil) when the transaction was aborted, else one reply
/// per queued command. A command can fail inside a committed transaction (Redis runs the
/// rest): its reply is then an error, and the swap did not happen. (redis-rs 1.8 already turns
/// such a reply into an error of the whole pipeline; this does not depend on it.)
fn exec_outcome(reply: Option<Vec<Value>>) -> Result<bool, Failure> {
    let Some(replies) = reply else {
        tracing::debug!("EXEC aborted: the watched key changed; the swap did not happen");
        return Ok(false);
    };
    for reply in replies {
        reply.extract_error()?;
    }
    Ok(true)
}

/// One call's exclusive use of a pooled connection. Dropping it closes the connection;
/// [`Lease::keep`] gives it back.
pub(crate) struct Lease<'a> {
    pool: &'a WatchPool,
    _slot: SemaphorePermit<'a>,
    conn: MultiplexedConnection,
    /// Taken from the pool rather than opened for this call: it may have died while idle.
    reused: bool,
    watching: bool,
}

impl Lease<'_> {
    /// `WATCH key` and `GET key` in one round trip (after `UNWATCH` if a watch may linger).
    ///
    /// Nothing here writes, so when a connection taken from the pool turns out to be dead (the
    /// server closed it while idle), the same round trip is simply made on a new connection.
    pub(crate) async fn watch_and_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
        loop {
            let mut pipe = redis::pipe();
            if self.watching {
                pipe.cmd("UNWATCH").ignore();
            }
            pipe.cmd("WATCH").arg(key).ignore().cmd("GET").arg(key);
            let reply = tokio::time::timeout(
                self.pool.request_timeout,
                pipe.query_async::<(Option<Vec<u8>>,)>(&mut self.conn),
            )
            .await;
            match reply {
                Err(_) => return Err(Failure::TimedOut(self.pool.request_timeout)),
                Ok(Ok((value,))) => {
                    self.watching = true;
                    return Ok(value);
                }
                Ok(Err(err)) if self.reused && err.is_connection_dropped() => {
                    self.conn = self.pool.connect().await?;
                    self.reused = false;
                    self.watching = false;
                }
                Ok(Err(err)) => return Err(err.into()),
            }
        }
    }

    /// `MULTI`, `SET key new`, `EXEC` in one round trip. `true` when the transaction
    /// committed; `false` when `EXEC` aborted it (a watched key changed or expired since
    /// `WATCH`), in which case nothing was written.
    pub(crate) async fn set_if_unchanged(
        &mut self,
        key: &[u8],
        new: &[u8],
    ) -> Result<bool, Failure> {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("SET").arg(key).arg(new);
        let reply = tokio::time::timeout(
            self.pool.request_timeout,
            pipe.query_async::<Option<Vec<Value>>>(&mut self.conn),
        )
        .await;
        // `EXEC`, committed or aborted, ends every watch of the connection.
        self.watching = false;
        match reply {
            Err(_) => Err(Failure::TimedOut(self.pool.request_timeout)),
            Ok(reply) => exec_outcome(reply?),
        }
    }

    /// Gives the connection back for another call.
    pub(crate) fn keep(self) {
        let idle = Idle {
            conn: self.conn,
            watching: self.watching,
        };
        self.pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call waiting for a connection gives up after the request timeout when every
    /// connection of the pool stays leased (here by a call that never finishes).
    #[tokio::test]
    async fn waiting_for_a_watch_connection_times_out() {
        let Some(service) = kv_test_services::redis::standalone() else {
            return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by the services
        };
        let client = Client::open(service.url.as_str()).unwrap();
        let timeout = Duration::from_millis(200);
        let pool = WatchPool::new(client, AsyncConnectionConfig::new(), 1, timeout, timeout);
        let held = pool.lease().await.unwrap();
        let started = kv_trait::monotonic_now();
        let waited = pool.lease().await.map(|_| ());
        assert!(
            matches!(waited, Err(Failure::TimedOut(t)) if t == timeout),
            "{waited:?}"
        );
        let elapsed = started.elapsed();
        assert!(elapsed >= timeout && elapsed < timeout * 10, "{elapsed:?}");
        drop(held);
        assert!(pool.lease().await.is_ok(), "the slot is free again");
    }

    #[test]
    fn an_error_inside_exec_is_not_a_swap() {
        assert!(!exec_outcome(None).unwrap(), "nil EXEC: aborted");
        assert!(exec_outcome(Some(vec![Value::Okay])).unwrap());
        let failed = redis::parse_redis_value(b"-OOM command not allowed\r\n").unwrap();
        let err = exec_outcome(Some(vec![failed])).map(|_| ()).unwrap_err();
        assert!(matches!(err, Failure::Redis(_)), "{err:?}");
    }
}
