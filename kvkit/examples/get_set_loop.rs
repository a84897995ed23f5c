//! The simplest throughput figure: one task, `set` then `get` of the same key, in a loop.
//!
//! `cargo run --release -p kvkit --example get_set_loop -- [URL] [OPS_PER_ROUND]`
//!
//! Without a URL it uses an SQLite file in a temporary directory. It runs seven rounds and
//! prints the median round's throughput for each operation (absolute numbers on a shared
//! machine are noisy; compare medians from one run). `kvkit bench` is the real benchmark.

use std::time::{Duration, Instant};

const ROUNDS: usize = 7;

#[tokio::main]
async fn main() -> Result<(), kvkit::KvError> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir().map_err(kvkit::KvError::backend)?;
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("loop.db").display()));
    let ops: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(2_000);
    let store = kvkit::open(&url).await?;
    let value = vec![b'v'; 100];
    let (mut sets, mut gets) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..ops {
            store.set(&format!("key-{}", i % 100), &value).await?;
        }
        sets.push(started.elapsed());
        let started = Instant::now();
        for i in 0..ops {
            store.get(&format!("key-{}", i % 100)).await?;
        }
        gets.push(started.elapsed());
    }
    println!("{url}: {ops} ops per round, {ROUNDS} rounds, 100-byte values, one task");
    for (name, mut times) in [("set", sets), ("get", gets)] {
        times.sort();
        let median: Duration = times[ROUNDS / 2];
        let per_op = median / ops;
        println!(
            "{name}: median {:>9.0} ops/s ({per_op:?} per op)",
            f64::from(ops) / median.as_secs_f64()
        );
    }
    Ok(())
}
