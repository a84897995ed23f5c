//! Real services for tests: find one from the environment, a container, or a private server
//! started on loopback.
//!
//! Every adapter's tests in this repository get their servers here, and so can the tests of
//! your own Redis- or DynamoDB-compatible backend. (The conformance kit, `kv-conformance`,
//! checks semantics and does not depend on this crate.)
//!
//! The order, for each service:
//!
//! 1. a URL or endpoint from an environment variable (`KV_REDIS_URL`,
//!    `KV_REDIS_CLUSTER_URL`, `KV_DYNAMODB_ENDPOINT`);
//! 2. with the `containers` feature, a Docker container started
//!    with testcontainers, when a Docker engine answers; the image is chosen by
//!    `KV_REDIS_IMAGE`, `KV_REDIS_CLUSTER_IMAGE` and `KV_DYNAMODB_IMAGE`, and `KV_CONTAINERS=0`
//!    turns containers off (see [`containers`]);
//! 3. a private server started from a locally installed binary on a free `127.0.0.1` port, in
//!    a temporary directory, stopped when the test process ends;
//! 4. no server, which [`unavailable`] turns into a test failure when `KVKIT_REQUIRE_SERVICES`
//!    is set (as `ci/test` does) and into a loud skip otherwise.
//!
//! Whatever serves a test process says so once on its standard error: which [`Provider`]
//! (and which image), and where.

#[cfg(feature = "containers")]
pub mod containers;
pub mod dynamodb;
pub mod redis;

#[cfg(feature = "containers")]
pub(crate) use containers::RunningContainer;

/// Without the `containers` feature no container is ever running: this type has no values.
#[cfg(not(feature = "containers"))]
#[derive(Debug)]
pub(crate) enum RunningContainer {}

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    let deadline = Instant::now() + timeout;
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("nothing listened on 127.0.0.1:{port} within {timeout:?}"),
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
