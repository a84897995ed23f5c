//! `dynamodb://TABLE`: kv-dynamodb (region and credentials from the URL or the AWS chain).

use kv_dynamodb::DynamoDbBackendBuilder;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

pub(super) const ADAPTER: Adapter = Adapter {
    scheme: "dynamodb",
    validate: |url| DynamoDbBackendBuilder::from_url(url).map(drop),
    open: |url, namespace, create| Box::pin(open(url, namespace, create)),
    shared: |_| true,
};

async fn open(url: String, namespace: String, create_missing: bool) -> Result<Opened, KvError> {
    let mut builder = DynamoDbBackendBuilder::from_url(&url)?.namespace(namespace);
    if create_missing {
        builder = builder.create_table(true);
    }
    let store = builder.build().await?;
    let max_value_bytes = store.max_value_bytes();
    Ok(opened(store, max_value_bytes))
}
