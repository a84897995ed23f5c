//! Helpers shared by the integration tests: backends in fresh namespaces on the test servers,
//! and plain redis-rs "admin" connections to look at (and disturb) what the backend stored,
//! the way another Redis client or `redis-cli` would.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kv_redis::{RedisBackend, RedisBackendBuilder};
use kv_test_services::redis::RedisService;
use kv_trait::{monotonic_now, KvBackend, KvError};
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo, RedisResult};

/// A namespace no other test uses, and not a prefix of any other (it ends with `.`).
pub fn namespace(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("test-{label}-{}-{n}.", std::process::id())
}

/// A builder for `service` in namespace `ns`.
pub fn builder(service: &RedisService, ns: &str) -> RedisBackendBuilder {
    RedisBackend::builder(&service.url)
        .expect("the service URL parses")
        .namespace(ns)
}

/// A backend for `service` in namespace `ns`.
pub async fn backend(service: &RedisService, ns: &str) -> RedisBackend {
    builder(service, ns).build().await.expect("connect")
}

/// How to reach node `host:port` of `service` with its credentials.
pub fn node_info(service: &RedisService, node: &str) -> ConnectionInfo {
    let (host, port) = node.rsplit_once(':').expect("host:port");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(user) = &service.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &service.password {
        settings = settings.set_password(password);
    }
    ConnectionAddr::Tcp(host.to_owned(), port.parse().expect("port"))
        .into_connection_info()
        .expect("connection info")
        .set_redis_settings(settings)
}

/// Plain connections to a test server: keyed commands go to the key's node, and node-wide
/// commands (`INFO`, `CLIENT KILL`, `ACL SETUSER`) can be sent to every node.
pub struct Admin {
    keyed: Keyed,
    nodes: Vec<MultiplexedConnection>,
    names: Vec<String>,
}

enum Keyed {
    Standalone(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Admin {
    pub async fn connect(service: &RedisService) -> Self {
        let mut nodes = Vec::new();
        for node in &service.nodes {
            let client = redis::Client::open(node_info(service, node)).expect("client");
            nodes.push(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("admin connection"),
            );
        }
        let keyed = if service.cluster {
            let seeds = service.nodes.iter().map(|node| node_info(service, node));
            let client = redis::cluster::ClusterClientBuilder::new(seeds)
                .build()
                .expect("cluster client");
            Keyed::Cluster(
                client
                    .get_async_connection()
                    .await
                    .expect("cluster connection"),
            )
        } else {
            Keyed::Standalone(nodes[0].clone())
        };
        Self {
            keyed,
            nodes,
            names: service.nodes.clone(),
        }
    }

    /// A command on the node at `host:port` (as the service names its nodes).
    pub async fn on_node<T: FromRedisValue>(&self, node: &str, cmd: &Cmd) -> T {
        let index = self
            .names
            .iter()
            .position(|name| name == node)
            .unwrap_or_else(|| panic!("no connection to node {node}"));
        cmd.query_async(&mut self.nodes[index].clone())
            .await
            .unwrap_or_else(|err| panic!("{node}: {cmd:?}: {err}"))
    }

    /// A command about one key, sent to the node that owns it.
    pub async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match &self.keyed {
            Keyed::Standalone(conn) => cmd.query_async(&mut conn.clone()).await,
            Keyed::Cluster(conn) => cmd.query_async(&mut conn.clone()).await,
        }
    }

    /// `run`, panicking on an error.
    pub async fn must<T: FromRedisValue>(&self, cmd: &Cmd) -> T {
        self.run(cmd)
            .await
            .unwrap_or_else(|err| panic!("{cmd:?}: {err}"))
    }

    /// The same command on every node, replies in node order.
    pub async fn on_every_node<T: FromRedisValue>(&self, cmd: &Cmd) -> Vec<T> {
        let mut replies = Vec::new();
        for conn in &self.nodes {
            replies.push(
                cmd.query_async(&mut conn.clone())
                    .await
                    .unwrap_or_else(|err| panic!("{cmd:?}: {err}")),
            );
        }
        replies
    }

    /// The number of calls of each command on every primary, summed (`INFO commandstats`).
    /// Replicas are left out: they also count the writes they replicate, and when they do so
    /// depends on replication lag.
    pub async fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        let mut calls = std::collections::BTreeMap::new();
        let sections = redis::cmd("INFO")
            .arg("replication")
            .arg("commandstats")
            .clone();
        for info in self.on_every_node::<String>(&sections).await {
            if info.lines().any(|line| line.trim() == "role:slave") {
                continue;
            }
            for line in info.lines() {
                // cmdstat_get:calls=3,usec=12,...
                let Some((name, stats)) = line
                    .strip_prefix("cmdstat_")
                    .and_then(|l| l.split_once(':'))
                else {
                    continue;
                };
                let count = stats
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                *calls.entry(name.to_owned()).or_default() += count;
            }
        }
        calls
    }
}

/// Runs `redis-cli ARGS...` against `service` and returns its trimmed output, or `None` when
/// `redis-cli` is not installed.
pub fn redis_cli(service: &RedisService, args: &[&str]) -> Option<String> {
    let mut command = service.redis_cli()?;
    let output = command.args(args).output().expect("run redis-cli");
    assert!(
        output.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The services to run a test against: the standalone server and the cluster, each when
/// available (a missing one has already printed why).
pub fn services() -> Vec<&'static RedisService> {
    use kv_test_services::redis;
    redis::standalone()
        .into_iter()
        .chain(redis::cluster())
        .collect()
}

/// Sleeps on the executor for `ms` milliseconds.
pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Generates, for each `async fn name(service: &RedisService)` listed, a test `standalone::name`
/// and a test `cluster::name` running it against that server.
#[allow(unused_macros)] // not every test binary uses it
macro_rules! on_standalone_and_cluster {
    ($($check:ident),+ $(,)?) => {
        mod standalone {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    if let Some(service) = kv_test_services::redis::standalone() {
                        super::$check(service).await;
                    }
                }
            )+
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    if let Some(service) = kv_test_services::redis::cluster() {
                        super::$check(service).await;
                    }
                }
            )+
        }
    };
}

/// What one task of [`write_and_count`] saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Keys whose `set` returned `Ok`, with the value written.
    pub acked_sets: Vec<(String, Vec<u8>)>,
    /// Increments that returned `Ok`.
    pub acked_increments: u64,
    /// Increments that returned `Unavailable`: applied or not.
    pub unknown_increments: u64,
    /// The longest call.
    pub slowest: Duration,
    /// Errors other than `Unavailable`.
    pub errors: Vec<String>,
}

/// The outage tests' workload: tasks writing unique keys and incrementing one counter.
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Workload {
    /// Starts `tasks` tasks of [`write_and_count`] on `store`.
    pub fn start(store: &RedisBackend, tasks: usize, counter: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|task| {
                let (store, stop) = (store.clone(), Arc::clone(&stop));
                tokio::spawn(write_and_count(store, task, counter, stop))
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops the tasks and merges their tallies, failing the test on any error other than
    /// `Unavailable`.
    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for task in self.tasks {
            let tally = task.await.expect("a workload task");
            total.acked_sets.extend(tally.acked_sets);
            total.acked_increments += tally.acked_increments;
            total.unknown_increments += tally.unknown_increments;
            total.slowest = total.slowest.max(tally.slowest);
            total.errors.extend(tally.errors);
        }
        assert!(
            total.errors.is_empty(),
            "errors other than Unavailable: {:?}",
            total.errors
        );
        total
    }
}

impl Tally {
    /// The acknowledged sets that `store` no longer holds as written.
    pub async fn lost_sets(&self, store: &RedisBackend) -> Vec<String> {
        let keys: Vec<&str> = self
            .acked_sets
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        let stored = store.get_many(&keys).await.expect("read the writes back");
        self.acked_sets
            .iter()
            .zip(&stored)
            .filter(|((_, value), stored)| stored.as_deref() != Some(value.as_slice()))
            .map(|((key, _), _)| key.clone())
            .collect()
    }
}

/// The counter's value in `store` (0 if absent).
pub async fn counter_value(store: &RedisBackend, counter: &str) -> u64 {
    let value = store.get(counter).await.expect("read the counter");
    value.map_or(0, |value| {
        String::from_utf8_lossy(&value).parse().expect("a counter")
    })
}

/// A workload task for the outage tests: until `stop`, sets a unique key `w{task}-{i}` (keys
/// spread over every slot) and increments `counter`, timing every call and tallying what was
/// acknowledged. After a failed call it pauses 20 ms, so that it does not spin while the
/// store is down.
async fn write_and_count(
    store: RedisBackend,
    task: usize,
    counter: &'static str,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut i = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("w{task}-{i}");
        let value = i.to_be_bytes().to_vec();
        let started = monotonic_now();
        let set = store.set(&key, &value).await;
        let took = started.elapsed();
        let started = monotonic_now();
        let increment = store.increment(counter, 1).await;
        tally.slowest = tally.slowest.max(took).max(started.elapsed());
        let failed = set.is_err() || increment.is_err();
        match set {
            Ok(()) => tally.acked_sets.push((key, value)),
            Err(KvError::Unavailable(_)) => {}
            Err(other) => tally.errors.push(format!("set: {other}")),
        }
        match increment {
            Ok(_) => tally.acked_increments += 1,
            Err(KvError::Unavailable(_)) => tally.unknown_increments += 1,
            Err(other) => tally.errors.push(format!("increment: {other}")),
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tally
}
