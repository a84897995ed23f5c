//! Opening a table: what each mode checks, creates and changes, and exactly which DynamoDB
//! operations (so which IAM actions) it needs, as the README's IAM table says.
//!
//! Each test uses tables of its own, made here with the plain SDK client the way Terraform or
//! CloudFormation would make them, and deletes them at the end.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use kv_dynamodb::{DynamoDbBackend, TtlDeletion};
use kv_test_services::dynamodb::DynamoDbService;
use kv_trait::{KvBackend, KvError};

use common::{sdk_client, sdk_config, RequestCounter};

/// A table name no other test uses.
fn unique_table(label: &str) -> String {
    common::unique_namespace(label).replace('-', "_")
}

/// Creates an on-demand table keyed by `keys` (name, role, type), as an administrator would.
async fn create_raw_table(
    client: &Client,
    name: &str,
    keys: &[(&str, KeyType, ScalarAttributeType)],
) {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, role, kind) in keys {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attribute)
                    .attribute_type(kind.clone())
                    .build()
                    .expect("definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*attribute)
                    .key_type(role.clone())
                    .build()
                    .expect("key schema element"),
            );
    }
    request.send().await.expect("CreateTable");
    wait_until_active(client, name).await;
}

/// A table keyed as kv-dynamodb needs: `pk` and `sk`, both String.
async fn create_kv_table(client: &Client, name: &str) {
    create_raw_table(
        client,
        name,
        &[
            ("pk", KeyType::Hash, ScalarAttributeType::S),
            ("sk", KeyType::Range, ScalarAttributeType::S),
        ],
    )
    .await;
}

async fn wait_until_active(client: &Client, name: &str) {
    for _ in 0..300 {
        let described = client.describe_table().table_name(name).send().await;
        let status = described
            .expect("DescribeTable")
            .table
            .and_then(|t| t.table_status);
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("table {name} did not become ACTIVE in 30 s");
}

async fn table_exists(client: &Client, name: &str) -> bool {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(err) if err.code() == Some("ResourceNotFoundException") => false,
        Err(err) => panic!("DescribeTable {name}: {err:?}"),
    }
}

async fn delete_tables(client: &Client, names: &[&str]) {
    for name in names {
        client
            .delete_table()
            .table_name(*name)
            .send()
            .await
            .expect("DeleteTable");
    }
}

/// The table's TTL setting as the endpoint reports it: `None` when the endpoint has no TTL
/// API at all (asked with the plain SDK, not through kv-dynamodb).
async fn ttl_setting(
    client: &Client,
    name: &str,
) -> Option<(Option<TimeToLiveStatus>, Option<String>)> {
    match client.describe_time_to_live().table_name(name).send().await {
        Ok(output) => Some(
            output
                .time_to_live_description
                .map(|d| (d.time_to_live_status, d.attribute_name))
                .unwrap_or_default(),
        ),
        Err(err) if err.code() == Some("UnknownOperationException") => None,
        Err(err) => panic!("DescribeTimeToLive {name}: {err:?}"),
    }
}

/// Whether the setting says DynamoDB's TTL deletion is off (DynamoDB reports a table that
/// never had it as `DISABLED` without an attribute; moto may omit the status).
fn ttl_is_off(setting: &(Option<TimeToLiveStatus>, Option<String>)) -> bool {
    matches!(setting.0, None | Some(TimeToLiveStatus::Disabled))
}

/// A client whose requests `counter` records, and a builder for `table` on it.
fn counted(
    service: &DynamoDbService,
    table: &str,
) -> (kv_dynamodb::DynamoDbBackendBuilder, RequestCounter) {
    let counter = RequestCounter::default();
    let client = Client::from_conf(sdk_config(service).interceptor(counter.clone()).build());
    (DynamoDbBackend::builder(table).client(client), counter)
}

fn operations(requests: Vec<String>) -> BTreeSet<String> {
    requests.into_iter().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[tokio::test]
async fn the_default_open_checks_a_precreated_table_with_one_get_item_and_changes_nothing() {
    let Some(service) = common::service() else {
        return;
    };
    let client = sdk_client(service);
    let table = unique_table("precreated");
    create_kv_table(&client, &table).await;
    let before = ttl_setting(&client, &table).await;

    let (builder, counter) = counted(service, &table);
    let store = builder.namespace("app").build().await.expect("open");
    assert_eq!(counter.take(), ["GetItem"], "the only request at open");

    // Works without DynamoDB's TTL deletion: the backend decides expiry itself. (Read before
    // the deadline only while it is surely ahead: moto's relay may queue requests.)
    let ttl = Duration::from_millis(1000);
    let written = kv_trait::monotonic_now();
    store
        .set_with_ttl("short", b"v", ttl.as_nanos() as u64)
        .await
        .unwrap();
    let read = store.get("short").await.unwrap();
    if written.elapsed() < ttl {
        assert_eq!(read.as_deref(), Some(&b"v"[..]), "live before its TTL");
    }
    store.set("long", b"w").await.unwrap();
    tokio::time::sleep(
        (written + ttl + Duration::from_millis(50))
            .saturating_duration_since(kv_trait::monotonic_now()),
    )
    .await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert!(!store.exists("short").await.unwrap());
    assert_eq!(store.list_keys("").await.unwrap(), ["long"]);
    assert_eq!(store.increment("n", 2).await.unwrap(), 2);
    assert!(store.compare_and_swap("lock", None, b"me").await.unwrap());
    store
        .set_many(&[("a", b"1"), ("b", b"2")], None)
        .await
        .unwrap();
    assert_eq!(store.get_many(&["a", "long"]).await.unwrap().len(), 2);
    assert_eq!(store.delete_many(&["a", "b"]).await.unwrap(), 2);
    // The README's IAM row for the eight operations and the batches: these and no other.
    let used = operations(counter.take());
    assert_eq!(
        used,
        set(&[
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Query",
            "BatchGetItem",
            "BatchWriteItem"
        ]),
        "item-level actions only: {used:?}"
    );

    assert_eq!(
        ttl_setting(&client, &table).await,
        before,
        "the TTL setting is untouched"
    );
    if let Some(setting) = &before {
        assert!(
            ttl_is_off(setting),
            "a fresh table has TTL off: {setting:?}"
        );
    }
    delete_tables(&client, &[&table]).await;
}

#[tokio::test]
async fn a_missing_table_is_invalid_config_at_open_and_is_not_created() {
    let Some(service) = common::service() else {
        return;
    };
    let client = sdk_client(service);
    let table = unique_table("missing");
    let url = service.url(&table, "app");
    let err = DynamoDbBackend::from_url(&url).await.unwrap_err();
    let KvError::InvalidConfig(message) = &err else {
        panic!("expected InvalidConfig, got {err:?}");
    };
    for says in [
        table.as_str(),
        "does not exist",
        "create_table=true",
        "\"pk\"",
        "\"sk\"",
    ] {
        assert!(message.contains(says), "{message:?} lacks {says:?}");
    }
    assert!(
        message.contains(&service.endpoint),
        "names the endpoint: {message}"
    );
    assert!(
        !table_exists(&client, &table).await,
        "opening created nothing"
    );
}

#[tokio::test]
async fn a_table_keyed_otherwise_is_invalid_config_at_open() {
    let Some(service) = common::service() else {
        return;
    };
    let client = sdk_client(service);
    let hash_only = unique_table("hash_only");
    create_raw_table(
        &client,
        &hash_only,
        &[("id", KeyType::Hash, ScalarAttributeType::S)],
    )
    .await;
    let numbers = unique_table("numbers");
    create_raw_table(
        &client,
        &numbers,
        &[
            ("pk", KeyType::Hash, ScalarAttributeType::S),
            ("sk", KeyType::Range, ScalarAttributeType::N),
        ],
    )
    .await;
    // DynamoDB refuses a key of the wrong type; moto does not check key types at all (a
    // String sort key reads a Number-keyed table), so there the probe cannot tell, asked here
    // with the plain SDK.
    let types_checked = client
        .get_item()
        .table_name(&numbers)
        .key("pk", AttributeValue::S("p".into()))
        .key("sk", AttributeValue::S("s".into()))
        .send()
        .await
        .is_err();
    let tables: &[&String] = if types_checked {
        &[&hash_only, &numbers]
    } else {
        &[&hash_only]
    };
    for table in tables {
        let err = DynamoDbBackend::from_url(&service.url(table, "app"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KvError::InvalidConfig(m) if m.contains("not keyed as kv-dynamodb needs") && m.contains(table.as_str())),
            "{table}: {err:?}"
        );
        // create_table=true describes the table, and says exactly what is wrong.
        let url = format!("{}&create_table=true", service.url(table, "app"));
        let err = DynamoDbBackend::from_url(&url).await.unwrap_err();
        assert!(
            matches!(&err, KvError::InvalidConfig(m) if m.contains("another key schema")),
            "{table}: {err:?}"
        );
    }
    delete_tables(&client, &[&hash_only, &numbers]).await;
}

#[tokio::test]
async fn verify_table_false_sends_nothing_at_open() {
    let Some(service) = common::service() else {
        return;
    };
    let table = unique_table("unchecked");
    let (builder, counter) = counted(service, &table);
    let store = builder.verify_table(false).build().await.expect("open");
    assert!(counter.take().is_empty(), "no request at open");
    // The missing table then shows at the first operation.
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, KvError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("ResourceNotFound"), "{err}");

    let url = format!("{}&verify_table=false", service.url(&table, "app"));
    DynamoDbBackend::from_url(&url)
        .await
        .expect("open without the check");
}

#[tokio::test]
async fn create_table_creates_once_and_leaves_ttl_alone() {
    let Some(service) = common::service() else {
        return;
    };
    let client = sdk_client(service);
    let table = unique_table("created");
    let (builder, counter) = counted(service, &table);
    let store = builder
        .create_table(true)
        .build()
        .await
        .expect("open, creating");
    let used = operations(counter.take());
    assert!(used.contains("CreateTable"), "{used:?}");
    assert!(
        used.is_subset(&set(&["DescribeTable", "CreateTable"])),
        "{used:?}"
    );

    let description = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(
        description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode().cloned()),
        Some(BillingMode::PayPerRequest)
    );
    let keys: Vec<(String, KeyType)> = description
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        [("pk".into(), KeyType::Hash), ("sk".into(), KeyType::Range)]
    );
    if let Some(setting) = ttl_setting(&client, &table).await {
        assert!(
            ttl_is_off(&setting),
            "create_table alone leaves TTL off: {setting:?}"
        );
    }
    store.set("k", b"v").await.unwrap();

    // Again: the table is found, not created twice; the helper says so.
    assert!(
        !store.create_table_if_missing().await.unwrap(),
        "idempotent"
    );
    let url = format!("{}&create_table=true", service.url(&table, "other"));
    let other = DynamoDbBackend::from_url(&url).await.unwrap();
    assert_eq!(other.get("k").await.unwrap(), None, "another namespace");
    delete_tables(&client, &[&table]).await;
}

/// Enables DynamoDB TTL on `attribute` with the plain SDK: `false` when the endpoint does not
/// know the operation (dynalite answers `DescribeTimeToLive`, always `DISABLED`, but not
/// `UpdateTimeToLive`).
async fn raw_enable_ttl(client: &Client, table: &str, attribute: &str) -> bool {
    let result = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(attribute)
                .enabled(true)
                .build()
                .expect("TTL specification"),
        )
        .send()
        .await;
    match result {
        Ok(_) => true,
        Err(err) if err.code() == Some("UnknownOperationException") => false,
        Err(err) => panic!("UpdateTimeToLive {table}: {err:?}"),
    }
}

#[tokio::test]
async fn manage_ttl_turns_ttl_deletion_on_where_the_endpoint_has_the_api() {
    let Some(service) = common::service() else {
        return;
    };
    let client = sdk_client(service);
    let table = unique_table("managed");
    create_kv_table(&client, &table).await;

    let (builder, counter) = counted(service, &table);
    let store = builder
        .manage_ttl(true)
        .build()
        .await
        .expect("open, managing TTL");
    let used = operations(counter.take());
    assert!(
        used.is_subset(&set(&["GetItem", "DescribeTimeToLive", "UpdateTimeToLive"])),
        "{used:?}"
    );
    assert!(used.contains("UpdateTimeToLive"), "TTL was off: {used:?}");
    let answer = store.enable_ttl_deletion().await.unwrap();
    match answer {
        TtlDeletion::Enabled => {
            let setting = ttl_setting(&client, &table).await.expect("the TTL API");
            assert_eq!(setting.1.as_deref(), Some("ttl"), "{setting:?}");
            assert!(
                matches!(
                    setting.0,
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                ),
                "{setting:?}"
            );
            assert_eq!(
                operations(counter.take()),
                set(&["DescribeTimeToLive"]),
                "idempotent: one look, no change"
            );
        }
        // Only where the endpoint itself refuses the operation, asked without kv-dynamodb
        // (on AWS and moto this enables it, and the test fails).
        TtlDeletion::NotSupported => assert!(!raw_enable_ttl(&client, &table, "ttl").await),
        other => panic!("{other:?}"),
    }
    store.set_with_ttl("k", b"v", 60_000_000_000).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    // Both options at once on a missing table: created, then TTL on where it can be.
    let both = unique_table("both");
    let url = format!(
        "{}&create_table=true&manage_ttl=true",
        service.url(&both, "app")
    );
    DynamoDbBackend::from_url(&url)
        .await
        .expect("open with both options");
    if answer == TtlDeletion::Enabled {
        let setting = ttl_setting(&client, &both).await.unwrap();
        assert_eq!(setting.1.as_deref(), Some("ttl"), "{setting:?}");
    }
    delete_tables(&client, &[&table, &both]).await;
}

#[tokio::test]
async fn manage_ttl_refuses_a_table_whose_ttl_is_on_another_attribute() {
    let Some(service) = common::service() else {
        return;
    };
    let client = sdk_client(service);
    let table = unique_table("other_ttl");
    create_kv_table(&client, &table).await;
    let enabled = raw_enable_ttl(&client, &table, "expires").await;
    if enabled {
        let url = format!("{}&manage_ttl=true", service.url(&table, "app"));
        let err = DynamoDbBackend::from_url(&url).await.unwrap_err();
        assert!(
            matches!(&err, KvError::InvalidConfig(m) if m.contains("expires")),
            "{err}"
        );
        // Without manage_ttl the table opens: the backend decides expiry itself.
        DynamoDbBackend::from_url(&service.url(&table, "app"))
            .await
            .expect("open without managing TTL");
    }
    // Else the endpoint has no UpdateTimeToLive (dynalite): no table there can have TTL on
    // any attribute, so there is nothing to refuse. What kv-dynamodb does on such an
    // endpoint is checked by manage_ttl_turns_ttl_deletion_on_where_the_endpoint_has_the_api.
    delete_tables(&client, &[&table]).await;
}
