//! etcd for tests: one single-member cluster and one three-member cluster per test process,
//! plus private clusters a test may disturb (kill and restart members), and a single member
//! that speaks only TLS and requires client certificates ([`tls_single`]).
//!
//! Each service is found in this order:
//!
//! 1. a URL in [`URL_ENV`] (`KV_ETCD_URL`, e.g. `etcd://10.0.0.5:2379`) or [`CLUSTER_URL_ENV`]
//!    (`KV_ETCD_CLUSTER_URL`, e.g. `etcd://10.0.0.5:2379,10.0.0.6:2379,10.0.0.7:2379`), used
//!    as given;
//! 2. else, with the `containers` feature and a Docker engine that answers, one container of
//!    [`KV_ETCD_IMAGE`](super::containers::ETCD_IMAGE_ENV) per member, on the host's network
//!    (so an engine on Linux, as on GitHub's runners), each member on free `127.0.0.1` ports
//!    as below and ready by the same `/health`; removed when the test process ends (see
//!    [`containers`](super::containers));
//! 3. else private `etcd` processes started from the binary on `PATH` (Debian's
//!    `etcd-server`), each with its client and peer ports free on `127.0.0.1` and its data
//!    directory in a temporary directory, ready once every member's `/health` says so (the
//!    cluster has a leader), and stopped by PID when the test process ends (see
//!    [`LocalProcess`]);
//! 4. else none: [`unavailable`] makes that a failure under `KVKIT_REQUIRE_SERVICES` (as
//!    `ci/test` sets) and a loud skip otherwise.
//!
//! ```no_run
//! use kv_test_services::etcd;
//!
//! if let Some(cluster) = etcd::cluster() {
//!     println!("testing against {} members at {}", cluster.members.len(), cluster.url);
//! }
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kv_trait::url_config::{encode_component, redact};

use crate::certificates::TestCertificates;

use super::{
    find_binary, free_port, nodes_in, password_in, private_dir, unavailable, url_with,
    wait_for_port, LocalProcess, Provider, RunningContainer,
};

/// Environment variable: the URL of an etcd cluster (often of one member) to test against.
pub const URL_ENV: &str = "KV_ETCD_URL";
/// Environment variable: the URL of an etcd cluster of three members to test against.
pub const CLUSTER_URL_ENV: &str = "KV_ETCD_CLUSTER_URL";
/// Environment variable: the URL, TLS options included (`tls=true&ca_file=...`), of an etcd
/// cluster that speaks TLS and requires client certificates, to test against.
pub const TLS_URL_ENV: &str = "KV_ETCD_TLS_URL";

/// How to get etcd, for messages when there is none.
pub const HOW_TO_GET_ONE: &str = "Set KV_ETCD_URL / KV_ETCD_CLUSTER_URL to a cluster you run, \
     or install etcd 3.4 or newer so that `etcd` is on PATH (Debian and Ubuntu: `apt-get \
     install etcd-server etcd-client`; or run `ci/install-deps`)";

/// How long a private cluster may take to elect a leader.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// An etcd cluster that tests can use.
///
/// `Debug` shows the URL with any password replaced by `***`.
#[non_exhaustive]
pub struct EtcdService {
    /// The URL to connect to: `etcd://127.0.0.1:P1[,127.0.0.1:P2,127.0.0.1:P3]` for a private
    /// cluster, or the environment's URL.
    pub url: String,
    /// Where the service came from.
    pub provider: Provider,
    /// The password in [`url`](Self::url), if any: declare it secret in the conformance
    /// profile (`Profile::with_secret`).
    pub password: Option<String>,
    /// `host:port` of every member's client address, in the URL's order.
    pub members: Vec<String>,
    /// For a private member that speaks TLS ([`tls_single`]): the CA that signed its
    /// certificate and the client certificate it requires. The URL already names them.
    pub certificates: Option<TestCertificates>,
    local: Vec<LocalMember>,
    /// The members' containers, kept running for as long as this value lives.
    #[allow(dead_code)] // held, never read
    containers: Vec<RunningContainer>,
}

/// A member this process started, and what it takes to start it again.
struct LocalMember {
    binary: PathBuf,
    dir: PathBuf,
    name: String,
    client_port: u16,
    peer_port: u16,
    initial_cluster: String,
    /// The certificates of a member that speaks TLS to its clients, which then answers
    /// `/health` in plain HTTP on `metrics_port` instead.
    tls: Option<TestCertificates>,
    metrics_port: u16,
    process: Option<LocalProcess>,
    starts: usize,
}

impl fmt::Debug for EtcdService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdService")
            .field("url", &redact(&self.url))
            .field("provider", &self.provider)
            .field("members", &self.members)
            .field(
                "pids",
                &self
                    .local
                    .iter()
                    .map(|member| member.process.as_ref().map(LocalProcess::pid))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl EtcdService {
    /// The URL with query options appended, e.g. `url_with("namespace=a")`.
    pub fn url_with(&self, options: &str) -> String {
        url_with(&self.url, options)
    }

    /// The URL of member `index` alone (`etcd://host:port`), with `options` appended when
    /// not empty: for a backend that must talk to one member only.
    pub fn member_url(&self, index: usize, options: &str) -> Option<String> {
        let member = self.members.get(index)?;
        let url = format!("etcd://{member}");
        Some(match options {
            "" => url,
            options => url_with(&url, options),
        })
    }

    /// Kills member `index` (`SIGKILL`: no goodbye to its peers or clients) and waits for it
    /// to exit. Its data directory stays, for [`start_member`](Self::start_member). Killing a
    /// stopped member does nothing; a member not started here cannot be killed.
    pub fn kill_member(&mut self, index: usize) -> io::Result<()> {
        let member = self.local_member(index)?;
        if let Some(mut process) = member.process.take() {
            process.signal("KILL")?;
            process.wait_exit(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Starts a killed member again on its ports and data directory, and waits until it
    /// listens (not until it has caught up: [`wait_healthy`](Self::wait_healthy) does that).
    /// Starting a running member does nothing.
    pub fn start_member(&mut self, index: usize) -> io::Result<()> {
        let member = self.local_member(index)?;
        if member.process.is_none() {
            member.spawn()?;
        }
        Ok(())
    }

    /// Waits until every running member started here reports itself healthy (it has a
    /// leader), up to `timeout`.
    pub fn wait_healthy(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        for member in self.local.iter().filter(|member| member.process.is_some()) {
            let logs = format!("logs in {}", member.dir.display());
            wait_healthy(member.metrics_port, deadline, &logs)?;
        }
        Ok(())
    }

    fn local_member(&mut self, index: usize) -> io::Result<&mut LocalMember> {
        let provider = self.provider.clone();
        self.local.get_mut(index).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no member {index} started here (the cluster comes from {provider})"),
            )
        })
    }
}

impl LocalMember {
    fn spawn(&mut self) -> io::Result<()> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut command = Command::new(&self.binary);
        command.args(member_args(
            &self.name,
            &self
                .dir
                .join(format!("{}.etcd", self.name))
                .to_string_lossy(),
            &format!("{scheme}://127.0.0.1:{}", self.client_port),
            self.peer_port,
            &self.initial_cluster,
        ));
        if let Some(certificates) = &self.tls {
            command
                .arg("--cert-file")
                .arg(certificates.server_cert())
                .arg("--key-file")
                .arg(certificates.server_key())
                .arg("--trusted-ca-file")
                .arg(certificates.ca())
                .arg("--client-cert-auth")
                .arg("--listen-metrics-urls")
                .arg(format!("http://127.0.0.1:{}", self.metrics_port));
        }
        self.starts += 1;
        let log = self.dir.join(format!("{}-{}.log", self.name, self.starts));
        let mut process = LocalProcess::spawn(command, &log)?;
        wait_for_port(self.client_port, Duration::from_secs(20))?;
        if process.has_exited() {
            return Err(io::Error::other(format!(
                "etcd member {} exited at start; see {}",
                self.name,
                log.display()
            )));
        }
        self.process = Some(process);
        Ok(())
    }
}

/// The single-member cluster of this test process: the one in `KV_ETCD_URL`, else a private
/// one started on first use. `None` (after a loud skip message) when there is neither; a
/// panic instead under `KVKIT_REQUIRE_SERVICES`.
pub fn single() -> Option<&'static EtcdService> {
    static SERVICE: OnceLock<Option<EtcdService>> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = match from_env(URL_ENV) {
                Some(service) => service,
                None => match from_containers("etcd member", 1) {
                    Ok(Some(service)) => service,
                    Ok(None) => start_or_report("etcd member", 1, "single")?,
                    Err(why) => return unavailable("etcd member", &why, HOW_TO_GET_ONE),
                },
            };
            announce("etcd (one member)", &service);
            Some(service)
        })
        .as_ref()
}

/// The three-member cluster of this test process: the one in `KV_ETCD_CLUSTER_URL`, else a
/// private one started on first use (a few seconds). `None` or a panic as for [`single`].
pub fn cluster() -> Option<&'static EtcdService> {
    static SERVICE: OnceLock<Option<EtcdService>> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = match from_env(CLUSTER_URL_ENV) {
                Some(service) => service,
                None => match from_containers("etcd cluster", 3) {
                    Ok(Some(service)) => service,
                    Ok(None) => start_or_report("etcd cluster", 3, "cluster")?,
                    Err(why) => return unavailable("etcd cluster", &why, HOW_TO_GET_ONE),
                },
            };
            announce("etcd (three members)", &service);
            Some(service)
        })
        .as_ref()
}

/// A new private cluster of `members` members for this caller alone, stopped when the value
/// is dropped: for tests that kill and restart members. Always local processes, even when
/// the environment names a cluster. `None` or a panic as for [`single`].
pub fn private_cluster(members: usize) -> Option<EtcdService> {
    start_or_report("private etcd cluster", members, "private")
}

/// The TLS member of this test process: the cluster in `KV_ETCD_TLS_URL`, else a private
/// member started on first use that speaks only TLS, with a certificate for `127.0.0.1` and
/// `localhost` signed by a CA made for it ([`TestCertificates`]), and that requires a client
/// certificate signed by the same CA (`--client-cert-auth`). Its URL carries `tls=true`,
/// `ca_file`, `cert_file` and `key_file`. `None` or a panic as for [`single`].
pub fn tls_single() -> Option<&'static EtcdService> {
    static SERVICE: OnceLock<Option<EtcdService>> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = match from_env(TLS_URL_ENV) {
                Some(service) => service,
                None => start_or_report("etcd TLS member", 1, "tls")?,
            };
            announce("etcd (one member, TLS)", &service);
            Some(service)
        })
        .as_ref()
}

fn announce(what: &str, service: &EtcdService) {
    eprintln!(
        "kv-conformance: {what} for this test process: {} at {}",
        service.provider,
        redact(&service.url)
    );
}

fn from_env(variable: &'static str) -> Option<EtcdService> {
    let url = std::env::var(variable)
        .ok()
        .filter(|url| !url.trim().is_empty())?;
    Some(EtcdService {
        password: password_in(&url),
        members: nodes_in(&url, 2379),
        url,
        provider: Provider::Environment(variable),
        certificates: None,
        local: Vec::new(),
        containers: Vec::new(),
    })
}

fn start_or_report(service: &str, members: usize, label: &str) -> Option<EtcdService> {
    let Some(binary) = find_binary("etcd") else {
        return unavailable(
            service,
            "no URL in the environment, and `etcd` is not installed",
            HOW_TO_GET_ONE,
        );
    };
    match start_private(binary, members, label) {
        Ok(service) => Some(service),
        Err(err) => unavailable(
            service,
            &format!("starting it failed: {err}"),
            HOW_TO_GET_ONE,
        ),
    }
}

fn start_private(binary: PathBuf, count: usize, label: &str) -> io::Result<EtcdService> {
    let dir = private_dir("etcd", label)?;
    let tls = match label {
        "tls" => Some(TestCertificates::make(
            &dir,
            &["IP:127.0.0.1", "DNS:localhost"],
        )?),
        _ => None,
    };
    let ports_per_member = if tls.is_some() { 3 } else { 2 };
    let ports = distinct_free_ports(ports_per_member * count)?;
    let (names, initial_cluster) = initial_cluster(&ports, ports_per_member);
    let mut local: Vec<LocalMember> = names
        .into_iter()
        .zip(ports.chunks(ports_per_member))
        .map(|(name, ports)| LocalMember {
            binary: binary.clone(),
            dir: dir.clone(),
            name,
            client_port: ports[0],
            peer_port: ports[1],
            // Without TLS the client port answers `/health` itself.
            metrics_port: ports.get(2).copied().unwrap_or(ports[0]),
            tls: tls.clone(),
            initial_cluster: initial_cluster.clone(),
            process: None,
            starts: 0,
        })
        .collect();
    for member in &mut local {
        member.spawn()?;
    }
    let members: Vec<String> = local
        .iter()
        .map(|member| format!("127.0.0.1:{}", member.client_port))
        .collect();
    let mut url = format!("etcd://{}", members.join(","));
    if let Some(certificates) = &tls {
        let option = |path: PathBuf| encode_component(&path.to_string_lossy());
        url = url_with(
            &url,
            &format!(
                "tls=true&ca_file={}&cert_file={}&key_file={}",
                option(certificates.ca()),
                option(certificates.client_cert()),
                option(certificates.client_key())
            ),
        );
    }
    let service = EtcdService {
        url,
        provider: Provider::LocalBinary(binary),
        password: None,
        members,
        certificates: tls,
        local,
        containers: Vec::new(),
    };
    service.wait_healthy(STARTUP_TIMEOUT)?;
    Ok(service)
}

/// `count` different free ports on `127.0.0.1`.
fn distinct_free_ports(count: usize) -> io::Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < count {
        let port = free_port(u16::MAX, |_| None)?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// The members' names (`m0`, `m1`, ...) and etcd's `--initial-cluster` for them, member `i`
/// having the ports `ports[i * per_member..]`: its client port, then its peer port.
fn initial_cluster(ports: &[u16], per_member: usize) -> (Vec<String>, String) {
    let names: Vec<String> = (0..ports.len() / per_member)
        .map(|i| format!("m{i}"))
        .collect();
    let initial = names
        .iter()
        .zip(ports.chunks(per_member))
        .map(|(name, ports)| format!("{name}=http://127.0.0.1:{}", ports[1]))
        .collect::<Vec<_>>()
        .join(",");
    (names, initial)
}

/// The arguments of member `name` of a new cluster: its data in `data_dir`, clients served
/// at `client_url`, peers on `127.0.0.1:peer_port`, the others in `initial_cluster`. The same
/// for a local process and a container.
fn member_args(
    name: &str,
    data_dir: &str,
    client_url: &str,
    peer_port: u16,
    initial_cluster: &str,
) -> Vec<String> {
    let peer = format!("http://127.0.0.1:{peer_port}");
    [
        ("--name", name),
        ("--data-dir", data_dir),
        ("--listen-client-urls", client_url),
        ("--advertise-client-urls", client_url),
        ("--listen-peer-urls", &peer),
        ("--initial-advertise-peer-urls", &peer),
        ("--initial-cluster", initial_cluster),
        ("--initial-cluster-state", "new"),
        ("--initial-cluster-token", "kvkit-test"),
        // Warnings only: a member's log is for reading when a test failed.
        ("--log-level", "warn"),
        ("--logger", "zap"),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()])
    .collect()
}

/// The container step (see [`containers::attempt`](super::containers)): `count` members,
/// one container each, on the host's network.
#[cfg(feature = "containers")]
fn from_containers(what: &str, count: usize) -> Result<Option<EtcdService>, String> {
    use super::containers::{attempt, Ready, Service};
    attempt(what, Service::Etcd, |image| {
        let ports = distinct_free_ports(2 * count).map_err(|err| err.to_string())?;
        let (names, initial) = initial_cluster(&ports, 2);
        let mut containers = Vec::new();
        // Each member waits for the others to elect a leader, so all start before any is
        // waited for.
        for (name, ports) in names.iter().zip(ports.chunks(2)) {
            let mut args = vec!["/usr/local/bin/etcd".to_owned()];
            args.extend(member_args(
                name,
                &format!("/tmp/kvkit-etcd/{name}"),
                &format!("http://127.0.0.1:{}", ports[0]),
                ports[1],
                &initial,
            ));
            containers.push(RunningContainer::start_on_host_network(
                image,
                args,
                Ready::Started,
            )?);
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for (container, ports) in containers.iter().zip(ports.chunks(2)) {
            let logs = format!("see `docker logs {}`", container.id());
            wait_healthy(ports[0], deadline, &logs).map_err(|err| err.to_string())?;
        }
        let members: Vec<String> = ports
            .chunks(2)
            .map(|ports| format!("127.0.0.1:{}", ports[0]))
            .collect();
        Ok(EtcdService {
            url: format!("etcd://{}", members.join(",")),
            provider: Provider::Container {
                image: image.to_string(),
            },
            password: None,
            members,
            certificates: None,
            local: Vec::new(),
            containers,
        })
    })
}

#[cfg(not(feature = "containers"))]
fn from_containers(_what: &str, _count: usize) -> Result<Option<EtcdService>, String> {
    Ok(None)
}

/// Waits until the member on `port` answers `/health` with `"health":"true"` (etcd 3.4 says
/// so only while the member sees a leader), up to `deadline`; `logs` says where to look when
/// it does not.
fn wait_healthy(port: u16, deadline: Instant, logs: &str) -> io::Result<()> {
    loop {
        if health(port).is_ok_and(|body| body.contains("\"health\":\"true\"")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("etcd on 127.0.0.1:{port} did not report itself healthy in time; {logs}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The body of `GET /health` from the member on `port`, by plain HTTP/1.0.
fn health(port: u16) -> io::Result<String> {
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_cluster_names_each_members_peer_port() {
        let (names, initial) = initial_cluster(&[2379, 2380, 2479, 2480, 2579, 2580], 2);
        assert_eq!(names, ["m0", "m1", "m2"]);
        assert_eq!(
            initial,
            "m0=http://127.0.0.1:2380,m1=http://127.0.0.1:2480,m2=http://127.0.0.1:2580"
        );
        // A TLS member has a third port, for /health in plain HTTP.
        let (names, initial) = initial_cluster(&[2379, 2380, 2381], 3);
        assert_eq!(names, ["m0"]);
        assert_eq!(initial, "m0=http://127.0.0.1:2380");
    }

    #[test]
    fn a_member_listens_and_advertises_where_the_cluster_expects_it() {
        let args = member_args(
            "m1",
            "/tmp/kvkit-etcd/m1",
            "http://127.0.0.1:2479",
            2480,
            "m0=http://127.0.0.1:2380,m1=http://127.0.0.1:2480",
        );
        let value = |flag: &str| {
            let at = args.iter().position(|arg| arg == flag).unwrap();
            args[at + 1].clone()
        };
        assert_eq!(value("--name"), "m1");
        assert_eq!(value("--data-dir"), "/tmp/kvkit-etcd/m1");
        assert_eq!(value("--listen-client-urls"), "http://127.0.0.1:2479");
        assert_eq!(value("--advertise-client-urls"), "http://127.0.0.1:2479");
        assert_eq!(value("--listen-peer-urls"), "http://127.0.0.1:2480");
        assert_eq!(
            value("--initial-advertise-peer-urls"),
            "http://127.0.0.1:2480"
        );
        assert!(value("--initial-cluster").contains("m1=http://127.0.0.1:2480"));
        assert_eq!(value("--initial-cluster-state"), "new");
        assert_eq!(args.len() % 2, 0, "flags and values in pairs: {args:?}");
    }
}
