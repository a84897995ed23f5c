//! `redis://`, `rediss://`, `redis+cluster://` and `rediss+cluster://`: kv-redis.

use kv_redis::RedisBackendBuilder;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

const fn for_scheme(scheme: &'static str) -> Adapter {
    Adapter {
        scheme,
        validate: |url| RedisBackendBuilder::from_url(url).map(drop),
        open: |url, namespace| Box::pin(open(url, namespace)),
        shared: |_| true,
    }
}

pub(super) const ADAPTERS: [Adapter; 4] = [
    for_scheme("redis"),
    for_scheme("rediss"),
    for_scheme("redis+cluster"),
    for_scheme("rediss+cluster"),
];

async fn open(url: String, namespace: String) -> Result<Opened, KvError> {
    let store = RedisBackendBuilder::from_url(&url)?
        .namespace(namespace)
        .build()
        .await?;
    Ok(opened(store))
}
