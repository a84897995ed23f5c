//! [`RedisBackendBuilder`]: which server or cluster, how to reach it, and the backend's limits.
//!
//! Also parses `redis://`, `rediss://`, `redis+cluster://` and `rediss+cluster://` URLs into a
//! builder, so a URL and the builder methods configure exactly the same settings. Nothing here
//! ever shows a password: `Debug`, [`RedisBackendBuilder::endpoint`] and every error message
//! print `***` in its place.

use std::fmt;
use std::time::Duration;

use kv_trait::url_config::{
    encode_component, parse_host_port, split_userinfo, Secret, StoreUrl, REDACTED,
};
use kv_trait::{KvError, DEFAULT_MAX_VALUE_BYTES};

use crate::RedisBackend;

/// The port of a URL that names none: Redis's default.
pub(crate) const DEFAULT_PORT: u16 = 6379;

/// How long establishing a connection (TCP, TLS, `HELLO`/`AUTH`, `SELECT`) may take.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request (one round trip) may take before the call fails with `Unavailable`.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How many requests of one backend (and its clones) are in flight at once by default: the
/// others wait for a place before their request timeout starts (see `kv_trait::RequestLimit`).
/// A burst of 10,000 calls on one cluster handle otherwise queued in the cluster client's one
/// routing task, and calls at its end timed out; 256 requests in flight already keep a
/// multiplexed connection's pipeline full.
pub(crate) const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;

/// The largest `max_value_bytes` accepted: Redis strings (and, by default, one bulk argument
/// of the protocol, `proto-max-bulk-len`) are limited to 512 MiB.
pub(crate) const LARGEST_MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// How long a write waits for its replicas when `wait_replicas` is set without
/// `wait_timeout_ms`.
pub(crate) const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// The `?name=value` options of a Redis URL.
const URL_OPTIONS: [&str; 10] = [
    "namespace",
    "connect_timeout_ms",
    "request_timeout_ms",
    "max_concurrent_requests",
    "max_value_bytes",
    "tls_ca_file",
    "wait_replicas",
    "wait_timeout_ms",
    "increments",
    "watch",
];

/// How `increment` runs: chosen from the server, or fixed (the `increments` URL option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IncrementMode {
    /// A bare `INCRBY` on Redis and Valkey 6 and later, whose own integer parsing accepts
    /// exactly the contract's counters; the script on any other server (or one that does not
    /// answer `INFO server` when the backend connects). `increments=auto`.
    #[default]
    Auto,
    /// Always a bare `INCRBY`, without asking the server: only for a server whose `INCRBY`
    /// refuses exactly the values the contract refuses (`+1`, `01`, `-0`, `" 1"` ...), such
    /// as one behind a proxy that does not pass `INFO` on. `increments=native`.
    Native,
    /// Always the script that checks the counter's form before `INCRBY`: right on every
    /// server, one round trip too (two the first time on each server). `increments=script`.
    Script,
}

/// Whether the backend talks to one server or to a Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One Redis server (`redis://`, `rediss://`), possibly a primary with replicas behind it:
    /// the backend talks to the address it was given.
    Standalone,
    /// A Redis Cluster (`redis+cluster://`, `rediss+cluster://`): the given nodes are only the
    /// seeds from which the client learns the whole cluster; every request goes to the primary
    /// that owns the key's slot.
    Cluster,
}

/// How many replicas must have acknowledged a write before it succeeds, and how long to wait
/// for them: Redis's `WAIT numreplicas timeout`, sent after each write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplicaWait {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

/// One server address, `host:port`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port) // IPv6
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Builds a [`RedisBackend`] with non-default settings.
///
/// Start from [`from_url`](Self::from_url), adjust, then [`build`](Self::build) (async: it
/// connects, so a wrong address or password fails there rather than at the first operation).
///
/// ```
/// use std::time::Duration;
/// use kv_redis::{RedisBackendBuilder, Topology};
///
/// let builder = RedisBackendBuilder::from_url("redis://app:s3cret@cache.internal:6380/2")?
///     .namespace("sessions")
///     .connect_timeout(Duration::from_secs(2))
///     .request_timeout(Duration::from_millis(500))
///     .max_concurrent_requests(64)
///     .max_value_bytes(256 * 1024);
/// assert_eq!(builder.topology(), Topology::Standalone);
/// // The password never appears, in Debug or anywhere else.
/// assert_eq!(builder.endpoint(), "redis://app:***@cache.internal:6380/2");
/// assert!(!format!("{builder:?}").contains("s3cret"));
/// # Ok::<(), kv_trait::KvError>(())
/// ```
#[derive(Clone)]
pub struct RedisBackendBuilder {
    pub(crate) topology: Topology,
    pub(crate) tls: bool,
    pub(crate) nodes: Vec<Node>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) database: u32,
    pub(crate) namespace: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_concurrent_requests: usize,
    pub(crate) max_value_bytes: usize,
    /// `None`: a write succeeds once its primary applied it (Redis's own behaviour).
    pub(crate) replica_wait: Option<ReplicaWait>,
    pub(crate) increments: IncrementMode,
    /// Whether writes announce their changes to watchers (`watch=true`).
    pub(crate) watch: bool,
    /// Where the PEM root certificates come from; `None`: the system's and webpki's roots.
    pub(crate) tls_roots: Option<TlsRoots>,
}

/// Root certificates (PEM) to trust for TLS instead of the system's and webpki's.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))] // only TLS connections read them
pub(crate) enum TlsRoots {
    /// Given to the builder.
    Pem(Vec<u8>),
    /// A file to read when connecting (the `tls_ca_file` URL option).
    File(std::path::PathBuf),
}

#[cfg_attr(not(feature = "tls"), allow(dead_code))]
impl TlsRoots {
    pub(crate) fn pem(&self) -> Result<Vec<u8>, KvError> {
        match self {
            TlsRoots::Pem(pem) => Ok(pem.clone()),
            TlsRoots::File(path) => std::fs::read(path).map_err(|err| {
                invalid(format!("cannot read tls_ca_file {}: {err}", path.display()))
            }),
        }
    }
}

impl RedisBackendBuilder {
    /// A builder configured from a URL:
    ///
    /// | URL | store |
    /// | --- | --- |
    /// | `redis://[user[:password]@]host[:port][/db]` | one server (port 6379 unless given; database 0 unless given) |
    /// | `rediss://...` | the same over TLS (needs the `tls` cargo feature) |
    /// | `redis+cluster://[user[:password]@]host:port[,host:port...]` | a Redis Cluster, found from these seed nodes |
    /// | `rediss+cluster://...` | a Redis Cluster over TLS (needs the `tls` cargo feature) |
    ///
    /// An IPv6 host is written in brackets (`[::1]:6379`). The user name and password are
    /// percent-decoded (write `@`, `:`, `/`, `?`, `#` and `%` as `%40`, `%3A`, `%2F`, `%3F`,
    /// `%23` and `%25`); `:password@` alone is a password for the default user. Options
    /// follow a `?` as `name=value` pairs joined by `&`: `namespace`, `connect_timeout_ms`,
    /// `request_timeout_ms`, `max_concurrent_requests`, `max_value_bytes`, `increments`
    /// (`auto`, `native` or `script`) and `watch` (`true` or `false`), meaning what the builder
    /// methods of the same names mean, and `tls_ca_file=PATH`, a PEM file of the root
    /// certificates to trust for TLS (see `tls_root_certificates`, with the `tls` feature).
    ///
    /// Another scheme, a malformed host, port or database, an unknown or repeated option, or a
    /// malformed value is [`KvError::InvalidConfig`] naming the problem (never the password).
    ///
    /// ```
    /// use kv_redis::{RedisBackendBuilder, Topology};
    ///
    /// let cluster = RedisBackendBuilder::from_url(
    ///     "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000,[fd00::3]:7000?namespace=jobs",
    /// )?;
    /// assert_eq!(cluster.topology(), Topology::Cluster);
    /// assert_eq!(
    ///     cluster.endpoint(),
    ///     "redis+cluster://:***@10.0.0.1:7000,10.0.0.2:7000,[fd00::3]:7000"
    /// );
    /// assert!(RedisBackendBuilder::from_url("redis://localhost?colour=blue").is_err());
    /// assert!(RedisBackendBuilder::from_url("memcached://localhost").is_err());
    /// # Ok::<(), kv_trait::KvError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, KvError> {
        let scheme = url
            .split_once("://")
            .map(|(scheme, _)| scheme)
            .ok_or_else(|| {
                invalid("a Redis URL starts with `redis://`, `rediss://` or `redis+cluster://`")
            })?;
        let (topology, tls) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (Topology::Standalone, false),
            "rediss" => (Topology::Standalone, true),
            "redis+cluster" => (Topology::Cluster, false),
            "rediss+cluster" => (Topology::Cluster, true),
            _ => {
                return Err(invalid(format!(
                    "unknown scheme `{scheme}`: expected redis, rediss, redis+cluster or \
                     rediss+cluster"
                )))
            }
        };
        let mut parsed = StoreUrl::parse(url, scheme)?;
        // The last `@` ends the user information, so a password with an unencoded `@` or `/`
        // still works, and is never parsed (and quoted) as a host, a port or a path.
        let (userinfo, rest) = split_userinfo(parsed.location());
        let (hosts, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };

        let nodes = hosts
            .split(',')
            .map(parse_node)
            .collect::<Result<Vec<_>, _>>()?;
        if topology == Topology::Standalone && nodes.len() > 1 {
            return Err(invalid(format!(
                "`{scheme}://` names one server, but the URL lists {}; a Redis Cluster URL \
                 starts with `{scheme}+cluster://`",
                nodes.len()
            )));
        }
        let mut builder = Self {
            topology,
            tls,
            nodes,
            username: None,
            password: None,
            database: parse_database(path)?,
            namespace: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            replica_wait: None,
            increments: IncrementMode::Auto,
            watch: false,
            tls_roots: None,
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let user = decode_userinfo(user, "user name")?;
            builder.username = (!user.is_empty()).then_some(user);
            if let Some(password) = password {
                let password = decode_userinfo(password, "password")?;
                builder.password = (!password.is_empty()).then_some(Secret::new(password));
            }
        }

        if let Some(namespace) = parsed.take("namespace") {
            builder.namespace = namespace;
        }
        if let Some(ms) = parsed.take_number("connect_timeout_ms")? {
            builder.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = parsed.take_number("request_timeout_ms")? {
            builder.request_timeout = Duration::from_millis(ms);
        }
        if let Some(max) = parsed.take_number("max_concurrent_requests")? {
            builder.max_concurrent_requests = max;
        }
        if let Some(max) = parsed.take_number("max_value_bytes")? {
            builder.max_value_bytes = max;
        }
        if let Some(mode) = parsed.take("increments") {
            builder.increments = match mode.as_str() {
                "auto" => IncrementMode::Auto,
                "native" => IncrementMode::Native,
                "script" => IncrementMode::Script,
                other => {
                    return Err(invalid(format!(
                        "increments={other}: expected auto, native or script"
                    )))
                }
            };
        }
        if let Some(watch) = parsed.take_bool("watch")? {
            builder.watch = watch;
        }
        if let Some(path) = parsed.take("tls_ca_file") {
            builder.tls_roots = Some(TlsRoots::File(path.into()));
        }
        let wait_timeout = parsed
            .take_number("wait_timeout_ms")?
            .map(Duration::from_millis);
        match (parsed.take_number("wait_replicas")?, wait_timeout) {
            (Some(replicas), timeout) => {
                builder =
                    builder.wait_for_replicas(replicas, timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "wait_timeout_ms is how long a write waits for wait_replicas replicas: \
                     give wait_replicas too",
                ))
            }
            (None, None) => {}
        }
        parsed.finish(&URL_OPTIONS)?;
        Ok(builder)
    }

    /// The namespace this backend's keys live in (default: `""`, the whole database).
    ///
    /// A non-empty namespace `ns` stores key `k` as the Redis key `escape(ns) + ":" + k`,
    /// where `escape` writes `\` as `\\` and `:` as `\:` (see
    /// [`namespace_prefix`](crate::namespace_prefix)), so `app` and `app:v2` can never see
    /// each other's keys. The empty namespace adds no prefix: it is the raw keyspace of the
    /// database, and so also sees the keys of every namespace in it.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long establishing a connection may take: TCP, TLS, the `HELLO`/`AUTH` handshake and
    /// `SELECT` (default 5 s). Also bounds [`build`](Self::build).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one request may take, from sending it (or waiting for a connection) to its
    /// reply, before the operation fails with [`KvError::Unavailable`] (default 3 s). An
    /// operation of several round trips (`list_keys`, `compare_and_swap` on a standalone
    /// server) bounds each of them.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many requests of this backend and its clones are in flight at once (default 256,
    /// at most 65,536). The others wait for a place, and a request's
    /// [`request_timeout`](Self::request_timeout) starts once it has one, so a burst of calls
    /// on one handle queues in the client instead of timing out behind itself in the
    /// connection's pipeline (or, in cluster mode, in the cluster client's routing task).
    pub fn max_concurrent_requests(mut self, requests: usize) -> Self {
        self.max_concurrent_requests = requests;
        self
    }

    /// The longest value accepted, in bytes (default 1 MiB; at least 64 KiB, at most 512 MiB,
    /// Redis's limit for a string).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// Makes every write wait until `replicas` replicas of its primary have acknowledged it,
    /// for at most `timeout` (Redis's `WAIT`, sent after the write on the same connection);
    /// `replicas = 0` turns waiting off, the default.
    ///
    /// Redis replicates asynchronously: a write acknowledged by a primary that dies before its
    /// replicas copied it is lost when a replica takes over. Waiting for a replica narrows that
    /// window to what `WAIT` promises (the replica received the write; Redis does not make
    /// this strongly consistent: with several replicas, the one promoted may not be one that
    /// had it), at the price of a replication round trip on every write. After a failover
    /// the promoted replica has no replica of its own until another joins it (the old
    /// primary, restarted, does so by itself): until then writes to its slots fail. A write that
    /// fewer replicas acknowledged within `timeout` was applied on the primary but may yet be
    /// lost: it fails with [`KvError::Unavailable`], the contract's "may or may not have taken
    /// effect", naming how many replicas had it. Reads are unchanged.
    ///
    /// Every write sends one more command: on a standalone server `WAIT` pipelined behind the
    /// write (one round trip); in a cluster `WAIT`
    /// to the key's primary once the write has succeeded (a second round trip), or to every
    /// primary after a batch spanning slots. `timeout` must be shorter than the request
    /// timeout, which bounds each round trip, `WAIT` included.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replica_wait = (replicas > 0).then_some(ReplicaWait { replicas, timeout });
        self
    }

    /// How `increment` runs (default [`IncrementMode::Auto`]: a bare `INCRBY` on Redis and
    /// Valkey 6+, the form-checking script elsewhere).
    pub fn increments(mut self, mode: IncrementMode) -> Self {
        self.increments = mode;
        self
    }

    /// Whether to serve `watch` (default `false`; URL option `watch=true`).
    ///
    /// Redis's keyspace notifications name a changed key but not its value, and reading the
    /// value when the notification arrives may find a later one, so they cannot say what each
    /// change was. With `watch=true`, each write of this backend instead runs as a script that
    /// also `PUBLISH`es the change (kind, key and new value) on the namespace's channel, in the
    /// same atomic step, and watchers subscribe to that channel. This costs every write a
    /// script and a message, watched or not; and **only writers opened with `watch=true` are
    /// seen**: every kvkit writer of the namespace must use it, and changes made by other
    /// Redis clients are not announced (see the crate docs, "Watch").
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// The ACL user to authenticate as, replacing any from the URL (`None`: the default user).
    pub fn username(mut self, username: Option<String>) -> Self {
        self.username = username;
        self
    }

    /// The password to authenticate with, replacing any from the URL, for passwords kept out
    /// of URLs (`None`: no authentication). Never shown by `Debug`.
    pub fn password(mut self, password: Option<String>) -> Self {
        self.password = password.map(Secret::new);
        self
    }

    /// The database number to `SELECT` (default 0, or the URL's `/db`). Redis Cluster has
    /// only database 0.
    pub fn database(mut self, database: u32) -> Self {
        self.database = database;
        self
    }

    /// Trust only these root certificates (PEM, one or more) for `rediss://`, instead of the
    /// system's and the Mozilla roots: for a server whose certificate a private CA signed.
    /// The same as the `tls_ca_file=PATH` URL option, which reads the file when connecting.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots = Some(TlsRoots::Pem(pem.into()));
        self
    }

    /// Whether this builder connects to one server or to a cluster.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Where this builder connects, as a URL without options and with the password replaced by
    /// `***`: e.g. `redis://app:***@cache.internal:6380/2`.
    pub fn endpoint(&self) -> String {
        let scheme = match (self.topology, self.tls) {
            (Topology::Standalone, false) => "redis",
            (Topology::Standalone, true) => "rediss",
            (Topology::Cluster, false) => "redis+cluster",
            (Topology::Cluster, true) => "rediss+cluster",
        };
        let userinfo = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(user), None) => format!("{}@", encode_component(user)),
            (user, Some(_)) => format!(
                "{}:{REDACTED}@",
                user.as_deref().map(encode_component).unwrap_or_default()
            ),
        };
        let hosts: Vec<String> = self.nodes.iter().map(Node::to_string).collect();
        let database = match self.database {
            0 => String::new(),
            db => format!("/{db}"),
        };
        format!("{scheme}://{userinfo}{}{database}", hosts.join(","))
    }

    /// Connects and returns the backend.
    ///
    /// Fails with [`KvError::InvalidConfig`] for a setting out of range, a `rediss` URL in a
    /// build without the `tls` feature, or credentials or a database the server refuses; with
    /// [`KvError::Unavailable`] when the server cannot be reached within the connect timeout.
    pub async fn build(self) -> Result<RedisBackend, KvError> {
        self.validate()?;
        RedisBackend::from_builder(self).await
    }

    fn validate(&self) -> Result<(), KvError> {
        if self.tls && !cfg!(feature = "tls") {
            return Err(invalid(
                "TLS (`rediss://`) needs kv-redis's `tls` cargo feature, which this build lacks",
            ));
        }
        if self.nodes.is_empty() {
            return Err(invalid("no server address given"));
        }
        if self.tls_roots.is_some() && !self.tls {
            return Err(invalid(
                "tls_ca_file / tls_root_certificates need a TLS URL (`rediss://`)",
            ));
        }
        kv_trait::check_max_value_bytes(self.max_value_bytes, LARGEST_MAX_VALUE_BYTES)?;
        kv_trait::check_max_concurrent_requests(
            self.max_concurrent_requests,
            kv_trait::LARGEST_MAX_CONCURRENT_REQUESTS,
        )?;
        kv_trait::check_timeouts([
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ])?;
        if let Some(wait) = self.replica_wait {
            // `WAIT n 0` would block forever.
            kv_trait::check_timeouts([("wait_timeout", wait.timeout)])?;
            if wait.timeout >= self.request_timeout {
                return Err(invalid(format!(
                    "the wait for replicas ({:?}) must be shorter than request_timeout ({:?}), \
                     which bounds each round trip, WAIT included",
                    wait.timeout, self.request_timeout
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for RedisBackendBuilder {
    /// Shows where and how the backend connects; the password is never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackendBuilder")
            .field("endpoint", &self.endpoint())
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("replica_wait", &self.replica_wait)
            .field("increments", &self.increments)
            .field("watch", &self.watch)
            .finish()
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_node(text: &str) -> Result<Node, KvError> {
    let (host, port) = parse_host_port(text, DEFAULT_PORT)?;
    Ok(Node { host, port })
}

/// The database number from the URL path: `""`, `"/"` or `"/N"`.
fn parse_database(path: &str) -> Result<u32, KvError> {
    match path.trim_start_matches('/') {
        "" if path.len() <= 1 => Ok(0),
        digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits
            .parse()
            .map_err(|_| invalid(format!("database number `{digits}` is too large"))),
        _ => Err(invalid(format!(
            "the URL path must be a database number such as `/0`, not `{path}`"
        ))),
    }
}

fn decode_userinfo(text: &str, what: &str) -> Result<String, KvError> {
    kv_trait::url_config::percent_decode(text, &format!("the {what} in the URL"))
}

pub(crate) fn invalid(message: impl Into<String>) -> KvError {
    KvError::InvalidConfig(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> RedisBackendBuilder {
        RedisBackendBuilder::from_url(url).unwrap_or_else(|err| panic!("{url}: {err}"))
    }

    fn rejects(url: &str) -> String {
        match RedisBackendBuilder::from_url(url).and_then(|b| b.validate().map(|()| b)) {
            Err(KvError::InvalidConfig(message)) => message,
            other => panic!("{url}: expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn standalone_urls_give_host_port_database_and_credentials() {
        let plain = parse("redis://localhost");
        assert_eq!(plain.topology, Topology::Standalone);
        assert_eq!(
            plain.nodes,
            [Node {
                host: "localhost".into(),
                port: 6379
            }]
        );
        assert_eq!((plain.database, plain.tls), (0, false));
        assert_eq!(
            (plain.username.as_deref(), plain.password.as_ref()),
            (None, None)
        );

        let full = parse("redis://app:p%40ss:w%2Frd@10.1.2.3:6380/7");
        assert_eq!(
            full.nodes,
            [Node {
                host: "10.1.2.3".into(),
                port: 6380
            }]
        );
        assert_eq!(full.database, 7);
        assert_eq!(full.username.as_deref(), Some("app"));
        assert_eq!(full.password, Some(Secret::new("p@ss:w/rd")));

        let password_only = parse("redis://:secret@h:1/");
        assert_eq!(password_only.username, None);
        assert_eq!(password_only.password, Some(Secret::new("secret")));
        assert_eq!(password_only.database, 0);

        // An unencoded `@` in the password: the last `@` ends the user information.
        let raw_at = parse("redis://u:a@b@h");
        assert_eq!(raw_at.password, Some(Secret::new("a@b")));
        assert_eq!(raw_at.nodes[0].host, "h");

        let v6 = parse("redis://[::1]:7000");
        assert_eq!(
            v6.nodes,
            [Node {
                host: "::1".into(),
                port: 7000
            }]
        );
        assert_eq!(v6.endpoint(), "redis://[::1]:7000");
        assert!(parse("REDISS://h").tls);
    }

    #[test]
    fn waiting_for_replicas_is_off_unless_asked_and_bounded_by_the_request_timeout() {
        assert_eq!(parse("redis://h").replica_wait, None);
        assert_eq!(parse("redis://h?wait_replicas=0").replica_wait, None);
        assert_eq!(
            parse("redis+cluster://h:1?wait_replicas=2").replica_wait,
            Some(ReplicaWait {
                replicas: 2,
                timeout: DEFAULT_WAIT_TIMEOUT
            })
        );
        assert_eq!(
            parse("redis://h?wait_replicas=1&wait_timeout_ms=250").replica_wait,
            Some(ReplicaWait {
                replicas: 1,
                timeout: Duration::from_millis(250)
            })
        );
        assert!(rejects("redis://h?wait_timeout_ms=250").contains("wait_replicas"));
        assert!(rejects("redis://h?wait_replicas=1&wait_timeout_ms=0").contains("wait_timeout"));
        assert!(rejects("redis://h?wait_replicas=one").contains("wait_replicas"));
        let message = rejects("redis://h?wait_replicas=1&wait_timeout_ms=3000");
        assert!(message.contains("request_timeout"), "{message}");
        assert!(
            parse("redis://h?wait_replicas=1&wait_timeout_ms=3000&request_timeout_ms=5000")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn cluster_urls_list_seed_nodes() {
        let cluster = parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001,[::1]:7002,seed");
        assert_eq!(cluster.topology, Topology::Cluster);
        let shown: Vec<String> = cluster.nodes.iter().map(Node::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:7000",
                "127.0.0.1:7001",
                "[::1]:7002",
                "seed:6379"
            ]
        );
        let tls = parse("rediss+cluster://u:pw@a:1,b:2?namespace=x");
        assert!(tls.tls);
        assert_eq!(tls.namespace, "x");
        assert_eq!(tls.endpoint(), "rediss+cluster://u:***@a:1,b:2");
    }

    #[test]
    fn options_set_what_the_builder_methods_set() {
        let builder = parse(
            "redis://h?namespace=app%3Av2&connect_timeout_ms=1500&request_timeout_ms=250\
             &max_value_bytes=65536&max_concurrent_requests=12&increments=script&watch=true",
        );
        assert_eq!(builder.increments, IncrementMode::Script);
        assert!(builder.watch);
        assert_eq!(builder.namespace, "app:v2");
        assert_eq!(builder.connect_timeout, Duration::from_millis(1500));
        assert_eq!(builder.request_timeout, Duration::from_millis(250));
        assert_eq!(builder.max_value_bytes, 65536);
        assert_eq!(builder.max_concurrent_requests, 12);
        let tls = parse("rediss://h?tls_ca_file=%2Fetc%2Fca.pem");
        assert!(
            matches!(&tls.tls_roots, Some(TlsRoots::File(p)) if p.to_str() == Some("/etc/ca.pem"))
        );
        let defaults = parse("redis://h");
        assert_eq!(defaults.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(defaults.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(
            defaults.max_concurrent_requests,
            DEFAULT_MAX_CONCURRENT_REQUESTS
        );
        assert_eq!(defaults.max_value_bytes, DEFAULT_MAX_VALUE_BYTES);
        assert_eq!(defaults.namespace, "");
        assert!(!defaults.watch);
        assert!(RedisBackendBuilder::from_url("redis://h?watch=maybe").is_err());
    }

    #[test]
    fn bad_urls_are_invalid_config() {
        for (url, hint) in [
            ("localhost:6379", "starts with"),
            ("http://localhost", "unknown scheme"),
            ("redis://", "empty"),
            ("redis://:6379", "no host"),
            ("redis://h:0", "port"),
            ("redis://h:65536", "port"),
            ("redis://h:port", "port"),
            ("redis://::1:6379", "brackets"),
            ("redis://[::1", "closing"),
            ("redis://[::1]6379", "expected `:port`"),
            ("redis://bad host", "valid host"),
            ("redis://h/db", "database number"),
            ("redis://h/1/2", "database number"),
            ("redis://h/99999999999", "too large"),
            ("redis://h#insecure", "no fragment"),
            ("redis://a:1,b:2", "redis+cluster"),
            ("redis+cluster://a:1,,b:2", "empty"),
            ("redis://h?namespace=a&namespace=b", "more than once"),
            ("redis://h?db=1", "unknown URL option `db`"),
            (
                "redis://h?max_concurrent_requests=-1",
                "max_concurrent_requests=-1",
            ),
            ("redis://h?max_concurrent_requests=+2", "whole number"),
            ("redis://h?pool_size=4", "unknown URL option `pool_size`"),
            (
                "redis://h?increments=lua",
                "expected auto, native or script",
            ),
            ("redis://h?max_concurrent_requests=0", "between 1 and 65536"),
            (
                "redis://h?max_concurrent_requests=65537",
                "between 1 and 65536",
            ),
            ("redis://h?max_value_bytes=1000", "between 65536"),
            ("redis://h?request_timeout_ms=0", "request_timeout"),
            ("redis://u:%FF@h", "does not decode to UTF-8"),
            ("redis://u:%zz@h", "not followed by two hex digits"),
            ("redis://h?tls_ca_file=ca.pem", "need a TLS URL"),
        ] {
            let message = rejects(url);
            assert!(message.contains(hint), "{url}: {message}");
        }
    }

    #[test]
    fn tls_urls_need_the_tls_feature() {
        let result = parse("rediss://h").validate();
        if cfg!(feature = "tls") {
            assert!(result.is_ok());
        } else {
            assert!(
                matches!(result, Err(KvError::InvalidConfig(m)) if m.contains("`tls` cargo feature"))
            );
        }
    }

    #[test]
    fn passwords_never_show() {
        let builder = parse("redis://admin:hunter2@h:1/3?namespace=n");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://admin:***@h:1/3"), "{shown}");
        let replaced = builder.password(Some("correct horse".into()));
        assert!(!format!("{replaced:?}").contains("correct horse"));
        // Error messages about the URL name the bad part, not the password.
        let message = rejects("redis://u:hunter2@h:99999");
        assert!(!message.contains("hunter2"), "{message}");
        // A user name that needs escaping stays a valid URL.
        let odd = parse("redis://a%40b:pw@h");
        assert_eq!(odd.endpoint(), "redis://a%40b:***@h:6379");
    }
}
