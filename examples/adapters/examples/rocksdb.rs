//! kv-rocksdb: `cargo run -p kvkit-examples --example rocksdb [PATH]` (default: the directory
//! `kvkit-example-rocksdb` in the temporary directory). Run it twice: the counter survives.

use std::process::ExitCode;

use kv_rocksdb::RocksDbBackend;
use kv_trait::{KvBackend, KvError};

async fn run(path: &str) -> Result<(), KvError> {
    let store = RocksDbBackend::builder(path)
        .namespace("kvkit-example")
        .build()
        .await?; // or RocksDbBackend::from_url("rocksdb:///PATH?namespace=kvkit-example")

    store.set("greeting", b"hello").await?;
    let greeting = store.get("greeting").await?;
    store
        .set_with_ttl("session:42", b"token", 30_000_000_000)
        .await?; // 30 s
    let visits = store.increment("visits", 1).await?;
    let leader = store.compare_and_swap("leader", None, b"node-a").await?;
    let keys = store.list_keys("").await?;

    println!("store               = {path}");
    println!(
        "get(greeting)       = {:?}",
        greeting.as_deref().map(String::from_utf8_lossy)
    );
    println!("increment(visits)   = {visits} (run me again)");
    println!("became the leader   = {leader}");
    println!("list_keys(\"\")       = {keys:?}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let default = std::env::temp_dir().join("kvkit-example-rocksdb");
    let path = kvkit_examples::address("KV_EXAMPLE_ROCKSDB_PATH", &default.to_string_lossy());
    kvkit_examples::finish(run(&path).await, &path, "")
}
