//! How soon a watcher hears a write: `cargo run --release -p kvkit-examples --example
//! watch_latency URL [WRITES]` (default `memory://`, 2,000 writes).
//!
//! One task writes keys one after another; a watcher subscribed before them records when each
//! change arrives. Printed: the delay from the write's acknowledgement to the event (p50, p99,
//! max), the delay from the write's start, whether every change arrived once, and whether all
//! arrived in the order written (promised per key only: a cluster's primaries may interleave).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kv_trait::{KvError, WatchEvent};

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn run(url: &str, writes: usize) -> Result<(), KvError> {
    let target = kvkit::Target::parse(url)?;
    let store = target.open().await?;
    // Shown with any password replaced.
    let url = target.to_string();
    let prefix = format!("watch-latency-{}/", std::process::id());
    let mut events = store.watch(&prefix).await?;
    let listener = tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(writes);
        while arrivals.len() < writes {
            match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
                Ok(Some(event)) => arrivals.push((Instant::now(), event)),
                _ => break,
            }
        }
        arrivals
    });
    let mut sent = Vec::with_capacity(writes);
    let value = vec![b'v'; 100];
    for i in 0..writes {
        let key = format!("{prefix}{i:06}");
        let started = Instant::now();
        store.set(&key, &value).await?;
        sent.push((started, Instant::now(), key));
        // An in-process store answers without ever waiting: let the watcher's task run, as a
        // writer that does anything else between writes would.
        tokio::task::yield_now().await;
    }
    let arrivals = listener.await.map_err(KvError::backend)?;
    // Each key is written once, so each must be heard once. The contract orders each key's
    // changes, not different keys': a cluster may deliver one primary's changes before
    // another's that came first, so the order of all of them is shown, not required.
    let written: std::collections::HashMap<&str, (Instant, Instant)> = sent
        .iter()
        .map(|(started, acked, key)| (key.as_str(), (*started, *acked)))
        .collect();
    let mut heard = std::collections::HashSet::new();
    let mut after_ack = Vec::with_capacity(arrivals.len());
    let mut after_start = Vec::with_capacity(arrivals.len());
    for (at, event) in &arrivals {
        let Some(&(started, acked)) = event.key().and_then(|key| written.get(key)) else {
            continue;
        };
        heard.insert(event.key());
        after_ack.push(at.saturating_duration_since(acked));
        after_start.push(at.saturating_duration_since(started));
    }
    let each_once = arrivals.len() == writes && heard.len() == writes;
    let in_write_order = each_once
        && arrivals.iter().zip(&sent).all(
            |((_, event), (_, _, key))| matches!(event, WatchEvent::Set { key: k, .. } if k == key),
        );
    after_ack.sort();
    after_start.sort();
    let keys: Vec<&str> = sent.iter().map(|(_, _, key)| key.as_str()).collect();
    for chunk in keys.chunks(500) {
        store.delete_many(chunk).await?;
    }
    if after_ack.is_empty() {
        println!("{url}: no event arrived");
        return Ok(());
    }
    println!(
        "{url}: {} of {writes} changes heard, each once: {each_once}, all in write order: \
         {in_write_order}",
        arrivals.len()
    );
    println!(
        "  after the write returned: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&after_ack, 0.5),
        percentile(&after_ack, 0.99),
        after_ack[after_ack.len() - 1]
    );
    println!(
        "  after the write began:    p50 {:?}, p99 {:?}",
        percentile(&after_start, 0.5),
        percentile(&after_start, 0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".to_owned());
    let writes = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let shown = kvkit::Target::parse(&url).map_or_else(|_| "the URL".to_owned(), |t| t.to_string());
    kvkit_examples::finish(
        run(&url, writes).await,
        &shown,
        "Pass the URL of a store whose watch is served (memory, SQLite, RocksDB, etcd, \
         PostgreSQL or Redis with watch=true).",
    )
}
