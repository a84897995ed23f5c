//! What do striped key locks buy? Tasks incrementing distinct keys through one database, with
//! one lock for every key versus the default 1024 stripes.
//!
//! `cargo run --release -p kv-rocksdb --example lock_stripes`
//!
//! Prints the median of five rounds for each configuration, and their ratio.

#![allow(
    clippy::disallowed_methods,
    reason = "the example times itself; no store decision reads this clock"
)]

use std::time::{Duration, Instant};

use kv_rocksdb::RocksDbBackend;
use kv_trait::KvBackend;

const TASKS: usize = 8;
const OPS_PER_TASK: usize = 2_000;
const ROUNDS: usize = 5;

async fn round(store: &RocksDbBackend) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..OPS_PER_TASK {
                    store
                        .increment(&format!("t{task}-k{}", i % 64), 1)
                        .await
                        .expect("increment");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    started.elapsed()
}

async fn median_ops_per_sec(stripes: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RocksDbBackend::builder(dir.path())
        .lock_stripes(stripes)
        .build()
        .await
        .expect("open");
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        times.push(round(&store).await);
    }
    times.sort();
    (TASKS * OPS_PER_TASK) as f64 / times[ROUNDS / 2].as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let global = median_ops_per_sec(1).await;
    let striped = median_ops_per_sec(1024).await;
    println!(
        "{TASKS} tasks x {OPS_PER_TASK} increments on distinct keys, median of {ROUNDS} rounds"
    );
    println!("1 lock:       {global:>9.0} ops/s");
    println!(
        "1024 stripes: {striped:>9.0} ops/s  ({:.2}x)",
        striped / global
    );
}
