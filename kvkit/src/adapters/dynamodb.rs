//! `dynamodb://TABLE`: kv-dynamodb (region and credentials from the URL or the AWS chain).

use kv_dynamodb::DynamoDbBackendBuilder;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

pub(super) const ADAPTER: Adapter = Adapter {
    scheme: "dynamodb",
    validate: |url| DynamoDbBackendBuilder::from_url(url).map(drop),
    open: |url, namespace| Box::pin(open(url, namespace)),
    shared: |_| true,
};

/// Exactly what the URL says: the table is created, and its TTL deletion turned on, only with
/// `create_table=true` and `manage_ttl=true` (least privilege by default).
async fn open(url: String, namespace: String) -> Result<Opened, KvError> {
    let store = DynamoDbBackendBuilder::from_url(&url)?
        .namespace(namespace)
        .build()
        .await?;
    Ok(opened(store))
}
