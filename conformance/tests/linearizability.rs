//! The linearizability checker, tested: hand-written histories that must pass or fail, and
//! deliberately broken backends around `kv_memory::MemoryBackend` that a contended workload
//! plus the checker must catch, while the real `MemoryBackend` passes.

// Test code: a missing violation or a poisoned lock is a test failure, and should panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_conformance::{
    Call, Checker, History, Linearizability, Op, Outcome, Recorder, Suite, Verdict, Workload,
};
use kv_memory::MemoryBackend;
use kv_trait::{apply_increment, async_trait, format_counter, monotonic_now, KvBackend, KvError};

const MS: u64 = 1_000_000;

fn call(client: &str, op: Op, invoked: u64, returned: u64, outcome: Outcome) -> Call {
    Call::new(client, op, invoked, returned, outcome)
}

fn value(v: &str) -> Outcome {
    Outcome::Value(Some(v.as_bytes().to_vec()))
}

fn unavailable() -> Outcome {
    Outcome::Error(kv_conformance::ErrorKind::Unavailable(
        "connection reset".into(),
    ))
}

/// A checker with exact deadlines (no granularity, no slack), for hand-written TTL histories.
fn exact() -> Checker {
    Checker::new()
        .with_ttl_granularity(Duration::ZERO)
        .with_ttl_slack(Duration::ZERO)
}

fn check(calls: Vec<Call>) -> Linearizability {
    exact().check(&History::from(calls))
}

fn assert_linearizable(calls: Vec<Call>) {
    let result = check(calls);
    assert!(result.is_linearizable(), "{result}");
}

/// Asserts a violation and returns its report, which must show every call's client.
fn assert_violation(calls: Vec<Call>) -> kv_conformance::Violation {
    let result = check(calls);
    let violation = result
        .violation()
        .unwrap_or_else(|| panic!("expected a violation:\n{result}"))
        .clone();
    let text = result.to_string();
    for call in &violation.calls {
        assert!(
            text.contains(&call.to_string()),
            "{call} not shown:\n{text}"
        );
    }
    println!("{text}");
    violation
}

#[test]
fn sequential_and_overlapping_histories_pass() {
    assert_linearizable(vec![]);
    assert_linearizable(vec![
        call("a", Op::set("k", "1"), 0, 10, Outcome::Done),
        call("b", Op::get("k"), 20, 30, value("1")),
        call(
            "a",
            Op::cas("k", Some(b"1"), "2"),
            40,
            50,
            Outcome::Bool(true),
        ),
        call(
            "b",
            Op::cas("k", Some(b"1"), "3"),
            60,
            70,
            Outcome::Bool(false),
        ),
        call("a", Op::exists("k"), 80, 90, Outcome::Bool(true)),
        call("b", Op::delete("k"), 100, 110, Outcome::Bool(true)),
        call("a", Op::get("k"), 120, 130, Outcome::Value(None)),
        call("b", Op::increment("k", 5), 140, 150, Outcome::Int(5)),
        call("a", Op::get("k"), 160, 170, value("5")),
    ]);
    // A read overlapping a write may see either value; here one sees the new value first and
    // a later overlapping one still sees it (the write took effect before both).
    for seen in ["old", "new"] {
        assert_linearizable(vec![
            call("a", Op::set("k", "old"), 0, 10, Outcome::Done),
            call("a", Op::set("k", "new"), 20, 60, Outcome::Done),
            call("b", Op::get("k"), 30, 40, value(seen)),
        ]);
    }
    // Reordering inside overlaps: b's increment was invoked later but took effect first.
    assert_linearizable(vec![
        call("a", Op::increment("n", 1), 0, 100, Outcome::Int(2)),
        call("b", Op::increment("n", 1), 10, 50, Outcome::Int(1)),
    ]);
    // Errors the model decides are checked too.
    assert_linearizable(vec![
        call("a", Op::set("k", "x"), 0, 10, Outcome::Done),
        call(
            "b",
            Op::increment("k", 1),
            20,
            30,
            Outcome::Error(kv_conformance::ErrorKind::NotAnInteger),
        ),
    ]);
}

#[test]
fn a_stale_read_fails() {
    let violation = assert_violation(vec![
        call("alice", Op::set("k", "a"), 0, 10, Outcome::Done),
        call("alice", Op::set("k", "b"), 20, 30, Outcome::Done),
        call("bob", Op::get("k"), 40, 50, value("a")),
    ]);
    assert_eq!(violation.key, "k");
    // The two sets are summarized by the one state they leave; the stale read is shown.
    assert_eq!(violation.calls.len(), 1, "{violation}");
    assert_eq!(violation.calls[0].client, "bob");
    let settled = violation
        .settled
        .as_ref()
        .expect("the writes are summarized");
    assert_eq!(settled.calls, 2);
    assert!(settled.state.contains("\"b\""), "{violation}");
}

#[test]
fn a_lost_update_fails() {
    assert_violation(vec![
        call("alice", Op::increment("n", 1), 0, 100, Outcome::Int(1)),
        call("bob", Op::increment("n", 1), 50, 150, Outcome::Int(1)),
    ]);
    // The same, one after the other.
    assert_violation(vec![
        call("alice", Op::increment("n", 1), 0, 10, Outcome::Int(1)),
        call("bob", Op::increment("n", 1), 20, 30, Outcome::Int(1)),
    ]);
}

#[test]
fn two_winners_of_one_cas_fail() {
    let start = call("a", Op::set("k", "v0"), 0, 10, Outcome::Done);
    assert_violation(vec![
        start.clone(),
        call(
            "b",
            Op::cas("k", Some(b"v0"), "v1"),
            20,
            40,
            Outcome::Bool(true),
        ),
        call(
            "c",
            Op::cas("k", Some(b"v0"), "v2"),
            25,
            45,
            Outcome::Bool(true),
        ),
    ]);
    assert_linearizable(vec![
        start,
        call(
            "b",
            Op::cas("k", Some(b"v0"), "v1"),
            20,
            40,
            Outcome::Bool(true),
        ),
        call(
            "c",
            Op::cas("k", Some(b"v0"), "v2"),
            25,
            45,
            Outcome::Bool(false),
        ),
    ]);
    // Expecting absence: one winner at most.
    assert_violation(vec![
        call("b", Op::cas("j", None, "1"), 0, 40, Outcome::Bool(true)),
        call("c", Op::cas("j", None, "2"), 5, 45, Outcome::Bool(true)),
    ]);
}

#[test]
fn a_read_of_a_never_written_value_fails() {
    assert_violation(vec![
        call("a", Op::set("k", "a"), 0, 10, Outcome::Done),
        call("b", Op::get("k"), 5, 50, value("zzz")),
    ]);
    assert_violation(vec![call("b", Op::get("never"), 0, 10, value("x"))]);
    assert_violation(vec![call(
        "b",
        Op::exists("never"),
        0,
        10,
        Outcome::Bool(true),
    )]);
}

#[test]
fn an_unavailable_write_may_or_may_not_have_applied() {
    let before = vec![
        call("a", Op::set("k", "a"), 0, 10, Outcome::Done),
        call("a", Op::set("k", "b"), 20, 30, unavailable()),
    ];
    let with = |mut extra: Vec<Call>| {
        let mut calls = before.clone();
        calls.append(&mut extra);
        calls
    };
    // Not applied.
    assert_linearizable(with(vec![call("b", Op::get("k"), 40, 50, value("a"))]));
    // Applied.
    assert_linearizable(with(vec![call("b", Op::get("k"), 40, 50, value("b"))]));
    // Applied late: long after the call returned its error (its return is +infinity).
    assert_linearizable(with(vec![
        call("b", Op::get("k"), 40, 50, value("a")),
        call("b", Op::get("k"), 5_000, 5_010, value("b")),
    ]));
    // But once seen applied it stays applied.
    let violation = assert_violation(with(vec![
        call("b", Op::get("k"), 40, 50, value("b")),
        call("b", Op::get("k"), 60, 70, value("a")),
    ]));
    assert!(violation.calls.iter().any(Call::is_indeterminate));
    // Never before it was invoked.
    assert_violation(with(vec![call("b", Op::get("k"), 12, 18, value("b"))]));
    // An unavailable increment counts at most once.
    assert_linearizable(vec![
        call("a", Op::increment("n", 1), 0, 10, unavailable()),
        call("b", Op::increment("n", 1), 20, 30, Outcome::Int(2)),
    ]);
    assert_violation(vec![
        call("a", Op::increment("n", 1), 0, 10, unavailable()),
        call("b", Op::increment("n", 1), 20, 30, Outcome::Int(3)),
    ]);
    // An unavailable read observed nothing.
    assert_linearizable(vec![
        call("a", Op::set("k", "a"), 0, 10, Outcome::Done),
        call("b", Op::get("k"), 20, 30, unavailable()),
    ]);
}

#[test]
fn expiry_is_checked_against_each_calls_interval() {
    let write = || {
        call(
            "a",
            Op::set_with_ttl("t", "v", 100 * MS),
            0,
            10 * MS,
            Outcome::Done,
        )
    };
    let with = |read: Call| vec![write(), read];
    // Surely live, surely expired, and either way around the deadline.
    assert_linearizable(with(call("b", Op::get("t"), 50 * MS, 60 * MS, value("v"))));
    assert_linearizable(with(call(
        "b",
        Op::get("t"),
        200 * MS,
        210 * MS,
        Outcome::Value(None),
    )));
    for seen in [value("v"), Outcome::Value(None)] {
        assert_linearizable(with(call("b", Op::get("t"), 95 * MS, 105 * MS, seen)));
    }
    // Early: a read that ended before invoke + ttl does not see it.
    assert_violation(with(call(
        "b",
        Op::get("t"),
        50 * MS,
        60 * MS,
        Outcome::Value(None),
    )));
    // Late: a read that started after return + ttl still sees it.
    assert_violation(with(call(
        "b",
        Op::exists("t"),
        150 * MS,
        160 * MS,
        Outcome::Bool(true),
    )));
    // Expired once, expired for good.
    assert_violation(vec![
        write(),
        call("b", Op::get("t"), 95 * MS, 105 * MS, Outcome::Value(None)),
        call("b", Op::get("t"), 106 * MS, 107 * MS, value("v")),
    ]);
    // Granularity and slack widen the window: 1 ms late is fine with 1 ms granularity.
    let late = vec![
        write(),
        call(
            "b",
            Op::exists("t"),
            110 * MS + 1,
            111 * MS,
            Outcome::Bool(true),
        ),
    ];
    assert!(!exact()
        .check(&History::from(late.clone()))
        .is_linearizable());
    let lenient = exact().with_ttl_granularity(Duration::from_millis(1));
    assert!(lenient.check(&History::from(late)).is_linearizable());
    // increment keeps a live key's TTL; an increment after expiry starts from 0 with none.
    assert_linearizable(vec![
        call(
            "a",
            Op::set_with_ttl("n", "5", 100 * MS),
            0,
            MS,
            Outcome::Done,
        ),
        call(
            "a",
            Op::increment("n", 1),
            10 * MS,
            11 * MS,
            Outcome::Int(6),
        ),
        call("a", Op::get("n"), 200 * MS, 201 * MS, Outcome::Value(None)),
        call(
            "a",
            Op::increment("n", 1),
            210 * MS,
            211 * MS,
            Outcome::Int(1),
        ),
        call("a", Op::get("n"), 900 * MS, 901 * MS, value("1")),
    ]);
    assert_violation(vec![
        call(
            "a",
            Op::set_with_ttl("n", "5", 100 * MS),
            0,
            MS,
            Outcome::Done,
        ),
        call(
            "a",
            Op::increment("n", 1),
            10 * MS,
            11 * MS,
            Outcome::Int(6),
        ),
        call("a", Op::get("n"), 200 * MS, 201 * MS, value("6")),
    ]);
    // A successful CAS and a set clear the TTL.
    assert_linearizable(vec![
        write(),
        call(
            "a",
            Op::cas("t", Some(b"v"), "w"),
            20 * MS,
            21 * MS,
            Outcome::Bool(true),
        ),
        call("a", Op::get("t"), 900 * MS, 901 * MS, value("w")),
    ]);
    // An unavailable TTL write may expire at any time after ttl from its start.
    assert_linearizable(vec![
        call(
            "a",
            Op::set_with_ttl("t", "v", 100 * MS),
            0,
            10 * MS,
            unavailable(),
        ),
        call("b", Op::get("t"), 5_000 * MS, 5_001 * MS, value("v")),
    ]);
}

#[test]
fn the_report_shrinks_to_the_calls_that_matter() {
    // 200 calls of noise on one key, then a stale read, then more noise.
    let mut calls = Vec::new();
    let mut t = 0;
    for i in 0..100 {
        calls.push(call(
            "w",
            Op::set("k", format!("v{i}")),
            t,
            t + 10,
            Outcome::Done,
        ));
        calls.push(call(
            "r",
            Op::get("k"),
            t + 20,
            t + 30,
            value(&format!("v{i}")),
        ));
        t += 40;
    }
    calls.push(call("stale", Op::get("k"), t, t + 10, value("v3")));
    t += 20;
    for i in 0..50 {
        calls.push(call(
            "w",
            Op::set("k", format!("x{i}")),
            t,
            t + 10,
            Outcome::Done,
        ));
        t += 20;
    }
    let violation = assert_violation(calls);
    assert_eq!(violation.key_calls, 251);
    assert!(violation.calls.len() <= 3, "not shrunk:\n{violation}");
    assert!(
        violation.calls.iter().any(|c| c.client == "stale"),
        "{violation}"
    );
}

#[test]
fn bounds_give_an_inconclusive_result_not_a_hang() {
    let calls: Vec<Call> = (0..10)
        .map(|i| call("a", Op::increment("n", 1), 0, 100, Outcome::Int(i + 1)))
        .collect();
    let history = History::from(calls);
    assert!(Checker::new().check(&history).is_linearizable());
    let result = Checker::new().with_max_calls_per_key(5).check(&history);
    assert!(
        matches!(result.keys[0].verdict, Verdict::Inconclusive(_)),
        "{result}"
    );
    assert!(!result.is_linearizable());
    let result = Checker::new().with_max_states(3).check(&history);
    let (key, why) = result.inconclusive().next().expect("inconclusive");
    assert_eq!(key, "n");
    assert!(why.contains("states"), "{why}");
    assert!(result.to_string().contains("inconclusive"), "{result}");
}

#[test]
fn list_keys_is_left_out_and_counted() {
    let result = check(vec![
        call("a", Op::set("k", "1"), 0, 10, Outcome::Done),
        call(
            "a",
            Op::list_keys(""),
            20,
            30,
            Outcome::Keys(vec!["nonsense".into()]),
        ),
    ]);
    assert!(result.is_linearizable(), "{result}");
    assert_eq!(result.unchecked, 1);
}

/// Sleeps before every `set`, for the cancellation test.
#[derive(Debug)]
struct SlowSet(MemoryBackend);

#[async_trait]
impl KvBackend for SlowSet {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.0.set(key, value).await
    }
    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        self.0.set_with_ttl(key, value, ttl_ns).await
    }
    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.0.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.0.exists(key).await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.0.list_keys(prefix).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.0.increment(key, delta).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.0.compare_and_swap(key, expected, new).await
    }
}

#[tokio::test]
async fn the_recorder_logs_every_call_and_cancellations_as_unavailable() {
    let recorder = Recorder::new(SlowSet(MemoryBackend::new()));
    let alice = recorder.client("alice");
    assert_eq!(alice.increment("n", 2).await.unwrap(), 2);
    assert_eq!(alice.get("n").await.unwrap(), Some(b"2".to_vec()));
    assert!(alice.increment("", 1).await.is_err());
    let cancelled = tokio::time::timeout(Duration::from_millis(20), alice.set("k", b"v")).await;
    assert!(cancelled.is_err());
    recorder.list_keys("").await.unwrap();
    let history = recorder.history();
    let calls = history.calls();
    assert_eq!(calls.len(), 5, "{history}");
    assert_eq!(calls[0].op, Op::increment("n", 2));
    assert_eq!(calls[0].outcome, Outcome::Int(2));
    assert_eq!(calls[1].outcome, value("2"));
    assert_eq!(
        calls[2].outcome,
        Outcome::Error(kv_conformance::ErrorKind::InvalidKey)
    );
    assert!(calls[3].is_indeterminate(), "{}", calls[3]);
    assert!(calls[3].returned_ns - calls[3].invoked_ns >= 20 * MS);
    assert_eq!(calls[4].client, "main");
    assert!(calls[..4].iter().all(|c| c.client == "alice"));
    assert!(calls
        .windows(2)
        .all(|w| w[0].returned_ns <= w[1].invoked_ns));
    let result = Checker::new().check(&history);
    assert!(result.is_linearizable(), "{result}");
    assert_eq!(result.unchecked, 1);
}

// ---- Broken backends: each wraps a MemoryBackend and breaks one promise. ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `get` answers from a cache filled by earlier reads, kept for 2 ms, never invalidated.
    StaleReadCache,
    /// `increment` is a `get`, a yield, then a `set`.
    NonAtomicIncrement,
    /// `compare_and_swap` checks with a `get`, yields, then writes with a `set`.
    TwoStepCas,
}

/// A value the stale cache read, and when.
type Cached = (std::time::Instant, Option<Vec<u8>>);

#[derive(Debug)]
struct Broken {
    fault: Fault,
    inner: MemoryBackend,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Broken {
    fn new(fault: Fault) -> Self {
        Self {
            fault,
            inner: MemoryBackend::new(),
            cache: Mutex::default(),
        }
    }
}

#[async_trait]
impl KvBackend for Broken {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if self.fault != Fault::StaleReadCache {
            return self.inner.get(key).await;
        }
        let now = monotonic_now();
        if let Some((at, cached)) = self.cache.lock().unwrap().get(key) {
            if now.duration_since(*at) < Duration::from_millis(2) {
                return Ok(cached.clone());
            }
        }
        let value = self.inner.get(key).await?;
        self.cache
            .lock()
            .unwrap()
            .insert(key.to_owned(), (now, value.clone()));
        Ok(value)
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner.set(key, value).await
    }
    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        self.inner.set_with_ttl(key, value, ttl_ns).await
    }
    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.inner.exists(key).await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.inner.list_keys(prefix).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        if self.fault != Fault::NonAtomicIncrement {
            return self.inner.increment(key, delta).await;
        }
        let current = self.inner.get(key).await?;
        tokio::task::yield_now().await;
        let next = apply_increment(current.as_deref(), delta)?;
        self.inner.set(key, &format_counter(next)).await?;
        Ok(next)
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        if self.fault != Fault::TwoStepCas {
            return self.inner.compare_and_swap(key, expected, new).await;
        }
        if self.inner.get(key).await?.as_deref() != expected {
            return Ok(false);
        }
        tokio::task::yield_now().await;
        self.inner.set(key, new).await?;
        Ok(true)
    }
}

/// Runs the default workload (8 tasks × 30 steps, 3 hot keys) with `seed` and checks it.
async fn run_and_check(backend: Arc<dyn KvBackend>, seed: u64) -> Linearizability {
    let history = Workload::new()
        .tasks(8)
        .steps_per_task(30)
        .seed(seed)
        .run(backend)
        .await;
    assert!(history.len() >= 240);
    Checker::new().check(&history)
}

/// Workload runs a broken backend gets to show its fault (scheduling decides whether two
/// calls overlap; each run overlaps dozens of them, so one run nearly always suffices).
const RUNS_TO_CATCH: u64 = 5;

async fn assert_caught(fault: Fault, key_kind: &str) {
    for seed in 0..RUNS_TO_CATCH {
        let result = run_and_check(Arc::new(Broken::new(fault)), seed).await;
        assert!(result.inconclusive().next().is_none(), "{result}");
        if let Some(violation) = result.violation() {
            println!("{fault:?} caught (seed {seed}):\n{result}");
            assert!(violation.key.starts_with(key_kind), "{result}");
            assert!(violation.calls.len() < 20, "not shrunk:\n{result}");
            return;
        }
    }
    panic!("{fault:?} was not caught in {RUNS_TO_CATCH} runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_read_cache_is_caught() {
    assert_caught(Fault::StaleReadCache, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_atomic_increment_is_caught() {
    assert_caught(Fault::NonAtomicIncrement, "counter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_in_two_steps_is_caught() {
    assert_caught(Fault::TwoStepCas, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_backend_passes() {
    for seed in 0..RUNS_TO_CATCH {
        let result = run_and_check(Arc::new(MemoryBackend::new()), seed).await;
        assert!(result.is_linearizable(), "seed {seed}:\n{result}");
        assert_eq!(result.keys.len(), 3);
    }
}

/// The largest history the tests check: 16 tasks × 150 steps on 3 hot keys, on two handles of
/// one memory store, with TTLs of 2 ms expiring throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_history_is_decided_in_seconds() {
    let store = MemoryBackend::new();
    let handles: Vec<Arc<dyn KvBackend>> = vec![Arc::new(store.clone()), Arc::new(store)];
    let history = Workload::new()
        .tasks(16)
        .steps_per_task(150)
        .ttl(Duration::from_millis(2))
        .run_on(handles)
        .await;
    assert!(history.len() >= 2_400);
    let result = Checker::new().check(&history);
    println!(
        "{} calls, at most {} on one key: {result}",
        history.len(),
        result.max_calls_per_key()
    );
    assert!(result.is_linearizable(), "{result}");
    assert!(result.elapsed < Duration::from_secs(10), "{result}");
}

/// The suite's check over the real store passes and over a broken one fails with a report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_check_passes_memory_and_catches_a_broken_increment() {
    let outcome = Suite::new(|| async { Ok(MemoryBackend::new()) })
        .run_check("concurrent_history_linearizable")
        .await
        .unwrap();
    assert!(outcome.passed(), "{:?}", outcome.failure);
    for _ in 0..RUNS_TO_CATCH {
        let outcome = Suite::new(|| async { Ok(Broken::new(Fault::NonAtomicIncrement)) })
            .run_check("concurrent_history_linearizable")
            .await
            .unwrap();
        if let Some(failure) = outcome.failure {
            let text = failure.to_string();
            assert!(text.contains("not linearizable"), "{text}");
            assert!(text.contains("increment("), "{text}");
            return;
        }
    }
    panic!("the suite check missed a non-atomic increment");
}

/// Sleeps up to 2 ms before and after every call of a memory store: a store whose calls take
/// as long as a networked one's, so that calls overlap widely and expiry decisions are often
/// ambiguous.
#[derive(Debug, Default)]
struct Laggy {
    inner: MemoryBackend,
    calls: std::sync::atomic::AtomicU64,
}

impl Laggy {
    async fn lag(&self) {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let micros = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 53; // 0..2047
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
}

#[async_trait]
impl KvBackend for Laggy {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.lag().await;
        let result = self.inner.get(key).await;
        self.lag().await;
        result
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.lag().await;
        let result = self.inner.set(key, value).await;
        self.lag().await;
        result
    }
    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        self.lag().await;
        let result = self.inner.set_with_ttl(key, value, ttl_ns).await;
        self.lag().await;
        result
    }
    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.lag().await;
        let result = self.inner.delete(key).await;
        self.lag().await;
        result
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.lag().await;
        let result = self.inner.exists(key).await;
        self.lag().await;
        result
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.inner.list_keys(prefix).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.lag().await;
        let result = self.inner.increment(key, delta).await;
        self.lag().await;
        result
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.lag().await;
        let result = self.inner.compare_and_swap(key, expected, new).await;
        self.lag().await;
        result
    }
}

/// A slow, correct store passes the suite's check (with TTLs expiring during it) twice over:
/// wide overlaps and ambiguous expiry do not make the checker cry wolf or give up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_correct_store_passes_the_suite_check() {
    for _ in 0..2 {
        let outcome = Suite::new(|| async { Ok(Laggy::default()) })
            .run_check("concurrent_history_linearizable")
            .await
            .unwrap();
        assert!(outcome.passed(), "{:?}", outcome.failure);
        println!("{outcome:?}");
    }
}

/// The largest history the tests check: 16 tasks × 150 steps on 3 hot keys of the slow
/// store, TTLs of 5 ms expiring throughout, about 2,700 calls and up to about 1,100 on one key.
/// 0.5 to 3 s in a debug build; the bound leaves room for a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_slow_history_is_decided_in_seconds() {
    let history = Workload::new()
        .tasks(16)
        .steps_per_task(150)
        .ttl(Duration::from_millis(5))
        .pause(Duration::from_millis(2))
        .run(Arc::new(Laggy::default()))
        .await;
    assert!(history.len() >= 2_400);
    let result = Checker::new().check(&history);
    println!(
        "{} calls, at most {} on one key: {result}",
        history.len(),
        result.max_calls_per_key()
    );
    assert!(result.is_linearizable(), "{result}");
    assert!(result.elapsed < Duration::from_secs(30), "{result}");
}

/// Across handles: two handles on one store pass; two handles on two different stores (a
/// "replica" that never hears of the other's writes) are caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_across_handles() {
    let store = MemoryBackend::new();
    let shared: Vec<Arc<dyn KvBackend>> = vec![Arc::new(store.clone()), Arc::new(store.clone())];
    let summary = kv_conformance::shared_store::history_across(&shared, 4, 30)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(summary.contains("3 linearizable"), "{summary}");
    assert!(store.list_keys("").await.unwrap().is_empty(), "keys left");
    let split: Vec<Arc<dyn KvBackend>> = vec![
        Arc::new(MemoryBackend::new()),
        Arc::new(MemoryBackend::new()),
    ];
    let failure = kv_conformance::shared_store::history_across(&split, 4, 30)
        .await
        .expect_err("two separate stores are not one linearizable store");
    let text = failure.to_string();
    assert!(text.contains("not linearizable"), "{text}");
    assert!(text.contains("task "), "{text}");
}

/// Loses replies: every third write returns `Unavailable`, alternately after applying it (a
/// lost reply) and without applying it (a refused call); with `retries_blindly`, an increment
/// whose reply was lost is applied again and acknowledged, as a blind retry would.
#[derive(Debug, Default)]
struct LossyReplies {
    inner: MemoryBackend,
    writes: std::sync::atomic::AtomicU64,
    retries_blindly: bool,
}

enum Fate {
    Normal,
    Refused,
    ReplyLost,
}

impl LossyReplies {
    fn fate(&self) -> Fate {
        match self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 6
        {
            2 => Fate::Refused,
            5 => Fate::ReplyLost,
            _ => Fate::Normal,
        }
    }

    fn lost() -> KvError {
        KvError::unavailable("the reply was lost")
    }
}

#[async_trait]
impl KvBackend for LossyReplies {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        match self.fate() {
            Fate::Refused => Err(Self::lost()),
            Fate::ReplyLost => self.inner.set(key, value).await.and(Err(Self::lost())),
            Fate::Normal => self.inner.set(key, value).await,
        }
    }
    async fn set_with_ttl(&self, key: &str, value: &[u8], ttl_ns: u64) -> Result<(), KvError> {
        match self.fate() {
            Fate::Refused => Err(Self::lost()),
            Fate::ReplyLost => {
                let applied = self.inner.set_with_ttl(key, value, ttl_ns).await;
                applied.and(Err(Self::lost()))
            }
            Fate::Normal => self.inner.set_with_ttl(key, value, ttl_ns).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        match self.fate() {
            Fate::Refused => Err(Self::lost()),
            Fate::ReplyLost => self.inner.delete(key).await.and(Err(Self::lost())),
            Fate::Normal => self.inner.delete(key).await,
        }
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.inner.exists(key).await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.inner.list_keys(prefix).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        match self.fate() {
            Fate::Refused => Err(Self::lost()),
            Fate::ReplyLost if self.retries_blindly => {
                self.inner.increment(key, delta).await?;
                self.inner.increment(key, delta).await
            }
            Fate::ReplyLost => self
                .inner
                .increment(key, delta)
                .await
                .and(Err(Self::lost())),
            Fate::Normal => self.inner.increment(key, delta).await,
        }
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        match self.fate() {
            Fate::Refused => Err(Self::lost()),
            Fate::ReplyLost => {
                let applied = self.inner.compare_and_swap(key, expected, new).await;
                applied.and(Err(Self::lost()))
            }
            Fate::Normal => self.inner.compare_and_swap(key, expected, new).await,
        }
    }
}

/// Unavailable calls in a recorded history: lost replies and refused calls both pass; an
/// increment applied twice by a blind retry is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_pass_and_blind_retries_are_caught() {
    for seed in 0..RUNS_TO_CATCH {
        let history = Workload::new()
            .seed(seed)
            .run(Arc::new(LossyReplies::default()))
            .await;
        let unavailable = history
            .calls()
            .iter()
            .filter(|c| c.is_indeterminate())
            .count();
        assert!(unavailable >= 20, "only {unavailable} Unavailable calls");
        let result = Checker::new().check(&history);
        assert!(result.is_linearizable(), "seed {seed}:\n{result}");
    }
    for seed in 0..RUNS_TO_CATCH {
        let backend = LossyReplies {
            retries_blindly: true,
            ..LossyReplies::default()
        };
        let history = Workload::new().seed(seed).run(Arc::new(backend)).await;
        let result = Checker::new().check(&history);
        if let Some(violation) = result.violation() {
            println!("{result}");
            assert!(violation.key.starts_with("counter") || violation.key.starts_with("expiring"));
            return;
        }
    }
    panic!("an increment applied twice was not caught");
}
