//! `impl Store for DynamoDbBackend`: (almost always) one request per operation. `kv_trait`
//! validates every input before it gets here.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use futures::{StreamExt, TryStreamExt};
use kv_trait::store::{last_of_each, Key, Store, Ttl, Value};
use kv_trait::{
    apply_increment, async_trait, is_live_at, parse_counter, unix_millis_now, Capabilities,
    KeyPage, KvError, RequestLimit, Sharing, WithinLimit, MAX_KEY_BYTES,
};

use crate::batch::{DELETE_CONCURRENCY, GET_CHUNK, WRITE_CHUNK};
use crate::config::{redact_url, DynamoDbBackendBuilder, DEFAULT_OPERATION_TIMEOUT};
use crate::encoding::{
    self, addable_condition, binary, condition, names, number, Item, Stored, AWS_MAX_VALUE_BYTES,
    COUNTER, DEADLINE, PARTITION_KEY, SORT_KEY, VALUE,
};
use crate::error::{from_sdk, AmbiguousWriteGuard};

/// How many times `increment` tries again when another writer changed the item between its
/// attempts; each round is one or two requests. Reaching it takes a writer that replaces the
/// item with bytes over and over: then `increment` gives up with `Unavailable`.
const INCREMENT_ROUNDS: u32 = 32;

/// How many times a read settles an expired item that keeps being replaced by others that
/// have expired too, before it gives up with `Unavailable` (see `settle`).
const SETTLE_ROUNDS: u32 = 8;

/// A key-value store in one DynamoDB table that keeps the whole kvkit contract.
///
/// Every read is strongly consistent and every conditional write decides liveness inside
/// DynamoDB, so `increment` and `compare_and_swap` are atomic across any number of processes
/// and machines. The crate docs and README describe the item layout and the requests each
/// operation makes.
///
/// Cloning is cheap: clones share the SDK client and its connection pool.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # // The emulator the tests use (skipped without one); on AWS the URL needs no endpoint.
/// # let Some(service) = kv_test_services::dynamodb::endpoint() else { return Ok(()) };
/// # let namespace = format!("doc-{}", std::process::id());
/// # let url = format!("{}&create_table=true", service.url("app-kv", &namespace));
/// use kv_dynamodb::DynamoDbBackend;
/// use kv_trait::KvBackend;
///
/// // e.g. "dynamodb://app-kv?region=eu-west-1&namespace=web&create_table=true"
/// let store = DynamoDbBackend::from_url(&url).await?;
/// store.set_with_ttl("session/42", b"token", 30_000_000_000).await?; // 30 s
/// assert_eq!(store.increment("visits", 1).await?, 1);
/// assert!(store.compare_and_swap("lock", None, b"me").await?);
/// assert_eq!(store.list_keys("").await?, ["lock", "session/42", "visits"]);
/// # for key in ["lock", "session/42", "visits"] { store.delete(key).await?; }
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct DynamoDbBackend {
    shared: Arc<Shared>,
}

struct Shared {
    /// For reads (and table administration): the SDK's retries as configured.
    client: Client,
    /// For every write: none may be repeated blindly (see `error.rs`).
    guarded: Client,
    table: String,
    namespace: String,
    /// `pk` of every item of this namespace.
    partition: AttributeValue,
    max_value_bytes: usize,
    /// The SDK's operation timeout (else the default): it also bounds each chunk of a batch,
    /// resends included (see `batch.rs`).
    operation_timeout: Duration,
    /// One permit per request in flight (`max_concurrent_requests`): each holds an HTTP
    /// connection, and the SDK's pool opens as many as there are requests.
    requests: RequestLimit,
    /// For `Debug` only.
    summary: Summary,
}

/// What `Debug` shows besides table and namespace: nothing secret.
struct Summary {
    region: Option<String>,
    endpoint: Option<String>,
    credentials: &'static str,
    max_attempts: Option<u32>,
    timeouts: [Option<Duration>; 3],
}

impl DynamoDbBackend {
    /// A backend over table `table` through `client`, in the empty namespace.
    ///
    /// The client's configuration is kept (credentials, region, endpoint, interceptors,
    /// retries); timeouts it leaves unset get this crate's defaults. Use
    /// [`DynamoDbBackendBuilder::client`] for a namespace or other settings. Fails with
    /// `InvalidConfig` for an invalid table name or a client without a region.
    ///
    /// ```
    /// use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    ///
    /// let config = aws_sdk_dynamodb::Config::builder()
    ///     .behavior_version(BehaviorVersion::latest())
    ///     .region(Region::new("us-east-1"))
    ///     .endpoint_url("http://127.0.0.1:8000")
    ///     .credentials_provider(Credentials::new("test", "test", None, None, "example"))
    ///     .build();
    /// let client = aws_sdk_dynamodb::Client::from_conf(config);
    /// let store = kv_dynamodb::DynamoDbBackend::from_client(client, "app-kv")?;
    /// assert_eq!(store.table(), "app-kv");
    /// # Ok::<(), kv_trait::KvError>(())
    /// ```
    pub fn from_client(client: Client, table: impl Into<String>) -> Result<Self, KvError> {
        DynamoDbBackendBuilder::new(table)
            .client(client)
            .build_from_client()
    }

    /// Opens the table a `dynamodb://TABLE?region=..&endpoint=..&namespace=..` URL names;
    /// see [`DynamoDbBackendBuilder::from_url`] for every option. Region and credentials not
    /// in the URL come from the standard AWS chain.
    pub async fn from_url(url: &str) -> Result<Self, KvError> {
        DynamoDbBackendBuilder::from_url(url)?.build().await
    }

    /// A builder for table `table`; the same as [`DynamoDbBackendBuilder::new`].
    pub fn builder(table: impl Into<String>) -> DynamoDbBackendBuilder {
        DynamoDbBackendBuilder::new(table)
    }

    pub(crate) fn from_parts(
        config: aws_sdk_dynamodb::Config,
        settings: &DynamoDbBackendBuilder,
    ) -> Result<Self, KvError> {
        let timeouts = config.timeout_config().map_or([None; 3], |t| {
            [
                t.connect_timeout(),
                t.operation_attempt_timeout(),
                t.operation_timeout(),
            ]
        });
        let summary = Summary {
            region: config.region().map(ToString::to_string),
            endpoint: settings.endpoint.as_deref().map(redact_url),
            credentials: settings.credentials_summary(),
            max_attempts: config.retry_config().map(|r| r.max_attempts()),
            timeouts,
        };
        let guarded = Client::from_conf(
            config
                .to_builder()
                .retry_classifier(AmbiguousWriteGuard)
                .build(),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                client: Client::from_conf(config),
                guarded,
                table: settings.table.clone(),
                partition: encoding::partition_key(&settings.namespace),
                namespace: settings.namespace.clone(),
                max_value_bytes: settings.max_value_bytes,
                // A client configured without an operation timeout still gets a bound on the
                // resends of a batch: they would otherwise go on for as long as DynamoDB
                // leaves something unprocessed.
                operation_timeout: timeouts[2].unwrap_or(DEFAULT_OPERATION_TIMEOUT),
                requests: RequestLimit::new(settings.max_concurrent_requests),
                summary,
            }),
        })
    }

    /// The table this backend uses.
    pub fn table(&self) -> &str {
        &self.shared.table
    }

    /// The namespace this backend's keys live in (`""` unless configured).
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The longest value this backend accepts, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    /// The SDK client this backend sends its reads with, for what kvkit does not cover
    /// (backups, metrics, other tables).
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// ` in REGION at ENDPOINT` (the endpoint only when one is configured), for messages
    /// about the table: nothing secret.
    pub(crate) fn location(&self) -> String {
        let summary = &self.shared.summary;
        let mut shown = String::new();
        if let Some(region) = &summary.region {
            shown.push_str(&format!(" in {region}"));
        }
        if let Some(endpoint) = &summary.endpoint {
            shown.push_str(&format!(" at {endpoint}"));
        }
        shown
    }

    pub(crate) fn partition(&self) -> &AttributeValue {
        &self.shared.partition
    }

    /// The places of requests in flight (see [`WithinLimit`]).
    pub(crate) fn request_limit(&self) -> &RequestLimit {
        &self.shared.requests
    }

    /// The client for reads: the SDK's retries as configured.
    pub(crate) fn reader(&self) -> &Client {
        &self.shared.client
    }

    /// The client for writes: resends only requests that were refused unapplied.
    pub(crate) fn writer(&self) -> &Client {
        &self.shared.guarded
    }

    /// What bounds each request, and each chunk of a batch with its resends.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.shared.operation_timeout
    }

    pub(crate) fn primary_key(&self, key: &str) -> Item {
        encoding::primary_key(&self.shared.partition, key)
    }

    /// Writes `item` if `condition` holds; `false` when it did not. One `PutItem`.
    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        attributes: &[&str],
        values: Item,
    ) -> Result<bool, KvError> {
        let result = self
            .shared
            .guarded
            .put_item()
            .table_name(&self.shared.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(attributes)))
            .set_expression_attribute_values(Some(values))
            .send()
            .within(self.request_limit())
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(from_sdk("PutItem", err)),
        }
    }

    /// The item a read found, settled: returned while live; found expired, deleted iff it
    /// still has the deadline it was read with (one conditional `DeleteItem`), else judged
    /// again as it is now. `None`: gone.
    ///
    /// Why: a conditional write is judged on the `:now` its client read just before sending
    /// it. An `increment` or compare-and-swap that judged the item live just before its
    /// deadline may still be on its way; answering "gone" and then letting it apply would not
    /// be linearizable (it took effect while the key was live, before this read). After the
    /// delete, such a write finds the item missing and acts on an absent key; one that
    /// applied first changed or removed the deadline, so the delete's condition fails. An
    /// `increment` keeps the deadline: the delete then removes a counter that has expired
    /// all the same, which is right.
    async fn settle(&self, key: &str, mut item: Item) -> Result<Option<Item>, KvError> {
        for _ in 0..SETTLE_ROUNDS {
            let Some(deadline) = encoding::deadline(&item)? else {
                return Ok(Some(item));
            };
            if is_live_at(deadline, unix_millis_now()) {
                return Ok(Some(item));
            }
            // The plain client, which may resend: deleting on a deadline is idempotent (a
            // resend after the delete applied fails its condition, and then finds no item).
            let result = self
                .shared
                .client
                .delete_item()
                .table_name(&self.shared.table)
                .set_key(Some(self.primary_key(key)))
                .condition_expression(condition::EXPIRED_AT)
                .set_expression_attribute_names(Some(names(&[DEADLINE])))
                .set_expression_attribute_values(Some(Item::from([(
                    ":seen".to_owned(),
                    number(deadline),
                )])))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .within(self.request_limit())
                .await;
            let returned = match result {
                Ok(_) => return Ok(None),
                Err(err) => match err.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item.clone()
                    }
                    _ => return Err(from_sdk("DeleteItem", err)),
                },
            };
            // dynalite does not return the item on a failed condition: read it.
            item = match returned.filter(|item| !item.is_empty()) {
                Some(item) => item,
                None => match self.read_item(key).await? {
                    Some(item) => item,
                    None => return Ok(None),
                },
            };
        }
        Err(KvError::unavailable(format!(
            "a read of {key:?} gave up after {SETTLE_ROUNDS} rounds of items that had expired"
        )))
    }

    /// The whole item, read strongly consistently; `None` when there is none.
    async fn read_item(&self, key: &str) -> Result<Option<Item>, KvError> {
        self.shared
            .client
            .get_item()
            .table_name(&self.shared.table)
            .set_key(Some(self.primary_key(key)))
            .consistent_read(true)
            .send()
            .within(self.request_limit())
            .await
            .map(|output| output.item)
            .map_err(|err| from_sdk("GetItem", err))
    }

    /// `ADD n :delta` if the item is missing or a live counter and the sum stays in range:
    /// `Ok(n + delta)`, or `Err(item)` with the item that blocked it (`None` if DynamoDB did
    /// not return it). One `UpdateItem`.
    async fn add_to_counter(
        &self,
        key: &str,
        delta: i64,
        now_ms: u64,
    ) -> Result<Result<i64, Option<Item>>, KvError> {
        let (condition, limit) = addable_condition(delta);
        let mut values = Item::from([
            (":delta".to_owned(), number(delta)),
            (":now".to_owned(), number(now_ms)),
        ]);
        if let Some(limit) = limit {
            values.insert(":limit".to_owned(), number(limit));
        }
        let result = self
            .shared
            .guarded
            .update_item()
            .table_name(&self.shared.table)
            .set_key(Some(self.primary_key(key)))
            .update_expression("ADD #n :delta")
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(&[SORT_KEY, COUNTER, DEADLINE])))
            .set_expression_attribute_values(Some(values))
            // ALL_NEW, not UPDATED_NEW: `ADD 0` updates nothing, so UPDATED_NEW may omit `n`.
            // A counter item is small (no `v`), so returning all of it costs little.
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .within(self.request_limit())
            .await;
        match result {
            Ok(output) => match output.attributes.as_ref().and_then(|a| a.get(COUNTER)) {
                Some(AttributeValue::N(n)) => match encoding::counter(n) {
                    Ok(n) => Ok(Ok(n)),
                    Err(foreign) => {
                        self.take_back(key, delta, n).await;
                        Err(foreign)
                    }
                },
                _ => Err(KvError::backend(
                    "DynamoDB UpdateItem returned no counter for ReturnValues=ALL_NEW",
                )),
            },
            Err(err) => match err.as_service_error() {
                // The item only comes back on this rare path, so copying it costs little.
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Err(failed.item.clone()))
                }
                _ => Err(from_sdk("UpdateItem", err)),
            },
        }
    }

    /// Undoes an `ADD` of `delta` that gave `sum`, a Number that is no `i64`: the counter was
    /// a fraction another program wrote, which no condition expression can refuse beforehand
    /// (DynamoDB has no test for "integer"). Conditional on the counter still being `sum`, so
    /// it never undoes another writer's change; for a moment the sum was visible. The caller
    /// reports the item as foreign, as `get` does.
    async fn take_back(&self, key: &str, delta: i64, sum: &str) {
        let back = (-i128::from(delta)).to_string();
        let undone = self
            .shared
            .guarded
            .update_item()
            .table_name(&self.shared.table)
            .set_key(Some(self.primary_key(key)))
            .update_expression("ADD #n :back")
            .condition_expression("#n = :sum")
            .set_expression_attribute_names(Some(names(&[COUNTER])))
            .set_expression_attribute_values(Some(Item::from([
                (":back".to_owned(), AttributeValue::N(back)),
                (":sum".to_owned(), AttributeValue::N(sum.to_owned())),
            ])))
            .send()
            .within(self.request_limit())
            .await;
        if let Err(err) = undone {
            tracing::warn!(
                key,
                error = %from_sdk("UpdateItem", err),
                "could not take back an increment of a counter that is not an i64"
            );
        }
    }

    /// Replaces live bytes `current` by counter `next`, keeping the item's TTL. `false` when
    /// the item changed in between. One `UpdateItem`.
    async fn bytes_to_counter(
        &self,
        key: &str,
        current: &[u8],
        next: i64,
        now_ms: u64,
    ) -> Result<bool, KvError> {
        let result = self
            .shared
            .guarded
            .update_item()
            .table_name(&self.shared.table)
            .set_key(Some(self.primary_key(key)))
            .update_expression("SET #n = :next REMOVE #v")
            .condition_expression(condition::HOLDS_BYTES)
            .set_expression_attribute_names(Some(names(&[COUNTER, VALUE, DEADLINE])))
            .set_expression_attribute_values(Some(Item::from([
                (":next".to_owned(), number(next)),
                (":expected".to_owned(), binary(current)),
                (":now".to_owned(), number(now_ms)),
            ])))
            .send()
            .within(self.request_limit())
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(err) => Err(from_sdk("UpdateItem", err)),
        }
    }
}

impl DynamoDbBackend {
    /// A strongly consistent `Query` of this backend's keys and deadlines under
    /// `key_condition` (over `#pk`/`#sk`, with `values`): what `list_keys` and
    /// `list_keys_page` send, each page with its own start and limit.
    fn keys_query(
        &self,
        key_condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.shared
            .client
            .query()
            .table_name(&self.shared.table)
            .consistent_read(true)
            .key_condition_expression(key_condition)
            .projection_expression("#sk, #exp")
            .set_expression_attribute_names(Some(names(&[PARTITION_KEY, SORT_KEY, DEADLINE])))
            .set_expression_attribute_values(Some(values))
    }

    /// One strongly consistent `GetItem` of `key`, projecting `projection` (whose `#names`
    /// stand for `attributes`, in order).
    async fn consistent_get(
        &self,
        key: &str,
        projection: &str,
        attributes: &[&str],
    ) -> Result<Option<HashMap<String, AttributeValue>>, KvError> {
        let output = self
            .shared
            .client
            .get_item()
            .table_name(&self.shared.table)
            .set_key(Some(self.primary_key(key)))
            .consistent_read(true)
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names(attributes)))
            .send()
            .within(self.request_limit())
            .await
            .map_err(|err| from_sdk("GetItem", err))?;
        Ok(output.item)
    }
}

/// Where the clock is read: a read judges liveness by the clock read once the reply is in
/// hand (so an SDK retry's wait cannot leave it stale); a conditional write sends the clock
/// read just before its request, for DynamoDB to compare with the item's deadline.
#[async_trait]
impl Store for DynamoDbBackend {
    const KIND: &'static str = "dynamodb";

    fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    /// The table is shared over the network; batches are DynamoDB's own (`BatchGetItem`,
    /// `BatchWriteItem`, and concurrent `DeleteItem`s: see `remove_many`), not atomic; a
    /// page is one `Query` bounded by its limit.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.shared.max_value_bytes)
            .with_sharing(Sharing::Network)
            .with_native_batches(true)
            .with_native_paging(true)
    }

    fn namespace_name(&self) -> &str {
        &self.shared.namespace
    }

    /// One `GetItem` (strongly consistent, projecting `v`, `n` and `exp`); for an item found
    /// expired, a conditional `DeleteItem` too (see `settle`).
    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
        let item = self
            .consistent_get(&key, "#v, #n, #exp", &[VALUE, COUNTER, DEADLINE])
            .await?;
        let Some(item) = item else {
            return Ok(None);
        };
        match self.settle(&key, item).await? {
            Some(item) => Ok(Some(encoding::stored(&item)?.into_bytes())),
            None => Ok(None),
        }
    }

    /// One unconditional `PutItem` of the whole item (so any TTL or counter goes), with `exp`
    /// and `ttl` for a TTL.
    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError> {
        let deadline = ttl.map(Ttl::unix_deadline_ms);
        self.put(encoding::value_item(
            self.partition(),
            &key,
            &value,
            deadline,
        ))
        .await
    }

    /// One unconditional `DeleteItem` returning the old item, whose deadline decides the
    /// answer: an expired leftover is removed too, and reported as `false`.
    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
        let output = self
            .shared
            .guarded
            .delete_item()
            .table_name(&self.shared.table)
            .set_key(Some(self.primary_key(&key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .within(self.request_limit())
            .await
            .map_err(|err| from_sdk("DeleteItem", err))?;
        match output.attributes {
            Some(old) if !old.is_empty() => encoding::item_is_live(&old, unix_millis_now()),
            _ => Ok(false),
        }
    }

    /// One `GetItem` (strongly consistent, projecting only `sk` and `exp`); for an item
    /// found expired, a conditional `DeleteItem` too (see `settle`).
    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
        match self
            .consistent_get(&key, "#sk, #exp", &[SORT_KEY, DEADLINE])
            .await?
        {
            Some(item) if !item.is_empty() => Ok(self.settle(&key, item).await?.is_some()),
            _ => Ok(false),
        }
    }

    /// A strongly consistent `Query` of the namespace's partition (`begins_with` on the sort
    /// key for a non-empty prefix), one request per 1 MB page, projecting `sk` and `exp`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        if prefix.len() > MAX_KEY_BYTES {
            return Ok(Vec::new()); // no key is that long
        }
        let mut values = Item::from([(":pk".to_owned(), self.partition().clone())]);
        let key_condition = if prefix.is_empty() {
            "#pk = :pk" // begins_with refuses an empty string
        } else {
            values.insert(":prefix".to_owned(), AttributeValue::S(prefix.to_owned()));
            "#pk = :pk AND begins_with(#sk, :prefix)"
        };
        let mut keys = Vec::new();
        let mut start_key = None;
        loop {
            let page = self
                .keys_query(key_condition, values.clone())
                .set_exclusive_start_key(start_key)
                .send()
                .within(self.request_limit())
                .await
                .map_err(|err| from_sdk("Query", err))?;
            let now = unix_millis_now();
            for item in page.items() {
                if encoding::item_is_live(item, now)? {
                    keys.push(encoding::key_of(item)?);
                }
            }
            start_key = page.last_evaluated_key.filter(|key| !key.is_empty());
            if start_key.is_none() {
                break;
            }
        }
        // DynamoDB returns sort keys in UTF-8 byte order already (that is `String` order);
        // sorting a sorted vector is one linear pass, and guarantees it.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// One `UpdateItem` (`ADD`) when the key is absent or a live counter. A live value
    /// written as bytes, or an expired leftover, costs one more conditional write.
    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
        let key = key.as_str();
        for round in 0..INCREMENT_ROUNDS {
            if round > 1 {
                // Someone keeps changing the item under us; give them a moment.
                tokio::time::sleep(Duration::from_millis(u64::from(round))).await;
            }
            // Each round reads the clock afresh: after the pause, and after the last round's
            // requests, an earlier reading could call an expired item live.
            let now = unix_millis_now();
            let blocker = match self.add_to_counter(key, delta, now).await? {
                Ok(n) => return Ok(n),
                Err(Some(item)) => Some(item),
                // An emulator that does not return the item on a failed condition.
                Err(None) => self.read_item(key).await?,
            };
            let live = match &blocker {
                Some(item) => encoding::live_value(item, now)?,
                None => None,
            };
            let done = match live {
                // Absent or expired: start from zero, replacing the leftover if still there.
                None => self
                    .put_if(
                        encoding::counter_item(self.partition(), key, delta),
                        condition::ABSENT,
                        &[SORT_KEY, DEADLINE],
                        Item::from([(":now".to_owned(), number(now))]),
                    )
                    .await?
                    .then_some(delta),
                // The ADD was refused for its bounds only.
                Some(Stored::Counter(n)) => match n.checked_add(delta) {
                    Some(_) => None, // it changed since: go again
                    None => return Err(KvError::IntegerOverflow),
                },
                // Bytes: counters written by `set` are converted, anything else is refused.
                Some(Stored::Bytes(bytes)) => {
                    let next = apply_increment(Some(&bytes), delta)?;
                    self.bytes_to_counter(key, &bytes, next, now)
                        .await?
                        .then_some(next)
                }
            };
            if let Some(n) = done {
                return Ok(n);
            }
        }
        Err(KvError::unavailable(format!(
            "increment of {key:?} gave up after {INCREMENT_ROUNDS} rounds of concurrent changes"
        )))
    }

    /// One conditional `PutItem`: `attribute_not_exists` (or expired) for `None`, value
    /// equality on a live item for `Some`.
    async fn swap_if(
        &self,
        key: Key<'_>,
        expected: Option<&[u8]>,
        new: Value<'_>,
    ) -> Result<bool, KvError> {
        let item = encoding::value_item(self.partition(), &key, &new, None);
        let now = unix_millis_now();
        let mut values = Item::from([(":now".to_owned(), number(now))]);
        match expected {
            None => self.put_if(item, condition::ABSENT, &[SORT_KEY, DEADLINE], values),
            // No backend of any process can have stored a value this long: nothing to ask.
            // (Not this backend's own maximum: another process may allow longer values.)
            Some(expected) if expected.len() > AWS_MAX_VALUE_BYTES => return Ok(false),
            Some(expected) => {
                values.insert(":expected".to_owned(), binary(expected));
                // A counter is stored as a Number; its bytes are its decimal form.
                match parse_counter(expected) {
                    Some(counter) => {
                        values.insert(":counter".to_owned(), number(counter));
                        self.put_if(
                            item,
                            condition::HOLDS_BYTES_OR_COUNTER,
                            &[DEADLINE, VALUE, COUNTER],
                            values,
                        )
                    }
                    None => self.put_if(item, condition::HOLDS_BYTES, &[DEADLINE, VALUE], values),
                }
            }
        }
        .await
    }

    /// One strongly consistent `BatchGetItem` per `GET_CHUNK` distinct keys, and one more
    /// for each round of keys DynamoDB leaves unprocessed; each value is judged live as `get`
    /// judges it, and each item found expired is settled as `get` settles it.
    async fn read_many(&self, keys: &[Key<'_>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        // BatchGetItem refuses a key asked twice: each is asked once, and answered as often
        // as it was asked.
        let mut asked: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
        let mut distinct = Vec::with_capacity(keys.len());
        for key in keys {
            let times = asked.entry(key.as_str()).or_insert(0);
            if *times == 0 {
                distinct.push(key.as_str());
            }
            *times += 1;
        }
        let mut found = HashMap::with_capacity(distinct.len());
        for chunk in distinct.chunks(GET_CHUNK) {
            let (live, expired) = self.batch_get(chunk).await?;
            found.extend(live);
            for (key, item) in expired {
                if let Some(item) = self.settle(&key, item).await? {
                    found.insert(key, encoding::stored(&item)?.into_bytes());
                }
            }
        }
        Ok(keys
            .iter()
            .map(|key| match asked.get_mut(key.as_str()) {
                // Copied while the key is asked again later, moved out the last time.
                Some(left) if *left > 1 => {
                    *left -= 1;
                    found.get(key.as_str()).cloned()
                }
                _ => found.remove(key.as_str()),
            })
            .collect())
    }

    /// One `BatchWriteItem` of puts per `WRITE_CHUNK` distinct keys, and one more for each
    /// round of items DynamoDB leaves unprocessed; each item exactly as `set` or
    /// `set_with_ttl` writes it (the whole item, so any TTL or counter goes).
    async fn write_many(
        &self,
        entries: &[(Key<'_>, Value<'_>)],
        ttl: Option<Ttl>,
    ) -> Result<(), KvError> {
        // A BatchWriteItem may not name a key twice (and applies its puts in no order): each
        // key once, with the last value given for it.
        for chunk in last_of_each(entries).chunks(WRITE_CHUNK) {
            // The deadline read just before the chunk is sent, as `write` reads it: never
            // earlier than the call's start plus the TTL.
            let deadline = ttl.map(Ttl::unix_deadline_ms);
            let items = chunk
                .iter()
                .map(|(key, value)| encoding::value_item(self.partition(), key, value, deadline))
                .collect();
            self.batch_put(items).await?;
        }
        Ok(())
    }

    /// One `DeleteItem` returning the old item per distinct key, exactly as `delete`, at
    /// most `DELETE_CONCURRENCY` in flight: the count of live keys removed is exact, and
    /// each key's part is as linearizable as `delete`.
    ///
    /// Not `BatchWriteItem` deletes: they cannot return the items they delete, so the count
    /// would need a read first, and a key written or removed between that read and the
    /// delete would be miscounted.
    async fn remove_many(&self, keys: &[Key<'_>]) -> Result<u64, KvError> {
        let mut seen = HashSet::with_capacity(keys.len());
        // The futures are made here and only polled below, at most DELETE_CONCURRENCY at a
        // time. (Made in a closure of the stream instead, they would not prove `Send` for
        // every lifetime, which the boxed future of this method needs.)
        let deletes: Vec<_> = keys
            .iter()
            .filter(|key| seen.insert(key.as_str()))
            .map(|key| self.remove(*key))
            .collect();
        // The first failure ends the batch; deletes still in flight are dropped (each may
        // or may not have been applied, which the contract allows a failed batch).
        futures::stream::iter(deletes)
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_fold(
                0,
                |removed, live| async move { Ok(removed + u64::from(live)) },
            )
            .await
    }

    /// One strongly consistent `Query` of at most `limit` items (its `Limit`), starting
    /// after `start_after`, projecting `sk, exp`: a page reads about one page of items,
    /// whatever the size of the namespace. The page is the last only when DynamoDB read
    /// fewer than `limit` items and said nothing is left (no `LastEvaluatedKey`).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        if prefix.len() > MAX_KEY_BYTES {
            return Ok(KeyPage::default()); // no key is that long
        }
        let mut values = Item::from([(":pk".to_owned(), self.partition().clone())]);
        // A Query takes one condition on the sort key: after `start_after` when that is
        // among the prefix's keys (the prefix is then checked here: the prefix's keys are
        // contiguous, so the first key without it ends the listing), else the prefix.
        // (An empty `after` is before every key, and not a valid key condition value.)
        let after = start_after.filter(|after| !after.is_empty() && after.starts_with(prefix));
        let key_condition = match (start_after, after) {
            (_, Some(after)) => {
                // A sort key holds at most 1024 bytes, and so may a condition's value: a
                // longer `after` is cut, and the few keys from the cut to it are skipped
                // below. (Never `>=` for an `after` that fits: the page would read `after`
                // itself, and a page of one would never get past it.)
                let cut = floor_char_boundary(after, MAX_KEY_BYTES);
                values.insert(
                    ":after".to_owned(),
                    AttributeValue::S(after[..cut].to_owned()),
                );
                if cut == after.len() {
                    "#pk = :pk AND #sk > :after"
                } else {
                    "#pk = :pk AND #sk >= :after"
                }
            }
            // After every key with the prefix: none is left.
            (Some(start_after), None) if start_after > prefix => return Ok(KeyPage::default()),
            _ if prefix.is_empty() => "#pk = :pk",
            _ => {
                values.insert(":prefix".to_owned(), AttributeValue::S(prefix.to_owned()));
                "#pk = :pk AND begins_with(#sk, :prefix)"
            }
        };
        let page = self
            .keys_query(key_condition, values)
            .limit(i32::try_from(limit.get()).unwrap_or(i32::MAX))
            .send()
            .within(self.request_limit())
            .await
            .map_err(|err| from_sdk("Query", err))?;
        let now = unix_millis_now();
        let mut keys = Vec::new();
        let mut last_read = None;
        for item in page.items() {
            let key = encoding::key_of(item)?;
            if !key.starts_with(prefix) {
                return Ok(KeyPage { keys, next: None });
            }
            let after_start = start_after.is_none_or(|after| key.as_str() > after);
            if after_start && encoding::item_is_live(item, now)? {
                keys.push(key.clone());
            }
            last_read = Some(key);
        }
        let cut_short =
            page.last_evaluated_key
                .as_ref()
                .and_then(|last| match last.get(SORT_KEY) {
                    Some(AttributeValue::S(key)) => Some(key.clone()),
                    _ => None,
                });
        // A page that read `limit` items is not the last, even without a `LastEvaluatedKey`
        // (an emulator may leave it out); one that DynamoDB cut short (1 MB) is not either.
        let next = match cut_short {
            Some(key) => Some(key),
            None if page.items().len() >= limit.get() => last_read,
            None => None,
        };
        Ok(KeyPage { keys, next })
    }
}

/// The largest index at most `max` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

kv_trait::impl_kv_backend!(DynamoDbBackend);

impl DynamoDbBackend {
    /// One unconditional `PutItem`, through the client that resends only requests that were
    /// refused: resending a put whose reply was lost could undo another client's write made
    /// in between.
    async fn put(&self, item: Item) -> Result<(), KvError> {
        self.shared
            .guarded
            .put_item()
            .table_name(&self.shared.table)
            .set_item(Some(item))
            .send()
            .within(self.request_limit())
            .await
            .map(drop)
            .map_err(|err| from_sdk("PutItem", err))
    }
}

impl fmt::Debug for DynamoDbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        let [connect, attempt, operation] = shared.summary.timeouts;
        f.debug_struct("DynamoDbBackend")
            .field("table", &shared.table)
            .field("namespace", &shared.namespace)
            .field("region", &shared.summary.region)
            .field("endpoint", &shared.summary.endpoint)
            .field("credentials", &shared.summary.credentials)
            .field("max_attempts", &shared.summary.max_attempts)
            .field("connect_timeout", &connect)
            .field("attempt_timeout", &attempt)
            .field("operation_timeout", &operation)
            .field("max_value_bytes", &shared.max_value_bytes)
            .finish_non_exhaustive()
    }
}
