//! `sqlite://PATH` and `sqlite::memory:`: kv-sqlite.

use kv_sqlite::SqliteBackendBuilder;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

pub(super) const ADAPTER: Adapter = Adapter {
    scheme: "sqlite",
    validate: |url| SqliteBackendBuilder::from_url(url).map(drop),
    open: |url, namespace| Box::pin(open(url, namespace)),
    shared: |url| !url.to_ascii_lowercase().starts_with("sqlite::memory:"),
};

async fn open(url: String, namespace: String) -> Result<Opened, KvError> {
    let store = SqliteBackendBuilder::from_url(&url)?
        .namespace(namespace)
        .build()
        .await?;
    Ok(opened(store))
}
