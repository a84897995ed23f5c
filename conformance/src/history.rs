//! Histories: every call a set of clients made, with when it started, when it returned and
//! what came back. [`Recorder`] records them from any backend; [`Workload`] makes a contended
//! one; [`Checker`](crate::Checker) decides whether one is linearizable.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kv_trait::{async_trait, format_counter, monotonic_now, KvBackend, KvError};
use tokio::sync::Barrier;

use crate::model::{ErrorKind, Op, Outcome};

/// One call in a [`History`]: who made it, what it was, when it was invoked and returned
/// (nanoseconds since the history's origin, on the monotonic clock) and what it returned.
#[derive(Clone, PartialEq, Eq)]
pub struct Call {
    /// Who made the call (a task, a handle, a process): free text, shown in reports.
    pub client: String,
    /// The operation and its arguments.
    pub op: Op,
    /// When the call was invoked, in nanoseconds since the history's origin.
    pub invoked_ns: u64,
    /// When it returned, in nanoseconds since the history's origin (never before
    /// `invoked_ns`).
    pub returned_ns: u64,
    /// What it returned. `Err(Unavailable)` means the call may or may not have taken effect;
    /// a call dropped before it returned is recorded that way too.
    pub outcome: Outcome,
}

impl Call {
    /// A call by `client` of `op`, invoked at `invoked_ns`, returning `outcome` at
    /// `returned_ns` (raised to `invoked_ns` if earlier). For hand-written histories:
    ///
    /// ```
    /// use kv_conformance::{Call, Op, Outcome};
    /// let call = Call::new("alice", Op::set("k", "a"), 1_500_000, 2_250_000, Outcome::Done);
    /// let shown = call.to_string();
    /// assert!(shown.starts_with("alice"), "{shown}");
    /// assert!(shown.ends_with("1.500 ms ..      2.250 ms  set(\"k\", \"a\") -> Ok(())"), "{shown}");
    /// ```
    pub fn new(
        client: impl Into<String>,
        op: Op,
        invoked_ns: u64,
        returned_ns: u64,
        outcome: Outcome,
    ) -> Self {
        Self {
            client: client.into(),
            op,
            invoked_ns,
            returned_ns: returned_ns.max(invoked_ns),
            outcome,
        }
    }

    /// True when the call returned `Unavailable`: it may have taken effect, at any time after
    /// it was invoked, or never.
    pub fn is_indeterminate(&self) -> bool {
        matches!(self.outcome, Outcome::Error(ErrorKind::Unavailable(_)))
    }
}

/// Milliseconds with three decimals (microseconds), for reports.
pub(crate) struct Millis(pub(crate) u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0 / 1_000;
        write!(f, "{:>6}.{:03} ms", micros / 1_000, micros % 1_000)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {} .. {}  {} -> {}",
            self.client,
            Millis(self.invoked_ns),
            Millis(self.returned_ns),
            self.op,
            self.outcome
        )
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Calls made against one store, in any order (`Display` prints them by invocation time).
///
/// Record one with a [`Recorder`] (or a [`Workload`]), or write one by hand:
///
/// ```
/// use kv_conformance::{Call, Checker, History, Op, Outcome};
/// let mut history = History::new();
/// history.push(Call::new("a", Op::set("k", "1"), 0, 10, Outcome::Done));
/// history.push(Call::new("b", Op::get("k"), 20, 30, Outcome::Value(None))); // stale
/// assert!(!Checker::new().check(&history).is_linearizable());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    calls: Vec<Call>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a call.
    pub fn push(&mut self, call: Call) {
        self.calls.push(call);
    }

    /// The calls, in the order they were added (a recorder adds each when it returns).
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Number of calls.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when there are no calls.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

impl From<Vec<Call>> for History {
    fn from(calls: Vec<Call>) -> Self {
        Self { calls }
    }
}

impl FromIterator<Call> for History {
    fn from_iter<I: IntoIterator<Item = Call>>(iter: I) -> Self {
        Self {
            calls: iter.into_iter().collect(),
        }
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut calls: Vec<&Call> = self.calls.iter().collect();
        calls.sort_by_key(|c| (c.invoked_ns, c.returned_ns));
        for call in calls {
            writeln!(f, "{call}")?;
        }
        Ok(())
    }
}

/// The log and clock that recorders of one history share.
#[derive(Debug)]
struct Log {
    origin: Instant,
    calls: Mutex<Vec<Call>>,
}

impl Log {
    fn now_ns(&self) -> u64 {
        let elapsed = monotonic_now().saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&self, call: Call) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }
}

/// A backend that records every call made through it into a shared [`History`].
///
/// It is itself a [`KvBackend`]: hand it (or clones of it, one per task) to the code under
/// test. Clones share one log and one clock; [`Recorder::client`] gives a clone that labels
/// its calls with another client name, and [`Recorder::sharing`] records another handle on the
/// same store into the same history. Invoke and return instants are read with
/// [`kv_trait::monotonic_now`] just before and just after the inner call; a call whose future
/// is dropped before it returns is recorded as `Unavailable` (it may have taken effect).
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use kv_conformance::{Checker, Recorder};
/// use kv_trait::KvBackend;
///
/// let recorder = Recorder::new(kv_memory::MemoryBackend::new());
/// let tasks: Vec<_> = (0..4)
///     .map(|i| {
///         let kv = recorder.client(format!("task {i}"));
///         tokio::spawn(async move { kv.increment("n", 1).await })
///     })
///     .collect();
/// for task in tasks {
///     task.await.unwrap().unwrap();
/// }
/// let history = recorder.history();
/// assert_eq!(history.len(), 4);
/// let result = Checker::new().check(&history);
/// assert!(result.is_linearizable(), "{result}");
/// # });
/// ```
pub struct Recorder<B> {
    backend: Arc<B>,
    log: Arc<Log>,
    client: String,
}

impl<B> Clone for Recorder<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            log: self.log.clone(),
            client: self.client.clone(),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for Recorder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("backend", &self.backend)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl<B: KvBackend> Recorder<B> {
    /// Records calls to `backend`, as client `"main"`; the history's origin is now.
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            log: Arc::new(Log {
                origin: monotonic_now(),
                calls: Mutex::default(),
            }),
            client: "main".into(),
        }
    }

    /// The same recorder, labelling its calls as made by `client`.
    pub fn client(&self, client: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            ..self.clone()
        }
    }

    /// A recorder of another handle on the same store (another connection, another process's
    /// view) that writes into this recorder's history, on its clock, as `client`.
    pub fn sharing<C: KvBackend>(&self, backend: C, client: impl Into<String>) -> Recorder<C> {
        Recorder {
            backend: Arc::new(backend),
            log: self.log.clone(),
            client: client.into(),
        }
    }

    /// The history's clock now: nanoseconds since its origin.
    pub(crate) fn log_now_ns(&self) -> u64 {
        self.log.now_ns()
    }

    /// The backend being recorded.
    pub fn inner(&self) -> &B {
        &self.backend
    }

    /// A copy of every call recorded so far (by this recorder and every clone and sharer).
    pub fn history(&self) -> History {
        History {
            calls: self
                .log
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    async fn record<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, KvError>>,
        outcome: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, KvError> {
        let mut pending = Pending {
            log: &self.log,
            client: &self.client,
            op: Some(op),
            invoked_ns: self.log.now_ns(),
        };
        let result = call.await;
        let returned_ns = self.log.now_ns();
        if let Some(op) = pending.op.take() {
            let outcome = match &result {
                Ok(value) => outcome(value),
                Err(err) => Outcome::Error(ErrorKind::of(err)),
            };
            self.log.push(Call {
                client: self.client.clone(),
                op,
                invoked_ns: pending.invoked_ns,
                returned_ns,
                outcome,
            });
        }
        result
    }
}

/// A call in flight; recorded as `Unavailable` if its future is dropped before it returns.
struct Pending<'a> {
    log: &'a Log,
    client: &'a str,
    op: Option<Op>,
    invoked_ns: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            self.log.push(Call {
                client: self.client.to_owned(),
                op,
                invoked_ns: self.invoked_ns,
                returned_ns: self.log.now_ns(),
                outcome: Outcome::Error(ErrorKind::Unavailable(
                    "cancelled: the caller dropped the call before it returned".into(),
                )),
            });
        }
    }
}

#[async_trait]
impl<B: KvBackend> KvBackend for Recorder<B> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.record(Op::get(key), self.backend.get(key), |v| {
            Outcome::Value(v.clone())
        })
        .await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.record(Op::set(key, value), self.backend.set(key, value), |()| {
            Outcome::Done
        })
        .await
    }
    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        self.record(
            Op::set_with_ttl(key, value, ttl_ns),
            self.backend.set_with_ttl(key, value, ttl_ns),
            |()| Outcome::Done,
        )
        .await
    }
    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.record(Op::delete(key), self.backend.delete(key), |b| {
            Outcome::Bool(*b)
        })
        .await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.record(Op::exists(key), self.backend.exists(key), |b| {
            Outcome::Bool(*b)
        })
        .await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.record(
            Op::list_keys(prefix),
            self.backend.list_keys(prefix),
            |keys| Outcome::Keys(keys.clone()),
        )
        .await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.record(
            Op::increment(key, delta),
            self.backend.increment(key, delta),
            |n| Outcome::Int(*n),
        )
        .await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.record(
            Op::cas(key, expected, new),
            self.backend.compare_and_swap(key, expected, new),
            |b| Outcome::Bool(*b),
        )
        .await
    }
}

/// A contended workload: many tasks, started together, each making random calls on a few hot
/// keys, recorded into one [`History`] for the [`Checker`](crate::Checker).
///
/// The hot keys come in three kinds, in turn: counters (`counter-0`, ...: `increment`, `get`,
/// get-then-`compare_and_swap`, `delete`), registers (`register-1`, ...: `set` of values no
/// other call writes, `get`, `exists`, get-then-`compare_and_swap`, `delete`) and expiring
/// counters (`expiring-2`, ...: `set_with_ttl` of fresh counter values with the workload's
/// short TTL, `increment`, get-then-`compare_and_swap`, `delete`, `get`, `exists`; in the
/// middle third of each task's steps only `get` and `exists`, so that the key expires while
/// it is read, and then expiry races with the writes of the last third). Every value a task
/// writes is unique, which keeps the checker's search small. With [`Workload::pause`], the
/// run spans several TTLs.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use kv_conformance::{Checker, Workload};
///
/// let backend = Arc::new(kv_memory::MemoryBackend::new());
/// let history = Workload::new().tasks(4).steps_per_task(25).run(backend).await;
/// assert!(history.len() >= 100); // a get-then-CAS step makes two calls
/// let result = Checker::new().check(&history);
/// assert!(result.is_linearizable(), "{result}");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Workload {
    tasks: usize,
    steps_per_task: usize,
    hot_keys: usize,
    ttl: Duration,
    pause: Duration,
    seed: u64,
    prefix: String,
}

impl Default for Workload {
    fn default() -> Self {
        Self::new()
    }
}

impl Workload {
    /// 8 tasks × 30 steps over 3 hot keys (one of each kind), TTL 20 ms, no pause, seed 1.
    pub fn new() -> Self {
        Self {
            tasks: 8,
            steps_per_task: 30,
            hot_keys: 3,
            ttl: Duration::from_millis(20),
            pause: Duration::ZERO,
            seed: 1,
            prefix: String::new(),
        }
    }

    /// Concurrent tasks (at least 1).
    pub fn tasks(mut self, tasks: usize) -> Self {
        self.tasks = tasks.max(1);
        self
    }

    /// Steps each task takes: one call each, except a get-then-`compare_and_swap`, which is
    /// two.
    pub fn steps_per_task(mut self, steps: usize) -> Self {
        self.steps_per_task = steps;
        self
    }

    /// Number of hot keys (at least 1); kinds rotate counter, register, expiring register.
    pub fn hot_keys(mut self, keys: usize) -> Self {
        self.hot_keys = keys.max(1);
        self
    }

    /// The TTL of the expiring registers' writes (at least 1 ns).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_nanos(1));
        self
    }

    /// After about one step in four, each task sleeps this long (default zero: it only
    /// yields). A pause of a fraction of the TTL spreads the run over several TTLs, so that
    /// keys expire while the contention goes on.
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// The seed of the tasks' random choices.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// A prefix for every key the workload touches (default none).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The keys the workload touches.
    pub fn keys(&self) -> Vec<String> {
        (0..self.hot_keys)
            .map(|i| {
                let kind = ["counter", "register", "expiring"][i % 3];
                format!("{}{kind}-{i}", self.prefix)
            })
            .collect()
    }

    /// Runs the workload on one handle, every task through it, and returns the history.
    pub async fn run(&self, backend: Arc<dyn KvBackend>) -> History {
        self.run_on(vec![backend]).await
    }

    /// Runs the workload with task `i` on handle `i % handles.len()` (several handles on one
    /// store), and returns the one history of them all. Panics if `handles` is empty; a panic
    /// in a task is resumed here.
    pub async fn run_on(&self, handles: Vec<Arc<dyn KvBackend>>) -> History {
        assert!(!handles.is_empty(), "Workload::run_on needs a handle");
        let first = Recorder::new(handles[0].clone());
        let recorders: Vec<Recorder<Arc<dyn KvBackend>>> = handles
            .iter()
            .enumerate()
            .map(|(i, h)| first.sharing(h.clone(), format!("handle {i}")))
            .collect();
        let barrier = Arc::new(Barrier::new(self.tasks));
        let keys = Arc::new(self.keys());
        let tasks: Vec<_> = (0..self.tasks)
            .map(|task| {
                let client = if recorders.len() == 1 {
                    format!("task {task}")
                } else {
                    format!("task {task}/h{}", task % recorders.len())
                };
                let kv = recorders[task % recorders.len()].client(client);
                let (barrier, keys, this) = (barrier.clone(), keys.clone(), self.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    this.task(task, &kv, &keys, &Until::Steps).await;
                })
            })
            .collect();
        for task in tasks {
            if let Err(err) = task.await {
                if err.is_panic() {
                    std::panic::resume_unwind(err.into_panic());
                }
            }
        }
        first.history()
    }

    /// Runs one workload task on each of `clients` until `stop` is set; for runs whose
    /// length is a time, not a number of steps (the fault checks, which pace and record each
    /// client). A panic in a task is resumed here.
    pub(crate) async fn run_until(&self, clients: Vec<Arc<dyn KvBackend>>, stop: Arc<AtomicBool>) {
        let keys = Arc::new(self.keys());
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(task, kv)| {
                let (keys, this) = (keys.clone(), self.clone());
                let until = Until::Stopped(stop.clone());
                tokio::spawn(async move { this.task(task, &*kv, &keys, &until).await })
            })
            .collect();
        for task in tasks {
            if let Err(err) = task.await {
                if err.is_panic() {
                    std::panic::resume_unwind(err.into_panic());
                }
            }
        }
    }

    async fn task(&self, task: usize, kv: &dyn KvBackend, keys: &[String], until: &Until) {
        let mut rng = SplitMix(self.seed ^ (task as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let ttl_ns = u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX);
        let steps = match until {
            Until::Steps => self.steps_per_task,
            Until::Stopped(_) => usize::MAX,
        };
        for step in 0..steps {
            if let Until::Stopped(stop) = until {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            let which = rng.below(keys.len() as u64) as usize;
            let key = keys[which].as_str();
            let unique = format!("t{task}-{step}");
            let roll = rng.below(100);
            // Errors are part of the history; the workload goes on.
            match which % 3 {
                0 => match roll {
                    0..=54 => drop(kv.increment(key, 1 + rng.below(3) as i64).await),
                    55..=79 => drop(kv.get(key).await),
                    80..=94 => {
                        if let Ok(current) = kv.get(key).await {
                            let next = current
                                .as_deref()
                                .and_then(kv_trait::parse_counter)
                                .unwrap_or(0)
                                .saturating_add(100);
                            let new = format_counter(next);
                            drop(kv.compare_and_swap(key, current.as_deref(), &new).await);
                        }
                    }
                    _ => drop(kv.delete(key).await),
                },
                1 => match roll {
                    0..=29 => drop(kv.set(key, unique.as_bytes()).await),
                    30..=59 => drop(kv.get(key).await),
                    60..=69 => drop(kv.exists(key).await),
                    70..=89 => {
                        if let Ok(current) = kv.get(key).await {
                            let cas =
                                kv.compare_and_swap(key, current.as_deref(), unique.as_bytes());
                            drop(cas.await);
                        }
                    }
                    _ => drop(kv.delete(key).await),
                },
                // The expiring counter: written in the first and last third of each task's
                // steps, only read in the middle third, so that it expires while read.
                _ => {
                    let third = step * 3 / self.steps_per_task.max(1);
                    let roll = if third == 1 {
                        60 + roll * 40 / 100
                    } else {
                        roll
                    };
                    let fresh = format_counter(1_000 * (task as i64 + 1) + step as i64);
                    match roll {
                        0..=24 => drop(kv.set_with_ttl(key, &fresh, ttl_ns).await),
                        25..=39 => drop(kv.increment(key, 1).await),
                        40..=49 => {
                            if let Ok(current) = kv.get(key).await {
                                let cas = kv.compare_and_swap(key, current.as_deref(), &fresh);
                                drop(cas.await);
                            }
                        }
                        50..=59 => drop(kv.delete(key).await),
                        60..=79 => drop(kv.get(key).await),
                        _ => drop(kv.exists(key).await),
                    }
                }
            }
            if matches!(until, Until::Steps) && rng.below(4) == 0 {
                if self.pause.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(self.pause).await;
                }
            }
        }
    }
}

/// When a workload task ends.
enum Until {
    /// After the workload's `steps_per_task`.
    Steps,
    /// When the flag is set.
    Stopped(Arc<AtomicBool>),
}

/// A small deterministic generator (SplitMix64), so the kit needs no `rand`.
#[derive(Debug)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
