//! `rocksdb://PATH`: kv-rocksdb. Opens of one path in this process share the database.

use kv_rocksdb::RocksDbBackendBuilder;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

pub(super) const ADAPTER: Adapter = Adapter {
    scheme: "rocksdb",
    validate: |url| RocksDbBackendBuilder::from_url(url).map(drop),
    open: |url, namespace| Box::pin(open(url, namespace)),
    shared: |_| true,
};

async fn open(url: String, namespace: String) -> Result<Opened, KvError> {
    let store = RocksDbBackendBuilder::from_url(&url)?
        .namespace(namespace)
        .build()
        .await?;
    Ok(opened(store))
}
