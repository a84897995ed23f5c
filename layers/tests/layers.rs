//! What each layer does beyond keeping the contract: what a retry resends and what it never
//! does, when a timeout fires, how many calls a limit lets through, what metrics record.

// The chaos layer's own checks, in this binary rather than one of their own.
mod chaos;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kv_layers::{
    Around, Call, Chaos, ConcurrencyLimit, LayerExt, Metrics, Operation, Retry, Timeout,
};
use kv_memory::MemoryBackend;
use kv_trait::{KvBackend, KvError};

/// Fails the first `failures` calls that reach it with the error `make` builds, after
/// letting writes through when `apply` says so; counts every call.
#[derive(Debug, Clone)]
struct Flaky {
    failures: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    sent: bool,
}

impl Flaky {
    /// Fails `failures` calls with an `Unavailable` that was `sent` (may hide a write) or not.
    fn new(failures: usize, sent: bool) -> Self {
        Self {
            failures: Arc::new(AtomicUsize::new(failures)),
            calls: Arc::default(),
            sent,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Around for Flaky {
    async fn around<'a, T, F, Fut>(&'a self, _call: Call<'a>, mut run: F) -> Result<T, KvError>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, KvError>> + Send + 'a,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        match (fail, self.sent) {
            (false, _) => run().await,
            (true, true) => {
                // The call went out and its reply was lost: it happened.
                let _ = run().await;
                Err(KvError::unavailable("reply lost"))
            }
            (true, false) => Err(KvError::not_sent("connection refused")),
        }
    }
}

#[tokio::test]
async fn reads_are_resent_after_any_unavailable() {
    let flaky = Flaky::new(2, true);
    let store = MemoryBackend::new()
        .with(flaky.clone())
        .with(Retry::new(3).seed(1));
    store.inner().inner().set("k", b"v").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(flaky.calls(), 3);
}

#[tokio::test]
async fn writes_whose_reply_may_be_lost_are_never_resent() {
    for operation in ["set", "increment", "delete", "compare_and_swap", "set_many"] {
        let flaky = Flaky::new(1, true);
        let store = MemoryBackend::new()
            .with(flaky.clone())
            .with(Retry::new(5).seed(1));
        store.inner().inner().set("k", b"1").await.unwrap();
        let outcome = match operation {
            "set" => store.set("k", b"2").await.map(drop),
            "increment" => store.increment("k", 1).await.map(drop),
            "delete" => store.delete("k").await.map(drop),
            "compare_and_swap" => store
                .compare_and_swap("k", Some(b"1"), b"2")
                .await
                .map(drop),
            _ => store.set_many(&[("k", b"2")], None).await.map(drop),
        };
        let err = outcome.expect_err(operation);
        assert!(
            err.is_retryable() && !err.is_not_sent(),
            "{operation}: {err}"
        );
        assert_eq!(flaky.calls(), 1, "{operation} was resent");
    }
}

#[tokio::test]
async fn writes_that_never_reached_the_store_are_resent_once_applied() {
    let flaky = Flaky::new(2, false);
    let store = MemoryBackend::new()
        .with(flaky.clone())
        .with(Retry::new(3).seed(1));
    assert_eq!(store.increment("n", 5).await.unwrap(), 5);
    assert_eq!(flaky.calls(), 3);
    // Applied exactly once.
    assert_eq!(store.get("n").await.unwrap(), Some(b"5".to_vec()));
}

#[tokio::test]
async fn retries_stop_at_their_count_and_at_their_budget() {
    let flaky = Flaky::new(100, false);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let retry = Retry::new(4)
        .backoff(Duration::from_millis(1), Duration::from_millis(4))
        .seed(3)
        .on_retry(move |event| {
            seen.lock()
                .unwrap()
                .push((event.operation, event.attempt, event.backoff));
        });
    let store = MemoryBackend::new().with(flaky.clone()).with(retry);
    assert!(store.get("k").await.unwrap_err().is_not_sent());
    assert_eq!(flaky.calls(), 5, "one call and four retries");
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 4);
    for (i, (operation, attempt, backoff)) in events.iter().enumerate() {
        assert_eq!((*operation, *attempt), (Operation::Get, i as u32 + 1));
        // Full jitter under a ceiling that doubles from 1 ms and stops at 4 ms.
        let ceiling = Duration::from_millis(1 << i.min(2));
        assert!(
            *backoff <= ceiling,
            "retry {attempt}: {backoff:?} > {ceiling:?}"
        );
    }

    // A budget of 100 ms with waits of up to 40 ms: it stops long before 50 retries, and no
    // retry starts after 100 ms (the last one's own time comes on top).
    let flaky = Flaky::new(100, false);
    let retry = Retry::new(50)
        .backoff(Duration::from_millis(40), Duration::from_millis(40))
        .budget(Duration::from_millis(100))
        .seed(3);
    let store = MemoryBackend::new().with(flaky.clone()).with(retry);
    let started = Instant::now();
    assert!(store.get("k").await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert!((2..=20).contains(&flaky.calls()), "{}", flaky.calls());

    // Errors that are the caller's never are retried.
    let flaky = Flaky::new(0, false);
    let store = MemoryBackend::new().with(flaky.clone()).with(Retry::new(5));
    store.set("k", b"x").await.unwrap();
    assert!(matches!(
        store.increment("k", 1).await,
        Err(KvError::NotAnInteger)
    ));
    assert_eq!(flaky.calls(), 2);
}

#[tokio::test]
async fn a_slow_call_times_out_and_its_limit_can_differ_by_operation() {
    let slow = Chaos::new(1).latency(1.0, Duration::from_millis(300));
    let store = MemoryBackend::new().with(slow).with(
        Timeout::new(Duration::from_millis(30))
            .for_operation(Operation::Exists, Duration::from_secs(5)),
    );
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_retryable() && !err.is_not_sent(), "{err}");
    assert!(
        err.to_string().contains("`get` did not finish within 30ms"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(30) && took < Duration::from_millis(250),
        "{took:?}"
    );
    // `exists` has 5 s: it waits out the 300 ms.
    assert!(!store.exists("k").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_calls_run_than_the_limit_allows() {
    /// Counts calls in flight below the limit.
    #[derive(Debug, Default, Clone)]
    struct Gauge {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }
    impl Around for Gauge {
        async fn around<'a, T, F, Fut>(&'a self, _call: Call<'a>, mut run: F) -> Result<T, KvError>
        where
            T: Send + 'a,
            F: FnMut() -> Fut + Send + 'a,
            Fut: Future<Output = Result<T, KvError>> + Send + 'a,
        {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            let outcome = run().await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            outcome
        }
    }
    let gauge = Gauge::default();
    let store = Arc::new(
        MemoryBackend::new()
            .with(gauge.clone())
            .with(ConcurrencyLimit::new(3).unwrap()),
    );
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.increment("n", i).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(gauge.most.load(Ordering::SeqCst), 3);
    assert_eq!(store.layer().available(), 3);
    assert!(ConcurrencyLimit::new(0).is_err());
}

#[test]
fn metrics_count_calls_by_outcome_and_time_them() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = MemoryBackend::new().with(Metrics::new("sessions"));
            store.set("k", b"x").await.unwrap();
            store.get("k").await.unwrap();
            store.get("k").await.unwrap();
            assert!(store.increment("k", 1).await.is_err());
            assert!(store.get("").await.is_err());
        });
    });
    let mut counts = Vec::new();
    let mut timed = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|label| label.key() == name)
                .map(|label| label.value().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(label("store"), "sessions");
        match value {
            DebugValue::Counter(n) => {
                assert_eq!(key.name(), kv_layers::CALLS);
                counts.push((label("operation"), label("outcome"), n));
            }
            DebugValue::Histogram(samples) => {
                assert_eq!(key.name(), kv_layers::CALL_DURATION);
                timed += samples.len();
            }
            DebugValue::Gauge(now) => {
                assert_eq!(key.name(), kv_layers::CALLS_IN_FLIGHT);
                assert_eq!(now.into_inner(), 0.0, "nothing left in flight");
            }
        }
    }
    counts.sort();
    let expected = [
        ("get", "invalid_key", 1),
        ("get", "ok", 2),
        ("increment", "not_an_integer", 1),
        ("set", "ok", 1),
    ];
    let counts: Vec<(&str, &str, u64)> = counts
        .iter()
        .map(|(op, outcome, n)| (op.as_str(), outcome.as_str(), *n))
        .collect();
    assert_eq!(counts, expected);
    assert_eq!(timed, 5, "one duration per call");
}

#[tokio::test]
async fn a_prefix_isolates_and_keeps_the_store_s_key_limit() {
    let store = MemoryBackend::new();
    let a = store.clone().prefixed("a/").unwrap();
    let ab = store.clone().prefixed("ab/").unwrap();
    a.set("k", b"1").await.unwrap();
    ab.set("k", b"2").await.unwrap();
    a.set_many(&[("x", b"3"), ("y", b"4")], None).await.unwrap();
    assert_eq!(a.list_keys("").await.unwrap(), ["k", "x", "y"]);
    assert_eq!(ab.list_keys("").await.unwrap(), ["k"]);
    let page = a
        .list_keys_page("", Some("k"), std::num::NonZeroUsize::new(1).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (page.keys, page.next.as_deref()),
        (vec!["x".to_owned()], Some("x"))
    );
    assert_eq!(
        store.list_keys("").await.unwrap(),
        ["a/k", "a/x", "a/y", "ab/k"]
    );

    // 1022 bytes fit behind "a/"; 1023 do not, and fail before the store sees them.
    let longest = "k".repeat(1022);
    a.set(&longest, b"v").await.unwrap();
    let err = a.set(&"k".repeat(1023), b"v").await.unwrap_err();
    assert!(
        matches!(&err, KvError::InvalidKey(why) if why.contains("maximum is 1022")),
        "{err}"
    );
    assert!(matches!(
        a.get_many(&["x", ""]).await,
        Err(KvError::InvalidKey(_))
    ));
    assert_eq!(a.capabilities().max_key_bytes, 1022);
    assert!(store.clone().prefixed("p".repeat(1024)).is_err());
}
