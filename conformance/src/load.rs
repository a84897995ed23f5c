//! Load on one handle: many thousands of tasks calling one backend at once, as a busy server
//! does. With the backend's default settings every call must succeed (a queue, a pool or a
//! multiplexed connection absorbs the burst; nothing times out, nothing is refused), file
//! descriptors (connections, files) must stay within what the backend's configuration allows,
//! and memory must stay bounded. The report gives the latency percentiles seen under the
//! burst.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use kv_conformance::load::{run_load, LoadOptions};
//!
//! let store = kv_memory::MemoryBackend::new();
//! let options = LoadOptions::default().with_tasks(2_000);
//! let report = run_load(&store, &options).await;
//! report.check(&options).unwrap();
//! assert_eq!(report.calls, 2_000 * 4);
//! println!("{report}");
//! # });
//! ```
//!
//! Descriptors and memory are read from `/proc/self` (Linux): elsewhere those bounds are not
//! checked and the report says so. They are the whole process's, so run the burst in a test
//! binary of its own (a `tests/load.rs` with nothing else in it), where no other test opens
//! files or connections meanwhile. Several bursts in one binary (a standalone server and a
//! cluster, say) take turns: [`run_load`] starts one only when the process's previous one
//! has ended, since two at once would share both the measurements and the two cores a
//! CI machine may have, and time out where either alone would not.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kv_trait::{monotonic_now, KvBackend, KvError};

/// How large a burst to send, and what the backend may use for it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Tasks started at once, all on one handle (default 10,000).
    pub tasks: usize,
    /// Distinct data keys the tasks share (default 1,000): several tasks write each key.
    pub keys: usize,
    /// How many more file descriptors than before the burst the process may hold at its
    /// peak (default 64): set it from the backend's pool size.
    pub max_new_descriptors: usize,
    /// How much the resident memory may grow at the peak of the burst (default 512 MiB).
    pub max_memory_growth_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            tasks: 10_000,
            keys: 1_000,
            max_new_descriptors: 64,
            max_memory_growth_bytes: 512 * 1024 * 1024,
        }
    }
}

impl LoadOptions {
    /// Starts `tasks` tasks at once.
    pub fn with_tasks(mut self, tasks: usize) -> Self {
        self.tasks = tasks;
        self
    }

    /// Lets the process hold up to `descriptors` more file descriptors during the burst.
    pub fn with_max_new_descriptors(mut self, descriptors: usize) -> Self {
        self.max_new_descriptors = descriptors;
        self
    }

    /// Lets the resident memory grow by up to `bytes` during the burst.
    pub fn with_max_memory_growth(mut self, bytes: u64) -> Self {
        self.max_memory_growth_bytes = bytes;
        self
    }
}

/// What a burst did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadReport {
    /// Tasks started.
    pub tasks: usize,
    /// Calls made (four per task: `set`, `get`, `increment`, `exists`).
    pub calls: usize,
    /// Calls that failed, with the first few errors.
    pub failed: usize,
    /// Up to ten of the errors, as `op: error`.
    pub errors: Vec<String>,
    /// Latency percentiles of all calls: 50th, 99th and the largest.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// The slowest call.
    pub max: Duration,
    /// From the first task's start to the last task's end.
    pub elapsed: Duration,
    /// Open file descriptors before the burst and at its peak (`None` off Linux).
    pub descriptors: Option<(usize, usize)>,
    /// Resident memory in bytes before the burst and at its peak (`None` off Linux).
    pub memory: Option<(u64, u64)>,
    /// Each counter's final value did not equal the acknowledged increments of it.
    pub counter_mismatch: Option<String>,
}

/// Counters the tasks increment, so that increments contend.
const COUNTERS: usize = 16;

/// Held for the whole of a burst: the tests of one binary run on threads of their own, each
/// in its own runtime, so the turn is a process-wide async lock.
static ONE_BURST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `options.tasks` tasks at once on `backend`, each making four calls on keys shared
/// with other tasks (`load/k{n}` and `load/counter{n}`), and reports what happened. The
/// keys are deleted afterwards. Run it in a fresh, empty namespace.
pub async fn run_load<B: KvBackend + Clone + 'static>(
    backend: &B,
    options: &LoadOptions,
) -> LoadReport {
    let _turn = ONE_BURST_AT_A_TIME.lock().await;
    let before = (open_descriptors(), resident_bytes());
    let peak = Arc::new(Peak::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(sample(Arc::clone(&peak), Arc::clone(&sampling)));

    let started = monotonic_now();
    let keys = options.keys.max(1);
    let tasks: Vec<_> = (0..options.tasks)
        .map(|task| {
            let backend = backend.clone();
            tokio::spawn(async move { one_task(&backend, task, keys).await })
        })
        .collect();
    let mut latencies = Vec::with_capacity(options.tasks * 4);
    let mut errors = Vec::new();
    let mut failed = 0;
    let mut acknowledged = [0_i64; COUNTERS];
    for (task, handle) in tasks.into_iter().enumerate() {
        match handle.await {
            Ok(outcome) => {
                latencies.extend(outcome.latencies);
                failed += outcome.errors.len();
                if outcome.incremented {
                    acknowledged[task % COUNTERS] += 1;
                }
                errors.extend(outcome.errors.into_iter().take(10 - errors.len().min(10)));
            }
            Err(panic) => {
                failed += 1;
                if errors.len() < 10 {
                    errors.push(format!("a task panicked: {panic}"));
                }
            }
        }
    }
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;

    let counter_mismatch = check_counters(backend, &acknowledged, failed).await;
    clean_up(backend, keys).await;

    latencies.sort_unstable();
    let at = |fraction: f64| {
        let index = ((latencies.len() as f64 - 1.0) * fraction).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    LoadReport {
        tasks: options.tasks,
        calls: latencies.len(),
        failed,
        errors,
        p50: at(0.50),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        elapsed,
        descriptors: before.0.zip(peak.descriptors()),
        memory: before.1.zip(peak.memory()),
        counter_mismatch,
    }
}

/// The body of a `tests/load.rs`: [`run_load`], the report printed after `store` (see it with
/// `--nocapture`) and recorded for the reliability report ([`crate::reliability::record`],
/// as the check `load`), and a panic naming the problems if [`LoadReport::check`] finds any.
pub async fn assert_load<B: KvBackend + Clone + 'static>(
    store: &str,
    backend: &B,
    options: &LoadOptions,
) -> LoadReport {
    let report = run_load(backend, options).await;
    println!("{store} under load: {report}");
    let verdict = report.check(options);
    let mut figures = report.to_json();
    figures["passed"] = verdict.is_ok().into();
    crate::reliability::record(store, "load", figures);
    if let Err(problems) = verdict {
        panic!("{store}: {problems}");
    }
    report
}

impl LoadReport {
    /// The report as JSON (durations in milliseconds, memory in bytes), for
    /// [`crate::reliability::record`].
    pub fn to_json(&self) -> serde_json::Value {
        use crate::reliability::millis;
        serde_json::json!({
            "tasks": self.tasks,
            "calls": self.calls,
            "failed": self.failed,
            "errors": self.errors,
            "p50_ms": millis(self.p50),
            "p99_ms": millis(self.p99),
            "max_ms": millis(self.max),
            "elapsed_ms": millis(self.elapsed),
            "descriptors_before": self.descriptors.map(|(before, _)| before),
            "descriptors_peak": self.descriptors.map(|(_, peak)| peak),
            "memory_before_bytes": self.memory.map(|(before, _)| before),
            "memory_peak_bytes": self.memory.map(|(_, peak)| peak),
            "counter_mismatch": self.counter_mismatch,
        })
    }
}

impl LoadReport {
    /// `Ok` when no call failed, every counter is exact, and descriptors and memory stayed
    /// within `options`; else what went wrong.
    pub fn check(&self, options: &LoadOptions) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.failed > 0 {
            problems.push(format!(
                "{} of {} calls failed, e.g. {:?}",
                self.failed,
                self.tasks * 4,
                self.errors
            ));
        }
        if let Some(mismatch) = &self.counter_mismatch {
            problems.push(mismatch.clone());
        }
        if let Some((before, peak)) = self.descriptors {
            if peak > before + options.max_new_descriptors {
                problems.push(format!(
                    "open file descriptors grew from {before} to {peak}, more than the {} \
                     allowed: connections or files are not bounded by a pool",
                    options.max_new_descriptors
                ));
            }
        }
        if let Some((before, peak)) = self.memory {
            if peak > before + options.max_memory_growth_bytes {
                problems.push(format!(
                    "resident memory grew from {} MiB to {} MiB, more than the {} MiB allowed",
                    before >> 20,
                    peak >> 20,
                    options.max_memory_growth_bytes >> 20
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tasks, {} calls in {:.2?} ({} failed); latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            self.tasks, self.calls, self.elapsed, self.failed, self.p50, self.p99, self.max
        )?;
        match self.descriptors {
            Some((before, peak)) => write!(f, "; file descriptors {before} -> peak {peak}")?,
            None => write!(f, "; file descriptors not measured (no /proc/self)")?,
        }
        match self.memory {
            Some((before, peak)) => {
                write!(
                    f,
                    "; resident memory {} -> peak {} MiB",
                    before >> 20,
                    peak >> 20
                )
            }
            None => write!(f, "; memory not measured (no /proc/self)"),
        }
    }
}

/// What one task saw.
struct TaskOutcome {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    /// Whether its increment was acknowledged.
    incremented: bool,
}

/// `set`, `get`, `increment`, `exists`, each timed.
async fn one_task<B: KvBackend>(backend: &B, task: usize, keys: usize) -> TaskOutcome {
    let key = format!("load/k{}", task % keys);
    let counter = format!("load/counter{}", task % COUNTERS);
    let value = task.to_string().into_bytes();
    let mut outcome = TaskOutcome {
        latencies: Vec::with_capacity(4),
        errors: Vec::new(),
        incremented: false,
    };
    let mut record = |op: &str, started: std::time::Instant, result: Result<(), KvError>| {
        outcome.latencies.push(started.elapsed());
        if let Err(err) = result {
            outcome.errors.push(format!("{op}: {err}"));
        }
    };
    let started = monotonic_now();
    let result = backend.set(&key, &value).await;
    record("set", started, result);
    let started = monotonic_now();
    let result = backend.get(&key).await.map(drop);
    record("get", started, result);
    let started = monotonic_now();
    let result = backend.increment(&counter, 1).await.map(drop);
    let incremented = result.is_ok();
    record("increment", started, result);
    let started = monotonic_now();
    let result = backend.exists(&key).await.map(drop);
    record("exists", started, result);
    outcome.incremented = incremented;
    outcome
}

/// Each counter must equal its acknowledged increments; when some calls failed, an
/// unacknowledged increment may have counted too, so only "at least" is checked.
async fn check_counters<B: KvBackend>(
    backend: &B,
    acknowledged: &[i64; COUNTERS],
    failed: usize,
) -> Option<String> {
    for (n, &expected) in acknowledged.iter().enumerate() {
        let counter = format!("load/counter{n}");
        let stored = match backend.get(&counter).await {
            Ok(stored) => stored,
            Err(err) => return Some(format!("reading {counter} after the burst failed: {err}")),
        };
        let value = stored
            .as_deref()
            .map(|bytes| String::from_utf8_lossy(bytes).parse::<i64>());
        let exact = match value {
            Some(Ok(value)) if failed == 0 => value == expected,
            Some(Ok(value)) => value >= expected,
            None => expected == 0,
            Some(Err(_)) => false,
        };
        if !exact {
            return Some(format!(
                "{counter} holds {stored:?} after {expected} acknowledged increments"
            ));
        }
    }
    None
}

async fn clean_up<B: KvBackend>(backend: &B, keys: usize) {
    let mut all: Vec<String> = (0..keys).map(|n| format!("load/k{n}")).collect();
    all.extend((0..COUNTERS).map(|n| format!("load/counter{n}")));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let _ = backend.delete_many(&all).await;
}

/// The highest descriptor count and resident memory seen.
struct Peak {
    descriptors: std::sync::atomic::AtomicUsize,
    memory: std::sync::atomic::AtomicU64,
    measured: (bool, bool),
}

impl Peak {
    fn new(before: (Option<usize>, Option<u64>)) -> Self {
        Self {
            descriptors: before.0.unwrap_or(0).into(),
            memory: before.1.unwrap_or(0).into(),
            measured: (before.0.is_some(), before.1.is_some()),
        }
    }

    fn record(&self) {
        if let Some(open) = open_descriptors() {
            self.descriptors.fetch_max(open, Ordering::Relaxed);
        }
        if let Some(resident) = resident_bytes() {
            self.memory.fetch_max(resident, Ordering::Relaxed);
        }
    }

    fn descriptors(&self) -> Option<usize> {
        self.measured
            .0
            .then(|| self.descriptors.load(Ordering::Relaxed))
    }

    fn memory(&self) -> Option<u64> {
        self.measured.1.then(|| self.memory.load(Ordering::Relaxed))
    }
}

/// Samples descriptors and memory every 10 ms until `running` is cleared, on a blocking
/// thread so that a busy runtime cannot starve it.
async fn sample(peak: Arc<Peak>, running: Arc<AtomicBool>) {
    let _ = tokio::task::spawn_blocking(move || {
        while running.load(Ordering::Relaxed) {
            peak.record();
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.record();
    })
    .await;
}

/// How many file descriptors this process has open, from `/proc/self/fd`.
fn open_descriptors() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count())
}

/// This process's resident memory, from `VmRSS` in `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_healthy_store_passes_and_the_report_counts_every_call() {
        let store = kv_memory::MemoryBackend::new();
        // The other tests of this binary run meanwhile and open files and child processes:
        // descriptors are the whole process's, so only a test binary of its own can bound
        // them (the adapters' `tests/load.rs`, and `kv-memory`'s).
        let options = LoadOptions::default()
            .with_tasks(3_000)
            .with_max_new_descriptors(usize::MAX / 2);
        let report = run_load(&store, &options).await;
        assert_eq!(report.calls, 12_000);
        report.check(&options).unwrap();
        assert!(report.p50 <= report.p99 && report.p99 <= report.max);
        if cfg!(target_os = "linux") {
            assert!(report.descriptors.is_some() && report.memory.is_some());
        }
        // The burst cleaned up after itself.
        assert!(store.list_keys("load/").await.unwrap().is_empty());
    }

    #[test]
    fn a_report_over_its_bounds_fails_with_the_reason() {
        let options = LoadOptions::default();
        let report = LoadReport {
            tasks: 10,
            calls: 40,
            failed: 1,
            errors: vec!["set: unavailable: timed out".into()],
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            max: Duration::ZERO,
            elapsed: Duration::ZERO,
            descriptors: Some((10, 10 + options.max_new_descriptors + 1)),
            memory: Some((0, options.max_memory_growth_bytes + 1)),
            counter_mismatch: None,
        };
        let problems = report.check(&options).unwrap_err();
        assert!(problems.contains("1 of 40 calls failed"), "{problems}");
        assert!(problems.contains("file descriptors grew"), "{problems}");
        assert!(problems.contains("resident memory grew"), "{problems}");
    }
}
