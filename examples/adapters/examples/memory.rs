//! kv-memory: `cargo run -p kvkit-examples --example memory`.

use std::process::ExitCode;

use kv_memory::MemoryBackend;
use kv_trait::{KvBackend, KvError};

async fn run() -> Result<(), KvError> {
    let store = MemoryBackend::new(); // or MemoryBackend::builder().shards(64).build()?

    store.set("greeting", b"hello").await?;
    let greeting = store.get("greeting").await?;
    store
        .set_with_ttl("session:42", b"token", 30_000_000_000)
        .await?; // 30 s
    let visits = store.increment("visits", 1).await?;
    let leader = store.compare_and_swap("leader", None, b"node-a").await?;
    let keys = store.list_keys("").await?;

    println!(
        "get(greeting)       = {:?}",
        greeting.as_deref().map(String::from_utf8_lossy)
    );
    println!("increment(visits)   = {visits}");
    println!("became the leader   = {leader}");
    println!("list_keys(\"\")       = {keys:?}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    kvkit_examples::finish(run().await, "the in-memory store", "")
}
