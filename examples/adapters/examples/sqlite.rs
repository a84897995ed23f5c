//! kv-sqlite: `cargo run -p kvkit-examples --example sqlite [PATH]` (default: `kvkit-example.db`
//! in the temporary directory). Run it twice: the counter survives.

use std::process::ExitCode;

use kv_sqlite::SqliteBackend;
use kv_trait::{KvBackend, KvError};

async fn run(path: &str) -> Result<(), KvError> {
    let url = format!("sqlite://{path}?namespace=kvkit-example");
    let store = SqliteBackend::from_url(&url).await?;

    store.set("greeting", b"hello").await?;
    let greeting = store.get("greeting").await?;
    store
        .set_with_ttl("session:42", b"token", 30_000_000_000)
        .await?; // 30 s
    let visits = store.increment("visits", 1).await?;
    let leader = store.compare_and_swap("leader", None, b"node-a").await?;
    let keys = store.list_keys("").await?;

    println!("store               = {url}");
    println!(
        "get(greeting)       = {:?}",
        greeting.as_deref().map(String::from_utf8_lossy)
    );
    println!("increment(visits)   = {visits} (run me again)");
    println!("became the leader   = {leader}");
    println!("list_keys(\"\")       = {keys:?}");
    println!("look inside: sqlite3 {path} \"SELECT namespace, CAST(key AS TEXT), CAST(value AS TEXT), expires_at FROM kv_entries\"");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let default = std::env::temp_dir().join("kvkit-example.db");
    let path = kvkit_examples::address("KV_EXAMPLE_SQLITE_PATH", &default.to_string_lossy());
    kvkit_examples::finish(run(&path).await, &path, "")
}
