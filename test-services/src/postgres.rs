//! PostgreSQL for tests: one server per test process, plus private servers a test may stop
//! and start again.
//!
//! The server is found in this order:
//!
//! 1. a URL in [`URL_ENV`] (`KV_POSTGRES_URL`, e.g.
//!    `postgres://kvkit:pw@10.0.0.5:5432/postgres`), used as given;
//! 2. else, with the `containers` feature and a Docker engine that answers, a container of
//!    `KV_POSTGRES_IMAGE` (default `postgres:16.4`) with the superuser [`USER`] and a random
//!    password, ready once `pg_isready` inside it finds the server accepting TCP connections
//!    and its published port accepts them here, removed when the test process ends (see
//!    [`containers`](super::containers));
//! 3. else a private cluster started from local binaries: `initdb` and `postgres` on `PATH`,
//!    else in the highest-numbered `/usr/lib/postgresql/VERSION/bin` (where Debian and Ubuntu
//!    install them, off `PATH`). `initdb` creates it in a temporary directory with the
//!    superuser [`USER`], a random password and `scram-sha-256` authentication; `postgres`
//!    serves it on a free `127.0.0.1` port without durability (`fsync=off`: a test's data
//!    need not survive a crash of the machine), and it is ready once its `postmaster.pid`
//!    says `ready` and `pg_isready` gets an answer over TCP. It is stopped when the test
//!    process ends (see [`LocalProcess`]);
//! 4. else none: [`unavailable`] makes that a failure under `KVKIT_REQUIRE_SERVICES` (as
//!    `ci/test` sets) and a loud skip otherwise.
//!
//! [`private_server`] always starts a fresh local cluster for its caller, which may
//! [`stop`](PostgresService::stop) and [`start`](PostgresService::start) it again on the same
//! port and data directory, to see a client ride out a server restart.
//!
//! # As root
//!
//! PostgreSQL refuses to run as root. When the test process runs as root (as in many
//! containers), `initdb` and `postgres` run as the `postgres` system user (which the Debian
//! package creates) through `setpriv --reuid=postgres --regid=postgres --init-groups`, and the
//! temporary directory belongs to that user. `setpriv` execs the server, so the process this
//! crate holds, signals and kills is the postmaster itself; `su` or `runuser` would stay in
//! between, and killing them would orphan the postmaster.
//!
//! ```no_run
//! use kv_test_services::postgres;
//!
//! if let Some(server) = postgres::server() {
//!     println!("testing against {}", server.url_with("namespace=demo"));
//! }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kv_trait::url_config::{percent_decode, redact};

use super::{
    find_binary, free_port, nodes_in, password_in, private_dir, random_password, run_with_timeout,
    split_host_port, unavailable, username_in, LocalProcess, Provider, RunningContainer,
};

/// Environment variable: the URL of a PostgreSQL server to test against.
pub const URL_ENV: &str = "KV_POSTGRES_URL";
/// The superuser of a server started here (a private cluster, or a container).
pub const USER: &str = "kvkit";

/// How to get PostgreSQL, for messages when there is none.
pub const HOW_TO_GET_ONE: &str = "Set KV_POSTGRES_URL to a server you run (e.g. \
     `postgres://user:password@10.0.0.5:5432/postgres`), or install PostgreSQL so that \
     `initdb` and `postgres` are on PATH or in /usr/lib/postgresql/VERSION/bin (Debian and \
     Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`; or run \
     `ci/install-deps`)";

/// How long `initdb` may take, and a server to be ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a private server being dropped gets to shut down cleanly before it is killed.
const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The port of a URL that names none.
const DEFAULT_PORT: u16 = 5432;
/// Where Debian and Ubuntu install each major version's server binaries, off `PATH`.
const VERSIONS_DIR: &str = "/usr/lib/postgresql";
/// The system user the server runs as when the test process is root.
const SYSTEM_USER: &str = "postgres";

/// Server settings for tests: no durability (nothing here must survive a crash of the
/// machine, and syncing makes every commit wait for the disk), and room for the many
/// connections of concurrent tests.
const TEST_SETTINGS: [&str; 5] = [
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
    "shared_buffers=64MB",
];

/// A PostgreSQL server that tests can use.
///
/// `Debug` shows the URL with the password replaced by `***`.
#[non_exhaustive]
pub struct PostgresService {
    /// The URL to connect to: `postgres://kvkit:PASSWORD@127.0.0.1:PORT/postgres` for a
    /// private cluster, `postgres://kvkit:PASSWORD@HOST:PORT/postgres` for a container, or
    /// the environment's URL.
    pub url: String,
    /// Where the server came from.
    pub provider: Provider,
    /// The user name in [`url`](Self::url), if any.
    pub username: Option<String>,
    /// The password in [`url`](Self::url), if any: declare it secret in the conformance
    /// profile (`Profile::with_secret`).
    pub password: Option<String>,
    /// The host the URL names (`localhost` when it names none).
    pub host: String,
    /// The port the URL names (5432 when it names none).
    pub port: u16,
    local: Option<LocalCluster>,
    container: Option<RunningContainer>,
}

impl fmt::Debug for PostgresService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresService")
            .field("url", &redact(&self.url))
            .field("provider", &self.provider)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("local", &self.local)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl PostgresService {
    /// The URL with query options appended, e.g. `url_with("namespace=a")`.
    pub fn url_with(&self, options: &str) -> String {
        super::url_with(&self.url, options)
    }

    /// A `psql` command connected to the server as the URL's user, to its database,
    /// authenticated (through `PGPASSWORD`, so the password is not on its command line),
    /// reading no `~/.psqlrc`. `None` when `psql` is not installed. Append the arguments
    /// (`-Atc`, `SQL`).
    pub fn psql(&self) -> Option<Command> {
        let binary = self
            .local
            .as_ref()
            .and_then(|local| local.binaries.tool("psql"))
            .or_else(|| find_binary("psql"))?;
        let mut command = Command::new(binary);
        command
            .args(["-X", "--no-password", "-h", &self.host])
            .args(["-p", &self.port.to_string()]);
        if let Some(user) = &self.username {
            command.args(["-U", user]);
        }
        if let Some(database) = database_in(&self.url) {
            command.args(["-d", &database]);
        }
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        Some(command)
    }

    /// Stops a private server with a fast shutdown (`SIGINT` to the postmaster: clients are
    /// disconnected, open transactions roll back) and waits up to 30 s for it to exit. Its
    /// data directory stays, for [`start`](Self::start). Stopping a stopped server does
    /// nothing; a server not started here (from the environment, a container) cannot be
    /// stopped. On an error the server is killed.
    pub fn stop(&mut self) -> io::Result<()> {
        self.local_mut()?.stop(SHUTDOWN_TIMEOUT)
    }

    /// Starts a stopped private server again, on the same port and data directory, and waits
    /// until it is ready. Starting a running server does nothing; a server not started here
    /// cannot be started.
    pub fn start(&mut self) -> io::Result<()> {
        let port = self.port;
        let local = self.local_mut()?;
        if local.is_running() {
            return Ok(());
        }
        local.spawn(port)
    }

    /// Whether a server started here is running (it has not been stopped, nor exited). A
    /// server from the environment or a container is taken to be running.
    pub fn is_running(&mut self) -> bool {
        self.local.as_mut().is_none_or(LocalCluster::is_running)
    }

    fn local_mut(&mut self) -> io::Result<&mut LocalCluster> {
        let provider = &self.provider;
        self.local.as_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the server comes from {provider}; only one started here stops and starts"),
            )
        })
    }
}

/// The PostgreSQL server of this test process: the one in `KV_POSTGRES_URL`, else a container
/// or a private cluster started on first use (a few seconds). `None` (after a loud skip
/// message) when there is none; panics instead under `KVKIT_REQUIRE_SERVICES`. The first call
/// prints which provider serves it.
pub fn server() -> Option<&'static PostgresService> {
    static SERVICE: OnceLock<Option<PostgresService>> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = match from_env() {
                Some(service) => service,
                None => match from_container() {
                    Ok(Some(service)) => service,
                    Ok(None) => start_or_report("PostgreSQL server", "shared")?,
                    Err(why) => return unavailable("PostgreSQL server", &why, HOW_TO_GET_ONE),
                },
            };
            eprintln!(
                "kv-conformance: PostgreSQL for this test process: {} at {}",
                service.provider,
                redact(&service.url)
            );
            Some(service)
        })
        .as_ref()
}

/// A new private cluster for this caller alone, stopped (and its directory removed) when the
/// value is dropped: for tests that stop and restart their server. Always a local process,
/// even when `KV_POSTGRES_URL` is set. `None` or a panic as for [`server`].
pub fn private_server() -> Option<PostgresService> {
    start_or_report("private PostgreSQL server", "private")
}

fn from_env() -> Option<PostgresService> {
    let url = std::env::var(URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())?;
    let (host, port) = nodes_in(&url, DEFAULT_PORT)
        .first()
        .and_then(|node| split_host_port(node))
        .unwrap_or_else(|| ("localhost".to_owned(), DEFAULT_PORT));
    Some(PostgresService {
        username: username_in(&url),
        password: password_in(&url),
        host,
        port,
        url,
        provider: Provider::Environment(URL_ENV),
        local: None,
        container: None,
    })
}

/// The database a URL names (its path), if any.
fn database_in(url: &str) -> Option<String> {
    let location = url.split_once("://")?.1.split(['?', '#']).next()?;
    let database = location.split_once('/')?.1;
    percent_decode(database, "the database")
        .ok()
        .filter(|database| !database.is_empty())
}

/// Starts a private cluster if the binaries are installed; reports why not otherwise.
fn start_or_report(service: &str, label: &str) -> Option<PostgresService> {
    let Some(binaries) = find_binaries() else {
        return unavailable(
            service,
            "no URL in the environment, and `initdb` and `postgres` are neither on PATH nor in \
             /usr/lib/postgresql/VERSION/bin",
            HOW_TO_GET_ONE,
        );
    };
    match start_private(binaries, label) {
        Ok(service) => Some(service),
        Err(err) => unavailable(
            service,
            &format!("starting it failed: {err}"),
            HOW_TO_GET_ONE,
        ),
    }
}

fn start_private(binaries: Binaries, label: &str) -> io::Result<PostgresService> {
    let run_as = server_user()?;
    let dir = private_dir("postgres", label)?;
    let password = random_password();
    let mut cluster = LocalCluster {
        binaries,
        dir,
        run_as,
        process: None,
    };
    cluster.init(&password)?;
    let port = cluster.spawn_on_free_port()?;
    Ok(PostgresService {
        url: format!("postgres://{USER}:{password}@127.0.0.1:{port}/postgres"),
        provider: Provider::LocalBinary(cluster.binaries.postgres.clone()),
        username: Some(USER.to_owned()),
        password: Some(password),
        host: "127.0.0.1".to_owned(),
        port,
        local: Some(cluster),
        container: None,
    })
}

/// The server binaries, and the directory of the tools beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
    /// The directory `postgres` really is in (links followed): its version's `pg_isready`
    /// and `psql` are there.
    bin_dir: PathBuf,
}

impl Binaries {
    /// The tool `name` of the server's version, else the one on `PATH`.
    fn tool(&self, name: &str) -> Option<PathBuf> {
        let beside = self.bin_dir.join(name);
        if beside.is_file() {
            Some(beside)
        } else {
            find_binary(name)
        }
    }
}

fn find_binaries() -> Option<Binaries> {
    let on_path = find_binary("initdb").zip(find_binary("postgres"));
    choose_binaries(on_path, Path::new(VERSIONS_DIR))
}

/// `initdb` and `postgres` from `PATH` (`on_path`) when both are there, else from the
/// highest-numbered version under `versions_dir` that has both.
fn choose_binaries(on_path: Option<(PathBuf, PathBuf)>, versions_dir: &Path) -> Option<Binaries> {
    if let Some((initdb, postgres)) = on_path {
        // A link such as /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres
        // leads to the version's own tools.
        let real = std::fs::canonicalize(&postgres).unwrap_or_else(|_| postgres.clone());
        let bin_dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
        return Some(Binaries {
            initdb,
            postgres,
            bin_dir,
        });
    }
    let bin_dir = highest_version_bin(versions_dir)?;
    Some(Binaries {
        initdb: bin_dir.join("initdb"),
        postgres: bin_dir.join("postgres"),
        bin_dir,
    })
}

/// `DIR/VERSION/bin` for the highest VERSION (compared as numbers: 10 is above 9.6) whose
/// `bin` holds both `initdb` and `postgres`: a version with only the client installed does
/// not count.
fn highest_version_bin(versions_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(versions_dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            let complete = bin.join("initdb").is_file() && bin.join("postgres").is_file();
            complete.then_some((version, bin))
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, bin)| bin)
}

/// `15` or `9.6` as numbers, `[15]` and `[9, 6]`, which order as versions do.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// The system user a server runs as when it cannot run as this process's user.
#[derive(Debug, Clone)]
struct RunAs {
    setpriv: PathBuf,
    uid: u32,
    gid: u32,
}

/// `None` to run the server as this process's user; [`SYSTEM_USER`] when this process runs
/// as root, which PostgreSQL refuses.
fn server_user() -> io::Result<Option<RunAs>> {
    if effective_uid()? != 0 {
        return Ok(None);
    }
    let refused = |why: String| {
        io::Error::other(format!(
            "this process runs as root, which PostgreSQL refuses, and {why}"
        ))
    };
    let setpriv = find_binary("setpriv").ok_or_else(|| {
        refused("there is no `setpriv` (util-linux) to run it as `postgres`".into())
    })?;
    let uid = id_number(&["-u", SYSTEM_USER]).map_err(|err| refused(err.to_string()))?;
    let gid = id_number(&["-g", SYSTEM_USER]).map_err(|err| refused(err.to_string()))?;
    Ok(Some(RunAs { setpriv, uid, gid }))
}

/// This process's effective user id: from `/proc/self/status`, else from `id -u`.
fn effective_uid() -> io::Result<u32> {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid_in(&status));
    match from_proc {
        Some(uid) => Ok(uid),
        None => id_number(&["-u"]),
    }
}

/// The effective user id in the text of `/proc/PID/status` (`Uid: REAL EFFECTIVE SAVED FS`).
fn effective_uid_in(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The number `id ARGS...` prints (`id -u postgres`: that user's id).
fn id_number(args: &[&str]) -> io::Result<u32> {
    let output = Command::new("id")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.trim().parse() {
        Ok(number) if output.status.success() => Ok(number),
        _ => Err(io::Error::other(format!(
            "`id {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// Makes `path` belong to the server's user.
#[cfg(unix)]
fn give_to(path: &Path, user: &RunAs) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
}

#[cfg(not(unix))]
fn give_to(_: &Path, _: &RunAs) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A cluster this process created: its directory (`data/`, the socket directory `sock/`, the
/// logs) and, while it runs, its postmaster.
#[derive(Debug)]
struct LocalCluster {
    binaries: Binaries,
    dir: PathBuf,
    run_as: Option<RunAs>,
    process: Option<LocalProcess>,
}

impl LocalCluster {
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `binary` as a command run as the server's user, in the cluster's directory (which
    /// that user can enter, unlike, perhaps, this process's working directory).
    fn command(&self, binary: &Path) -> Command {
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new(&user.setpriv);
                command
                    .arg(format!("--reuid={SYSTEM_USER}"))
                    .arg(format!("--regid={SYSTEM_USER}"))
                    .args(["--init-groups", "--"])
                    .arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.current_dir(&self.dir);
        command
    }

    /// Creates the cluster with `initdb`: superuser [`USER`] with `password`. `initdb`
    /// creates `data/` itself, with the mode 0700 the server insists on.
    fn init(&self, password: &str) -> io::Result<()> {
        let sock = self.dir.join("sock");
        std::fs::create_dir_all(&sock)?;
        // The password goes in a file, not on a command line that `ps` shows.
        let password_file = self.dir.join("password");
        std::fs::write(&password_file, password)?;
        if let Some(user) = &self.run_as {
            for path in [&self.dir, &sock, &password_file] {
                give_to(path, user)?;
            }
        }
        let mut initdb = self.command(&self.binaries.initdb);
        initdb
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", USER])
            .arg(format!("--pwfile={}", password_file.display()))
            .args(["--auth=scram-sha-256", "-E", "UTF8", "--no-locale"])
            // Nothing here must survive a crash, so initdb need not sync its files (seconds).
            .arg("--no-sync");
        let result = run_with_timeout(initdb, &self.dir.join("initdb.log"), STARTUP_TIMEOUT);
        let _ = std::fs::remove_file(&password_file);
        result.map_err(|err| io::Error::new(err.kind(), format!("initdb failed: {err}")))
    }

    /// Starts the server on a free loopback port (trying again if another process takes
    /// the port first) and waits until it is ready; the port.
    fn spawn_on_free_port(&mut self) -> io::Result<u16> {
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port(u16::MAX, |_| None)?;
            match self.spawn(port) {
                Ok(()) => return Ok(port),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("postgres did not start")))
    }

    /// Starts the server on `port` and waits until it is ready; on an error it is stopped.
    fn spawn(&mut self, port: u16) -> io::Result<()> {
        let mut command = self.command(&self.binaries.postgres);
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(self.dir.join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for setting in TEST_SETTINGS {
            command.args(["-c", setting]);
        }
        let log = self.dir.join("postgres.log");
        let process = LocalProcess::spawn(command, &log)?;
        let pid = process.pid();
        self.process = Some(process);
        let ready = self.wait_ready(pid, port);
        if let Err(err) = ready {
            self.process = None; // killed
            return Err(io::Error::new(
                err.kind(),
                format!("{err}; {}", log_tail(&log)),
            ));
        }
        Ok(())
    }

    /// Waits until the postmaster `pid` says it is ready in `postmaster.pid` (so it is ours
    /// that listens, not another process that took the port) and `pg_isready` gets an answer
    /// on `port`.
    fn wait_ready(&mut self, pid: u32, port: u16) -> io::Result<()> {
        let pg_isready = self.binaries.tool("pg_isready").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "there is no pg_isready beside postgres",
            )
        })?;
        let pid_file = self.data_dir().join("postmaster.pid");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if !self.is_running() {
                return Err(io::Error::other("postgres exited"));
            }
            let says_ready = std::fs::read_to_string(&pid_file)
                .is_ok_and(|contents| postmaster_ready(&contents, pid));
            if says_ready {
                let status = Command::new(&pg_isready)
                    .args(["-q", "-t", "2", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .args(["-d", "postgres", "-U", USER])
                    .stdin(Stdio::null())
                    .status()?;
                if status.success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "postgres on 127.0.0.1:{port} was not ready within {STARTUP_TIMEOUT:?}"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| !process.has_exited())
    }

    /// Fast shutdown, waiting up to `timeout`; a stopped server stays stopped.
    fn stop(&mut self, timeout: Duration) -> io::Result<()> {
        // Taken out: whatever happens below, dropping it kills what still runs.
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };
        if process.has_exited() {
            return Ok(());
        }
        process.signal("INT")?;
        process.wait_exit(timeout).map(drop)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // A clean shutdown leaves no shared memory behind; killing the postmaster might.
        let _ = self.stop(DROP_SHUTDOWN_TIMEOUT);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `postmaster.pid` (PID, data directory, start time, port, socket directory, listen
/// address, shared memory key, status) names postmaster `pid` with the status `ready`.
fn postmaster_ready(contents: &str, pid: u32) -> bool {
    let lines: Vec<&str> = contents.lines().map(str::trim).collect();
    lines.first().and_then(|first| first.parse::<u32>().ok()) == Some(pid)
        && lines.get(7) == Some(&"ready")
}

/// The last lines of a server log, for an error message: the directory holding the log is
/// removed when the cluster that failed to start is dropped.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    format!("its log ends: {tail}")
}

/// The container step (see [`containers::attempt`](super::containers)).
#[cfg(feature = "containers")]
fn from_container() -> Result<Option<PostgresService>, String> {
    use super::containers::{attempt, Ready, Service};
    use std::net::ToSocketAddrs;
    attempt("PostgreSQL", Service::Postgres, |image| {
        let password = random_password();
        let args = TEST_SETTINGS
            .iter()
            .flat_map(|setting| ["-c".to_owned(), (*setting).to_owned()])
            .collect();
        let env = [
            ("POSTGRES_USER", USER),
            ("POSTGRES_PASSWORD", password.as_str()),
        ];
        let container = RunningContainer::start(image, &[5432], Some(args), &env, Ready::Started)?;
        // The image's entrypoint first runs a server on its Unix socket alone for the init
        // scripts, then the real one; both log "ready to accept connections" (on stderr), so
        // the log proves nothing, but `pg_isready` over TCP answers for the real one only.
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let answer = container
                .exec(&["pg_isready", "-U", USER, "-h", "127.0.0.1"])
                .unwrap_or_default();
            if answer.contains("accepting connections") {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "PostgreSQL in container {} did not accept connections within \
                     {STARTUP_TIMEOUT:?}",
                    container.id()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let host = container.host().to_owned();
        let port = container.host_port(5432)?;
        let address = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|err| err.to_string())?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        super::wait_for_address(address, STARTUP_TIMEOUT).map_err(|err| err.to_string())?;
        Ok(PostgresService {
            url: format!("postgres://{USER}:{password}@{host}:{port}/postgres"),
            provider: Provider::Container {
                image: image.to_string(),
            },
            username: Some(USER.to_owned()),
            password: Some(password),
            host,
            port,
            local: None,
            container: Some(container),
        })
    })
}

#[cfg(not(feature = "containers"))]
fn from_container() -> Result<Option<PostgresService>, String> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up directory holding only these (empty) files.
    fn tree(name: &str, files: &[&str]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("kvkit-pg-tree-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for file in files {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn the_highest_complete_version_serves() {
        let root = tree(
            "versions",
            &[
                "13/bin/initdb",
                "13/bin/postgres",
                "15/bin/initdb",
                "15/bin/postgres",
                "15/bin/pg_isready",
                "9.6/bin/initdb",
                "9.6/bin/postgres",
                // Only the client of 17: no server there.
                "17/bin/psql",
                "17/bin/pg_isready",
                "common/bin/initdb",
                "common/bin/postgres",
            ],
        );
        let binaries = choose_binaries(None, &root).unwrap();
        assert_eq!(binaries.bin_dir, root.join("15/bin"));
        assert_eq!(binaries.initdb, root.join("15/bin/initdb"));
        assert_eq!(binaries.postgres, root.join("15/bin/postgres"));
        assert_eq!(
            binaries.tool("pg_isready"),
            Some(root.join("15/bin/pg_isready"))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn versions_compare_as_numbers() {
        let root = tree(
            "numeric",
            &[
                "9.6/bin/initdb",
                "9.6/bin/postgres",
                "10/bin/initdb",
                "10/bin/postgres",
            ],
        );
        assert_eq!(highest_version_bin(&root), Some(root.join("10/bin")));
        assert!(parse_version("9.6") < parse_version("10"));
        assert!(parse_version("9") < parse_version("9.6"));
        assert_eq!(parse_version("15beta"), None);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(highest_version_bin(&root), None);
        let empty = tree("empty", &["13/bin/psql"]);
        assert_eq!(choose_binaries(None, &empty), None);
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn binaries_on_path_come_first_and_lead_to_their_tools() {
        let root = tree("on-path", &["lib/15/bin/postgres", "lib/16/bin/initdb"]);
        let versions = tree("on-path-versions", &["16/bin/initdb", "16/bin/postgres"]);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::os::unix::fs::symlink(root.join("lib/15/bin/postgres"), root.join("bin/postgres"))
            .unwrap();
        let on_path = (root.join("bin/initdb"), root.join("bin/postgres"));
        let binaries = choose_binaries(Some(on_path.clone()), &versions).unwrap();
        assert_eq!((binaries.initdb, binaries.postgres), on_path);
        let real = std::fs::canonicalize(root.join("lib/15/bin")).unwrap();
        assert_eq!(binaries.bin_dir, real);
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&versions).unwrap();
    }

    #[test]
    fn the_effective_uid_is_the_second_of_the_uid_line() {
        let status =
            "Name:\tcargo\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid_in(status), Some(0));
        assert_eq!(
            effective_uid_in("Uid:\t1000\t1001\t1000\t1000\n"),
            Some(1001)
        );
        assert_eq!(effective_uid_in("Name:\tx\n"), None);
    }

    #[test]
    fn only_our_ready_postmaster_is_ready() {
        let ready =
            "4242\n/tmp/d/data\n1700000000\n5433\n/tmp/d/sock\n127.0.0.1\n  1234 5678\nready   \n";
        assert!(postmaster_ready(ready, 4242));
        assert!(!postmaster_ready(ready, 4243));
        assert!(!postmaster_ready(&ready.replace("ready", "starting"), 4242));
        assert!(!postmaster_ready("4242\n/tmp/d/data\n", 4242));
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        let service = PostgresService {
            url: "postgres://kvkit:secret@127.0.0.1:5433/postgres".into(),
            provider: Provider::Environment(URL_ENV),
            username: Some("kvkit".into()),
            password: Some("secret".into()),
            host: "127.0.0.1".into(),
            port: 5433,
            local: None,
            container: None,
        };
        let shown = format!("{service:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(
            shown.contains("postgres://kvkit:***@127.0.0.1:5433/postgres"),
            "{shown}"
        );
        assert_eq!(
            service.url_with("namespace=x"),
            "postgres://kvkit:secret@127.0.0.1:5433/postgres?namespace=x"
        );
        let mut from_env = service;
        assert!(from_env.is_running());
        assert_eq!(
            from_env.stop().unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
    }

    #[test]
    fn databases_come_out_of_urls() {
        assert_eq!(
            database_in("postgres://u:p@h:1/my%20db?sslmode=disable"),
            Some("my db".into())
        );
        assert_eq!(database_in("postgres://u:p@h:1"), None);
        assert_eq!(database_in("postgres://h/"), None);
    }
}
