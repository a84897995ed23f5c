//! The fault checks against a tiny networked store: a line protocol over loopback TCP, a
//! client that keeps the contract, and clients broken one way each, so that every check is
//! shown to fail when its rule is broken.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_trait::{async_trait, KvBackend, KvError};

use super::{Fault, FaultChecks, FaultReport};

/// The call timeout of the tests' client.
const TIMEOUT: Duration = Duration::from_millis(300);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// A store in a map, served one line per request on every connection; TTLs are ignored (the
/// checks' only TTL is a minute).
fn serve() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let address = listener.local_addr().expect("address");
    let map: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let map = map.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone");
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let reply = answer(&map, &line);
                    if writer.write_all(format!("{reply}\n").as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

fn answer(map: &Mutex<BTreeMap<String, Vec<u8>>>, line: &str) -> String {
    let mut map = map.lock().expect("map");
    let words: Vec<&str> = line.split(' ').collect();
    let key = String::from_utf8(unhex(words.get(1).copied().unwrap_or(""))).expect("utf-8");
    let flag = |b: bool| format!("b {}", u8::from(b));
    match words[0] {
        "get" => map
            .get(&key)
            .map_or("none".into(), |value| format!("v {}", hex(value))),
        "set" => {
            map.insert(key, unhex(words[2]));
            "ok".into()
        }
        "del" => flag(map.remove(&key).is_some()),
        "has" => flag(map.contains_key(&key)),
        "list" => {
            let keys: Vec<String> = map
                .keys()
                .filter(|k| k.starts_with(&key))
                .map(|k| hex(k.as_bytes()))
                .collect();
            format!("k {}", keys.join(","))
        }
        "incr" => {
            let delta: i64 = words[2].parse().expect("delta");
            match kv_trait::apply_increment(map.get(&key).map(Vec::as_slice), delta) {
                Ok(n) => {
                    map.insert(key, kv_trait::format_counter(n));
                    format!("i {n}")
                }
                Err(err) => format!("e {err}"),
            }
        }
        "cas" => {
            let expected = words[2].strip_prefix('=').map(unhex);
            let swap = map.get(&key).cloned() == expected;
            if swap {
                map.insert(key, unhex(words[3]));
            }
            flag(swap)
        }
        _ => "e unknown request".into(),
    }
}

/// How a client breaks the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    /// It keeps the contract.
    Not,
    /// No timeout at all: a call waits as long as the network does.
    NoTimeout,
    /// Network errors come back as `Backend`.
    BackendErrors,
    /// After its first network error the handle fails every call.
    StuckAfterError,
    /// A `set` whose request failed still answers `Ok`.
    AcksFailedWrites,
    /// An `increment` of the tally that failed is sent once more (only the tally's, so that
    /// the tally check is what catches it, not the linearizability of the workload's counter).
    RetriesIncrements,
    /// `get` answers from a cache of what this handle last wrote or read.
    CachesReads,
}

/// Connections that answered their last request whole, ready for the next one.
type Idle = Arc<Mutex<Vec<BufReader<TcpStream>>>>;

/// The client: a pool of connections (one is dropped on any error, as a pooled client drops a
/// connection it no longer trusts), a whole-call timeout, `Unavailable` on every network
/// error (unless broken). Pooled connections stay open between calls, so every reset of the
/// proxy's connections does hit the client, whatever the timing of its calls.
#[derive(Debug)]
struct LineClient {
    address: SocketAddr,
    broken: Broken,
    stuck: AtomicBool,
    cache: Mutex<BTreeMap<String, Option<Vec<u8>>>>,
    idle: Idle,
}

impl LineClient {
    fn new(address: SocketAddr, broken: Broken) -> Self {
        Self {
            address,
            broken,
            stuck: AtomicBool::new(false),
            cache: Mutex::default(),
            idle: Idle::default(),
        }
    }

    async fn call(&self, request: String) -> Result<String, KvError> {
        if self.stuck.load(Ordering::SeqCst) {
            return Err(KvError::unavailable("stuck since an earlier error"));
        }
        let address = self.address;
        let timeout = (self.broken != Broken::NoTimeout).then_some(TIMEOUT);
        let idle = self.idle.clone();
        let exchange = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let pooled = idle.lock().expect("idle").pop();
            let mut connection = match pooled {
                Some(connection) => connection,
                None => {
                    let stream = match timeout {
                        Some(timeout) => TcpStream::connect_timeout(&address, timeout)?,
                        None => TcpStream::connect(address)?,
                    };
                    stream.set_read_timeout(timeout)?;
                    stream.set_write_timeout(timeout)?;
                    BufReader::new(stream)
                }
            };
            connection
                .get_mut()
                .write_all(format!("{request}\n").as_bytes())?;
            let mut reply = String::new();
            connection.read_line(&mut reply)?;
            if !reply.ends_with('\n') {
                return Err(std::io::Error::other("the reply was cut"));
            }
            idle.lock().expect("idle").push(connection);
            Ok(reply.trim_end().to_owned())
        });
        let result = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, exchange).await {
                Ok(joined) => joined.map_err(std::io::Error::other).and_then(|r| r),
                Err(_) => Err(std::io::Error::other("timed out")),
            },
            None => exchange
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r),
        };
        match result {
            Ok(reply) => match reply.strip_prefix("e ") {
                Some(message) => Err(KvError::backend(message.to_owned())),
                None => Ok(reply),
            },
            Err(err) => {
                if self.broken == Broken::StuckAfterError {
                    self.stuck.store(true, Ordering::SeqCst);
                }
                Err(match self.broken {
                    Broken::BackendErrors => KvError::backend(err),
                    _ => KvError::unavailable(err),
                })
            }
        }
    }
}

fn reply_flag(reply: &str) -> Result<bool, KvError> {
    Ok(reply == "b 1")
}

#[async_trait]
impl KvBackend for LineClient {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if self.broken == Broken::CachesReads {
            if let Some(cached) = self.cache.lock().expect("cache").get(key) {
                return Ok(cached.clone());
            }
        }
        let reply = self.call(format!("get {}", hex(key.as_bytes()))).await?;
        let value = reply.strip_prefix("v ").map(unhex);
        self.cache
            .lock()
            .expect("cache")
            .insert(key.to_owned(), value.clone());
        Ok(value)
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let sent = self
            .call(format!("set {} {}", hex(key.as_bytes()), hex(value)))
            .await;
        match sent {
            Err(_) if self.broken == Broken::AcksFailedWrites => Ok(()),
            Err(err) => Err(err),
            Ok(_) => {
                self.cache
                    .lock()
                    .expect("cache")
                    .insert(key.to_owned(), Some(value.to_vec()));
                Ok(())
            }
        }
    }
    async fn set_with_ttl(&self, key: &str, value: &[u8], _ttl_ns: u64) -> Result<(), KvError> {
        self.set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.cache.lock().expect("cache").remove(key);
        reply_flag(&self.call(format!("del {}", hex(key.as_bytes()))).await?)
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        reply_flag(&self.call(format!("has {}", hex(key.as_bytes()))).await?)
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let reply = self
            .call(format!("list {}", hex(prefix.as_bytes())))
            .await?;
        let listed = reply.strip_prefix("k ").unwrap_or_default();
        Ok(listed
            .split(',')
            .filter(|k| !k.is_empty())
            .map(|k| String::from_utf8(unhex(k)).expect("utf-8"))
            .collect())
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let request = format!("incr {} {delta}", hex(key.as_bytes()));
        let reply = match self.call(request.clone()).await {
            Err(_) if self.broken == Broken::RetriesIncrements && key.ends_with("tally") => {
                self.call(request).await?
            }
            other => other?,
        };
        reply
            .strip_prefix("i ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| KvError::backend(format!("unexpected reply {reply:?}")))
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let expected = expected.map_or("-".to_owned(), |e| format!("={}", hex(e)));
        let swapped = reply_flag(
            &self
                .call(format!(
                    "cas {} {expected} {}",
                    hex(key.as_bytes()),
                    hex(new)
                ))
                .await?,
        )?;
        if swapped {
            self.cache
                .lock()
                .expect("cache")
                .insert(key.to_owned(), Some(new.to_vec()));
        }
        Ok(swapped)
    }
}

/// The checks of `faults` against a client broken as `broken`, with the default hold.
fn run(broken: Broken, faults: &[Fault]) -> FaultReport {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = serve();
    runtime.block_on(async {
        FaultChecks::new(server, TIMEOUT, move |proxy| async move {
            Ok(LineClient::new(proxy, broken))
        })
        .faults(faults.iter().copied())
        .run()
        .await
    })
}

/// Fails unless `report` failed with a message containing `expected`.
fn assert_fails_with(report: &FaultReport, expected: &str) {
    assert!(!report.passed(), "it passed:\n{report}");
    let messages: Vec<&str> = report
        .faults
        .iter()
        .flat_map(|fault| &fault.failures)
        .map(|failure| failure.message.as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains(expected)),
        "no failure says {expected:?}:\n{report}"
    );
}

#[test]
fn a_client_that_keeps_the_contract_passes_every_fault() {
    let report = run(Broken::Not, &Fault::ALL);
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    assert_eq!(report.faults.len(), Fault::ALL.len());
    for fault in &report.faults {
        assert!(fault.calls > 100, "{fault}");
        assert!(fault.recovery.is_some(), "{fault}");
        assert!(fault.writes.0 > 0 && fault.increments.0 > 0, "{fault}");
    }
    // Each fault did hit the client: errors where the network failed it.
    for fault in [
        Fault::CutMidReply,
        Fault::ResetAll,
        Fault::BlackHole,
        Fault::ServerDown,
    ] {
        let outcome = report
            .faults
            .iter()
            .find(|f| f.fault == fault)
            .expect("ran");
        assert!(outcome.unavailable > 0, "{outcome}");
    }
    assert!(
        report.largest_call() >= TIMEOUT,
        "the black hole made calls time out"
    );
}

#[test]
fn a_call_without_a_timeout_fails_the_latency_check() {
    let report = run(Broken::NoTimeout, &[Fault::BlackHole]);
    assert_fails_with(&report, "took longer than the call timeout plus the margin");
}

#[test]
fn an_error_that_is_not_unavailable_fails() {
    let report = run(Broken::BackendErrors, &[Fault::ResetAll]);
    assert_fails_with(&report, "an error other than Unavailable");
}

#[test]
fn a_handle_that_never_recovers_fails() {
    let report = run(Broken::StuckAfterError, &[Fault::ServerDown]);
    assert_fails_with(&report, "did not work again");
    assert_eq!(report.longest_recovery(), None, "{report}");
}

#[test]
fn an_acknowledged_write_that_is_lost_fails() {
    let report = run(Broken::AcksFailedWrites, &[Fault::ServerDown]);
    assert_fails_with(&report, "acknowledged writes are not there");
}

#[test]
fn an_increment_applied_twice_fails() {
    let report = run(Broken::RetriesIncrements, &[Fault::CutMidReply]);
    assert_fails_with(&report, "an increment lost, or applied twice");
}

#[test]
fn a_stale_read_fails_the_linearizability_check() {
    let report = run(Broken::CachesReads, &[Fault::Latency]);
    assert_fails_with(&report, "not linearizable");
}

#[test]
fn a_backend_that_cannot_be_opened_is_a_failed_report() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(
        FaultChecks::new(serve(), TIMEOUT, |_| async {
            Err::<LineClient, _>(KvError::InvalidConfig("no such store".into()))
        })
        .run(),
    );
    assert!(!report.passed());
    assert!(report.to_string().contains("no such store"), "{report}");
}
