//! kv-redis on a Redis Cluster: `cargo run -p kvkit-examples --example redis_cluster [URL]`
//! (else `KV_REDIS_CLUSTER_URL`, else `redis+cluster://127.0.0.1:7000`). Any node(s) of the
//! cluster will do: the client learns the others.

use std::process::ExitCode;

use kv_redis::RedisBackend;
use kv_trait::{KvBackend, KvError};

async fn run(url: &str) -> Result<(), KvError> {
    let store = RedisBackend::builder(url)?
        .namespace("kvkit-example")
        .build()
        .await?; // or RedisBackend::from_url("redis+cluster://h1:7000,h2:7000?namespace=kvkit-example")

    store.set("greeting", b"hello").await?;
    let greeting = store.get("greeting").await?;
    store
        .set_with_ttl("session:42", b"token", 30_000_000_000)
        .await?; // 30 s
    let visits = store.increment("visits", 1).await?;
    let leader = store.compare_and_swap("leader", None, b"node-a").await?;
    let keys = store.list_keys("").await?; // scans every primary

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
    let url = kvkit_examples::address("KV_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:7000");
    kvkit_examples::finish(
        run(&url).await,
        &format!("the Redis Cluster at {url}"),
        "Start one (e.g. `docker run --network host grokzen/redis-cluster:7.0.10`, nodes on \
         7000-7005) or pass its URL as the first argument or in KV_REDIS_CLUSTER_URL.",
    )
}
