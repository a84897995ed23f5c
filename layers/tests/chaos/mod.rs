//! The chaos layer's own checks: its faults are what it says (an injected `Unavailable` left
//! the store unchanged, a lost reply's write happened), at the rates set, the same from the
//! same seed, never on invalid input; and a history through it is still linearizable, which a
//! layer that lied about its faults would not be.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kv_conformance::{Checker, Workload};
use kv_layers::{Around, Call, Chaos, LayerExt};
use kv_memory::MemoryBackend;
use kv_trait::{KvBackend, KvError, WatchEvent};

/// What each of `calls` sequential calls answered: `ok`, `unavailable` or `lost`.
async fn outcomes(chaos: Chaos, calls: usize) -> Vec<&'static str> {
    let store = MemoryBackend::new().with(chaos);
    let mut seen = Vec::with_capacity(calls);
    for i in 0..calls {
        let key = format!("k{}", i % 7);
        let outcome = match i % 3 {
            0 => store.get(&key).await.map(drop),
            1 => store.set(&key, b"v").await,
            _ => store.increment(&format!("n{i}"), 1).await.map(drop),
        };
        seen.push(match outcome {
            Ok(()) => "ok",
            Err(err) if err.is_not_sent() => "unavailable",
            Err(err) if err.is_retryable() => "lost",
            Err(err) => panic!("call {i}: {err}"),
        });
    }
    seen
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let chaos = |seed| Chaos::new(seed).unavailable(0.2).lost_reply(0.2);
    let first = outcomes(chaos(42), 300).await;
    assert_eq!(first, outcomes(chaos(42), 300).await);
    assert_ne!(first, outcomes(chaos(43), 300).await);
    assert!(first.contains(&"unavailable") && first.contains(&"lost"));
}

#[tokio::test]
async fn faults_come_at_the_rates_set() {
    let chaos = Chaos::new(5).unavailable(0.1).lost_reply(0.25);
    let seen = outcomes(chaos, 9_000).await;
    let share = |what| seen.iter().filter(|o| **o == what).count() as f64 / seen.len() as f64;
    // 9,000 calls: a binomial share is within ±1.5 points of its rate with certainty for all
    // practical purposes (more than 4 standard deviations).
    assert!(
        (share("unavailable") - 0.1).abs() < 0.015,
        "{}",
        share("unavailable")
    );
    // Lost replies: 25% of the writes (two thirds of the calls) that were not failed first.
    let lost = 0.25 * (2.0 / 3.0) * 0.9;
    assert!((share("lost") - lost).abs() < 0.015, "{}", share("lost"));
}

#[tokio::test]
async fn an_injected_unavailable_changes_nothing_and_a_lost_reply_changes_the_store() {
    let store = MemoryBackend::new();
    store.set("k", b"before").await.unwrap();
    let failing = store.clone().with(Chaos::new(1).unavailable(1.0));
    for _ in 0..3 {
        assert!(failing.set("k", b"after").await.unwrap_err().is_not_sent());
        assert!(failing.increment("n", 1).await.unwrap_err().is_not_sent());
        assert!(failing.delete("k").await.unwrap_err().is_not_sent());
    }
    assert_eq!(store.get("k").await.unwrap(), Some(b"before".to_vec()));
    assert!(!store.exists("n").await.unwrap());
    assert_eq!(failing.layer().stats().unavailable, 9);

    let losing = store.clone().with(Chaos::new(1).lost_reply(1.0));
    assert!(losing.increment("n", 4).await.is_err());
    assert!(losing
        .compare_and_swap("k", Some(b"before"), b"swapped")
        .await
        .is_err());
    // Reads are never lost: they change nothing.
    assert_eq!(losing.get("n").await.unwrap(), Some(b"4".to_vec()));
    assert_eq!(store.get("k").await.unwrap(), Some(b"swapped".to_vec()));
    assert_eq!(losing.layer().stats().lost_replies, 2);
}

#[tokio::test]
async fn invalid_input_gets_the_contracts_error_never_a_fault() {
    let store = MemoryBackend::new().with(Chaos::new(1).unavailable(1.0).lost_reply(1.0));
    let max = store.capabilities().max_value_bytes;
    let oversize = vec![0u8; max + 1];
    assert!(matches!(store.get("").await, Err(KvError::InvalidKey(_))));
    assert!(matches!(
        store.set("k", &oversize).await,
        Err(KvError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        store.set_with_ttl("k", b"v", 0).await,
        Err(KvError::InvalidTtl(0))
    ));
    assert!(matches!(
        store.set_many(&[("k", b"v"), ("", b"v")], None).await,
        Err(KvError::InvalidKey(_))
    ));
    // An empty batch never reaches a store, so it cannot fail there.
    assert_eq!(store.delete_many(&[]).await.unwrap(), 0);
    assert_eq!(store.layer().stats().calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_through_chaos_is_linearizable() {
    let store = MemoryBackend::new().with(Chaos::new(9).unavailable(0.15).lost_reply(0.15));
    let chaos = store.layer().clone();
    let history = Workload::new()
        .tasks(8)
        .steps_per_task(60)
        .seed(9)
        .run(Arc::new(store))
        .await;
    let stats = chaos.stats();
    assert!(
        stats.unavailable > 10 && stats.lost_replies > 10,
        "{stats:?}"
    );
    let result = Checker::new().check(&history);
    assert!(result.is_linearizable(), "{result}");
}

/// A broken fault layer: it says a fifth of the writes were never sent, though they were.
#[derive(Debug, Default)]
struct ClaimsWritesUnsent(AtomicU64);

impl Around for ClaimsWritesUnsent {
    async fn around<'a, T, F, Fut>(&'a self, call: Call<'a>, mut run: F) -> Result<T, KvError>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, KvError>> + Send + 'a,
    {
        let outcome = run().await;
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        if outcome.is_ok() && call.operation().is_write() && n.is_multiple_of(5) {
            return Err(KvError::not_sent("never sent, it claims"));
        }
        outcome
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_that_lies_about_its_faults_is_caught() {
    let store = MemoryBackend::new().with(ClaimsWritesUnsent::default());
    let history = Workload::new()
        .tasks(6)
        .steps_per_task(60)
        .seed(3)
        .run(Arc::new(store))
        .await;
    let result = Checker::new().check(&history);
    assert!(!result.is_linearizable(), "{result}");
    assert!(result.violation().is_some(), "{result}");
}

#[tokio::test]
async fn lost_watch_events_become_lagged_and_the_rest_stay_in_order() {
    use futures::StreamExt;

    let store = MemoryBackend::new().with(Chaos::new(11).lagged(0.3));
    let mut events = store.watch("k/").await.unwrap();
    let written: Vec<String> = (0..1_000).map(|i| format!("k/{i:04}")).collect();
    for key in &written {
        store.set(key, b"v").await.unwrap();
    }
    let mut heard = Vec::new();
    let mut lagged = 0;
    for _ in 0..written.len() {
        match events.next().await.expect("the stream goes on") {
            WatchEvent::Lagged => lagged += 1,
            event => heard.push(event.key().unwrap_or_default().to_owned()),
        }
    }
    // One event in, one event out: each lost one is a `Lagged` in its place.
    assert_eq!(heard.len() + lagged, written.len());
    assert_eq!(store.layer().stats().lagged, lagged as u64);
    assert!(
        (230..=370).contains(&lagged),
        "{lagged} of 1,000 lost at a rate of 0.3"
    );
    // What was not lost arrives in order.
    let mut rest = written.iter();
    assert!(heard.iter().all(|key| rest.any(|w| w == key)));
}
