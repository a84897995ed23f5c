//! Layers around a Redis store: a timeout on each attempt, retries, and metrics, printed at
//! the end. `cargo run -p kvkit-examples --example layers [URL]` (else `KV_REDIS_URL`, else
//! `redis://127.0.0.1:6379`).
//!
//! So that the retries have something to do, a chaos layer innermost fails one call in five
//! before it reaches Redis (as a refused connection would); the application above the retry
//! layer never sees those failures, and the metrics show both sides.

use std::process::ExitCode;
use std::time::Duration;

use kv_layers::{Chaos, LayerExt, Metrics, Retry, Timeout};
use kv_redis::RedisBackend;
use kv_trait::{KvBackend, KvError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

async fn run(url: &str, snapshotter: &Snapshotter) -> Result<(), KvError> {
    let redis = RedisBackend::builder(url)?
        .namespace("kvkit-example")
        .build()
        .await?;
    let store = redis
        .with(Metrics::new("redis")) // what reaches Redis
        .with(Chaos::new(7).unavailable(0.2)) // simulated refusals, for the demonstration
        .with(Timeout::new(Duration::from_millis(500))) // each attempt
        .with(
            Retry::new(4)
                .budget(Duration::from_secs(3))
                .on_retry(|event| {
                    println!(
                        "  retry {} of {} after {:?}: {}",
                        event.attempt, event.operation, event.backoff, event.error
                    );
                }),
        )
        .with(Metrics::new("app")); // what the application sees

    for i in 0..20 {
        store.set(&format!("user/{i}"), b"ada").await?;
        store.increment("visits", 1).await?;
    }
    let users = store.list_keys("user/").await?;
    println!(
        "{} users, {:?} visits",
        users.len(),
        store.get("visits").await?
    );
    store
        .delete_many(&users.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;

    println!("\nstore  operation         outcome      calls   p50 (µs)   p99 (µs)");
    print_metrics(snapshotter);
    Ok(())
}

/// The counters of the run, each with the latencies of its store and operation.
fn print_metrics(snapshotter: &Snapshotter) {
    let mut counts = Vec::new();
    let mut durations = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|label| label.key() == name)
                .map_or_else(String::new, |label| label.value().to_owned())
        };
        let (store, operation) = (label("store"), label("operation"));
        match value {
            DebugValue::Counter(n) => counts.push((store, operation, label("outcome"), n)),
            DebugValue::Histogram(mut samples) => {
                samples.sort();
                let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].into_inner();
                durations.insert((store, operation), (at(0.5) * 1e6, at(0.99) * 1e6));
            }
            DebugValue::Gauge(_) => {}
        }
    }
    counts.sort();
    for (store, operation, outcome, n) in counts {
        let (p50, p99) = durations
            .get(&(store.clone(), operation.clone()))
            .copied()
            .unwrap_or_default();
        println!("{store:<6} {operation:<17} {outcome:<12} {n:>5} {p50:>10.0} {p99:>10.0}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    if recorder.install().is_err() {
        eprintln!("another metrics recorder is installed already");
        return ExitCode::FAILURE;
    }
    let url = kvkit_examples::address("KV_REDIS_URL", "redis://127.0.0.1:6379");
    kvkit_examples::finish(
        run(&url, &snapshotter).await,
        &format!("Redis at {url}"),
        "Start one (`redis-server --port 6379`, or `docker run -p 6379:6379 redis:7.4`) or pass \
         its URL as the first argument or in KV_REDIS_URL.",
    )
}
