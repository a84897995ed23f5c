//! Real services for tests: find one from the environment, a container, or a private server
//! started on loopback.
//!
//! Every adapter's tests in this repository get their servers here, and so can the tests of
//! your own Redis-, DynamoDB-, PostgreSQL- or etcd-backed backend. (The conformance kit,
//! `kv-conformance`, checks semantics and does not depend on this crate.)
//!
//! The order, for each service:
//!
//! 1. a URL or endpoint from an environment variable (`KV_REDIS_URL`,
//!    `KV_REDIS_CLUSTER_URL`, `KV_DYNAMODB_ENDPOINT`, `KV_POSTGRES_URL`, `KV_ETCD_URL`,
//!    `KV_ETCD_CLUSTER_URL`, `KV_ETCD_TLS_URL`);
//! 2. with the `containers` feature, a Docker container started with testcontainers, when a
//!    Docker engine answers; the image is chosen by `KV_REDIS_IMAGE`,
//!    `KV_REDIS_CLUSTER_IMAGE`, `KV_DYNAMODB_IMAGE`, `KV_POSTGRES_IMAGE` and `KV_ETCD_IMAGE`,
//!    and `KV_CONTAINERS=0` turns containers off (see [`containers`]);
//! 3. a private server started from a locally installed binary on a free `127.0.0.1` port, in
//!    a temporary directory, stopped when the test process ends;
//! 4. no server, which [`unavailable`] turns into a test failure when `KVKIT_REQUIRE_SERVICES`
//!    is set (as `ci/test` does) and into a loud skip otherwise.
//!
//! Whatever serves a test process says so once on its standard error: which [`Provider`]
//! (and which image), and where.
//!
//! [`proxy`] holds a TCP proxy that counts round trips, for tests that measure how many a
//! client makes; [`certificates`] makes a CA and certificates for TLS tests.

pub mod certificates;
#[cfg(feature = "containers")]
pub mod containers;
pub mod dynamodb;
pub mod etcd;
pub mod postgres;
pub mod proxy;
pub mod redis;

#[cfg(feature = "containers")]
pub(crate) use containers::RunningContainer;

/// Without the `containers` feature no container is ever running: this type has no values.
#[cfg(not(feature = "containers"))]
#[derive(Debug)]
pub(crate) enum RunningContainer {}

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kv_trait::url_config::{percent_decode, split_userinfo};

/// When set (to anything but `0`), a test that cannot get a service fails instead of skipping.
pub const REQUIRE_ENV: &str = "KVKIT_REQUIRE_SERVICES";
/// When set, every server started here writes its PID into this directory (one file each), so
/// that a CI script can stop leftovers by PID.
pub const PID_DIR_ENV: &str = "KVKIT_SERVICE_PID_DIR";

/// Where a test's service came from; printed once so the test output says what served it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provider {
    /// A URL or endpoint from this environment variable.
    Environment(&'static str),
    /// A server this process started from the binary at this path.
    LocalBinary(PathBuf),
    /// A Docker container this process started from this image (`containers` feature).
    Container {
        /// The image, e.g. `redis:7.4.1`.
        image: String,
    },
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Environment(var) => write!(f, "the URL in ${var}"),
            Provider::LocalBinary(path) => {
                write!(f, "a private server started from {}", path.display())
            }
            Provider::Container { image } => write!(f, "a container of {image}"),
        }
    }
}

/// Whether tests must fail, not skip, when a service is missing.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// Reports a missing service: panics when services are required, else prints a loud skip
/// line and returns `None`. `how` says how to get the service.
pub fn unavailable<T>(service: &str, why: &str, how: &str) -> Option<T> {
    let message = format!("no {service} for this test: {why}. {how}");
    assert!(
        !services_required(),
        "{message} ({REQUIRE_ENV} is set, so this is a failure)"
    );
    eprintln!("\n*** SKIPPED: {message} ***\n");
    None
}

/// Looks `name` up on `PATH` (and in the usual system directories).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A loopback port that is free now, and below `max` (a Redis Cluster node also needs port +
/// 10000 free for its bus, so it asks for ports below 55536 and checks the bus port too).
pub fn free_port(max: u16, also_free: impl Fn(u16) -> Option<u16>) -> io::Result<u16> {
    for _ in 0..200 {
        let port = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let partner_free = also_free(port).is_none_or(|other| {
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, other)).is_ok()
        });
        if port < max && partner_free {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no free loopback port found",
    ))
}

/// Waits until something accepts TCP connections on loopback `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> io::Result<()> {
    wait_for_address(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(), timeout)
}

/// Waits until something accepts TCP connections at `address` (a container's published
/// port, say).
pub fn wait_for_address(address: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("nothing listened on {address} within {timeout:?}"),
    ))
}

/// A server process this test process started. It is stopped when this value is dropped and,
/// since a `static` is never dropped, also when the test process exits: a small shell
/// watchdog started beside it kills it once this process is gone.
#[derive(Debug)]
pub struct LocalProcess {
    child: Child,
    watchdog: Option<Child>,
    pid_file: Option<PathBuf>,
}

impl LocalProcess {
    /// Starts `command` (its output goes to `log`) and its watchdog.
    pub fn spawn(mut command: Command, log: &Path) -> io::Result<Self> {
        let log_file = std::fs::File::create(log)?;
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = command.spawn()?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg("while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; kill \"$2\" 2>/dev/null")
            .args([
                "watchdog",
                &std::process::id().to_string(),
                &child.id().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let pid_file = std::env::var_os(PID_DIR_ENV)
            .map(|dir| PathBuf::from(dir).join(format!("{}.pid", child.id())));
        if let Some(file) = &pid_file {
            std::fs::write(file, child.id().to_string())?;
        }
        Ok(Self {
            child,
            watchdog,
            pid_file,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server has exited already (it failed to start, say).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends the server signal `name` (`INT`, `TERM`, `HUP`, ...) with `kill`, for a server
    /// that reacts to more than the `SIGKILL` this value sends when dropped (PostgreSQL's
    /// fast shutdown is `SIGINT`, say).
    pub fn signal(&self, name: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{name} {} failed: {status}",
                self.pid()
            )))
        }
    }

    /// Waits up to `timeout` for the server to exit; its exit status, or a `TimedOut` error
    /// while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("process {} did not exit within {timeout:?}", self.pid()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(watchdog) = &mut self.watchdog {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(file) = &self.pid_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Runs `command` to completion within `timeout`, its output in `log`; an error if it fails.
pub(crate) fn run_with_timeout(
    mut command: Command,
    log: &Path,
    timeout: Duration,
) -> io::Result<()> {
    let file = std::fs::File::create(log)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            let output = std::fs::read_to_string(log).unwrap_or_default();
            return Err(io::Error::other(format!("{status}: {output}")));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("did not finish within {timeout:?}; see {}", log.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new directory for this process's `service` servers, `kvkit-<service>-<pid>-<label>-<n>`
/// in the system's temporary directory. Directories of that service left by test processes
/// that have exited are removed first (a `static` service is never dropped, so nothing else
/// removes them).
pub(crate) fn private_dir(service: &str, label: &str) -> io::Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let temp = std::env::temp_dir();
    let prefix = format!("kvkit-{service}-");
    remove_stale_dirs(&temp, &prefix);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = temp.join(format!("{prefix}{}-{label}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes the directories `PREFIX<pid>-...` in `temp` whose process has exited.
fn remove_stale_dirs(temp: &Path, prefix: &str) {
    let proc = Path::new("/proc");
    if !proc.is_dir() {
        return; // no cheap way to tell whether a process is alive
    }
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A password that differs between runs (the standard library's randomly keyed hasher).
pub(crate) fn random_password() -> String {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let a = state.hash_one((std::process::id(), Instant::now()));
    let b = state.hash_one(a);
    format!("kvkit-{a:016x}{b:016x}")
}

/// `url` with query options appended after `?`, or after `&` when it has a query already.
pub(crate) fn url_with(url: &str, options: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{options}")
}

/// The user-information part of a URL, found as every kvkit parser finds it (the last `@`
/// before the query).
fn userinfo(url: &str) -> Option<&str> {
    let location = url.split_once("://")?.1.split(['?', '#']).next()?;
    split_userinfo(location).0
}

/// The percent-decoded user name in `url`, if it names one.
pub(crate) fn username_in(url: &str) -> Option<String> {
    let info = userinfo(url)?;
    let user = info.split_once(':').map_or(info, |(user, _)| user);
    percent_decode(user, "the user name")
        .ok()
        .filter(|user| !user.is_empty())
}

/// The percent-decoded password in `url`, if it has one.
pub(crate) fn password_in(url: &str) -> Option<String> {
    let password = userinfo(url)?.split_once(':')?.1;
    percent_decode(password, "the password")
        .ok()
        .filter(|password| !password.is_empty())
}

/// `host:port` of every host the URL's authority names (comma-separated, as a Redis Cluster
/// URL lists them), `default_port` where a host has none.
pub(crate) fn nodes_in(url: &str, default_port: u16) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| {
            if host.ends_with(']') || !host.contains(':') {
                format!("{host}:{default_port}")
            } else {
                host.to_owned()
            }
        })
        .collect()
}

/// The host (without IPv6 brackets) and port of `host:port`.
pub(crate) fn split_host_port(node: &str) -> Option<(String, u16)> {
    let (host, port) = node.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_nodes_come_out_of_urls() {
        assert_eq!(password_in("redis://:p%40ss@h:1/0"), Some("p@ss".into()));
        assert_eq!(password_in("redis://user:pw@h"), Some("pw".into()));
        assert_eq!(password_in("redis://user@h"), None);
        assert_eq!(username_in("redis://user@h"), Some("user".into()));
        assert_eq!(username_in("redis://:pw@h"), None);
        assert_eq!(password_in("redis://h:6379"), None);
        assert_eq!(nodes_in("redis://:pw@h:1/2?x=y", 6379), ["h:1"]);
        assert_eq!(nodes_in("redis://localhost", 6379), ["localhost:6379"]);
        assert_eq!(
            nodes_in("redis+cluster://a:1,b:2,[::1]:3,[::1]", 6379),
            ["a:1", "b:2", "[::1]:3", "[::1]:6379"]
        );
        assert_eq!(
            nodes_in("postgres://u:p@db.example/postgres", 5432),
            ["db.example:5432"]
        );
        assert_eq!(split_host_port("[::1]:3"), Some(("::1".into(), 3)));
    }

    #[test]
    fn options_are_appended_to_the_query() {
        assert_eq!(url_with("redis://h", "a=1"), "redis://h?a=1");
        assert_eq!(url_with("redis://h?a=1", "b=2"), "redis://h?a=1&b=2");
    }

    #[test]
    fn passwords_differ() {
        assert_ne!(random_password(), random_password());
    }
}
