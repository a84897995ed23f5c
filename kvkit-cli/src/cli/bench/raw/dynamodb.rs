//! Raw aws-sdk-dynamodb: `GetItem` (strongly consistent, as the adapter reads), `PutItem`,
//! `UpdateItem ADD` and a conditional `PutItem`, on items of a partition of the run's own in
//! the adapter's table; and the interceptor that counts every request both sides send.
//!
//! Batches are DynamoDB's own: `get_many` one strongly consistent `BatchGetItem` per 100
//! distinct keys (its limit; a key asked twice is asked once, since DynamoDB refuses a
//! repeated key, and answered twice), `set_many` one `BatchWriteItem` of `PutRequest`s per
//! 25 distinct keys (its limit; the last value of a repeated key), the chunks one after
//! another. DynamoDB may leave part of a batch undone (throttling, its size limits) and
//! say so in `UnprocessedKeys` / `UnprocessedItems`: those are resent, after a backoff that
//! doubles from 25 ms up to 1 s, as AWS's guidance for batches says, and the batch fails
//! after 10 resends rather than reporting an unread key as absent or an unwritten item as
//! written. `BatchGetItem` answers items in no particular order: they are matched to the keys
//! asked by their sort key.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::{BoxError, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
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

/// The most keys one `BatchGetItem` may ask for (DynamoDB's limit).
const GET_CHUNK: usize = 100;
/// The most items one `BatchWriteItem` may write (DynamoDB's limit).
const WRITE_CHUNK: usize = 25;
/// The wait before the first resend of unprocessed keys or items; doubled for each further
/// resend of the same chunk, up to [`MAX_RESEND_DELAY`].
const FIRST_RESEND_DELAY: Duration = Duration::from_millis(25);
/// The longest wait between two resends.
const MAX_RESEND_DELAY: Duration = Duration::from_secs(1);
/// Resends of one chunk before the batch fails (about 5 s of waiting in all).
const MAX_RESENDS: u32 = 10;

/// Waits before resend number `*resends` (0 for the first) of a chunk with `left` keys or
/// items still unprocessed, and counts it; fails once the chunk has been resent
/// [`MAX_RESENDS`] times.
async fn pause_before_resend(resends: &mut u32, left: usize, what: &str) -> Result<(), KvError> {
    if *resends == MAX_RESENDS {
        return Err(KvError::unavailable(format!(
            "{what}: {left} still unprocessed after {MAX_RESENDS} resends"
        )));
    }
    let delay = resend_delay(*resends);
    *resends += 1;
    tokio::time::sleep(delay).await;
    Ok(())
}

/// The wait before resend number `resend` (0 for the first) of one chunk.
fn resend_delay(resend: u32) -> Duration {
    FIRST_RESEND_DELAY
        .saturating_mul(2u32.saturating_pow(resend))
        .min(MAX_RESEND_DELAY)
}

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

    /// The values of `keys` (distinct, at most [`GET_CHUNK`]) by key, from one
    /// `BatchGetItem` and a resend of whatever it left unprocessed, until nothing is. Keys
    /// without an item are not in the map.
    async fn batch_get(&self, keys: &[&str]) -> Result<HashMap<String, Vec<u8>>, KvError> {
        let mut found = HashMap::with_capacity(keys.len());
        let mut pending: Vec<HashMap<String, AttributeValue>> =
            keys.iter().map(|key| self.item_key(key)).collect();
        let mut resends = 0;
        loop {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(KvError::backend)?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(KvError::backend)?;
            let items = output
                .responses
                .and_then(|mut tables| tables.remove(&self.table))
                .unwrap_or_default();
            for mut item in items {
                if let (Some(AttributeValue::S(key)), Some(AttributeValue::B(value))) =
                    (item.remove(SORT_KEY), item.remove(VALUE))
                {
                    found.insert(key, value.into_inner());
                }
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
                .map(|unprocessed| unprocessed.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(found);
            }
            pause_before_resend(&mut resends, pending.len(), "BatchGetItem keys").await?;
        }
    }

    /// Writes `entries` (distinct keys, at most [`WRITE_CHUNK`]): one `BatchWriteItem`, and
    /// a resend of whatever it left unprocessed, until nothing is.
    async fn batch_put(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        let mut pending = entries
            .iter()
            .map(|&(key, value)| {
                PutRequest::builder()
                    .set_item(Some(self.item(key, value)))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(KvError::backend)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut resends = 0;
        loop {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(KvError::backend)?;
            pending = output
                .unprocessed_items
                .and_then(|mut tables| tables.remove(&self.table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            pause_before_resend(&mut resends, pending.len(), "BatchWriteItem items").await?;
        }
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

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let distinct: Vec<&str> = keys
            .iter()
            .copied()
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .collect();
        let mut found = HashMap::with_capacity(distinct.len());
        for chunk in distinct.chunks(GET_CHUNK) {
            found.extend(self.batch_get(chunk).await?);
        }
        // Cloned, not moved out: a key asked twice is answered twice.
        Ok(keys.iter().map(|&key| found.get(key).cloned()).collect())
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        for chunk in super::last_of_each_sorted(entries).chunks(WRITE_CHUNK) {
            self.batch_put(chunk).await?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_back_off_up_to_a_second() {
        let delays: Vec<u64> = (0..MAX_RESENDS)
            .map(|resend| resend_delay(resend).as_millis() as u64)
            .collect();
        assert_eq!(delays, [25, 50, 100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(resend_delay(u32::MAX), MAX_RESEND_DELAY);
    }

    #[tokio::test]
    async fn a_chunk_still_unprocessed_after_the_last_resend_fails() {
        let mut resends = MAX_RESENDS;
        let failed = pause_before_resend(&mut resends, 3, "keys").await;
        assert!(matches!(failed, Err(KvError::Unavailable(_))), "{failed:?}");
    }
}
