//! Test services from Docker containers, with [`testcontainers`] (the `containers` feature).
//!
//! With this feature on, every service of [this crate](crate) is looked for in this order:
//!
//! 1. a URL or endpoint in the environment (`KV_REDIS_URL`, `KV_REDIS_CLUSTER_URL`,
//!    `KV_DYNAMODB_ENDPOINT`, `KV_POSTGRES_URL`, `KV_ETCD_URL`, `KV_ETCD_CLUSTER_URL`), used
//!    as given;
//! 2. a container, when a Docker engine answers (see [`engine`]);
//! 3. a server started from a locally installed binary;
//! 4. none: [`unavailable`](super::unavailable) fails the test under `KVKIT_REQUIRE_SERVICES`
//!    and skips it loudly otherwise.
//!
//! # Images
//!
//! | service | variable | default | what the image must do |
//! | --- | --- | --- | --- |
//! | standalone Redis | [`REDIS_IMAGE_ENV`] (`KV_REDIS_IMAGE`) | [`DEFAULT_REDIS_IMAGE`] | the official `redis` entrypoint: arguments starting with `-` go to the server (`redis`, `valkey/valkey`), port 6379, logs `Ready to accept connections` |
//! | Redis Cluster | [`REDIS_CLUSTER_IMAGE_ENV`] (`KV_REDIS_CLUSTER_IMAGE`) | [`DEFAULT_REDIS_CLUSTER_IMAGE`] | like `grokzen/redis-cluster`: three primaries and three replicas on ports 7000 to 7005 of one container, no password, `redis-cli` inside |
//! | DynamoDB | [`DYNAMODB_IMAGE_ENV`] (`KV_DYNAMODB_IMAGE`) | [`DEFAULT_DYNAMODB_IMAGE`] | the DynamoDB API over HTTP: on port 8000 (`amazon/dynamodb-local`), or on port 5000 when the image's name contains `moto` (`motoserver/moto`) |
//! | PostgreSQL | [`POSTGRES_IMAGE_ENV`] (`KV_POSTGRES_IMAGE`) | [`DEFAULT_POSTGRES_IMAGE`] | the official `postgres` entrypoint: the superuser from `POSTGRES_USER`/`POSTGRES_PASSWORD`, arguments starting with `-` go to the server, port 5432, `pg_isready` inside |
//! | etcd (one member, and each member of the cluster) | [`ETCD_IMAGE_ENV`] (`KV_ETCD_IMAGE`) | [`DEFAULT_ETCD_IMAGE`] | like etcd's own images (`gcr.io/etcd-development/etcd`, `quay.io/coreos/etcd`): `/usr/local/bin/etcd` inside, 3.4 or newer |
//!
//! An image is `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`, checked by [`ImageRef::parse`]; the tag
//! defaults to `latest`. The standalone server and PostgreSQL get a random password. The
//! cluster's nodes are reached at the addresses they announce, the container's address on
//! Docker's bridge network: that works where the host routes to the bridge (Linux, as on
//! GitHub's runners), not with Docker Desktop. A moto container gets the same serialising
//! relay as a local moto (see [`dynamodb`](super::dynamodb)); DynamoDB Local needs none.
//! PostgreSQL is ready once `pg_isready` inside the container answers over TCP (see
//! [`postgres`](super::postgres)). etcd's members, one container each, run on the host's
//! network, on free `127.0.0.1` ports chosen as for local members, so that the members of a
//! cluster reach each other at the addresses its initial configuration names: that too needs
//! an engine on Linux (see [`etcd`](super::etcd)).
//!
//! # Choosing, or not, containers
//!
//! [`CONTAINERS_ENV`] (`KV_CONTAINERS`): unset or `auto`, containers are used when an engine
//! answers; `0` never uses them; `1` requires them: without an engine, or when the container
//! does not start, the service is [`unavailable`](super::unavailable) instead of coming from
//! a local binary. An image named explicitly by its variable is also never silently replaced:
//! if its container does not start, the service is unavailable. (With no engine at all, the
//! order above goes on to a local binary, and the test output says so.)
//!
//! # Detecting an engine
//!
//! Where: `DOCKER_HOST` (`unix://PATH` or `tcp://HOST:PORT`), else the first of the sockets
//! testcontainers itself tries that exists (`/var/run/docker.sock`,
//! `$XDG_RUNTIME_DIR/.docker/run/docker.sock`, `~/.docker/run/docker.sock`,
//! `~/.docker/desktop/docker.sock`), else `/var/run/docker.sock`. Whether it answers: one
//! `GET /_ping` with a [`ENGINE_TIMEOUT`] deadline, so a missing socket, a refused connection
//! or a hung engine fall through at once, with one line in the test output saying why
//! (`no Docker engine answers at unix:///var/run/docker.sock: No such file or directory`). A
//! TLS endpoint (`DOCKER_TLS_VERIFY=1`) counts as answering when it accepts the connection.
//! The answer is found once per process.
//!
//! # Removing the containers
//!
//! Containers live in `static`s for the whole test process, and a `static` is never dropped,
//! so testcontainers' own cleanup (removing a container when its `Container` value is
//! dropped) never runs for them, and testcontainers for Rust has no reaper container (Ryuk).
//! So each container started here gets a reaper: a small shell loop that waits for this
//! process to end, however it ends (normal exit, panic, a signal, even `SIGKILL`), then runs
//! `docker rm --force --volumes ID` against the same engine. It ignores `SIGINT`, `SIGTERM`
//! and `SIGHUP`, so a Ctrl-C that stops the tests does not stop it. It needs the `docker`
//! command on `PATH`; without one a warning says so and the containers (labelled
//! [`OWNER_LABEL`]`=PID`) must be removed by hand. With `TESTCONTAINERS_COMMAND=keep` no
//! reaper is started and the containers stay, as testcontainers documents. A container whose
//! value is dropped is removed at once, by testcontainers.
//!
//! The container work runs on a thread of its own: testcontainers' blocking API drives its own
//! tokio runtime, which must not run inside a test's runtime.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testcontainers::core::{CmdWaitFor, ExecCommand, IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use super::find_binary;

/// Environment variable: `0` never uses containers, `1` requires them, `auto` (or unset)
/// uses them when a Docker engine answers.
pub const CONTAINERS_ENV: &str = "KV_CONTAINERS";
/// Environment variable: the image of the standalone Redis server, e.g. `valkey/valkey:8`.
pub const REDIS_IMAGE_ENV: &str = "KV_REDIS_IMAGE";
/// Environment variable: the image of the Redis Cluster (see the module docs for what it must
/// do).
pub const REDIS_CLUSTER_IMAGE_ENV: &str = "KV_REDIS_CLUSTER_IMAGE";
/// Environment variable: the DynamoDB emulator's image, e.g. `motoserver/moto:5.2.3`.
pub const DYNAMODB_IMAGE_ENV: &str = "KV_DYNAMODB_IMAGE";
/// Environment variable: the PostgreSQL server's image, e.g. `postgres:14.13`.
pub const POSTGRES_IMAGE_ENV: &str = "KV_POSTGRES_IMAGE";
/// Environment variable: the image of every etcd member, e.g. `quay.io/coreos/etcd:v3.4.33`.
pub const ETCD_IMAGE_ENV: &str = "KV_ETCD_IMAGE";
/// The standalone Redis image when [`REDIS_IMAGE_ENV`] is unset.
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7.4.1";
/// The Redis Cluster image when [`REDIS_CLUSTER_IMAGE_ENV`] is unset.
pub const DEFAULT_REDIS_CLUSTER_IMAGE: &str = "grokzen/redis-cluster:7.0.10";
/// The DynamoDB image when [`DYNAMODB_IMAGE_ENV`] is unset.
pub const DEFAULT_DYNAMODB_IMAGE: &str = "amazon/dynamodb-local:2.6.1";
/// The PostgreSQL image when [`POSTGRES_IMAGE_ENV`] is unset.
pub const DEFAULT_POSTGRES_IMAGE: &str = "postgres:16.4";
/// The etcd image when [`ETCD_IMAGE_ENV`] is unset.
pub const DEFAULT_ETCD_IMAGE: &str = "gcr.io/etcd-development/etcd:v3.5.17";
/// How long the engine check waits for the engine's answer, all in all.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(2);
/// The label every container started here carries, with the PID of the process that owns it.
pub const OWNER_LABEL: &str = "org.kvkit.test-services.owner-pid";

/// How long a container may take to start (pulling its image included) and be ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// What [`CONTAINERS_ENV`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Never use containers.
    Off,
    /// Use containers when an engine answers, else go on to local binaries.
    Auto,
    /// Use containers; without them the service is unavailable.
    Required,
}

/// The mode [`CONTAINERS_ENV`] asks for, read through `lookup` (an environment lookup such
/// as `|name| std::env::var(name).ok()`). An unknown value is an error naming it.
pub fn mode(lookup: impl Fn(&str) -> Option<String>) -> Result<Mode, String> {
    let value = lookup(CONTAINERS_ENV).map(|value| value.trim().to_ascii_lowercase());
    match value.as_deref() {
        None | Some("" | "auto") => Ok(Mode::Auto),
        Some("0" | "false" | "no" | "off") => Ok(Mode::Off),
        Some("1" | "true" | "yes" | "on" | "required") => Ok(Mode::Required),
        Some(other) => Err(format!(
            "${CONTAINERS_ENV} is `{other}`: use 0 (never), 1 (always) or auto"
        )),
    }
}

/// A service that can come from a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A standalone Redis (or Redis-compatible) server.
    Redis,
    /// A Redis Cluster.
    RedisCluster,
    /// A DynamoDB-compatible endpoint.
    DynamoDb,
    /// A PostgreSQL server.
    Postgres,
    /// An etcd member (one, or each of a cluster's).
    Etcd,
}

impl Service {
    /// The environment variable that chooses this service's image.
    pub fn image_env(self) -> &'static str {
        match self {
            Service::Redis => REDIS_IMAGE_ENV,
            Service::RedisCluster => REDIS_CLUSTER_IMAGE_ENV,
            Service::DynamoDb => DYNAMODB_IMAGE_ENV,
            Service::Postgres => POSTGRES_IMAGE_ENV,
            Service::Etcd => ETCD_IMAGE_ENV,
        }
    }

    /// The image used when that variable is unset.
    pub fn default_image(self) -> &'static str {
        match self {
            Service::Redis => DEFAULT_REDIS_IMAGE,
            Service::RedisCluster => DEFAULT_REDIS_CLUSTER_IMAGE,
            Service::DynamoDb => DEFAULT_DYNAMODB_IMAGE,
            Service::Postgres => DEFAULT_POSTGRES_IMAGE,
            Service::Etcd => DEFAULT_ETCD_IMAGE,
        }
    }
}

/// A checked image reference: `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The name without tag or digest, registry included: `redis`, `valkey/valkey`,
    /// `ghcr.io/org/image`, `localhost:5000/redis`.
    pub repository: String,
    /// The tag; `latest` when the reference names none.
    pub tag: String,
    /// The digest (`sha256:...`), if the reference pins one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and checks an image reference (surrounding whitespace is ignored). The error
    /// says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an image name is empty".into());
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("an image name cannot contain {c:?}"));
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(check_digest(digest)?)),
            None => (text, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        check_repository(repository)?;
        let tag = match tag {
            Some(tag) => check_tag(tag)?,
            None => "latest".to_owned(),
        };
        Ok(Self {
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// Whether this is a moto image (its last path component contains `moto`).
    pub fn is_moto(&self) -> bool {
        self.repository
            .rsplit('/')
            .next()
            .is_some_and(|name| name.contains("moto"))
    }

    /// The tag as testcontainers takes it (which appends it to the name after a `:`): the
    /// digest, if any, rides along, `TAG@DIGEST`.
    fn tag_and_digest(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.tag),
            None => self.tag.clone(),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag_and_digest())
    }
}

fn check_digest(digest: &str) -> Result<String, String> {
    let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if valid {
        Ok(digest.to_owned())
    } else {
        Err(format!(
            "`{digest}` is not a digest (ALGORITHM:HEX, e.g. sha256:...)"
        ))
    }
}

fn check_tag(tag: &str) -> Result<String, String> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(tag.to_owned())
    } else {
        Err(format!(
            "`{tag}` is not a tag (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
        ))
    }
}

fn check_repository(repository: &str) -> Result<(), String> {
    let mut components: Vec<&str> = repository.split('/').collect();
    // A first component with a dot or a port, or `localhost`, is a registry's host name.
    if components.len() > 1 {
        let first = components[0];
        if first.contains(['.', ':']) || first == "localhost" {
            let (host, port) = first.split_once(':').unwrap_or((first, "0"));
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            if !host_ok || port.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("`{first}` is not a registry host[:port]"));
            }
            components.remove(0);
        }
    }
    for component in components {
        let valid = !component.is_empty()
            && component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!(
                "`{repository}` is not a repository name (lowercase a-z 0-9 . _ - between /)"
            ));
        }
    }
    Ok(())
}

/// The image chosen for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChoice {
    /// The image.
    pub image: ImageRef,
    /// The variable that named it; `None` for the default.
    pub chosen_by: Option<&'static str>,
}

/// The image for `service`: the one its variable names, read through `lookup` (an
/// environment lookup), else the default. An invalid name is an error naming the variable.
pub fn choose_image(
    service: Service,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ImageChoice, String> {
    let variable = service.image_env();
    match lookup(variable).filter(|value| !value.trim().is_empty()) {
        Some(value) => ImageRef::parse(&value)
            .map(|image| ImageChoice {
                image,
                chosen_by: Some(variable),
            })
            .map_err(|err| format!("${variable} is `{value}`: {err}")),
        None => ImageRef::parse(service.default_image())
            .map(|image| ImageChoice {
                image,
                chosen_by: None,
            })
            .map_err(|err| format!("the default image of {service:?} is invalid: {err}")),
    }
}

/// Where a Docker engine is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    /// A Unix socket.
    Unix(PathBuf),
    /// A TCP endpoint.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Whether it speaks TLS (`https://`, or `DOCKER_TLS_VERIFY=1`).
        tls: bool,
    },
}

impl fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineAddress::Unix(path) => write!(f, "unix://{}", path.display()),
            EngineAddress::Tcp { host, port, .. } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            EngineAddress::Tcp { host, port, .. } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// The default Docker socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where testcontainers will look for the engine: `DOCKER_HOST` (read through `lookup`),
/// else the first of its default sockets for which `exists` holds, else [`DEFAULT_SOCKET`].
/// An error for a `DOCKER_HOST` this check cannot speak to (`ssh://`, `npipe://`, garbage).
pub fn engine_address(
    lookup: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> Result<EngineAddress, String> {
    if let Some(host) = lookup("DOCKER_HOST").filter(|host| !host.trim().is_empty()) {
        let tls = lookup("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty() && v != "0");
        return parse_docker_host(host.trim(), tls);
    }
    let mut candidates = vec![PathBuf::from(DEFAULT_SOCKET)];
    if let Some(runtime) = lookup("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        candidates.push(Path::new(&runtime).join(".docker/run/docker.sock"));
    }
    if let Some(home) = lookup("HOME").filter(|dir| !dir.is_empty()) {
        candidates.push(Path::new(&home).join(".docker/run/docker.sock"));
        candidates.push(Path::new(&home).join(".docker/desktop/docker.sock"));
    }
    let found = candidates.into_iter().find(|path| exists(path));
    Ok(EngineAddress::Unix(
        found.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
    ))
}

fn parse_docker_host(text: &str, tls: bool) -> Result<EngineAddress, String> {
    let unsupported = || {
        format!(
            "DOCKER_HOST={text} is not an address this check speaks to (unix://PATH, \
             tcp://HOST:PORT)"
        )
    };
    if let Some(path) = text.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(unsupported());
        }
        return Ok(EngineAddress::Unix(PathBuf::from(path)));
    }
    let (rest, tls) = if let Some(rest) = text.strip_prefix("tcp://") {
        (rest, tls)
    } else if let Some(rest) = text.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = text.strip_prefix("https://") {
        (rest, true)
    } else {
        return Err(unsupported());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let default_port = if tls { 2376 } else { 2375 };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(unsupported)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| unsupported())?,
        None => default_port,
    };
    if host.is_empty() {
        return Err(unsupported());
    }
    Ok(EngineAddress::Tcp {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// Whether a Docker engine answers at `address` within `timeout`: `Ok`, or why not, in a
/// sentence that names the address (`no Docker engine answers at unix:///x.sock: ...`).
pub fn ping(address: &EngineAddress, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let fail = |why: String| format!("no Docker engine answers at {address}: {why}");
    match address {
        #[cfg(unix)]
        EngineAddress::Unix(path) => {
            let stream = UnixStream::connect(path).map_err(|err| fail(err.to_string()))?;
            exchange_ping(stream, deadline, timeout).map_err(fail)
        }
        #[cfg(not(unix))]
        EngineAddress::Unix(_) => Err(fail("Unix sockets are not supported here".into())),
        EngineAddress::Tcp { host, port, tls } => {
            let addresses = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|err| fail(err.to_string()))?;
            let mut last = String::from("the host name resolves to no address");
            for socket in addresses {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    last = format!("no connection within {timeout:?}");
                    break;
                }
                match TcpStream::connect_timeout(&socket, left) {
                    // Without a TLS client, an engine that accepts the connection answers.
                    Ok(_) if *tls => return Ok(()),
                    Ok(stream) => return exchange_ping(stream, deadline, timeout).map_err(fail),
                    Err(err) => last = err.to_string(),
                }
            }
            Err(fail(last))
        }
    }
}

/// Sends `GET /_ping` and expects `HTTP/1.x 200` before `deadline`.
fn exchange_ping(
    mut stream: impl Read + Write + SetTimeouts,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), String> {
    let late = || format!("no answer within {timeout:?}");
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(late)?;
    stream.set_timeouts(left).map_err(|err| err.to_string())?;
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|err| err.to_string())?;
    let mut reply = Vec::new();
    let mut buffer = [0_u8; 256];
    while !reply.contains(&b'\n') && reply.len() < 1024 {
        if Instant::now() >= deadline {
            return Err(late());
        }
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buffer[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(late())
            }
            Err(err) => return Err(err.to_string()),
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    let status_line = reply.lines().next().unwrap_or_default();
    let mut words = status_line.split_whitespace();
    let http = words.next().is_some_and(|v| v.starts_with("HTTP/1."));
    if http && words.next() == Some("200") {
        Ok(())
    } else if status_line.is_empty() {
        Err("it closed the connection without answering".into())
    } else {
        Err(format!("it answered `{status_line}` to GET /_ping"))
    }
}

/// Read and write timeouts of a stream.
trait SetTimeouts {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()>;
}

impl SetTimeouts for TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

#[cfg(unix)]
impl SetTimeouts for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

/// The Docker engine of this process: where it answers, or why none does. Found on first
/// use (at most [`ENGINE_TIMEOUT`]), then remembered.
pub fn engine() -> Result<&'static EngineAddress, &'static str> {
    static ENGINE: OnceLock<Result<EngineAddress, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let address = engine_address(env, |path| path.exists())?;
            ping(&address, ENGINE_TIMEOUT)?;
            Ok(address)
        })
        .as_ref()
        .map_err(String::as_str)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The container step of the provider order for `what` (e.g. "standalone Redis"):
/// `Ok(Some(_))` when `start` served it from its image, `Ok(None)` to go on to a local binary
/// (after one line saying why), `Err(why)` when the service must be unavailable (see the
/// module docs).
pub(crate) fn attempt<T>(
    what: &str,
    service: Service,
    start: impl FnOnce(&ImageRef) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let mode = mode(env)?;
    if mode == Mode::Off {
        eprintln!("kv-conformance: {what}: no container (${CONTAINERS_ENV}=0)");
        return Ok(None);
    }
    let choice = choose_image(service, env)?;
    let image = &choice.image;
    if let Err(why) = engine() {
        if mode == Mode::Required {
            return Err(format!(
                "${CONTAINERS_ENV} requires a container of {image}, but {why}"
            ));
        }
        eprintln!("kv-conformance: {what}: {why}; using a local binary");
        return Ok(None);
    }
    match start(image) {
        Ok(service) => Ok(Some(service)),
        Err(err) if mode == Mode::Required || choice.chosen_by.is_some() => {
            Err(format!("a container of {image} did not start: {err}"))
        }
        Err(err) => {
            eprintln!(
                "kv-conformance: {what}: a container of {image} did not start ({err}); using a \
                 local binary"
            );
            Ok(None)
        }
    }
}

/// How a container shows it is ready.
pub(crate) enum Ready {
    /// It prints this on its standard output.
    Stdout(&'static str),
    /// Starting is enough; the caller checks.
    Started,
}

/// A container this process started: removed when this value is dropped, or by its reaper
/// once the process has ended (see the module docs).
pub struct RunningContainer {
    container: Option<Container<GenericImage>>,
    reaper: Option<Child>,
    id: String,
    image: String,
    host: String,
}

impl fmt::Debug for RunningContainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningContainer")
            .field("id", &self.id)
            .field("image", &self.image)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl RunningContainer {
    /// Starts a container of `image` exposing `ports`, with `args` as its command (`None`:
    /// the image's) and the environment variables `env`, and waits until it is `ready`.
    pub(crate) fn start(
        image: &ImageRef,
        ports: &[u16],
        args: Option<Vec<String>>,
        env: &[(&str, &str)],
        ready: Ready,
    ) -> Result<Self, String> {
        Self::launch(image, ports, args, env, ready, None)
    }

    /// Starts a container of `image` on the host's network (it listens on the host's own
    /// addresses; nothing is published), with `args` as its command, and waits until it is
    /// `ready`.
    pub(crate) fn start_on_host_network(
        image: &ImageRef,
        args: Vec<String>,
        ready: Ready,
    ) -> Result<Self, String> {
        Self::launch(image, &[], Some(args), &[], ready, Some("host"))
    }

    fn launch(
        image: &ImageRef,
        ports: &[u16],
        args: Option<Vec<String>>,
        env: &[(&str, &str)],
        ready: Ready,
        network: Option<&str>,
    ) -> Result<Self, String> {
        let engine = engine().map_err(str::to_owned)?.clone();
        let mut generic = GenericImage::new(image.repository.clone(), image.tag_and_digest());
        for port in ports {
            generic = generic.with_exposed_port(port.tcp());
        }
        if let Ready::Stdout(message) = ready {
            generic = generic.with_wait_for(WaitFor::message_on_stdout(message));
        }
        let mut request = generic
            .with_label(OWNER_LABEL, std::process::id().to_string())
            .with_startup_timeout(STARTUP_TIMEOUT);
        if let Some(args) = args {
            request = request.with_cmd(args);
        }
        if let Some(network) = network {
            request = request.with_network(network);
        }
        for (name, value) in env {
            request = request.with_env_var(*name, *value);
        }
        let container = off_runtime(move || request.start()).map_err(|err| err.to_string())?;
        let id = container.id().to_owned();
        let reaper = spawn_reaper(&id, &engine);
        let host = off_runtime(|| container.get_host())
            .map(|host| host.to_string())
            .map_err(|err| err.to_string())?;
        // Docker publishes ports on IPv4; `localhost` could resolve to ::1 first.
        let host = if host == "localhost" {
            "127.0.0.1".to_owned()
        } else {
            host
        };
        Ok(Self {
            container: Some(container),
            reaper,
            id,
            image: image.to_string(),
            host,
        })
    }

    /// The host where its published ports are.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host port that publishes the container's TCP `port`.
    pub(crate) fn host_port(&self, port: u16) -> Result<u16, String> {
        let container = self.container.as_ref().ok_or("the container is gone")?;
        off_runtime(|| container.get_host_port_ipv4(port.tcp())).map_err(|err| err.to_string())
    }

    /// Runs `command` in the container to its end; its standard output.
    pub(crate) fn exec(&self, command: &[&str]) -> Result<String, String> {
        let container = self.container.as_ref().ok_or("the container is gone")?;
        let command =
            ExecCommand::new(command.iter().copied()).with_cmd_ready_condition(CmdWaitFor::exit());
        off_runtime(|| {
            let mut result = container.exec(command)?;
            result.stdout_to_vec()
        })
        .map(|stdout| String::from_utf8_lossy(&stdout).into_owned())
        .map_err(|err| err.to_string())
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            // testcontainers removes it, on its own runtime.
            off_runtime(move || drop(container));
        }
        if let Some(reaper) = &mut self.reaper {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
    }
}

/// Runs `f` on a thread of its own, so that testcontainers' runtime never runs inside the
/// caller's (a test's) runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Starts the reaper of container `id` (see the module docs); `None`, after a warning, when
/// there is no `docker` command, and with `TESTCONTAINERS_COMMAND=keep`.
fn spawn_reaper(id: &str, engine: &EngineAddress) -> Option<Child> {
    if env("TESTCONTAINERS_COMMAND").is_some_and(|command| command.trim() == "keep") {
        return None;
    }
    let Some(docker) = find_binary("docker") else {
        eprintln!(
            "kv-conformance: warning: no `docker` command to remove container {id} when this \
             process ends; remove it by hand: docker rm -f $(docker ps -aq --filter \
             label={OWNER_LABEL})"
        );
        return None;
    };
    Command::new("sh")
        .arg("-c")
        .arg(
            "trap '' INT TERM HUP; while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
             \"$2\" rm --force --volumes \"$3\" >/dev/null 2>&1",
        )
        .arg("kvkit-container-reaper")
        .arg(std::process::id().to_string())
        .arg(docker)
        .arg(id)
        .env("DOCKER_HOST", engine.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Waits until something answers HTTP at `host:port` (any status): an emulator inside a
/// container is ready. Docker's port proxy accepts connections before the server listens, so
/// a TCP connection alone proves nothing.
pub(crate) fn wait_for_http(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match http_answers(host, port) {
            Ok(()) => return Ok(()),
            Err(err) => last = err,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "nothing answered HTTP at {host}:{port} within {timeout:?} ({last})"
    ))
}

fn http_answers(host: &str, port: u16) -> Result<(), String> {
    let address = (host, port)
        .to_socket_addrs()
        .map_err(|err| err.to_string())?
        .next()
        .ok_or("no address")?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))
        .map_err(|err| err.to_string())?;
    stream
        .set_timeouts(Duration::from_secs(2))
        .map_err(|err| err.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|err| err.to_string())?;
    let mut head = [0_u8; 5];
    stream
        .read_exact(&mut head)
        .map_err(|err| err.to_string())?;
    if &head == b"HTTP/" {
        Ok(())
    } else {
        Err("not an HTTP answer".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_mode_comes_from_kv_containers() {
        assert_eq!(mode(vars(&[])), Ok(Mode::Auto));
        assert_eq!(mode(vars(&[(CONTAINERS_ENV, "auto")])), Ok(Mode::Auto));
        assert_eq!(mode(vars(&[(CONTAINERS_ENV, "0")])), Ok(Mode::Off));
        assert_eq!(mode(vars(&[(CONTAINERS_ENV, " False ")])), Ok(Mode::Off));
        assert_eq!(mode(vars(&[(CONTAINERS_ENV, "1")])), Ok(Mode::Required));
        let err = mode(vars(&[(CONTAINERS_ENV, "maybe")])).unwrap_err();
        assert!(
            err.contains("KV_CONTAINERS") && err.contains("maybe"),
            "{err}"
        );
    }

    #[test]
    fn images_default_per_service() {
        let none = vars(&[]);
        for (service, repository, tag) in [
            (Service::Redis, "redis", "7.4.1"),
            (Service::RedisCluster, "grokzen/redis-cluster", "7.0.10"),
            (Service::DynamoDb, "amazon/dynamodb-local", "2.6.1"),
            (Service::Postgres, "postgres", "16.4"),
            (Service::Etcd, "gcr.io/etcd-development/etcd", "v3.5.17"),
        ] {
            let choice = choose_image(service, &none).unwrap();
            assert_eq!(choice.chosen_by, None);
            assert_eq!(choice.image.repository, repository);
            assert_eq!(choice.image.tag, tag);
            assert_eq!(choice.image.to_string(), service.default_image());
        }
        // An empty variable is unset.
        let empty = vars(&[(REDIS_IMAGE_ENV, " ")]);
        assert_eq!(choose_image(Service::Redis, empty).unwrap().chosen_by, None);
    }

    #[test]
    fn each_service_reads_its_own_variable() {
        let lookup = vars(&[
            (REDIS_IMAGE_ENV, "valkey/valkey:8"),
            (REDIS_CLUSTER_IMAGE_ENV, "grokzen/redis-cluster:6.2.14"),
            (DYNAMODB_IMAGE_ENV, "motoserver/moto"),
            (POSTGRES_IMAGE_ENV, "postgres:14.13"),
            (ETCD_IMAGE_ENV, "quay.io/coreos/etcd:v3.4.33"),
        ]);
        let redis = choose_image(Service::Redis, &lookup).unwrap();
        assert_eq!(redis.chosen_by, Some("KV_REDIS_IMAGE"));
        assert_eq!(redis.image.to_string(), "valkey/valkey:8");
        assert!(!redis.image.is_moto());
        let cluster = choose_image(Service::RedisCluster, &lookup).unwrap();
        assert_eq!(cluster.chosen_by, Some("KV_REDIS_CLUSTER_IMAGE"));
        assert_eq!(cluster.image.tag, "6.2.14");
        let dynamodb = choose_image(Service::DynamoDb, &lookup).unwrap();
        assert_eq!(dynamodb.image.to_string(), "motoserver/moto:latest");
        assert!(dynamodb.image.is_moto());
        assert!(!ImageRef::parse("amazon/dynamodb-local").unwrap().is_moto());
        let postgres = choose_image(Service::Postgres, &lookup).unwrap();
        assert_eq!(postgres.chosen_by, Some("KV_POSTGRES_IMAGE"));
        assert_eq!(postgres.image.to_string(), "postgres:14.13");
        let etcd = choose_image(Service::Etcd, &lookup).unwrap();
        assert_eq!(etcd.chosen_by, Some("KV_ETCD_IMAGE"));
        assert_eq!(etcd.image.repository, "quay.io/coreos/etcd");
        assert_eq!(etcd.image.tag, "v3.4.33");
    }

    #[test]
    fn image_names_are_parsed() {
        let image = ImageRef::parse("localhost:5000/team/redis:7.2-alpine").unwrap();
        assert_eq!(image.repository, "localhost:5000/team/redis");
        assert_eq!(image.tag, "7.2-alpine");
        let digest = format!("sha256:{}", "ab".repeat(32));
        let image = ImageRef::parse(&format!("ghcr.io/o/moto:5.1@{digest}")).unwrap();
        assert_eq!(image.repository, "ghcr.io/o/moto");
        assert_eq!(image.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(image.to_string(), format!("ghcr.io/o/moto:5.1@{digest}"));
        let image = ImageRef::parse(&format!("redis@{digest}")).unwrap();
        assert_eq!(
            (image.repository.as_str(), image.tag.as_str()),
            ("redis", "latest")
        );
    }

    #[test]
    fn invalid_image_names_are_refused_with_the_variable() {
        for bad in [
            "Redis:7",
            "redis:",
            "redis:7 4",
            "redis:-x",
            "/redis",
            "redis//x",
            "redis@sha256:xyz",
            "redis:7@",
            "bad host:1/redis",
            "localhost:port/redis",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} was accepted");
            let err = choose_image(Service::Redis, vars(&[(REDIS_IMAGE_ENV, bad)])).unwrap_err();
            assert!(err.starts_with("$KV_REDIS_IMAGE is `"), "{err}");
        }
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse(&format!("redis:{}", "x".repeat(129))).is_err());
    }

    #[test]
    fn the_engine_address_follows_docker_host_then_the_default_sockets() {
        let nothing = |_: &Path| false;
        assert_eq!(
            engine_address(vars(&[]), nothing),
            Ok(EngineAddress::Unix(DEFAULT_SOCKET.into()))
        );
        let home = vars(&[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1")]);
        let desktop = |path: &Path| path == Path::new("/home/u/.docker/desktop/docker.sock");
        assert_eq!(
            engine_address(&home, desktop),
            Ok(EngineAddress::Unix(
                "/home/u/.docker/desktop/docker.sock".into()
            ))
        );
        assert_eq!(
            engine_address(vars(&[("DOCKER_HOST", "unix:///tmp/d.sock")]), nothing),
            Ok(EngineAddress::Unix("/tmp/d.sock".into()))
        );
        let tcp = engine_address(vars(&[("DOCKER_HOST", "tcp://10.0.0.5:2375")]), nothing);
        assert_eq!(
            tcp,
            Ok(EngineAddress::Tcp {
                host: "10.0.0.5".into(),
                port: 2375,
                tls: false
            })
        );
        let tls = vars(&[("DOCKER_HOST", "tcp://[::1]"), ("DOCKER_TLS_VERIFY", "1")]);
        let address = engine_address(tls, nothing).unwrap();
        assert_eq!(address.to_string(), "tcp://[::1]:2376");
        let err = engine_address(vars(&[("DOCKER_HOST", "ssh://me@box")]), nothing).unwrap_err();
        assert!(err.contains("ssh://me@box"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_missing_socket_is_no_engine_at_once_with_its_path() {
        let dir = std::env::temp_dir().join(format!("kvkit-no-engine-{}", std::process::id()));
        let socket = dir.join("docker.sock");
        let started = Instant::now();
        let err = ping(&EngineAddress::Unix(socket.clone()), Duration::from_secs(5)).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.starts_with(&format!(
                "no Docker engine answers at unix://{}: ",
                socket.display()
            )),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_socket_that_never_answers_times_out_quickly() {
        let dir = std::env::temp_dir().join(format!("kvkit-mute-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("docker.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let started = Instant::now();
        let err = ping(
            &EngineAddress::Unix(path.clone()),
            Duration::from_millis(300),
        )
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert!(err.contains("no answer within 300ms"), "{err}");
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_ping_accepts_only_200() {
        let dir = std::env::temp_dir().join(format!("kvkit-ping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (reply, ok) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"[..], true),
            (&b"HTTP/1.1 404 Not Found\r\n\r\n"[..], false),
            (&b"SSH-2.0-OpenSSH\r\n"[..], false),
        ] {
            let path = dir.join("engine.sock");
            let _ = std::fs::remove_file(&path);
            let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
            let server = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0_u8; 64];
                let n = stream.read(&mut request).unwrap();
                stream.write_all(reply).unwrap();
                String::from_utf8_lossy(&request[..n]).into_owned()
            });
            let result = ping(&EngineAddress::Unix(path), Duration::from_secs(5));
            assert!(server
                .join()
                .unwrap()
                .starts_with("GET /_ping HTTP/1.0\r\n"));
            assert_eq!(result.is_ok(), ok, "{result:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refused_tcp_engine_is_no_engine() {
        let port = crate::free_port(u16::MAX, |_| None).unwrap();
        let address = EngineAddress::Tcp {
            host: "127.0.0.1".into(),
            port,
            tls: false,
        };
        let started = Instant::now();
        let err = ping(&address, Duration::from_secs(5)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            err.starts_with(&format!(
                "no Docker engine answers at tcp://127.0.0.1:{port}: "
            )),
            "{err}"
        );
    }
}
