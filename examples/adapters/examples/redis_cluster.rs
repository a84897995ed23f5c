//! kv-redis on a Redis Cluster: `cargo run -p kvkit-examples --example redis_cluster [URL]`
//! (else `KV_REDIS_CLUSTER_URL`, else `redis+cluster://127.0.0.1:7000`). Any node(s) of the
//! cluster will do: the client learns the others.

use std::process::ExitCode;

use kv_redis::RedisBackend;
use kv_trait::KvError;

async fn run(url: &str) -> Result<(), KvError> {
    let store = RedisBackend::builder(url)?
        .namespace("kvkit-example")
        .build()
        .await?; // or RedisBackend::from_url("redis+cluster://h1:7000,h2:7000?namespace=kvkit-example")

    kvkit_examples::tour(&store).await?;
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
