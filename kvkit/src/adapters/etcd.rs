//! `etcd://`: kv-etcd.

use kv_etcd::EtcdBackendBuilder;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

pub(super) const ADAPTER: Adapter = Adapter {
    scheme: "etcd",
    validate: |url| EtcdBackendBuilder::from_url(url).map(drop),
    open: |url, namespace| Box::pin(open(url, namespace)),
    shared: |_| true,
};

async fn open(url: String, namespace: String) -> Result<Opened, KvError> {
    let store = EtcdBackendBuilder::from_url(&url)?
        .namespace(namespace)
        .build()
        .await?;
    Ok(opened(store))
}
