//! Helpers shared by the integration tests: the emulator (from `kv_test_services`),
//! one shared table per test process, fresh namespaces, SDK clients with the test credentials,
//! and a request counter.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(
    clippy::disallowed_methods,
    reason = "the tests time themselves; no store decision reads this clock"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use kv_dynamodb::DynamoDbBackend;
use kv_test_services::dynamodb::{self, DynamoDbService};

/// The table every test of a process shares (each test in its own namespace).
pub const TABLE: &str = "kvkit-tests";

/// The emulator, or `None` after a loud skip (a failure under `KVKIT_REQUIRE_SERVICES`).
pub fn service() -> Option<&'static DynamoDbService> {
    dynamodb::endpoint()
}

/// An SDK config builder for the emulator with the test credentials and region.
pub fn sdk_config(service: &DynamoDbService) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(dynamodb::REGION))
        .endpoint_url(&service.endpoint)
        .credentials_provider(Credentials::new(
            dynamodb::ACCESS_KEY_ID,
            dynamodb::SECRET_ACCESS_KEY,
            None,
            None,
            "kv-dynamodb tests",
        ))
}

/// A plain SDK client for the emulator, to look at items as stored.
pub fn sdk_client(service: &DynamoDbService) -> Client {
    Client::from_conf(sdk_config(service).build())
}

/// A namespace no other test (of this run or an earlier one) uses.
pub fn unique_namespace(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    format!(
        "{label}-{}-{started}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates [`TABLE`] once per process, on a thread of its own (tests each have their own
/// runtime, and a client must not outlive the runtime its connections were made on).
pub fn ensure_table(service: &'static DynamoDbService) {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let backend =
                    DynamoDbBackend::from_client(sdk_client(service), TABLE).expect("backend");
                backend
                    .create_table_if_missing()
                    .await
                    .expect("create the test table");
                // As a deployment would have it; on an emulator without the TTL API this
                // is `NotSupported`, and the backend decides expiry all the same.
                backend
                    .enable_ttl_deletion()
                    .await
                    .expect("turn DynamoDB TTL on");
            });
        })
        .join()
        .expect("table creation thread");
    });
}

/// A backend in a fresh namespace of the shared table, made through a `dynamodb://` URL.
pub async fn fresh_backend(label: &str) -> Option<DynamoDbBackend> {
    let service = service()?;
    ensure_table(service);
    let url = service.url(TABLE, &unique_namespace(label));
    Some(
        DynamoDbBackend::from_url(&url)
            .await
            .expect("backend from URL"),
    )
}

/// A second backend on the same namespace as `backend`, with its own client.
pub async fn twin(backend: &DynamoDbBackend) -> DynamoDbBackend {
    let service = service().expect("service");
    DynamoDbBackend::from_url(&service.url(TABLE, backend.namespace()))
        .await
        .expect("twin")
}

/// Counts the HTTP requests a client sends, by DynamoDB operation (`GetItem`, `PutItem`...).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    seen: Arc<Mutex<Vec<String>>>,
}

impl RequestCounter {
    /// The operations sent since the last call, in order; resets the count.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().expect("counter lock"))
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "request counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // "X-Amz-Target: DynamoDB_20120810.PutItem"
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.seen.lock().expect("counter lock").push(operation);
        Ok(())
    }
}

/// A backend in a fresh namespace whose requests `RequestCounter` counts.
pub async fn counted_backend(label: &str) -> Option<(DynamoDbBackend, RequestCounter)> {
    let service = service()?;
    ensure_table(service);
    let counter = RequestCounter::default();
    let client = Client::from_conf(sdk_config(service).interceptor(counter.clone()).build());
    let backend = DynamoDbBackend::builder(TABLE)
        .client(client)
        .namespace(unique_namespace(label))
        .build()
        .await
        .expect("counted backend");
    assert_eq!(
        counter.take(),
        ["GetItem"],
        "opening checks the table with one GetItem"
    );
    Some((backend, counter))
}

/// The item of `key` in `namespace` exactly as stored, read with the SDK.
pub async fn raw_item(
    client: &Client,
    namespace: &str,
    key: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(format!("ns#{namespace}")))
        .key("sk", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("raw GetItem")
        .item
}

/// Writes `item` (plus `pk` and `sk`) directly with the SDK.
pub async fn put_raw(
    client: &Client,
    namespace: &str,
    key: &str,
    attributes: impl IntoIterator<Item = (&str, AttributeValue)>,
) {
    let mut request = client
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(format!("ns#{namespace}")))
        .item("sk", AttributeValue::S(key.to_owned()));
    for (name, value) in attributes {
        request = request.item(name, value);
    }
    request.send().await.expect("raw PutItem");
}

pub fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub fn binary(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes))
}
