//! Does sharding matter? Many tasks on a multi-threaded runtime doing `increment` on distinct
//! keys, with one shard (one global lock) versus the default 32.
//!
//! `cargo run --release -p kv-memory --example shard_contention`
//!
//! Prints the median of seven rounds for each configuration, and their ratio.

#![allow(
    clippy::disallowed_methods,
    reason = "the example times itself; no store decision reads this clock"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_memory::MemoryBackend;
use kv_trait::KvBackend;

const TASKS: usize = 8;
const OPS_PER_TASK: usize = 20_000;
const ROUNDS: usize = 7;

async fn round(store: Arc<MemoryBackend>) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..OPS_PER_TASK {
                    let key = format!("t{task}-k{}", i % 64);
                    store.increment(&key, 1).await.expect("increment");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    started.elapsed()
}

async fn median_ops_per_sec(shards: usize) -> f64 {
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let store = MemoryBackend::builder()
            .shards(shards)
            .build()
            .expect("store");
        times.push(round(Arc::new(store)).await);
    }
    times.sort();
    (TASKS * OPS_PER_TASK) as f64 / times[ROUNDS / 2].as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let one = median_ops_per_sec(1).await;
    let sharded = median_ops_per_sec(32).await;
    println!(
        "{TASKS} tasks x {OPS_PER_TASK} increments on distinct keys, median of {ROUNDS} rounds"
    );
    println!("1 shard:   {one:>10.0} ops/s");
    println!("32 shards: {sharded:>10.0} ops/s  ({:.2}x)", sharded / one);
}
