//! kv-redis, one server: `cargo run -p kvkit-examples --example redis [URL]` (else
//! `KV_REDIS_URL`, else `redis://127.0.0.1:6379`).

use std::process::ExitCode;

use kv_redis::RedisBackend;
use kv_trait::KvError;

async fn run(url: &str) -> Result<(), KvError> {
    let store = RedisBackend::builder(url)?
        .namespace("kvkit-example")
        .build()
        .await?; // or RedisBackend::from_url("redis://host:6379/0?namespace=kvkit-example")

    kvkit_examples::tour(&store).await?;
    println!("look inside: redis-cli --scan --pattern 'kvkit-example:*'");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = kvkit_examples::address("KV_REDIS_URL", "redis://127.0.0.1:6379");
    kvkit_examples::finish(
        run(&url).await,
        &format!("Redis at {url}"),
        "Start one (`redis-server --port 6379`, or `docker run -p 6379:6379 redis:7.4`) or pass \
         its URL as the first argument or in KV_REDIS_URL.",
    )
}
