//! `sqlite://PATH` and `sqlite::memory:`: kv-sqlite.

use std::sync::Arc;

use kv_sqlite::SqliteBackendBuilder;
use kv_trait::KvError;

use super::{Adapter, Opened, MILLISECOND};
use crate::StoreInfo;

pub(super) const ADAPTER: Adapter = Adapter {
    scheme: "sqlite",
    validate: |url| SqliteBackendBuilder::from_url(url).map(drop),
    open: |url, namespace, _| Box::pin(open(url, namespace)),
    shared: |url| !url.to_ascii_lowercase().starts_with("sqlite::memory:"),
};

async fn open(url: String, namespace: String) -> Result<Opened, KvError> {
    let store = SqliteBackendBuilder::from_url(&url)?
        .namespace(namespace)
        .build()
        .await?;
    let info = StoreInfo {
        max_value_bytes: store.max_value_bytes(),
        ttl_granularity: MILLISECOND,
    };
    Ok((Arc::new(store), info))
}
