//! Redis for tests: one standalone server and one Redis Cluster (3 primaries, 3 replicas) per
//! test process, plus private servers a test may disturb.
//!
//! Each service is found in this order:
//!
//! 1. a URL in [`URL_ENV`] (`KV_REDIS_URL`, e.g. `redis://:pw@10.0.0.5:6379`) or
//!    [`CLUSTER_URL_ENV`] (`KV_REDIS_CLUSTER_URL`, e.g.
//!    `redis+cluster://10.0.0.5:7000,10.0.0.6:7000`), used as given;
//! 2. else, with the `containers` feature and a Docker engine that answers, a container: the
//!    standalone server from `KV_REDIS_IMAGE` (default `redis:7.4.1`; `valkey/valkey:8` works
//!    too) with a random password, the cluster from `KV_REDIS_CLUSTER_IMAGE` (default
//!    `grokzen/redis-cluster:7.0.10`, six nodes in one container, ready once every node
//!    reports `cluster_state:ok`), removed when the test process ends (see
//!    [`containers`](super::containers));
//! 3. else private `redis-server` processes started from the binaries on `PATH`, on free
//!    `127.0.0.1` ports, in a temporary directory, with a random password, and stopped when
//!    the test process ends (see [`LocalProcess`]). The cluster is six servers with
//!    `cluster-enabled yes`, joined by `redis-cli --cluster create --cluster-replicas 1`, ready
//!    once every node reports `cluster_state:ok` and sees three primaries and three replicas;
//! 4. else none: [`unavailable`] makes that a failure under `KVKIT_REQUIRE_SERVICES` (as
//!    `ci/test` sets) and a loud skip otherwise.
//!
//! ```no_run
//! use kv_test_services::redis;
//!
//! if let Some(server) = redis::standalone() {
//!     println!("testing against {}", server.url);
//! }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kv_trait::url_config::redact;

use super::{
    find_binary, free_port, nodes_in, password_in, private_dir, random_password, run_with_timeout,
    split_host_port, unavailable, username_in, wait_for_port, LocalProcess, Provider,
    RunningContainer,
};

/// Environment variable: the URL of a standalone Redis server to test against.
pub const URL_ENV: &str = "KV_REDIS_URL";
/// Environment variable: the URL of a Redis Cluster to test against, in the
/// `redis+cluster://host:port,host:port` form.
pub const CLUSTER_URL_ENV: &str = "KV_REDIS_CLUSTER_URL";

/// How to get Redis, for messages when there is none.
pub const HOW_TO_GET_ONE: &str = "Set KV_REDIS_URL / KV_REDIS_CLUSTER_URL to a server you run, or \
     install Redis 6 or newer so that `redis-server` and `redis-cli` are on PATH (Debian and \
     Ubuntu: `apt-get install redis-server redis-tools`; macOS: `brew install redis`; or run \
     `ci/install-deps`)";

/// How long a private server may take to listen, and a private cluster to be ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `cluster-node-timeout` of the shared cluster: long enough that a test process busy on two
/// cores never makes a node look failed.
const SHARED_NODE_TIMEOUT_MS: u32 = 5000;

/// `cluster-node-timeout` of a private cluster a test kills nodes of: a replica starts its
/// election about this long after its primary stopped answering.
pub const FAILOVER_NODE_TIMEOUT_MS: u32 = 1000;

/// Cluster nodes also listen on their port + 10000 for the cluster bus, so their ports must
/// stay below this.
const MAX_CLUSTER_PORT: u16 = u16::MAX - 10_000;

/// A Redis server or cluster that tests can use.
///
/// `Debug` shows the URL with the password replaced by `***`.
#[non_exhaustive]
pub struct RedisService {
    /// The URL to connect to: `redis://:PASSWORD@127.0.0.1:PORT` for a private server,
    /// `redis+cluster://:PASSWORD@127.0.0.1:P1,...,127.0.0.1:P6` for a private cluster, or the
    /// environment's URL.
    pub url: String,
    /// Where the service came from.
    pub provider: Provider,
    /// The ACL user name in [`url`](Self::url), if any (`None`: the default user).
    pub username: Option<String>,
    /// The password in [`url`](Self::url), if any: declare it secret in the conformance
    /// profile (`Profile::with_secret`).
    pub password: Option<String>,
    /// `host:port` of every node named by the URL (for a private cluster: all six).
    pub nodes: Vec<String>,
    /// Whether this is a Redis Cluster.
    pub cluster: bool,
    processes: Vec<LocalProcess>,
    container: Option<RunningContainer>,
    /// How to start the server again after [`kill`](Self::kill): a private standalone one.
    respawn: Option<Respawn>,
}

/// What it takes to start a private standalone server again, on its port and directory.
struct Respawn {
    binary: std::path::PathBuf,
    dir: std::path::PathBuf,
    password: String,
    port: u16,
    extra: Vec<String>,
    starts: usize,
}

impl fmt::Debug for RedisService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisService")
            .field("url", &redact(&self.url))
            .field("provider", &self.provider)
            .field("nodes", &self.nodes)
            .field("cluster", &self.cluster)
            .field("container", &self.container)
            .field(
                "pids",
                &self
                    .processes
                    .iter()
                    .map(LocalProcess::pid)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl RedisService {
    /// A `redis-cli` command for the first node, authenticated (through `REDISCLI_AUTH`, so
    /// the password is not on its command line) and, for a cluster, following redirections
    /// (`-c`). `None` when `redis-cli` is not installed. Append the command's arguments.
    pub fn redis_cli(&self) -> Option<Command> {
        let mut command = self.redis_cli_for(self.nodes.first()?)?;
        if self.cluster {
            command.arg("-c");
        }
        Some(command)
    }

    /// The keys matching `pattern` (a `SCAN MATCH` glob) on every node the service names
    /// (in a cluster, each node holds only its own slots), deduplicated and sorted: what a
    /// test uses to check it left nothing behind. Fails when `redis-cli` is not installed or
    /// a node does not answer.
    pub fn keys_matching(&self, pattern: &str) -> io::Result<Vec<String>> {
        let mut keys = BTreeSet::new();
        for node in &self.nodes {
            let mut cli = self.redis_cli_for(node).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "redis-cli is not installed")
            })?;
            let output = cli.args(["--scan", "--pattern", pattern]).output()?;
            if !output.status.success() {
                return Err(io::Error::other(format!(
                    "redis-cli --scan on {node} failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            keys.extend(
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .map(str::to_owned),
            );
        }
        Ok(keys.into_iter().collect())
    }

    /// `redis-cli` for one node, authenticated.
    fn redis_cli_for(&self, node: &str) -> Option<Command> {
        let binary = find_binary("redis-cli")?;
        let (host, port) = split_host_port(node)?;
        let mut command = Command::new(binary);
        command.args(["-h", &host, "-p", &port.to_string(), "--no-raw"]);
        if let Some(user) = &self.username {
            command.args(["--user", user]);
        }
        if let Some(password) = &self.password {
            command.env("REDISCLI_AUTH", password);
        }
        Some(command)
    }

    /// The URL with query options appended, e.g. `with_options("namespace=a&pool_size=2")`.
    pub fn url_with(&self, options: &str) -> String {
        super::url_with(&self.url, options)
    }
}

/// The standalone server of this test process: the one in `KV_REDIS_URL`, else a private one
/// started on first use. `None` (after a loud skip message) when there is neither; a panic
/// instead under `KVKIT_REQUIRE_SERVICES`.
pub fn standalone() -> Option<&'static RedisService> {
    static SERVICE: OnceLock<Option<RedisService>> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = match from_env(URL_ENV, false) {
                Some(service) => service,
                None => match from_container("Redis server", containers_standalone)? {
                    Some(service) => service,
                    None => start_or_report("Redis server", || start_private_standalone("shared"))?,
                },
            };
            announce("standalone Redis", &service);
            Some(service)
        })
        .as_ref()
}

/// The Redis Cluster of this test process: the one in `KV_REDIS_CLUSTER_URL`, else a private
/// 3-primary, 3-replica cluster started on first use (a few seconds). `None` or a panic as for
/// [`standalone`].
pub fn cluster() -> Option<&'static RedisService> {
    static SERVICE: OnceLock<Option<RedisService>> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = match from_env(CLUSTER_URL_ENV, true) {
                Some(service) => service,
                None => match from_container("Redis Cluster", containers_cluster)? {
                    Some(service) => service,
                    None => start_or_report("Redis Cluster", || {
                        // Shared by every test of the process: none may kill its nodes.
                        start_private_cluster("cluster", SHARED_NODE_TIMEOUT_MS).map(
                            |mut service| {
                                service.respawn = None;
                                service
                            },
                        )
                    })?,
                },
            };
            announce("Redis Cluster", &service);
            Some(service)
        })
        .as_ref()
}

/// A new private Redis Cluster (three primaries, three replicas) for this caller alone,
/// stopped when the value is dropped: for tests that kill nodes. Its
/// `cluster-node-timeout` is [`FAILOVER_NODE_TIMEOUT_MS`], so that a replica takes over a
/// killed primary within a few seconds. Always local processes, even when
/// `KV_REDIS_CLUSTER_URL` is set. `None` or a panic as for [`standalone`].
pub fn private_cluster() -> Option<RedisService> {
    start_or_report("private Redis Cluster", || {
        start_private_cluster("failover", FAILOVER_NODE_TIMEOUT_MS)
    })
}

/// A new private standalone server for this caller alone, stopped when the value is dropped:
/// for tests that pause, kill or reconfigure their server. Always a local process, even when
/// `KV_REDIS_URL` is set. `None` or a panic as for [`standalone`].
pub fn private_standalone() -> Option<RedisService> {
    start_or_report("private Redis server", || {
        start_private_standalone("private")
    })
}

fn announce(what: &str, service: &RedisService) {
    eprintln!(
        "kv-conformance: {what} for this test process: {} at {}",
        service.provider,
        redact(&service.url)
    );
}

/// A new private standalone server whose every acknowledged write is on disk: the append-only
/// file with `appendfsync always` (the reply to a write comes after its fsync), in its own
/// directory, so that [`RedisService::kill`] and [`RedisService::restart`] lose nothing that
/// was acknowledged. `None` or a panic as for [`standalone`].
pub fn private_durable_standalone() -> Option<RedisService> {
    start_or_report("private durable Redis server", || {
        start_private_standalone_with(
            "durable",
            &["--appendonly", "yes", "--appendfsync", "always"],
        )
    })
}

impl RedisService {
    /// Kills the private standalone server with `SIGKILL` (no shutdown, no last save) and waits
    /// for it to exit. Killing a killed server does nothing; a server not started here by
    /// [`private_standalone`] or [`private_durable_standalone`] cannot be killed.
    pub fn kill(&mut self) -> io::Result<()> {
        self.standalone_only()?;
        self.respawn_info()?;
        if let Some(mut process) = self.processes.pop() {
            process.signal("KILL")?;
            process.wait_exit(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Starts the killed server again, on its port, with its settings and directory (so a
    /// durable one reloads its append-only file), and waits until it listens. Starting a
    /// running server does nothing.
    pub fn restart(&mut self) -> io::Result<()> {
        self.standalone_only()?;
        if !self.processes.is_empty() {
            return Ok(());
        }
        let respawn = self.respawn_info()?;
        respawn.starts += 1;
        let extra: Vec<&str> = respawn.extra.iter().map(String::as_str).collect();
        let command = server_command(
            &respawn.binary,
            &respawn.dir,
            &respawn.password,
            respawn.port,
            &extra,
        );
        let log = respawn
            .dir
            .join(format!("redis-{}-{}.log", respawn.port, respawn.starts));
        let mut process = LocalProcess::spawn(command, &log)?;
        wait_for_port(respawn.port, STARTUP_TIMEOUT)?;
        if process.has_exited() {
            return Err(io::Error::other(format!(
                "redis-server exited at its restart; see {}",
                log.display()
            )));
        }
        self.processes.push(process);
        Ok(())
    }

    /// The address (`host:port`) of the node that serves `key`'s slot as primary now, as the
    /// first node that answers sees it (`CLUSTER KEYSLOT`, `CLUSTER NODES`). Only a cluster.
    pub fn primary_of(&self, key: &str) -> io::Result<String> {
        let mut failures = Vec::new();
        for node in &self.nodes {
            let answer = self
                .cluster_command(node, &["CLUSTER", "KEYSLOT", key])
                .and_then(|slot| {
                    let slot: u16 = slot
                        .trim()
                        .trim_start_matches("(integer) ")
                        .parse()
                        .map_err(|_| {
                            io::Error::other(format!("CLUSTER KEYSLOT answered `{slot}`"))
                        })?;
                    let nodes = self.cluster_command(node, &["CLUSTER", "NODES"])?;
                    primary_serving(&nodes, slot).ok_or_else(|| {
                        io::Error::other(format!("no live primary serves slot {slot}"))
                    })
                });
            match answer {
                Ok(primary) => return Ok(primary),
                Err(err) => failures.push(format!("{node}: {err}")),
            }
        }
        Err(io::Error::other(failures.join("; ")))
    }

    /// Kills the node at `address` (one of [`nodes`](Self::nodes)) with `SIGKILL` and waits
    /// for it to exit. Only a cluster started by [`private_cluster`].
    pub fn kill_node(&mut self, address: &str) -> io::Result<()> {
        let index = self.node_index(address)?;
        let process = &mut self.processes[index];
        if !process.has_exited() {
            process.signal("KILL")?;
        }
        process.wait_exit(Duration::from_secs(10)).map(|_| ())
    }

    /// Starts the node at `address`, killed by [`kill_node`](Self::kill_node), again on its
    /// port with its settings and `nodes.conf`, and waits until it listens: it rejoins the
    /// cluster, as a replica if its slots failed over meanwhile. Starting a running node does
    /// nothing.
    pub fn restart_node(&mut self, address: &str) -> io::Result<()> {
        let index = self.node_index(address)?;
        if !self.processes[index].has_exited() {
            return Ok(());
        }
        let (_, port) = split_host_port(address)
            .ok_or_else(|| io::Error::other(format!("{address} is not host:port")))?;
        let respawn = self.respawn_info()?;
        respawn.starts += 1;
        let extra: Vec<&str> = respawn.extra.iter().map(String::as_str).collect();
        let mut command = server_command(
            &respawn.binary,
            &respawn.dir,
            &respawn.password,
            port,
            &extra,
        );
        command.args(["--cluster-config-file", &format!("nodes-{port}.conf")]);
        let log = respawn
            .dir
            .join(format!("redis-{port}-{}.log", respawn.starts));
        let mut process = LocalProcess::spawn(command, &log)?;
        wait_for_port(port, STARTUP_TIMEOUT)?;
        if process.has_exited() {
            return Err(io::Error::other(format!(
                "redis-server exited at its restart; see {}",
                log.display()
            )));
        }
        self.processes[index] = process;
        Ok(())
    }

    /// Where `address`'s process is in `processes`, for a private cluster.
    fn node_index(&self, address: &str) -> io::Result<usize> {
        if !self.cluster || self.processes.len() != self.nodes.len() || self.respawn.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "only a private cluster's nodes can be killed (this is {})",
                    self.provider
                ),
            ));
        }
        self.nodes
            .iter()
            .position(|node| node == address)
            .ok_or_else(|| io::Error::other(format!("{address} is not a node of this cluster")))
    }

    fn standalone_only(&self) -> io::Result<()> {
        if self.cluster {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a cluster's nodes are killed and restarted one by one (kill_node, restart_node)",
            ));
        }
        Ok(())
    }

    /// `redis-cli` on `node` with `args`: its output, or an error if it fails.
    fn cluster_command(&self, node: &str, args: &[&str]) -> io::Result<String> {
        let mut cli = self
            .redis_cli_for(node)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "redis-cli is not installed"))?;
        let output = cli.arg("--raw").args(args).stdin(Stdio::null()).output()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() || text.trim().is_empty() || text.starts_with("ERR") {
            return Err(io::Error::other(format!(
                "redis-cli {} failed: {}{}",
                args.join(" "),
                text.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(text)
    }

    fn respawn_info(&mut self) -> io::Result<&mut Respawn> {
        let provider = self.provider.clone();
        self.respawn.as_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("only a private standalone server restarts (this one is {provider})"),
            )
        })
    }
}

fn from_env(variable: &'static str, cluster: bool) -> Option<RedisService> {
    let url = std::env::var(variable)
        .ok()
        .filter(|url| !url.trim().is_empty())?;
    Some(RedisService {
        username: username_in(&url),
        password: password_in(&url),
        nodes: nodes_in(&url, 6379),
        url,
        provider: Provider::Environment(variable),
        cluster,
        processes: Vec::new(),
        container: None,
        respawn: None,
    })
}

/// Runs `start` if `redis-server` and `redis-cli` are installed; reports why not otherwise.
fn start_or_report(
    service: &str,
    start: impl FnOnce() -> io::Result<RedisService>,
) -> Option<RedisService> {
    if find_binary("redis-server").is_none() || find_binary("redis-cli").is_none() {
        return unavailable(
            service,
            "no URL in the environment, and `redis-server` or `redis-cli` is not installed",
            HOW_TO_GET_ONE,
        );
    }
    match start() {
        Ok(service) => Some(service),
        Err(err) => unavailable(
            service,
            &format!("starting it failed: {err}"),
            HOW_TO_GET_ONE,
        ),
    }
}

fn start_private_standalone(label: &str) -> io::Result<RedisService> {
    start_private_standalone_with(label, &[])
}

fn start_private_standalone_with(label: &str, extra: &[&str]) -> io::Result<RedisService> {
    let binary = find_binary("redis-server").ok_or(io::ErrorKind::NotFound)?;
    let dir = private_dir("redis", label)?;
    let password = random_password();
    let (process, port) = spawn_server(&binary, &dir, &password, u16::MAX, extra)?;
    Ok(RedisService {
        url: format!("redis://:{password}@127.0.0.1:{port}"),
        provider: Provider::LocalBinary(binary.clone()),
        username: None,
        password: Some(password.clone()),
        nodes: vec![format!("127.0.0.1:{port}")],
        cluster: false,
        processes: vec![process],
        container: None,
        respawn: Some(Respawn {
            binary,
            dir,
            password,
            port,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            starts: 1,
        }),
    })
}

fn start_private_cluster(label: &str, node_timeout_ms: u32) -> io::Result<RedisService> {
    let binary = find_binary("redis-server").ok_or(io::ErrorKind::NotFound)?;
    let cli = find_binary("redis-cli").ok_or(io::ErrorKind::NotFound)?;
    let dir = private_dir("redis", label)?;
    let password = random_password();
    let node_timeout = node_timeout_ms.to_string();
    let node_args = [
        "--cluster-enabled",
        "yes",
        "--cluster-node-timeout",
        &node_timeout,
        // A replica takes over however long ago it last heard from its primary
        // (Redis's default refuses after ten node timeouts without contact, which a
        // loaded test machine can reach).
        "--cluster-replica-validity-factor",
        "0",
        "--masterauth",
        &password,
    ];
    let mut by_port = std::collections::BTreeMap::new();
    while by_port.len() < 6 {
        let (process, port) = spawn_server(&binary, &dir, &password, MAX_CLUSTER_PORT, &node_args)?;
        // A port equal to another node's bus port would make one of them fail later.
        if by_port
            .keys()
            .any(|&p: &u16| p == port + 10_000 || p + 10_000 == port)
        {
            continue;
        }
        by_port.insert(port, process);
    }
    let ports: BTreeSet<u16> = by_port.keys().copied().collect();
    let nodes: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    // In the order of `nodes`, which `kill_node` relies on.
    let processes: Vec<LocalProcess> = by_port.into_values().collect();

    let mut create = Command::new(&cli);
    create
        .args(["--cluster", "create"])
        .args(&nodes)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .env("REDISCLI_AUTH", &password);
    run_with_timeout(create, &dir.join("cluster-create.log"), STARTUP_TIMEOUT)?;

    // Ready when every node reports the cluster healthy and agrees on the roles (right after
    // `--cluster create`, some nodes still see the future replicas as empty primaries), and
    // every replica has finished its first sync: a replica that never synced cannot take over
    // its primary, so a test killing one right away would see no failover.
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    for port in &ports {
        loop {
            let info = cli_output(&cli, *port, &password, &["CLUSTER", "INFO"])?;
            let nodes = cli_output(&cli, *port, &password, &["CLUSTER", "NODES"])?;
            let replication = cli_output(&cli, *port, &password, &["INFO", "replication"])?;
            if cluster_ready(&info, &nodes) && replica_in_sync(&replication) {
                break;
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "node 127.0.0.1:{port} did not report cluster_state:ok within \
                         {STARTUP_TIMEOUT:?}; logs in {}",
                        dir.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let extra = node_args.iter().map(|arg| (*arg).to_owned()).collect();
    Ok(RedisService {
        url: format!("redis+cluster://:{password}@{}", nodes.join(",")),
        provider: Provider::LocalBinary(binary.clone()),
        username: None,
        password: Some(password.clone()),
        nodes,
        cluster: true,
        processes,
        container: None,
        respawn: Some(Respawn {
            binary,
            dir,
            password,
            port: 0, // each node's own
            extra,
            starts: 1,
        }),
    })
}

/// The address of the primary in `CLUSTER NODES` output that serves `slot` and is not marked
/// failed (`id host:port@bus,hostname flags master-id ping pong epoch link slot...`).
fn primary_serving(nodes: &str, slot: u16) -> Option<String> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.contains("master") || flags.contains("fail") {
            return None;
        }
        let serves = fields.iter().skip(8).any(|range| {
            let mut ends = range.splitn(2, '-');
            let first = ends.next().and_then(|n| n.parse::<u16>().ok());
            let last = ends.next().and_then(|n| n.parse::<u16>().ok()).or(first);
            matches!((first, last), (Some(a), Some(b)) if (a..=b).contains(&slot))
        });
        let address = fields.get(1)?.split(['@', ',']).next()?;
        serves.then(|| address.to_owned())
    })
}

/// Whether a node's `INFO replication` shows a primary, or a replica whose link to its
/// primary is up (its first sync done).
fn replica_in_sync(replication: &str) -> bool {
    let field = |name: &str| {
        replication
            .lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
            .map(str::to_owned)
    };
    match field("role").as_deref() {
        Some("master") => true,
        Some("slave") => field("master_link_status").as_deref() == Some("up"),
        _ => false,
    }
}

/// Whether a node's `CLUSTER INFO` and `CLUSTER NODES` show a healthy cluster of three
/// primaries and three replicas.
fn cluster_ready(info: &str, nodes: &str) -> bool {
    let count = |role: &str| {
        nodes
            .lines()
            .filter(|line| {
                line.split_whitespace()
                    .nth(2)
                    .is_some_and(|f| f.contains(role))
            })
            .count()
    };
    info.contains("cluster_state:ok")
        && info.contains("cluster_known_nodes:6")
        && count("master") == 3
        && count("slave") == 3
}

/// The `host:port` every node of `CLUSTER NODES` announces (`id host:port@bus flags ...`,
/// with an optional `,hostname`), sorted. Only a container's cluster needs it: a cluster this
/// process starts has the addresses it chose.
#[cfg(any(feature = "containers", test))]
fn announced_nodes(nodes: &str) -> Vec<String> {
    let mut addresses: Vec<String> = nodes
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|address| address.split(['@', ',']).next())
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect();
    addresses.sort();
    addresses
}

/// The container step for `service` (see [`containers`](super::containers)): `Some(found)`,
/// `found` being `None` to go on to a local binary (always so without the `containers`
/// feature); `None` after [`unavailable`] when the service must not come from elsewhere.
fn from_container(
    service: &str,
    start: fn() -> Result<Option<RedisService>, String>,
) -> Option<Option<RedisService>> {
    match start() {
        Ok(found) => Some(found),
        Err(why) => {
            let _: Option<()> = unavailable(service, &why, HOW_TO_GET_ONE);
            None
        }
    }
}

#[cfg(feature = "containers")]
fn containers_standalone() -> Result<Option<RedisService>, String> {
    use super::containers::{attempt, Ready, Service};
    attempt("standalone Redis", Service::Redis, |image| {
        let password = random_password();
        let args = [
            "--requirepass",
            &password,
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        let container = RunningContainer::start(
            image,
            &[6379],
            Some(args.map(str::to_owned).to_vec()),
            &[],
            Ready::Stdout("Ready to accept connections"),
        )?;
        let node = format!("{}:{}", container.host(), container.host_port(6379)?);
        Ok(RedisService {
            url: format!("redis://:{password}@{node}"),
            provider: Provider::Container {
                image: image.to_string(),
            },
            username: None,
            password: Some(password),
            nodes: vec![node],
            cluster: false,
            processes: Vec::new(),
            container: Some(container),
            respawn: None,
        })
    })
}

#[cfg(feature = "containers")]
fn containers_cluster() -> Result<Option<RedisService>, String> {
    use super::containers::{attempt, Ready, Service};
    attempt("Redis Cluster", Service::RedisCluster, |image| {
        let ports = [7000, 7001, 7002, 7003, 7004, 7005];
        let container = RunningContainer::start(image, &ports, None, &[], Ready::Started)?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut pending = ports.to_vec();
        let mut nodes = String::new();
        while let Some(&port) = pending.first() {
            let port = port.to_string();
            let cli = |args: &[&str]| {
                let mut command = vec!["redis-cli", "-p", &port];
                command.extend_from_slice(args);
                container.exec(&command)
            };
            // The cluster is being created while the first calls run: failures mean "not yet".
            let info = cli(&["CLUSTER", "INFO"]).unwrap_or_default();
            let these = cli(&["CLUSTER", "NODES"]).unwrap_or_default();
            if cluster_ready(&info, &these) {
                pending.remove(0);
                nodes = these;
                continue;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {port} of container {} did not report a healthy 3+3 cluster within \
                     {STARTUP_TIMEOUT:?}",
                    container.id()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let nodes = announced_nodes(&nodes);
        Ok(RedisService {
            url: format!("redis+cluster://{}", nodes.join(",")),
            provider: Provider::Container {
                image: image.to_string(),
            },
            username: None,
            password: None,
            nodes,
            cluster: true,
            processes: Vec::new(),
            container: Some(container),
            respawn: None,
        })
    })
}

#[cfg(not(feature = "containers"))]
fn containers_standalone() -> Result<Option<RedisService>, String> {
    Ok(None)
}

#[cfg(not(feature = "containers"))]
fn containers_cluster() -> Result<Option<RedisService>, String> {
    Ok(None)
}

/// Starts `redis-server` on a free loopback port below `max_port` (trying again if another
/// process takes the port first) and waits until it listens.
fn spawn_server(
    binary: &Path,
    dir: &Path,
    password: &str,
    max_port: u16,
    extra: &[&str],
) -> io::Result<(LocalProcess, u16)> {
    let mut last_error = None;
    for _ in 0..5 {
        let cluster = max_port == MAX_CLUSTER_PORT;
        let port = free_port(max_port, |port| {
            cluster.then(|| port.checked_add(10_000)).flatten()
        })?;
        let mut command = server_command(binary, dir, password, port, extra);
        if cluster {
            command.args(["--cluster-config-file", &format!("nodes-{port}.conf")]);
        }
        let mut process = LocalProcess::spawn(command, &dir.join(format!("redis-{port}.log")))?;
        match wait_for_port(port, Duration::from_secs(10)) {
            Ok(()) if !process.has_exited() => return Ok((process, port)),
            Ok(()) => last_error = Some(io::Error::other(format!("redis-server on {port} exited"))),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
}

/// `redis-server` on `127.0.0.1:port`, its files in `dir`, no snapshots and no append-only
/// file unless `extra` (given last, so it wins) says otherwise.
fn server_command(binary: &Path, dir: &Path, password: &str, port: u16, extra: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--requirepass", password])
        .args(extra);
    command
}

/// `redis-cli -p port ARGS...`'s standard output.
fn cli_output(cli: &Path, port: u16, password: &str, args: &[&str]) -> io::Result<String> {
    let output = Command::new(cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env("REDISCLI_AUTH", password)
        .stdin(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(redact("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis://u:secret@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact("redis://u@h"), "redis://u@h");
        assert_eq!(
            redact("redis://h?namespace=a:b@c"),
            "redis://h?namespace=a:b@c"
        );
        let service = RedisService {
            url: "redis://:secret@127.0.0.1:1".into(),
            provider: Provider::Environment(URL_ENV),
            username: None,
            password: Some("secret".into()),
            nodes: vec!["127.0.0.1:1".into()],
            cluster: false,
            processes: Vec::new(),
            container: None,
            respawn: None,
        };
        assert!(!format!("{service:?}").contains("secret"));
        assert_eq!(
            service.url_with("namespace=x"),
            "redis://:secret@127.0.0.1:1?namespace=x"
        );
    }

    #[test]
    fn cluster_health_and_addresses_come_from_cluster_nodes() {
        let nodes = "\
a1 172.17.0.2:7000@17000 myself,master - 0 0 1 connected 0-5460
a2 172.17.0.2:7001@17001 master - 0 1 2 connected 5461-10922
a3 172.17.0.2:7002@17002,node-c master - 0 1 3 connected 10923-16383
b1 172.17.0.2:7003@17003 slave a1 0 1 1 connected
b2 172.17.0.2:7004@17004 slave a2 0 1 2 connected
b3 172.17.0.2:7005@17005 slave a3 0 1 3 connected
";
        let info = "cluster_state:ok\r\ncluster_known_nodes:6\r\n";
        assert!(cluster_ready(info, nodes));
        assert!(!cluster_ready(
            "cluster_state:fail\r\ncluster_known_nodes:6",
            nodes
        ));
        let early = nodes.replace("slave a3", "master -");
        assert!(!cluster_ready(info, &early));
        let addresses = announced_nodes(nodes);
        assert_eq!(addresses.len(), 6);
        assert_eq!(addresses[0], "172.17.0.2:7000");
        assert_eq!(addresses[2], "172.17.0.2:7002");

        assert_eq!(
            primary_serving(nodes, 0).as_deref(),
            Some("172.17.0.2:7000")
        );
        assert_eq!(
            primary_serving(nodes, 5461).as_deref(),
            Some("172.17.0.2:7001")
        );
        assert_eq!(
            primary_serving(nodes, 16383).as_deref(),
            Some("172.17.0.2:7002")
        );
        // After a failover: the old primary is marked failed and its replica serves the slots.
        let failed_over = nodes
            .replace(
                "myself,master - 0 0 1 connected 0-5460",
                "master,fail - 0 0 1 connected",
            )
            .replace(
                "slave a1 0 1 1 connected",
                "master - 0 1 7 connected 0-5460",
            );
        assert_eq!(
            primary_serving(&failed_over, 100).as_deref(),
            Some("172.17.0.2:7003")
        );
        let down = nodes.replace("myself,master", "myself,master,fail");
        assert_eq!(primary_serving(&down, 100), None);
    }

    #[test]
    fn a_replica_is_in_sync_once_its_link_is_up() {
        assert!(replica_in_sync(
            "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"
        ));
        assert!(replica_in_sync(
            "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_link_status:up\r\n"
        ));
        assert!(!replica_in_sync(
            "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\n"
        ));
        assert!(!replica_in_sync(""));
    }
}
