//! Raw aws-sdk-dynamodb: `GetItem` (strongly consistent, as the adapter reads), `PutItem`,
//! `UpdateItem ADD` and a conditional `PutItem`, on items of a partition of the run's own in
//! the adapter's table; and the interceptor that counts every request both sides send.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::{BoxError, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use kv_dynamodb::{DynamoDbBackend, DynamoDbBackendBuilder};
use kv_trait::{KvBackend, KvError};

use crate::cli::bench::driver::Driver;
use crate::cli::bench::requests::RequestCounts;

/// Counts every request a client transmits (retries included) into [`RequestCounts`].
#[derive(Debug)]
struct Counter(RequestCounts);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "kvkit bench request counter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.count();
        Ok(())
    }
}

/// `client` with `counts` counting its requests.
fn counted(client: &Client, counts: &RequestCounts) -> Client {
    let config = client
        .config()
        .to_builder()
        .interceptor(Counter(counts.clone()))
        .build();
    Client::from_conf(config)
}

/// The adapter for `url` in `namespace`, opened as the URL says, with its requests counted
/// into `counts`.
pub(crate) async fn counted_adapter(
    url: &str,
    namespace: &str,
    counts: &RequestCounts,
) -> Result<DynamoDbBackend, KvError> {
    let plain = DynamoDbBackendBuilder::from_url(url)?
        .namespace(namespace)
        .build()
        .await?;
    // The table was checked (or created) just now: the counted client sends only the
    // workload's requests.
    DynamoDbBackendBuilder::from_url(url)?
        .namespace(namespace)
        .client(counted(plain.client(), counts))
        .create_table(false)
        .manage_ttl(false)
        .verify_table(false)
        .build()
        .await
}

/// The raw DynamoDB side: a client and the partition its items live in.
pub(crate) struct RawDynamoDb {
    client: Client,
    table: String,
    partition: String,
}

const PARTITION_KEY: &str = "pk";
const SORT_KEY: &str = "sk";
const VALUE: &str = "v";
const COUNTER: &str = "n";

impl RawDynamoDb {
    /// A client configured as the adapter's for `url` (whose table must exist), counting its
    /// requests into `counts`.
    pub(crate) async fn open(
        url: &str,
        run_id: &str,
        counts: &RequestCounts,
    ) -> Result<Self, KvError> {
        let adapter = DynamoDbBackendBuilder::from_url(url)?.build().await?;
        Ok(Self {
            client: counted(adapter.client(), counts),
            table: adapter.table().to_owned(),
            partition: format!("kvkit-bench-raw#{run_id}"),
        })
    }

    fn item_key(&self, key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                PARTITION_KEY.to_owned(),
                AttributeValue::S(self.partition.clone()),
            ),
            (SORT_KEY.to_owned(), AttributeValue::S(key.to_owned())),
        ])
    }

    fn item(&self, key: &str, value: &[u8]) -> HashMap<String, AttributeValue> {
        let mut item = self.item_key(key);
        item.insert(VALUE.to_owned(), AttributeValue::B(Blob::new(value)));
        item
    }
}

impl Driver for RawDynamoDb {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.item_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(KvError::backend)?;
        Ok(output
            .item
            .and_then(|mut item| item.remove(VALUE))
            .and_then(|value| value.as_b().ok().map(|blob| blob.as_ref().to_vec())))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(key, value)))
            .send()
            .await
            .map_err(KvError::backend)?;
        Ok(())
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.item_key(key)))
            .update_expression("ADD #n :delta")
            .expression_attribute_names("#n", COUNTER)
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(KvError::backend)?;
        output
            .attributes
            .and_then(|mut attributes| attributes.remove(COUNTER))
            .and_then(|n| n.as_n().ok().and_then(|n| n.parse().ok()))
            .ok_or_else(|| KvError::backend("UpdateItem returned no counter"))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(key, new)));
        let put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#sk)")
                .expression_attribute_names("#sk", SORT_KEY),
            Some(expected) => put
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", VALUE)
                .expression_attribute_values(":expected", AttributeValue::B(Blob::new(expected))),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(err) => Err(KvError::backend(err)),
        }
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, keys: Vec<String>) -> Result<(), KvError> {
        for key in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(self.item_key(&key)))
                .send()
                .await
                .map_err(KvError::backend)?;
        }
        Ok(())
    }
}
