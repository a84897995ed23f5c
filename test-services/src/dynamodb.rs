//! A DynamoDB endpoint for tests: `KV_DYNAMODB_ENDPOINT`, else a private emulator: dynalite
//! (the default) or moto.
//!
//! ```no_run
//! use kv_test_services::dynamodb;
//!
//! let Some(service) = dynamodb::endpoint() else {
//!     return; // skipped loudly (or failed, under KVKIT_REQUIRE_SERVICES=1)
//! };
//! // A URL kv-dynamodb understands, with the dummy credentials and region the emulator takes.
//! let url = service.url("kvkit-tests", "my-namespace");
//! ```
//!
//! The order: the endpoint in `KV_DYNAMODB_ENDPOINT` (any DynamoDB-compatible emulator, e.g.
//! DynamoDB Local); else, with the `containers` feature and a Docker engine that answers, a
//! container of `KV_DYNAMODB_IMAGE` (default `amazon/dynamodb-local:2.6.1`, or
//! `motoserver/moto`), removed when the test process ends (see
//! [`containers`](super::containers)); else the emulator `KV_DYNAMODB_EMULATOR` names
//! ([`Emulator`]: `dynalite`, the default, or `moto`), started on a free loopback port and
//! stopped when the test process exits; else [`unavailable`]. dynalite comes from the path in
//! `KV_DYNALITE` or from `PATH`, moto's `moto_server` from `KV_MOTO_SERVER` or `PATH`;
//! `ci/install-deps` installs both under its cache directory and sets both variables. Tests
//! never talk to real AWS: they use the dummy credentials [`ACCESS_KEY_ID`] /
//! [`SECRET_ACCESS_KEY`] and region [`REGION`], which emulators accept.
//!
//! # dynalite runs requests concurrently; moto runs them one at a time here
//!
//! dynalite (a Node.js emulator on LevelDB, in memory here) locks each item while it applies
//! a write, as DynamoDB does, so concurrent conditional writes to one item are decided one
//! after the other. It is used as it is: the contract's concurrency checks run against a
//! store that really executes requests at the same time.
//!
//! moto serves requests on parallel threads without locking items, so two conditional writes
//! to one item can both pass their condition: concurrent `ADD`s with
//! `attribute_not_exists` can both create the item, losing an update. DynamoDB itself never
//! does that (every write to an item is atomic), and the contract's concurrency checks fail
//! at random on it (two increments return the same value, two `compare_and_swap` calls both
//! win). So the endpoint of a moto started here is a small relay on another loopback port
//! that reads each whole request, forwards it to moto, and waits for moto's whole answer
//! before forwarding the next one; a moto container gets one too. moto is kept for its wider
//! API coverage (the TTL API, `ReturnValuesOnConditionCheckFailure`, which dynalite lacks).
//! An endpoint from `KV_DYNAMODB_ENDPOINT`, and DynamoDB Local, are used as given.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::{free_port, unavailable, wait_for_port, LocalProcess, Provider, RunningContainer};

/// Environment variable: the endpoint of a running DynamoDB-compatible service to use.
pub const ENDPOINT_ENV: &str = "KV_DYNAMODB_ENDPOINT";
/// Environment variable: the `moto_server` executable to start when no endpoint is given.
pub const MOTO_SERVER_ENV: &str = "KV_MOTO_SERVER";
/// Environment variable: the `dynalite` executable to start when no endpoint is given.
pub const DYNALITE_ENV: &str = "KV_DYNALITE";
/// Environment variable: which emulator to start when no endpoint is given (see [`Emulator`]).
pub const EMULATOR_ENV: &str = "KV_DYNAMODB_EMULATOR";
/// Environment variable under which `kv-services moto` exports the endpoint of the moto it
/// started (behind its relay), beside the default emulator's `KV_DYNAMODB_ENDPOINT`.
pub const MOTO_ENDPOINT_ENV: &str = "KV_DYNAMODB_MOTO_ENDPOINT";
/// The region tests configure (emulators accept any).
pub const REGION: &str = "us-east-1";
/// The dummy access key id tests configure.
pub const ACCESS_KEY_ID: &str = "test";
/// The dummy secret access key tests configure.
pub const SECRET_ACCESS_KEY: &str = "test";

/// How long a starting emulator may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The DynamoDB emulators the tests start themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    /// [dynalite](https://github.com/architect/dynalite), from npm: requests run
    /// concurrently, each item's writes atomic, as on DynamoDB. No TTL API (`UpdateTimeToLive`
    /// is an `UnknownOperationException`). The default.
    Dynalite,
    /// [moto](https://github.com/getmoto/moto)'s `moto_server`, from PyPI: the wider API, but
    /// conditional writes are not atomic, so it runs behind a relay that serialises requests
    /// (see the module docs).
    Moto,
}

impl Emulator {
    /// The emulator `KV_DYNAMODB_EMULATOR` names (`dynalite` or `moto`), dynalite when unset.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(EMULATOR_ENV).as_deref() {
            Err(_) | Ok("" | "dynalite") => Ok(Self::Dynalite),
            Ok("moto") => Ok(Self::Moto),
            Ok(other) => Err(format!(
                "${EMULATOR_ENV} is {other:?}; expected dynalite or moto"
            )),
        }
    }

    /// `dynalite` or `moto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dynalite => "dynalite",
            Self::Moto => "moto",
        }
    }

    /// The executable's file name, and the variable that may give its path.
    fn binary(self) -> (&'static str, &'static str) {
        match self {
            Self::Dynalite => ("dynalite", DYNALITE_ENV),
            Self::Moto => ("moto_server", MOTO_SERVER_ENV),
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Self::Dynalite => {
                "Install it with `npm install dynalite` (ci/install-deps does, under ~/.cache/kvkit), \
                 or set KV_DYNAMODB_EMULATOR=moto"
            }
            Self::Moto => {
                "Install it with `pip install 'moto[server]'` (ci/install-deps does, in a virtualenv)"
            }
        }
    }
}

/// A DynamoDB-compatible endpoint that tests may use.
#[derive(Debug)]
#[non_exhaustive]
pub struct DynamoDbService {
    /// The endpoint URL, e.g. `http://127.0.0.1:43121` (for a moto started here, the relay
    /// that serialises its requests).
    pub endpoint: String,
    /// Where it came from.
    pub provider: Provider,
    /// The server this process started, kept alive for the process's lifetime.
    _server: Option<LocalProcess>,
    /// The container this process started, likewise.
    _container: Option<RunningContainer>,
}

impl DynamoDbService {
    /// A `dynamodb://` URL for `table` and `namespace` at this endpoint, with the test
    /// credentials and region: `dynamodb://test:test@TABLE?region=..&endpoint=..&namespace=..`.
    pub fn url(&self, table: &str, namespace: &str) -> String {
        format!(
            "dynamodb://{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}@{}?region={REGION}&endpoint={}&namespace={}",
            percent_encode(table),
            percent_encode(&self.endpoint),
            percent_encode(namespace)
        )
    }
}

/// The endpoint for this test process: found or started on first use, then shared. `None`
/// (after a loud skip message) when there is none; panics instead under
/// `KVKIT_REQUIRE_SERVICES`. The first call prints which provider serves it.
pub fn endpoint() -> Option<&'static DynamoDbService> {
    static SERVICE: OnceLock<Option<DynamoDbService>> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = find_or_start()?;
            eprintln!(
                "kv-conformance: DynamoDB at {} from {}",
                service.endpoint, service.provider
            );
            Some(service)
        })
        .as_ref()
}

fn find_or_start() -> Option<DynamoDbService> {
    if let Some(endpoint) = std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty()) {
        return Some(DynamoDbService {
            endpoint,
            provider: Provider::Environment(ENDPOINT_ENV),
            _server: None,
            _container: None,
        });
    }
    match from_container() {
        Ok(Some(service)) => return Some(service),
        Ok(None) => {}
        Err(why) => {
            return unavailable(
                "DynamoDB emulator",
                &why,
                "Set KV_DYNAMODB_ENDPOINT, fix KV_DYNAMODB_IMAGE / KV_CONTAINERS, or install moto",
            )
        }
    }
    match Emulator::from_env() {
        Ok(emulator) => start(emulator),
        Err(why) => unavailable("DynamoDB emulator", &why, "Unset it, or name an emulator"),
    }
}

/// Starts a private `emulator` on a free loopback port, for as long as the returned service
/// lives (`kv-services moto` keeps one beside the default emulator). `None` (after a loud
/// skip message) when it is not installed or does not start; panics instead under
/// `KVKIT_REQUIRE_SERVICES`.
pub fn start(emulator: Emulator) -> Option<DynamoDbService> {
    let (name, variable) = emulator.binary();
    let what = format!("DynamoDB emulator {}", emulator.name());
    let binary = match std::env::var_os(variable).filter(|path| !path.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return unavailable(
                    &what,
                    &format!("${variable} is {}, which is not a file", path.display()),
                    &format!("Point it at {name}, or run ci/install-deps"),
                );
            }
            path
        }
        None => match super::find_binary(name) {
            Some(path) => path,
            None => {
                return unavailable(
                    &what,
                    &format!(
                        "neither ${ENDPOINT_ENV} nor ${variable} is set, and {name} is not on PATH"
                    ),
                    emulator.install_hint(),
                )
            }
        },
    };
    let port = match free_port(u16::MAX, |_| None) {
        Ok(port) => port,
        Err(err) => return unavailable(&what, &err.to_string(), "Free a port"),
    };
    let log = std::env::temp_dir().join(format!(
        "kvkit-{}-{}-{port}.log",
        emulator.name(),
        std::process::id()
    ));
    let mut command = Command::new(&binary);
    match emulator {
        Emulator::Moto => command.args(["-H", "127.0.0.1", "-p", &port.to_string()]),
        // Tables become ACTIVE (and are deleted) after 50 ms instead of 500: tests create
        // many. Items stay in memory.
        Emulator::Dynalite => command.args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--createTableMs",
            "50",
            "--deleteTableMs",
            "50",
            "--updateTableMs",
            "50",
        ]),
    };
    let mut server = match LocalProcess::spawn(command, &log) {
        Ok(server) => server,
        Err(err) => {
            return unavailable(
                &what,
                &format!("cannot start {}: {err}", binary.display()),
                emulator.install_hint(),
            )
        }
    };
    if let Err(err) = wait_for_port(port, STARTUP_TIMEOUT) {
        let exited = if server.has_exited() {
            " (it exited)"
        } else {
            ""
        };
        return unavailable(
            &what,
            &format!(
                "{} did not start{exited}: {err}; its output is in {}",
                binary.display(),
                log.display()
            ),
            emulator.install_hint(),
        );
    }
    let endpoint_port = match emulator {
        Emulator::Dynalite => port,
        Emulator::Moto => {
            match start_serial_relay(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into()) {
                Ok(relay) => relay,
                Err(err) => {
                    return unavailable(
                        &what,
                        &format!("cannot start the relay in front of moto: {err}"),
                        "Free a loopback port",
                    )
                }
            }
        }
    };
    Some(DynamoDbService {
        endpoint: format!("http://127.0.0.1:{endpoint_port}"),
        provider: Provider::LocalBinary(binary),
        _server: Some(server),
        _container: None,
    })
}

/// The container step (see [`containers::attempt`](super::containers)).
#[cfg(feature = "containers")]
fn from_container() -> Result<Option<DynamoDbService>, String> {
    use super::containers::{attempt, wait_for_http, Ready, Service};
    use std::net::ToSocketAddrs;
    attempt("DynamoDB", Service::DynamoDb, |image| {
        // moto listens on 5000, DynamoDB Local (and images like it) on 8000.
        let port = if image.is_moto() { 5000 } else { 8000 };
        let container = RunningContainer::start(image, &[port], None, &[], Ready::Started)?;
        let host = container.host().to_owned();
        let host_port = container.host_port(port)?;
        wait_for_http(&host, host_port, STARTUP_TIMEOUT)?;
        let endpoint = if image.is_moto() {
            let upstream = (host.as_str(), host_port)
                .to_socket_addrs()
                .map_err(|err| err.to_string())?
                .next()
                .ok_or_else(|| format!("{host} resolves to no address"))?;
            let relay = start_serial_relay(upstream)
                .map_err(|err| format!("cannot start the relay in front of moto: {err}"))?;
            format!("http://127.0.0.1:{relay}")
        } else {
            format!("http://{host}:{host_port}")
        };
        Ok(DynamoDbService {
            endpoint,
            provider: Provider::Container {
                image: image.to_string(),
            },
            _server: None,
            _container: Some(container),
        })
    })
}

#[cfg(not(feature = "containers"))]
fn from_container() -> Result<Option<DynamoDbService>, String> {
    Ok(None)
}

/// How long the relay waits for a client's request or moto's answer before giving up on it.
const RELAY_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the relay in front of moto at `upstream` (see the module docs); returns its port.
/// Its threads live as long as the test process.
fn start_serial_relay(upstream: SocketAddr) -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    let turn = Arc::new(Mutex::new(()));
    std::thread::Builder::new()
        .name("moto-relay".into())
        .spawn(move || {
            for client in listener.incoming().flatten() {
                let turn = Arc::clone(&turn);
                // A failed exchange only fails that request: the client sees a closed
                // connection, as after a network error.
                let _ = std::thread::Builder::new()
                    .name("moto-relay-connection".into())
                    .spawn(move || relay_connection(client, upstream, &turn));
            }
        })?;
    Ok(port)
}

/// Relays the requests of one client connection, each to a new moto connection, while
/// holding `turn`, so that moto never runs two at once.
fn relay_connection(client: TcpStream, upstream: SocketAddr, turn: &Mutex<()>) -> io::Result<()> {
    client.set_read_timeout(Some(RELAY_TIMEOUT))?;
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    // The whole request is read before taking the turn: a slow client delays no one.
    while let Some(request) = read_message(&mut from_client, Unsized::Empty)? {
        let response = {
            let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
            let mut moto = TcpStream::connect(upstream)?;
            moto.set_read_timeout(Some(RELAY_TIMEOUT))?;
            moto.write_all(&request)?;
            let mut from_moto = BufReader::new(moto);
            read_message(&mut from_moto, Unsized::ToEnd)?.unwrap_or_default()
        };
        to_client.write_all(&response)?;
    }
    Ok(())
}

/// The body of an HTTP message without `Content-Length`.
#[derive(Clone, Copy)]
enum Unsized {
    /// None (a request).
    Empty,
    /// Everything until the connection closes (a response).
    ToEnd,
}

/// Reads one HTTP/1.1 message (head and body) as raw bytes; `None` at the end of the stream.
/// Chunked bodies are refused: the SDK and moto send `Content-Length`.
fn read_message(stream: &mut impl BufRead, without_length: Unsized) -> io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut length = None;
    loop {
        let start = message.len();
        if stream.read_until(b'\n', &mut message)? == 0 {
            return if message.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let line = String::from_utf8_lossy(&message[start..]).to_ascii_lowercase();
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().ok();
        }
        if line.starts_with("transfer-encoding:") {
            return Err(io::Error::other(
                "the moto relay does not handle chunked bodies",
            ));
        }
        if line == "\r\n" {
            break;
        }
    }
    match length {
        Some(length) => {
            let start = message.len();
            message.resize(start + length, 0);
            stream.read_exact(&mut message[start..])?;
        }
        None => {
            if let Unsized::ToEnd = without_length {
                stream.read_to_end(&mut message)?;
            }
        }
    }
    Ok(Some(message))
}

/// Percent-encodes everything but unreserved characters, for a URL component.
fn percent_encode(text: &str) -> String {
    // Everything but RFC 3986's unreserved characters.
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_reads_whole_messages() {
        let mut stream: &[u8] =
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nX: y\r\n\r\nbodyGET / HTTP/1.1\r\n\r\n";
        let first = read_message(&mut stream, Unsized::Empty).unwrap().unwrap();
        assert!(first.ends_with(b"\r\n\r\nbody"));
        let second = read_message(&mut stream, Unsized::Empty).unwrap().unwrap();
        assert_eq!(second, b"GET / HTTP/1.1\r\n\r\n");
        assert!(read_message(&mut stream, Unsized::Empty).unwrap().is_none());

        let mut response: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}";
        let whole = read_message(&mut response, Unsized::ToEnd)
            .unwrap()
            .unwrap();
        assert!(whole.ends_with(b"{}"));
        let mut chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(read_message(&mut chunked, Unsized::ToEnd).is_err());
    }

    #[test]
    fn urls_encode_every_part() {
        let service = DynamoDbService {
            endpoint: "http://127.0.0.1:5000".into(),
            provider: Provider::Environment(ENDPOINT_ENV),
            _server: None,
            _container: None,
        };
        assert_eq!(
            service.url("kv-tests", "a/b c&é"),
            "dynamodb://test:test@kv-tests?region=us-east-1\
             &endpoint=http%3A%2F%2F127.0.0.1%3A5000&namespace=a%2Fb%20c%26%C3%A9"
        );
    }
}
