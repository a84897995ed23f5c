//! Fault checks for networked stores: a [`FaultProxy`] between the backend and its server
//! injects network faults while a concurrent workload runs, and [`FaultChecks`] judges what
//! the backend did.
//!
//! ```no_run
//! # async fn my_store_at(
//! #     address: std::net::SocketAddr,
//! # ) -> Result<kv_memory::MemoryBackend, kv_trait::KvError> {
//! #     Ok(kv_memory::MemoryBackend::new())
//! # }
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use kv_conformance::faults::FaultChecks;
//!
//! // The server is at 127.0.0.1:6379; the backend is opened once, on the proxy's address,
//! // with a request timeout of 500 ms (for kv-redis:
//! // `redis://127.0.0.1:{port}?request_timeout_ms=500&connect_timeout_ms=500`).
//! let report = FaultChecks::new("127.0.0.1:6379", Duration::from_millis(500), |proxy| {
//!     my_store_at(proxy)
//! })
//! .run()
//! .await;
//! println!("{report}"); // a table: one row per fault, with the figures below
//! assert!(report.passed(), "{report}");
//! # });
//! ```
//!
//! # What is checked
//!
//! The backend is opened **once**, through the proxy. Then, for each [`Fault`] in turn, a
//! concurrent workload runs on that one handle (several tasks of [`Workload`]'s contended
//! calls on a counter and a register, tasks incrementing a tally counter by 1, tasks writing
//! keys of their own, each once), while the checks:
//!
//! 1. let it run healthy for a moment, inject the fault, hold it for
//!    [`FaultChecks::hold`], and heal;
//! 2. probe the same handle with every operation once, again and again, until a whole round
//!    succeeds (at most [`FaultChecks::recovery_bound`] after the heal); then let the workload
//!    run healthy for a moment more, and stop it;
//! 3. read back, through the same handle, every acknowledged write and the tally counter.
//!
//! and then judge, per fault:
//!
//! | rule | measured as |
//! | --- | --- |
//! | **bounded calls** | every call returns within the call timeout plus [`FaultChecks::margin`]; the largest call is reported. A call that has not returned after three times that is abandoned by the kit (it counts as a failure, not a hang) |
//! | **`Unavailable` only** | every error is `Unavailable`; the first others are shown |
//! | **recovery** | the probe succeeds within the recovery bound, and no call invoked after that fails. The recovery time reported is from the heal to the return of the last failed call invoked after it (or of the first successful one, if none failed) |
//! | **acknowledged writes survive** | every `set` acknowledged `Ok` reads back its value afterwards (each key is written once, so nothing overwrites it) |
//! | **nothing applied twice** | the tally ends between the number of acknowledged increments and that plus the `Unavailable` ones |
//! | **linearizable** | the whole history of the phase, probes and read-backs included, is linearizable with `Unavailable` calls indeterminate ([`Checker`]) |
//!
//! A [`FaultReport`] holds the figures of each fault (largest call, recovery time, calls,
//! errors, writes and increments acknowledged and not, connections opened) and the failures;
//! its `Display` is a table for a person.
//!
//! # The faults
//!
//! In this order, each for [`FaultChecks::hold`] (default: the call timeout plus the margin
//! plus 250 ms, so that calls do time out during it, and a call with no timeout at all takes
//! longer than the bound):
//!
//! - [`Fault::Latency`]: every reply is held a tenth of the call timeout (an operation of
//!   several round trips must still end in time);
//! - [`Fault::CutMidReply`]: every 50 ms, the next reply is cut in the middle and its
//!   connection closed;
//! - [`Fault::ResetAll`]: every open connection is reset at the start of the fault, and again
//!   every quarter of the hold;
//! - [`Fault::BlackHole`]: nothing is forwarded, connections are accepted and stall;
//! - [`Fault::ServerDown`]: every connection is reset and new ones are refused.
//!
//! # Bounds
//!
//! Workload tasks sleep 5 ms after each call and the call timeout (at least 100 ms) after each
//! error, as a client backs off: the search is exponential in the indeterminate calls, and a
//! store that is down fails calls at once. So a phase makes at most a few thousand calls and
//! the checker decides it in milliseconds to a few seconds (a key over the checker's bounds is a
//! failure: "inconclusive", never a pass). With a call timeout of 500 ms a phase takes about
//! 1.5 s and the five take 8 to 10 s; the run is bounded by about `5 × (hold + recovery bound
//! + 3 × (timeout + margin))` even against a backend that hangs.
//!
//! # Keys
//!
//! Every key starts with [`FaultChecks::key_prefix`] (default `faults/`) and the fault's name;
//! the checks delete every key they wrote at the end of each phase. Open the backend in a
//! namespace of its own, as for the suite.
//!
//! # Decisions
//!
//! - The call timeout is the one the user says the backend promises for a whole call,
//!   connecting included: a backend whose request timeout applies to each round trip, or
//!   which connects first and then sends, passes the sum.
//! - A call the kit abandons is recorded as `Unavailable` (it may still take effect), with the
//!   time it was abandoned at as its return: the latency check fails, the history stays sound.
//! - Reads of a phase's own keys only: the proxy's faults are global, so whatever else the
//!   handle does during the run fails too.

mod proxy;

pub use proxy::FaultProxy;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kv_trait::{monotonic_now, KvBackend, KvError};

use futures::future::BoxFuture;

use crate::each_call::{AroundCall, EachCall};
use crate::history::Recorder;
use crate::model::{ErrorKind, Outcome};
use crate::report::Failure;
use crate::{Checker, History, Workload};

/// How long the workload runs healthy before each fault, and after the probe succeeded.
const HEALTHY: Duration = Duration::from_millis(250);

/// What every workload task sleeps after each call: it bounds the calls of a phase.
const PACE: Duration = Duration::from_millis(5);

/// The least a workload task sleeps after an error (it sleeps the call timeout if longer), as
/// a client backs off: the checker's search is exponential in the number of indeterminate
/// calls, and a store that is down fails calls at once.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// How often the proxy cuts a reply during [`Fault::CutMidReply`].
const CUT_EVERY: Duration = Duration::from_millis(50);

/// How long the probe waits between two failed rounds.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// One network fault the checks inject (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Every reply held a tenth of the call timeout.
    Latency,
    /// Replies cut in the middle, their connection closed, every 50 ms.
    CutMidReply,
    /// Every open connection reset, at the start and every quarter of the hold.
    ResetAll,
    /// Nothing forwarded either way; new connections accepted and stalled.
    BlackHole,
    /// Every connection reset and new ones refused: the server is down.
    ServerDown,
}

impl Fault {
    /// Every fault, in the order the checks inject them.
    pub const ALL: [Fault; 5] = [
        Fault::Latency,
        Fault::CutMidReply,
        Fault::ResetAll,
        Fault::BlackHole,
        Fault::ServerDown,
    ];

    /// The fault's name in reports and keys: `latency`, `cut-mid-reply`, `reset-all`,
    /// `black-hole`, `server-down`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Latency => "latency",
            Fault::CutMidReply => "cut-mid-reply",
            Fault::ResetAll => "reset-all",
            Fault::BlackHole => "black-hole",
            Fault::ServerDown => "server-down",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fault checks of a networked backend: see the [module docs](self).
///
/// `open` gets the proxy's address and opens the backend there; it is called once.
pub struct FaultChecks<F> {
    upstream: io::Result<Vec<SocketAddr>>,
    open: F,
    call_timeout: Duration,
    margin: Duration,
    recovery_bound: Duration,
    hold: Duration,
    faults: Vec<Fault>,
    key_prefix: String,
    workload_tasks: usize,
}

impl<F> fmt::Debug for FaultChecks<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultChecks")
            .field("upstream", &self.upstream)
            .field("call_timeout", &self.call_timeout)
            .field("margin", &self.margin)
            .field("recovery_bound", &self.recovery_bound)
            .field("hold", &self.hold)
            .field("faults", &self.faults)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl<F, Fut, B> FaultChecks<F>
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: Future<Output = Result<B, KvError>>,
    B: KvBackend + 'static,
{
    /// Checks for the server at `upstream` (resolved now; an error is reported by
    /// [`run`](Self::run)), whose backend `open` opens on the proxy's address, and which
    /// promises that every call returns within `call_timeout` (connecting included).
    ///
    /// Defaults: every [`Fault`]; a margin of 250 ms plus a tenth of the timeout; a recovery
    /// bound of twice the timeout plus 1 s; a hold of the timeout plus the margin plus
    /// 250 ms (so that a call with no timeout at all outlasts the bound); 4 workload
    /// tasks (and 2 incrementing, 2 writing); keys under `faults/`.
    pub fn new(upstream: impl ToSocketAddrs, call_timeout: Duration, open: F) -> Self {
        let upstream = upstream.to_socket_addrs().map(Iterator::collect::<Vec<_>>);
        let margin = Duration::from_millis(250) + call_timeout / 10;
        Self {
            upstream,
            open,
            call_timeout,
            margin,
            recovery_bound: call_timeout * 2 + Duration::from_secs(1),
            hold: call_timeout + margin + Duration::from_millis(250),
            faults: Fault::ALL.to_vec(),
            key_prefix: "faults/".into(),
            workload_tasks: 4,
        }
    }

    /// How much longer than the call timeout a call may take (scheduling, a loaded machine).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How soon after the heal every operation must work again on the same handle.
    pub fn recovery_bound(mut self, bound: Duration) -> Self {
        self.recovery_bound = bound;
        self
    }

    /// How long each fault is held (at least 100 ms).
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold.max(Duration::from_millis(100));
        self
    }

    /// The faults to inject, in this order (default [`Fault::ALL`]).
    pub fn faults(mut self, faults: impl IntoIterator<Item = Fault>) -> Self {
        self.faults = faults.into_iter().collect();
        self
    }

    /// The prefix of every key the checks touch.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Tasks running [`Workload`]'s contended calls (at least 1; default 4).
    pub fn workload_tasks(mut self, tasks: usize) -> Self {
        self.workload_tasks = tasks.max(1);
        self
    }

    /// Starts the proxy, opens the backend through it and runs every fault in turn. Needs a
    /// multi-threaded tokio runtime with time enabled. Never panics on what the backend does:
    /// a backend that cannot be opened, or a proxy that cannot start, is a failed report.
    pub async fn run(self) -> FaultReport {
        let mut report = FaultReport {
            call_timeout: self.call_timeout,
            margin: self.margin,
            recovery_bound: self.recovery_bound,
            faults: Vec::new(),
            setup: None,
        };
        let proxy = match self
            .upstream
            .and_then(|upstream| FaultProxy::start(upstream.as_slice()))
        {
            Ok(proxy) => Arc::new(proxy),
            Err(err) => {
                report.setup = Some(format!("the fault proxy could not start: {err}"));
                return report;
            }
        };
        let backend: Arc<dyn KvBackend> = match (self.open)(proxy.address()).await {
            Ok(backend) => Arc::new(backend),
            Err(err) => {
                report.setup = Some(format!(
                    "the backend could not be opened through the proxy: {err}"
                ));
                return report;
            }
        };
        let phase = Phase {
            backend: shaped(backend, Shape::Guard((self.call_timeout + self.margin) * 3)),
            proxy,
            call_timeout: self.call_timeout,
            margin: self.margin,
            recovery_bound: self.recovery_bound,
            hold: self.hold,
            workload_tasks: self.workload_tasks,
        };
        for fault in self.faults {
            let prefix = format!("{}{}/", self.key_prefix, fault.name());
            report.faults.push(phase.run(fault, &prefix).await);
        }
        report
    }
}

/// What the fault checks found: the figures of each fault and its failures.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// The call timeout the backend promised.
    pub call_timeout: Duration,
    /// How much longer a call was allowed to take.
    pub margin: Duration,
    /// How soon after a heal the handle had to work again.
    pub recovery_bound: Duration,
    /// One entry per fault, in the order injected.
    pub faults: Vec<FaultOutcome>,
    /// Why the run could not start (the proxy, or opening the backend), if it could not.
    pub setup: Option<String>,
}

impl FaultReport {
    /// True when the run started and every check of every fault passed.
    pub fn passed(&self) -> bool {
        self.setup.is_none() && self.faults.iter().all(|fault| fault.failures.is_empty())
    }

    /// The largest call duration seen over all faults.
    pub fn largest_call(&self) -> Duration {
        self.faults
            .iter()
            .map(|fault| fault.largest_call)
            .max()
            .unwrap_or_default()
    }

    /// The longest recovery over all faults (`None` if some fault never recovered).
    pub fn longest_recovery(&self) -> Option<Duration> {
        self.faults
            .iter()
            .map(|fault| fault.recovery)
            .try_fold(Duration::ZERO, |longest, recovery| {
                recovery.map(|r| longest.max(r))
            })
    }

    /// The report as JSON, for machines and for [`crate::reliability::record`]: the bounds,
    /// and per fault its figures (durations in milliseconds), the checker's verdict and the
    /// failures' messages.
    pub fn to_json(&self) -> serde_json::Value {
        use crate::reliability::millis;
        let faults: Vec<serde_json::Value> = self
            .faults
            .iter()
            .map(|outcome| {
                serde_json::json!({
                    "fault": outcome.fault.name(),
                    "calls": outcome.calls,
                    "unavailable": outcome.unavailable,
                    "other_errors": outcome.other_errors,
                    "largest_call_ms": millis(outcome.largest_call),
                    "slowest": outcome.slowest,
                    "recovery_ms": outcome.recovery.map(millis),
                    "writes_acknowledged": outcome.writes.0,
                    "writes_unavailable": outcome.writes.1,
                    "lost_writes": outcome.lost_writes,
                    "increments_acknowledged": outcome.increments.0,
                    "increments_unavailable": outcome.increments.1,
                    "tally": outcome.tally,
                    "applied_twice": outcome.applied_twice,
                    "connections": outcome.connections,
                    "linearizability": outcome.linearizability,
                    "failures": outcome
                        .failures
                        .iter()
                        .map(|failure| failure.message.clone())
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "passed": self.passed(),
            "call_timeout_ms": millis(self.call_timeout),
            "margin_ms": millis(self.margin),
            "recovery_bound_ms": millis(self.recovery_bound),
            "setup": self.setup,
            "largest_call_ms": millis(self.largest_call()),
            "longest_recovery_ms": self.longest_recovery().map(millis),
            "faults": faults,
        })
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fault checks: calls within {} ms + {} ms, recovery within {} ms",
            self.call_timeout.as_millis(),
            self.margin.as_millis(),
            self.recovery_bound.as_millis()
        )?;
        if let Some(setup) = &self.setup {
            return writeln!(f, "  FAILED to start: {setup}");
        }
        writeln!(
            f,
            "  {:<14} {:>6} {:>6} {:>6} {:>13} {:>11} {:>16} {:>16} {:>6} {:>5}  result",
            "fault",
            "calls",
            "unav.",
            "other",
            "largest call",
            "recovery",
            "writes ok/unk",
            "increments ok/unk",
            "tally",
            "conns"
        )?;
        for fault in &self.faults {
            writeln!(f, "  {fault}")?;
        }
        for fault in self
            .faults
            .iter()
            .filter(|fault| !fault.failures.is_empty())
        {
            writeln!(f, "\n{} failed:", fault.fault)?;
            for failure in &fault.failures {
                write!(f, "{failure}")?;
            }
        }
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        write!(
            f,
            "\n{verdict}: largest call {} ms, longest recovery {}",
            self.largest_call().as_millis(),
            self.longest_recovery().map_or(
                "none (a fault never recovered)".to_owned(),
                |r| format!("{} ms", r.as_millis())
            )
        )
    }
}

/// The figures and failures of one fault.
#[derive(Debug, Clone)]
pub struct FaultOutcome {
    /// The fault.
    pub fault: Fault,
    /// Calls recorded (workload, probes and read-backs).
    pub calls: usize,
    /// Calls that returned `Unavailable` (abandoned ones included).
    pub unavailable: usize,
    /// Calls that returned any other error.
    pub other_errors: usize,
    /// The longest call.
    pub largest_call: Duration,
    /// That call, as the history shows it.
    pub slowest: Option<String>,
    /// From the heal until calls stopped failing (see the [module docs](self)); `None` when
    /// the probe never succeeded within the bound.
    pub recovery: Option<Duration>,
    /// Writes acknowledged `Ok`, and writes that returned `Unavailable`.
    pub writes: (u64, u64),
    /// Increments of the tally acknowledged `Ok`, and increments that returned `Unavailable`.
    pub increments: (u64, u64),
    /// The tally read back afterwards.
    pub tally: Option<i64>,
    /// Acknowledged writes that were not there when read back afterwards.
    pub lost_writes: usize,
    /// By how much the tally exceeded every increment that may have happened (acknowledged
    /// and `Unavailable` ones): increments applied twice.
    pub applied_twice: u64,
    /// Client connections the proxy accepted during the phase.
    pub connections: u64,
    /// What the linearizability checker said, in one line.
    pub linearizability: String,
    /// Every check that failed.
    pub failures: Vec<Failure>,
}

impl fmt::Display for FaultOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recovery = self
            .recovery
            .map_or("never".to_owned(), |r| format!("{} ms", r.as_millis()));
        let tally = self.tally.map_or("-".to_owned(), |tally| tally.to_string());
        write!(
            f,
            "{:<14} {:>6} {:>6} {:>6} {:>10} ms {:>11} {:>16} {:>16} {:>6} {:>5}  {}",
            self.fault.name(),
            self.calls,
            self.unavailable,
            self.other_errors,
            self.largest_call.as_millis(),
            recovery,
            format!("{}/{}", self.writes.0, self.writes.1),
            format!("{}/{}", self.increments.0, self.increments.1),
            tally,
            self.connections,
            if self.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            }
        )
    }
}

/// What [`Shaped`] does around each call.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Abandons a call after this long, as `Unavailable`: a hanging backend fails the latency
    /// check instead of hanging the run. Under the recorder, which sees the abandonment.
    Guard(Duration),
    /// Sleeps [`PACE`] after each call, and this long after each error, as a client backs
    /// off. Over the recorder, so the sleeps are not counted as the call's.
    Paced(Duration),
}

/// A backend shaped by the checks: see [`Shape`].
type Shaped = EachCall<Shape>;

/// `inner`, shaped by `shape`.
fn shaped(inner: Arc<dyn KvBackend>, shape: Shape) -> Arc<dyn KvBackend> {
    Arc::new(Shaped {
        inner,
        around: shape,
    })
}

impl AroundCall for Shape {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _write: bool,
        call: BoxFuture<'a, Result<T, KvError>>,
    ) -> BoxFuture<'a, Result<T, KvError>> {
        let shape = *self;
        Box::pin(async move {
            match shape {
                Shape::Guard(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(result) => result,
                    Err(_) => Err(KvError::unavailable(format!(
                        "abandoned by the fault checks: no reply within {} ms",
                        limit.as_millis()
                    ))),
                },
                Shape::Paced(backoff) => {
                    let result = call.await;
                    tokio::time::sleep(if result.is_ok() { PACE } else { backoff }).await;
                    result
                }
            }
        })
    }
}

/// What a phase needs, the same for every fault.
struct Phase {
    backend: Arc<dyn KvBackend>,
    proxy: Arc<FaultProxy>,
    call_timeout: Duration,
    margin: Duration,
    recovery_bound: Duration,
    hold: Duration,
    workload_tasks: usize,
}

/// What the incrementing and writing tasks acknowledged.
#[derive(Default)]
struct Tallies {
    increments_ok: AtomicU64,
    increments_unknown: AtomicU64,
    writes_unknown: AtomicU64,
    /// Keys written `Ok`, with their values.
    written: Mutex<Vec<(String, String)>>,
}

impl Phase {
    async fn run(&self, fault: Fault, prefix: &str) -> FaultOutcome {
        let recorder = Recorder::new(self.backend.clone());
        let connections_before = self.proxy.connections_accepted();
        let stop = Arc::new(AtomicBool::new(false));
        let tallies = Arc::new(Tallies::default());
        let tally_key = format!("{prefix}tally");
        let workload = Workload::new()
            .tasks(self.workload_tasks)
            .hot_keys(2) // a counter and a register: no TTLs, whose clocks are not this check's
            .key_prefix(prefix);
        let mut tasks = Vec::new();
        let backoff = Shape::Paced(self.call_timeout.max(MIN_BACKOFF));
        let paced = |client: String| shaped(Arc::new(recorder.client(client)), backoff);
        {
            let clients = (0..self.workload_tasks)
                .map(|task| paced(format!("task/{task}")))
                .collect();
            let (stop, workload) = (stop.clone(), workload.clone());
            tasks.push(tokio::spawn(async move {
                workload.run_until(clients, stop).await;
            }));
        }
        for task in 0..2 {
            let kv = paced(format!("incr/{task}"));
            let (stop, tallies, key) = (stop.clone(), tallies.clone(), tally_key.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match kv.increment(&key, 1).await {
                        Ok(_) => tallies.increments_ok.fetch_add(1, Ordering::SeqCst),
                        Err(KvError::Unavailable(_)) => {
                            tallies.increments_unknown.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(_) => 0, // judged from the history
                    };
                }
            }));
        }
        for task in 0..2 {
            let kv = paced(format!("write/{task}"));
            let (stop, tallies, prefix) = (stop.clone(), tallies.clone(), prefix.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("{prefix}written-{task}-{n}");
                    let value = format!("w{task}-{n}");
                    match kv.set(&key, value.as_bytes()).await {
                        Ok(()) => lock(&tallies.written).push((key, value)),
                        Err(KvError::Unavailable(_)) => {
                            tallies.writes_unknown.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {}
                    }
                    n += 1;
                }
            }));
        }

        let mut failures = Vec::new();
        tokio::time::sleep(HEALTHY).await;
        self.inject(fault).await;
        let healed_ns = recorder_now(&recorder);
        if let Err(err) = self.proxy.heal() {
            failures.push(Failure::new(format!("the proxy could not heal: {err}")));
        }
        let probe = recorder.client("probe");
        let probed = self.probe(&probe, &format!("{prefix}probe")).await;
        let recovered_ns = recorder_now(&recorder);
        if probed {
            tokio::time::sleep(HEALTHY).await;
        } else {
            failures.push(Failure::new(format!(
                "the handle did not work again within {} ms of the heal: a round of every \
                 operation still failed",
                self.recovery_bound.as_millis()
            )));
        }
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            if let Err(err) = task.await {
                if err.is_panic() {
                    failures.push(Failure::new("a workload task panicked"));
                }
            }
        }

        // Read back, through the same handle (and into the history).
        let reader = recorder.client("read-back");
        let written = std::mem::take(&mut *lock(&tallies.written));
        let mut lost = Vec::new();
        for (key, value) in &written {
            match reader.get(key).await {
                Ok(Some(found)) if found == value.as_bytes() => {}
                other => lost.push(format!("{key:?}: wrote {value:?} (Ok), read {other:?}")),
            }
        }
        let lost_writes = lost.len();
        if !lost.is_empty() {
            let mut failure = Failure::new(format!(
                "{} of {} acknowledged writes are not there afterwards",
                lost.len(),
                written.len()
            ));
            failure.operations = lost.into_iter().take(5).collect();
            failures.push(failure);
        }
        let increments = (
            tallies.increments_ok.load(Ordering::SeqCst),
            tallies.increments_unknown.load(Ordering::SeqCst),
        );
        let tally = match reader.get(&tally_key).await {
            Ok(value) => {
                let n = value.as_deref().map_or(Some(0), kv_trait::parse_counter);
                if !n.is_some_and(|n| {
                    u64::try_from(n)
                        .is_ok_and(|n| n >= increments.0 && n <= increments.0 + increments.1)
                }) {
                    failures.push(Failure::mismatch(
                        "the tally is not between the acknowledged increments and those plus \
                         the unacknowledged ones (an increment lost, or applied twice)",
                        format!("{} ..= {}", increments.0, increments.0 + increments.1),
                        format!(
                            "{:?}",
                            value.map(|v| String::from_utf8_lossy(&v).into_owned())
                        ),
                    ));
                }
                n
            }
            Err(err) => {
                failures.push(Failure::new(format!(
                    "the tally could not be read back: {err}"
                )));
                None
            }
        };

        let history = recorder.history();
        let mut outcome = FaultOutcome {
            fault,
            calls: history.len(),
            unavailable: 0,
            other_errors: 0,
            largest_call: Duration::ZERO,
            slowest: None,
            recovery: None,
            writes: (
                written.len() as u64,
                tallies.writes_unknown.load(Ordering::SeqCst),
            ),
            increments,
            tally,
            lost_writes,
            applied_twice: tally
                .and_then(|tally| u64::try_from(tally).ok())
                .map_or(0, |tally| tally.saturating_sub(increments.0 + increments.1)),
            connections: self.proxy.connections_accepted() - connections_before,
            linearizability: String::new(),
            failures,
        };
        self.judge(&history, healed_ns, recovered_ns, probed, &mut outcome);

        // Clean up, outside the history; a failure here is not the fault's.
        for (key, _) in &written {
            let _ = self.backend.delete(key).await;
        }
        for key in workload
            .keys()
            .into_iter()
            .chain([tally_key, format!("{prefix}probe")])
        {
            let _ = self.backend.delete(&key).await;
        }
        outcome
    }

    /// Injects `fault` and holds it.
    async fn inject(&self, fault: Fault) {
        match fault {
            Fault::Latency => {
                self.proxy.latency(self.call_timeout / 10);
                tokio::time::sleep(self.hold).await;
            }
            Fault::CutMidReply => {
                let until = monotonic_now() + self.hold;
                while monotonic_now() < until {
                    self.proxy.cut_mid_reply();
                    tokio::time::sleep(CUT_EVERY).await;
                }
            }
            Fault::ResetAll => {
                for _ in 0..4 {
                    self.proxy.reset_all();
                    tokio::time::sleep(self.hold / 4).await;
                }
            }
            Fault::BlackHole => {
                self.proxy.black_hole();
                tokio::time::sleep(self.hold).await;
            }
            Fault::ServerDown => {
                let proxy = self.proxy.clone();
                // Refusing waits (milliseconds) for the acceptor: off the async workers.
                let _ = tokio::task::spawn_blocking(move || {
                    proxy.refuse_new();
                    proxy.reset_all();
                })
                .await;
                tokio::time::sleep(self.hold).await;
            }
        }
    }

    /// Runs rounds of every operation on `key` until one succeeds whole, or the recovery
    /// bound passes; returns whether one did.
    async fn probe(&self, kv: &Recorder<Arc<dyn KvBackend>>, key: &str) -> bool {
        let until = monotonic_now() + self.recovery_bound;
        loop {
            let round = async {
                kv.set(key, b"1").await?;
                kv.get(key).await?;
                kv.exists(key).await?;
                kv.increment(key, 1).await?;
                kv.compare_and_swap(key, Some(b"2"), b"3").await?;
                kv.set_with_ttl(key, b"4", 60_000_000_000).await?;
                kv.list_keys(key).await?;
                kv.delete(key).await?;
                Ok::<(), KvError>(())
            };
            if round.await.is_ok() {
                return true;
            }
            if monotonic_now() >= until {
                return false;
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// Judges the history: bounded calls, errors, recovery, linearizability.
    fn judge(
        &self,
        history: &History,
        healed_ns: u64,
        recovered_ns: u64,
        probed: bool,
        outcome: &mut FaultOutcome,
    ) {
        let bound = self.call_timeout + self.margin;
        let mut slow = Vec::new();
        let mut others = Vec::new();
        let mut last_failure_after_heal: Option<u64> = None;
        let mut first_success_after_heal: Option<u64> = None;
        let mut failed_after_recovery = Vec::new();
        for call in history.calls() {
            let took = Duration::from_nanos(call.returned_ns - call.invoked_ns);
            if took > outcome.largest_call {
                outcome.largest_call = took;
                outcome.slowest = Some(call.to_string());
            }
            if took > bound {
                slow.push(call.to_string());
            }
            let failed = match &call.outcome {
                // A not-sent `Unavailable` is `Unavailable` too (and provably not applied).
                Outcome::Error(ErrorKind::Unavailable(_) | ErrorKind::NotSent(_)) => {
                    outcome.unavailable += 1;
                    true
                }
                Outcome::Error(_) => {
                    outcome.other_errors += 1;
                    others.push(call.to_string());
                    true
                }
                _ => false,
            };
            if call.invoked_ns >= healed_ns {
                if failed {
                    let last = last_failure_after_heal.get_or_insert(call.returned_ns);
                    *last = (*last).max(call.returned_ns);
                } else {
                    let first = first_success_after_heal.get_or_insert(call.returned_ns);
                    *first = (*first).min(call.returned_ns);
                }
            }
            if failed && probed && call.invoked_ns >= recovered_ns {
                failed_after_recovery.push(call.to_string());
            }
        }
        if !slow.is_empty() {
            let mut failure = Failure::mismatch(
                format!(
                    "{} calls took longer than the call timeout plus the margin",
                    slow.len()
                ),
                format!("at most {} ms", bound.as_millis()),
                format!("{} ms", outcome.largest_call.as_millis()),
            );
            failure.operations = slow.into_iter().take(5).collect();
            outcome.failures.push(failure);
        }
        if !others.is_empty() {
            let mut failure = Failure::new(format!(
                "{} calls failed with an error other than Unavailable",
                others.len()
            ));
            failure.operations = others.into_iter().take(5).collect();
            outcome.failures.push(failure);
        }
        if probed {
            let end = last_failure_after_heal
                .or(first_success_after_heal)
                .unwrap_or(healed_ns);
            let recovery = Duration::from_nanos(end.saturating_sub(healed_ns));
            outcome.recovery = Some(recovery);
            if recovery > self.recovery_bound {
                outcome.failures.push(Failure::mismatch(
                    "calls kept failing after the heal for longer than the recovery bound",
                    format!("at most {} ms", self.recovery_bound.as_millis()),
                    format!("{} ms", recovery.as_millis()),
                ));
            }
        }
        if !failed_after_recovery.is_empty() {
            let mut failure = Failure::new(format!(
                "{} calls failed after the handle had recovered (a round of every operation \
                 had succeeded)",
                failed_after_recovery.len()
            ));
            failure.operations = failed_after_recovery.into_iter().take(5).collect();
            outcome.failures.push(failure);
        }
        let result = Checker::new()
            .with_time_limit(Duration::from_secs(20))
            .check(history);
        outcome.linearizability = result.to_string().lines().next().unwrap_or_default().into();
        if let Some(violation) = result.violation() {
            let mut failure = Failure::new(format!(
                "the history is not linearizable on key {:?}",
                violation.key
            ));
            failure.operations = violation.to_string().lines().map(str::to_owned).collect();
            outcome.failures.push(failure);
        } else if let Some((key, why)) = result.inconclusive().next() {
            outcome.failures.push(Failure::new(format!(
                "the linearizability check of key {key:?} was inconclusive: {why}"
            )));
        }
    }
}

/// The recorder's clock now, in nanoseconds since its history's origin.
fn recorder_now<B: KvBackend>(recorder: &Recorder<B>) -> u64 {
    recorder.log_now_ns()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
