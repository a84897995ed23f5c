//! The connection layer: one managed, multiplexed connection (standalone) or cluster
//! connection for ordinary commands, a timeout on every request, and the only resends that
//! cannot apply a write twice.
//!
//! **Resending.** A request is sent again (at most [`MAX_ATTEMPTS`] attempts in all, each under
//! the request timeout) only when its error proves the server did not run it:
//!
//! - `ASK` during a slot migration: at once, as `ASKING` + the command, to the node named;
//! - `MOVED` after a slot moved (the cluster client refreshes its slot map meanwhile),
//!   `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY` after a failover, or no
//!   connection to the node: after a short backoff (20, 40, 80 ... ms).
//!
//! After a dropped connection, reads (`GET`, `EXISTS`, `SCAN`) are sent once more on the new
//! connection; writes are not, since the lost reply may hide a write that ran: they fail with
//! `Unavailable`. The cluster client's own resending is therefore switched off (`retries(0)`):
//! it would also resend a write after a dropped connection, applying an `INCRBY` twice.
//!
//! **Waiting for replicas** (`wait_for_replicas`). `WAIT` counts the replicas that have
//! everything *its connection* wrote, so it must follow the write on the same connection, and
//! is never resent: on a new connection, which has written nothing, it would count every
//! replica at once. On a standalone server write and `WAIT` travel as one pipeline on the
//! managed connection, so not even a reconnect can slip between them. In cluster mode the
//! write goes alone, through the cluster client's routing (which follows a failover or a
//! moved slot), and `WAIT` follows it to the key's primary, on the connection to that node
//! (for a batch spanning slots, to every primary, answering the smallest count). Should that
//! connection be replaced between the two, and the primary then die before replicating, a
//! write could be reported replicated that was not: Redis offers no way to close this gap for
//! a cluster client, short of one connection per request.

use std::future::Future;
use std::time::Duration;

use kv_trait::RequestLimit;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    AggregateOp, MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo,
    SingleNodeRoutingInfo, SlotAddr,
};
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, IntoConnectionInfo,
    ProtocolVersion, RedisConnectionInfo, RedisResult, ServerErrorKind, Value,
};

use crate::config::{IncrementMode, Node, RedisBackendBuilder, ReplicaWait, Topology};
use crate::error::{self, Failure};
use crate::scripts::{self, LuaScript};
use crate::server::Increments;

/// How many times one request is sent at most (see the module docs for when it is resent).
pub(crate) const MAX_ATTEMPTS: u32 = 6;

/// Keys asked for per `SCAN` round trip. Redis's default of 10 would make listing a large
/// database take a round trip per ten keys; a thousand keeps each reply small (the server
/// walks about this many hash buckets per call) while cutting round trips a hundredfold.
pub(crate) const SCAN_COUNT: u32 = 1000;

/// Reconnection attempts of the managed connection per reconnect, after the first.
const RECONNECT_RETRIES: usize = 2;

/// Connections to Redis and how long a request may take.
pub(crate) struct Client {
    conn: Conn,
    request_timeout: Duration,
    /// Places of the requests in flight (`max_concurrent_requests`): a request takes one in
    /// `run`, before its timeout starts.
    requests: RequestLimit,
    protocol: ProtocolVersion,
    replica_wait: Option<ReplicaWait>,
    /// Read from the servers when connecting.
    increments: Increments,
}

enum Conn {
    Standalone {
        /// Replaced whole after a reply that could not be parsed (see `send`).
        manager: std::sync::RwLock<ConnectionManager>,
        /// What a replacement is made from.
        client: Box<redis::Client>,
        config: Box<ConnectionManagerConfig>,
    },
    Cluster(ClusterConnection),
}

impl Conn {
    /// Reads `INFO server` from the server, or from every primary of a cluster, to choose how
    /// `increment` runs. A server that refuses `INFO` (an ACL without it) or an answer that
    /// cannot be read keeps the script, which is right on every server.
    async fn increments(&self) -> Increments {
        let info = redis::cmd("INFO").arg("server").to_owned();
        let answer: RedisResult<Value> = match self {
            Conn::Standalone { manager, .. } => info.query_async(&mut current(manager)).await,
            Conn::Cluster(cluster) => {
                let every_primary =
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                cluster.clone().route_command(info, every_primary).await
            }
        };
        let texts: Vec<String> = match answer {
            // A cluster's answer: each primary's, by address.
            Ok(Value::Map(by_node)) => by_node
                .into_iter()
                .filter_map(|(_, text)| redis::from_redis_value(text).ok())
                .collect(),
            Ok(text) => redis::from_redis_value(text).into_iter().collect(),
            Err(err) => {
                tracing::debug!(error = %err, "INFO server failed: increments keep the script");
                Vec::new()
            }
        };
        let increments = Increments::for_servers(texts.iter().map(String::as_str));
        tracing::debug!(?increments, servers = texts.len(), "how increments run");
        increments
    }
}

impl Client {
    /// Connects as `settings` says, preferring RESP3 (with which the managed connection learns
    /// of a dropped connection at once and reconnects before the next request) and falling
    /// back to RESP2 for servers without `HELLO` (before Redis 6).
    pub(crate) async fn connect(settings: &RedisBackendBuilder) -> Result<Self, kv_trait::KvError> {
        let attempt = async {
            match Self::connect_with(settings, ProtocolVersion::RESP3).await {
                Err(Failure::Redis(err)) if err.kind() == ErrorKind::RESP3NotSupported => {
                    Self::connect_with(settings, ProtocolVersion::RESP2).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(settings.connect_timeout, attempt).await {
            Ok(connected) => connected.map_err(error::from_connect),
            Err(_) => Err(kv_trait::KvError::unavailable(format!(
                "could not connect to {} within the connect timeout of {:?}",
                settings.endpoint(),
                settings.connect_timeout
            ))),
        }
    }

    async fn connect_with(
        settings: &RedisBackendBuilder,
        protocol: ProtocolVersion,
    ) -> Result<Self, Failure> {
        #[cfg(feature = "tls")]
        if settings.tls && rustls::crypto::CryptoProvider::get_default().is_none() {
            // redis-rs builds its TLS configuration from rustls's process-wide crypto
            // provider. Choosing one is the application's call, made once at the start of
            // `main`: a library that installed one would make the application's own
            // `install_default()` fail later.
            return Err(Failure::Kv(kv_trait::KvError::InvalidConfig(
                "TLS needs a rustls crypto provider for the process: call \
                 rustls::crypto::ring::default_provider().install_default() (or the \
                 aws_lc_rs one) at the start of main, before opening a rediss:// backend"
                    .into(),
            )));
        }
        let conn = match settings.topology {
            Topology::Standalone => {
                let info = connection_info(settings, &settings.nodes[0], protocol)?;
                let client = open_client(settings, info)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.connect_timeout))
                    .set_response_timeout(Some(settings.request_timeout))
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1));
                let manager =
                    ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
                Conn::Standalone {
                    manager: std::sync::RwLock::new(manager),
                    client: Box::new(client),
                    config: Box::new(config),
                }
            }
            Topology::Cluster => {
                let seeds = settings
                    .nodes
                    .iter()
                    .map(|node| connection_info(settings, node, protocol))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut builder = ClusterClientBuilder::new(seeds)
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.request_timeout)
                    .use_protocol(protocol)
                    .retries(0);
                if let Some(user) = &settings.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &settings.password {
                    builder = builder.password(password.expose());
                }
                #[cfg(feature = "tls")]
                if let Some(roots) = &settings.tls_roots {
                    builder = builder.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(roots.pem().map_err(Failure::Kv)?),
                    });
                }
                Conn::Cluster(builder.build()?.get_async_connection().await?)
            }
        };
        let increments = match settings.increments {
            IncrementMode::Auto => conn.increments().await,
            IncrementMode::Native => Increments::Native,
            IncrementMode::Script => Increments::Scripted,
        };
        Ok(Self {
            conn,
            request_timeout: settings.request_timeout,
            requests: RequestLimit::new(settings.max_concurrent_requests),
            protocol,
            replica_wait: settings.replica_wait,
            increments,
        })
    }

    /// A plain client per node of `settings` (its server, or a cluster's seed nodes), speaking
    /// this client's protocol: where watchers subscribe.
    pub(crate) fn node_clients(
        &self,
        settings: &RedisBackendBuilder,
    ) -> Result<Vec<redis::Client>, kv_trait::KvError> {
        let open = |node| {
            let info = connection_info(settings, node, self.protocol).map_err(Failure::from)?;
            open_client(settings, info)
        };
        settings
            .nodes
            .iter()
            .map(|node| open(node).map_err(error::from_connect))
            .collect()
    }

    /// `PUBLISH channel message` on every primary of a cluster, answering how many primaries
    /// published it; `None` on a standalone server, which has no others. Resent only when the
    /// error proves a primary did not run it.
    pub(crate) async fn publish_on_every_primary(
        &self,
        channel: &str,
        message: &[u8],
    ) -> Result<Option<usize>, Failure> {
        let Conn::Cluster(cluster) = &self.conn else {
            return Ok(None);
        };
        let publish = redis::cmd("PUBLISH").arg(channel).arg(message).to_owned();
        let by_node = self
            .on_every_primary(cluster, false, &publish, "PUBLISH")
            .await?;
        Ok(Some(by_node.len()))
    }

    /// How `increment` runs on these servers (see `server.rs`).
    pub(crate) fn increments(&self) -> Increments {
        self.increments
    }

    /// The protocol the connections speak.
    pub(crate) fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// Sends a command that writes `key` and no other: resent only when the error proves it
    /// did not run; followed by `WAIT` when waiting for replicas (see the module docs).
    pub(crate) async fn write<T: FromRedisValue>(
        &self,
        key: &[u8],
        cmd: &Cmd,
    ) -> Result<T, Failure> {
        let wait_on = Route::with_key(key, SlotAddr::Master);
        self.write_then_wait(
            cmd,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(wait_on)),
        )
        .await
    }

    /// Sends a command that may write several keys (in cluster mode of several slots, which
    /// the cluster client splits by node): resent only when the error proves it did not run;
    /// followed by `WAIT` (to every primary, in cluster mode) when waiting for replicas.
    pub(crate) async fn write_batch<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Failure> {
        let every_primary = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            Some(ResponsePolicy::Aggregate(AggregateOp::Min)),
        ));
        self.write_then_wait(cmd, every_primary).await
    }

    /// `cmd`, then, when waiting for replicas, `WAIT` routed by `wait_on` (cluster) or in the
    /// same pipeline (standalone); fewer replicas than asked for is `Unavailable`.
    async fn write_then_wait<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        wait_on: RoutingInfo,
    ) -> Result<T, Failure> {
        let Some(wait) = self.replica_wait else {
            return self.run(false, |asking| self.send(cmd, asking)).await;
        };
        let wait_cmd = wait_command(wait);
        let (reply, acknowledged): (Value, i64) = match &self.conn {
            Conn::Standalone { manager, .. } => {
                self.run(false, |_| async {
                    let mut pipe = redis::pipe();
                    pipe.add_command(cmd.clone())
                        .add_command(wait_cmd.clone())
                        .ignore_errors();
                    let result = pipe.query_async::<Vec<Value>>(&mut current(manager)).await;
                    if matches!(&result, Err(err) if err.kind() == ErrorKind::Parse) {
                        self.replace_standalone_manager().await;
                    }
                    let mut replies = result?.into_iter();
                    let reply = replies.next().unwrap_or(Value::Nil).extract_error()?;
                    let acknowledged = replies.next().unwrap_or(Value::Nil).extract_error()?;
                    Ok((reply, redis::from_redis_value(acknowledged)?))
                })
                .await?
            }
            Conn::Cluster(cluster) => {
                let reply = self.run(false, |asking| self.send(cmd, asking)).await?;
                let acknowledged = self
                    .run(false, |_| {
                        let (mut cluster, wait_cmd, wait_on) =
                            (cluster.clone(), wait_cmd.clone(), wait_on.clone());
                        async move {
                            let count = cluster.route_command(wait_cmd, wait_on).await?;
                            Ok(redis::from_redis_value(count)?)
                        }
                    })
                    .await?;
                (reply, acknowledged)
            }
        };
        if acknowledged < i64::from(wait.replicas) {
            // Applied by the primary, but it may yet be lost in a failover: the contract's
            // "may or may not have taken effect".
            return Err(Failure::Kv(kv_trait::KvError::unavailable(format!(
                "the write was applied by the primary, but {acknowledged} of the {} replicas \
                 asked for acknowledged it within {:?} (WAIT): it may be lost if the primary \
                 fails",
                wait.replicas, wait.timeout
            ))));
        }
        Ok(redis::from_redis_value(reply).map_err(redis::RedisError::from)?)
    }

    /// Sends a read-only command: also resent once after a dropped connection.
    pub(crate) async fn read<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Failure> {
        self.run(true, |asking| self.send(cmd, asking)).await
    }

    /// Runs a script that may write: `EVALSHA`, or `EVAL` when the server does not have the
    /// script yet (`NOSCRIPT`), which also caches it there.
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        script: &LuaScript,
        key: &[u8],
        args: &[&[u8]],
    ) -> Result<T, Failure> {
        match self.write(key, &script.evalsha(key, args)).await {
            Err(Failure::Redis(err))
                if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
            {
                self.write(key, &script.eval(key, args)).await
            }
            other => other,
        }
    }

    /// Every key matching `pattern` (`None`: every key), from `SCAN` followed to cursor 0; in
    /// cluster mode on every primary, concurrently. May contain duplicates (a key moved by a
    /// rehash or a slot migration during the scan).
    pub(crate) async fn scan(&self, pattern: Option<&[u8]>) -> Result<Vec<Vec<u8>>, Failure> {
        match &self.conn {
            Conn::Standalone { manager, .. } => {
                self.scan_pages(0, pattern, |cmd| {
                    let mut manager = current(manager);
                    async move { cmd.query_async(&mut manager).await }
                })
                .await
            }
            Conn::Cluster(cluster) => self.scan_cluster(cluster, pattern).await,
        }
    }

    /// Compare-and-swap against a present value: the script on the key's primary, one round
    /// trip (and `WAIT` after it when waiting for replicas). No write can come between its
    /// `GET` and `SET`, so it never needs a second attempt. `announce` is the watch channel
    /// (empty: none).
    pub(crate) async fn swap_if_equal(
        &self,
        key: &[u8],
        announce: &[u8],
        expected: &[u8],
        new: &[u8],
    ) -> Result<bool, Failure> {
        let swapped: i64 = self
            .script(&scripts::COMPARE_AND_SWAP, key, &[announce, expected, new])
            .await?;
        Ok(swapped == 1)
    }

    /// After a reply that could not be parsed (one cut in the middle, by a connection that
    /// closed), the multiplexed connection is out of step with the server for good, and
    /// redis-rs's manager reconnects only after errors it sees as a dropped connection: so
    /// the manager is replaced by a new one. If the server cannot be reached now, the old one
    /// stays, and the next parse error tries again.
    async fn replace_standalone_manager(&self) {
        let Conn::Standalone {
            manager,
            client,
            config,
            ..
        } = &self.conn
        else {
            return;
        };
        let fresh = tokio::time::timeout(
            self.request_timeout,
            ConnectionManager::new_with_config((**client).clone(), (**config).clone()),
        )
        .await;
        if let Ok(Ok(fresh)) = fresh {
            tracing::debug!("a reply was cut short: the managed connection is replaced");
            *manager
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        }
    }

    /// Sends `cmd` once: on the managed connection, or to the key's primary, or (following an
    /// `ASK` redirection during a slot migration) as `ASKING` + `cmd` to the node named.
    async fn send<T: FromRedisValue>(&self, cmd: &Cmd, asking: Option<Node>) -> RedisResult<T> {
        match (&self.conn, asking) {
            (Conn::Standalone { manager, .. }, _) => {
                let result = cmd.query_async(&mut current(manager)).await;
                if matches!(&result, Err(err) if err.kind() == ErrorKind::Parse) {
                    self.replace_standalone_manager().await;
                }
                result
            }
            (Conn::Cluster(cluster), None) => cmd.query_async(&mut cluster.clone()).await,
            (Conn::Cluster(cluster), Some(node)) => {
                let mut pipe = redis::pipe();
                pipe.cmd("ASKING").add_command(cmd.clone());
                let node = SingleNodeRoutingInfo::ByAddress {
                    host: node.host,
                    port: node.port,
                };
                let reply = cluster.clone().route_pipeline(pipe, 1, 1, node).await?;
                let reply = reply.into_iter().next().unwrap_or(Value::Nil);
                Ok(redis::from_redis_value(reply.extract_error()?)?)
            }
        }
    }

    /// Runs `attempt` under the request timeout once it has a place among the requests in
    /// flight, resending as the module docs describe. The attempt is given the node an `ASK`
    /// redirection named, if the previous attempt got one. Never called from within an
    /// attempt, so a request never holds one place while waiting for another.
    async fn run<T, F, Fut>(&self, resend_after_drop: bool, mut attempt: F) -> Result<T, Failure>
    where
        F: FnMut(Option<Node>) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let _place = self.requests.place().await;
        let mut failures = 0;
        let mut asking = None;
        loop {
            let err = match tokio::time::timeout(self.request_timeout, attempt(asking.take())).await
            {
                Err(_) => return Err(Failure::TimedOut(self.request_timeout)),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => err,
            };
            failures += 1;
            if failures >= MAX_ATTEMPTS {
                return Err(err.into());
            }
            if err.kind() == ErrorKind::Server(ServerErrorKind::Ask) {
                if let Some(node) = redirect_target(&err) {
                    tracing::debug!(host = %node.host, port = node.port, "ASK: resending to the importing node");
                    asking = Some(node); // no wait: the target node has the key now
                    continue;
                }
            }
            let resend = error::did_not_run(&err)
                || (resend_after_drop && failures == 1 && err.is_connection_dropped());
            if !resend {
                tracing::debug!(error = %err, attempt = failures, "not resent: it may have run");
                return Err(err.into());
            }
            tracing::debug!(
                error = %err,
                kind = ?err.kind(),
                attempt = failures,
                dropped_connection = err.is_connection_dropped(),
                "resending (MOVED, TRYAGAIN, a failover or a reconnect)"
            );
            // MOVED (the cluster client refreshes its slot map meanwhile), TRYAGAIN, a cluster
            // electing a primary, a dropped connection being replaced.
            tokio::time::sleep(Duration::from_millis(10 << failures.min(6))).await;
        }
    }

    /// Follows one node's `SCAN` from `cursor` to cursor 0.
    async fn scan_pages<F, Fut>(
        &self,
        mut cursor: u64,
        pattern: Option<&[u8]>,
        send: F,
    ) -> Result<Vec<Vec<u8>>, Failure>
    where
        F: Fn(Cmd) -> Fut,
        Fut: Future<Output = RedisResult<(u64, Vec<Vec<u8>>)>>,
    {
        let mut keys = Vec::new();
        loop {
            let cmd = scan_command(cursor, pattern);
            let (next, page) = self.run(true, |_| send(cmd.clone())).await?;
            keys.extend(page);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// `cmd` on every primary of the cluster at once, as one request (see `run`; reads are
    /// also resent once after a dropped connection): each primary's reply, by its address.
    async fn on_every_primary(
        &self,
        cluster: &ClusterConnection,
        read: bool,
        cmd: &Cmd,
        name: &str,
    ) -> Result<Vec<(Value, Value)>, Failure> {
        let every_primary = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let replies = self
            .run(read, |_| {
                let (mut cluster, cmd, every_primary) =
                    (cluster.clone(), cmd.clone(), every_primary.clone());
                async move { cluster.route_command(cmd, every_primary).await }
            })
            .await?;
        match replies {
            Value::Map(by_node) => Ok(by_node),
            other => Err(unexpected(&format!("{name} on every primary"), &other)),
        }
    }

    /// The first `SCAN` page goes to every primary at once, which also says which primaries
    /// there are; each primary's scan then continues on that node by address.
    async fn scan_cluster(
        &self,
        cluster: &ClusterConnection,
        pattern: Option<&[u8]>,
    ) -> Result<Vec<Vec<u8>>, Failure> {
        let first = scan_command(0, pattern);
        let replies = self.on_every_primary(cluster, true, &first, "SCAN").await?;
        let scans = replies.into_iter().map(|(address, reply)| async move {
            let address: String =
                redis::from_redis_value(address).map_err(redis::RedisError::from)?;
            let (cursor, mut keys): (u64, Vec<Vec<u8>>) =
                redis::from_redis_value(reply.extract_error()?).map_err(redis::RedisError::from)?;
            if cursor != 0 {
                let node = node_routing(&address)?;
                let rest = self
                    .scan_pages(cursor, pattern, |cmd| {
                        let (mut cluster, node) = (cluster.clone(), node.clone());
                        async move {
                            let reply = cluster.route_command(cmd, node).await?;
                            Ok(redis::from_redis_value(reply)?)
                        }
                    })
                    .await?;
                keys.extend(rest);
            }
            Ok::<_, Failure>(keys)
        });
        let per_node = futures::future::try_join_all(scans).await?;
        Ok(per_node.into_iter().flatten().collect())
    }
}

/// `WAIT numreplicas timeout`, the timeout in whole milliseconds rounded up (`WAIT n 0`
/// would wait forever).
fn wait_command(wait: ReplicaWait) -> Cmd {
    let millis = wait.timeout.as_micros().div_ceil(1000).max(1);
    let mut cmd = redis::cmd("WAIT");
    cmd.arg(wait.replicas)
        .arg(u64::try_from(millis).unwrap_or(u64::MAX));
    cmd
}

/// `SCAN cursor [MATCH pattern] COUNT n`.
fn scan_command(cursor: u64, pattern: Option<&[u8]>) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor);
    if let Some(pattern) = pattern {
        cmd.arg("MATCH").arg(pattern);
    }
    cmd.arg("COUNT").arg(SCAN_COUNT);
    cmd
}

/// The node an `ASK` (or `MOVED`) error names.
fn redirect_target(err: &redis::RedisError) -> Option<Node> {
    let (address, _slot) = err.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some(Node {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

/// Routing to the node at `host:port`, as the cluster client names nodes.
fn node_routing(address: &str) -> Result<RoutingInfo, Failure> {
    let parsed = address
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)));
    let (host, port) = parsed.ok_or_else(|| {
        Failure::Kv(kv_trait::KvError::backend(format!(
            "the cluster client named a node `{address}`, which is not host:port"
        )))
    })?;
    Ok(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host,
        port,
    }))
}

fn unexpected(what: &str, reply: &Value) -> Failure {
    Failure::Kv(kv_trait::KvError::backend(format!(
        "unexpected reply to {what}: {reply:?}"
    )))
}

/// A client for one server, trusting the configured TLS roots if any.
fn open_client(
    settings: &RedisBackendBuilder,
    info: ConnectionInfo,
) -> Result<redis::Client, Failure> {
    #[cfg(feature = "tls")]
    if let Some(roots) = &settings.tls_roots {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(roots.pem().map_err(Failure::Kv)?),
        };
        return Ok(redis::Client::build_with_tls(info, certificates)?);
    }
    let _ = settings; // only read for TLS roots
    Ok(redis::Client::open(info)?)
}

/// How redis-rs should reach `node` with `settings`' credentials, database and `protocol`.
fn connection_info(
    settings: &RedisBackendBuilder,
    node: &Node,
    protocol: ProtocolVersion,
) -> RedisResult<ConnectionInfo> {
    let addr = if settings.tls {
        ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(node.host.clone(), node.port)
    };
    let mut redis = RedisConnectionInfo::default()
        .set_db(i64::from(settings.database))
        .set_protocol(protocol)
        .set_lib_name("kv-redis", env!("CARGO_PKG_VERSION"));
    if let Some(user) = &settings.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &settings.password {
        redis = redis.set_password(password.expose());
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

/// The managed connection now (a cheap clone of the shared one).
fn current(manager: &std::sync::RwLock<ConnectionManager>) -> ConnectionManager {
    manager
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}
