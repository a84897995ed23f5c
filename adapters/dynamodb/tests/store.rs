//! What is specific to DynamoDB: the item layout as stored, expired items
//! that DynamoDB has not deleted yet, counters written as bytes, the largest values, paging,
//! how many requests each operation makes, and `Debug`.

mod common;

use std::time::Duration;

use kv_dynamodb::{DynamoDbBackend, DEFAULT_MAX_VALUE_BYTES, MAX_NAMESPACE_BYTES};
use kv_trait::{unix_millis_now, KvBackend, KvError, MAX_KEY_BYTES};

use common::{binary, counted_backend, fresh_backend, number, put_raw, raw_item, sdk_client};

fn n(value: &aws_sdk_dynamodb::types::AttributeValue) -> u64 {
    value.as_n().expect("a Number").parse().expect("an integer")
}

#[tokio::test]
async fn items_are_stored_as_the_readme_says() {
    let Some(store) = fresh_backend("layout").await else {
        return;
    };
    let client = sdk_client(common::service().unwrap());
    let ns = store.namespace().to_owned();

    store.set("plain", b"\x00\xffbytes").await.unwrap();
    let item = raw_item(&client, &ns, "plain").await.unwrap();
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["pk", "sk", "v"]);
    assert_eq!(item["pk"].as_s().unwrap(), &format!("ns#{ns}"));
    assert_eq!(item["sk"].as_s().unwrap(), "plain");
    assert_eq!(item["v"].as_b().unwrap().as_ref(), b"\x00\xffbytes");

    store.set("empty", b"").await.unwrap();
    let item = raw_item(&client, &ns, "empty").await.unwrap();
    assert_eq!(
        item["v"].as_b().unwrap().as_ref(),
        b"",
        "empty Binary, not absent"
    );

    let before = unix_millis_now();
    store
        .set_with_ttl("session", b"token", 90_000_000_001)
        .await
        .unwrap();
    let after = unix_millis_now();
    let item = raw_item(&client, &ns, "session").await.unwrap();
    let deadline = n(&item["exp"]);
    assert!(
        deadline > before + 90_000 && deadline <= after + 90_001,
        "{deadline}"
    );
    assert_eq!(
        n(&item["ttl"]),
        deadline.div_ceil(1000),
        "seconds, rounded up"
    );

    assert_eq!(store.increment("hits", 42).await.unwrap(), 42);
    let item = raw_item(&client, &ns, "hits").await.unwrap();
    assert_eq!(item["n"].as_n().unwrap(), "42");
    assert!(!item.contains_key("v") && !item.contains_key("exp"));
    assert_eq!(store.get("hits").await.unwrap(), Some(b"42".to_vec()));

    // `set` replaces the whole item: counter and TTL attributes go.
    store.set("session", b"again").await.unwrap();
    store.set("hits", b"x").await.unwrap();
    for key in ["session", "hits"] {
        let item = raw_item(&client, &ns, key).await.unwrap();
        assert!(
            ["n", "exp", "ttl"].iter().all(|a| !item.contains_key(*a)),
            "{key}: {item:?}"
        );
    }
}

/// A backend configured for shorter values still compares against a longer value that a
/// backend with a larger maximum (say, in another process) stored: it asks the store.
#[tokio::test]
async fn compare_and_swap_asks_the_store_about_values_longer_than_its_own_maximum() {
    let Some(large) = fresh_backend("cas-long").await else {
        return;
    };
    let service = common::service().unwrap();
    let url = service.url(common::TABLE, large.namespace());
    let small = DynamoDbBackend::from_url(&format!("{url}&max_value_bytes=65536"))
        .await
        .unwrap();
    let long = vec![b'x'; 100_000];
    large.set("k", &long).await.unwrap();
    assert!(small
        .compare_and_swap("k", Some(&long), b"short")
        .await
        .unwrap());
    assert_eq!(
        large.get("k").await.unwrap().as_deref(),
        Some(&b"short"[..])
    );
    // Longer than any backend may store: no request needed, and no swap.
    let impossible = vec![b'x'; kv_dynamodb::AWS_MAX_VALUE_BYTES + 1];
    assert!(!small
        .compare_and_swap("k", Some(&impossible), b"v")
        .await
        .unwrap());
}

#[tokio::test]
async fn the_empty_namespace_is_the_bare_prefix() {
    let Some(service) = common::service() else {
        return;
    };
    common::ensure_table(service);
    let store = DynamoDbBackend::from_client(sdk_client(service), common::TABLE).unwrap();
    assert_eq!(store.namespace(), "");
    let key = common::unique_namespace("empty-namespace-key");
    store.set(&key, b"v").await.unwrap();
    let item = raw_item(&sdk_client(service), "", &key).await.unwrap();
    assert_eq!(item["pk"].as_s().unwrap(), "ns#");
    assert!(store.delete(&key).await.unwrap());
}

/// `from_client` sends nothing (it is synchronous): a missing table shows at the first call.
#[tokio::test]
async fn a_missing_table_is_a_backend_error_naming_it() {
    let Some(service) = common::service() else {
        return;
    };
    let store = DynamoDbBackend::from_client(sdk_client(service), "no-such-table-here").unwrap();
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, KvError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("ResourceNotFound"), "{err}");
}

#[tokio::test]
async fn expired_items_dynamodb_has_not_deleted_are_absent_for_every_operation() {
    let Some(store) = fresh_backend("expired").await else {
        return;
    };
    let client = sdk_client(common::service().unwrap());
    let ns = store.namespace().to_owned();
    let past = unix_millis_now() - 1;
    let write_expired = |key: &'static str, value| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            put_raw(
                &client,
                &ns,
                key,
                [
                    value,
                    ("exp", number(past)),
                    ("ttl", number(past.div_ceil(1000))),
                ],
            )
            .await;
        }
    };
    for key in ["get", "delete", "increment", "cas-none", "cas-some"] {
        write_expired(key, ("v", binary(b"old"))).await;
    }
    write_expired("counter", ("n", number(41))).await;
    put_raw(&client, &ns, "live", [("v", binary(b"x"))]).await;

    assert_eq!(store.get("get").await.unwrap(), None);
    assert!(!store.exists("get").await.unwrap());
    assert_eq!(store.get("counter").await.unwrap(), None);
    assert_eq!(store.list_keys("").await.unwrap(), ["live"]);

    assert!(!store.delete("delete").await.unwrap(), "expired: false");
    assert!(
        raw_item(&client, &ns, "delete").await.is_none(),
        "but removed"
    );

    assert_eq!(store.increment("increment", 5).await.unwrap(), 5, "from 0");
    assert_eq!(
        store.increment("counter", 1).await.unwrap(),
        1,
        "from 0, not 42"
    );
    let item = raw_item(&client, &ns, "counter").await.unwrap();
    assert!(
        !item.contains_key("exp") && !item.contains_key("ttl"),
        "no TTL: {item:?}"
    );

    assert!(!store
        .compare_and_swap("cas-some", Some(b"old"), b"new")
        .await
        .unwrap());
    assert!(
        raw_item(&client, &ns, "cas-some")
            .await
            .unwrap()
            .contains_key("exp"),
        "unchanged"
    );
    assert!(store
        .compare_and_swap("cas-none", None, b"new")
        .await
        .unwrap());
    assert_eq!(store.get("cas-none").await.unwrap(), Some(b"new".to_vec()));
    assert!(!raw_item(&client, &ns, "cas-none")
        .await
        .unwrap()
        .contains_key("exp"));

    for key in [
        "get",
        "increment",
        "counter",
        "cas-some",
        "cas-none",
        "live",
    ] {
        store.delete(key).await.unwrap();
    }
}

#[tokio::test]
async fn counters_written_as_bytes_are_converted_once_and_keep_their_ttl() {
    let Some(store) = fresh_backend("converted").await else {
        return;
    };
    let client = sdk_client(common::service().unwrap());
    let ns = store.namespace().to_owned();

    store.set("c", b"41").await.unwrap();
    assert_eq!(store.increment("c", 1).await.unwrap(), 42);
    let item = raw_item(&client, &ns, "c").await.unwrap();
    assert_eq!(item["n"].as_n().unwrap(), "42");
    assert!(!item.contains_key("v"));
    assert_eq!(store.get("c").await.unwrap(), Some(b"42".to_vec()));
    assert!(store
        .compare_and_swap("c", Some(b"42"), b"x")
        .await
        .unwrap());

    store
        .set_with_ttl("t", b"-5", 60_000_000_000)
        .await
        .unwrap();
    let deadline = raw_item(&client, &ns, "t").await.unwrap()["exp"].clone();
    assert_eq!(store.increment("t", -1).await.unwrap(), -6);
    assert_eq!(store.increment("t", 2).await.unwrap(), -4);
    let item = raw_item(&client, &ns, "t").await.unwrap();
    assert_eq!(item["exp"], deadline, "TTL kept");
    assert!(item.contains_key("ttl"));

    store.set("big", b"9223372036854775807").await.unwrap();
    assert!(matches!(
        store.increment("big", 1).await,
        Err(KvError::IntegerOverflow)
    ));
    assert!(
        raw_item(&client, &ns, "big")
            .await
            .unwrap()
            .contains_key("v"),
        "unchanged"
    );
    for not_a_counter in [&b"07"[..], b"+1", b"1.0", b"", b"\xff"] {
        store.set("odd", not_a_counter).await.unwrap();
        assert!(matches!(
            store.increment("odd", 1).await,
            Err(KvError::NotAnInteger)
        ));
        assert_eq!(
            store.get("odd").await.unwrap().as_deref(),
            Some(not_a_counter)
        );
    }
    // Numbers at the ends of the range, through ADD's bounds condition.
    assert_eq!(store.increment("max", i64::MAX).await.unwrap(), i64::MAX);
    assert!(matches!(
        store.increment("max", 1).await,
        Err(KvError::IntegerOverflow)
    ));
    assert_eq!(store.increment("max", i64::MIN).await.unwrap(), -1);
    assert_eq!(store.increment("min", i64::MIN).await.unwrap(), i64::MIN);
    assert!(matches!(
        store.increment("min", -1).await,
        Err(KvError::IntegerOverflow)
    ));
    assert_eq!(store.increment("min", 0).await.unwrap(), i64::MIN);
    for key in ["c", "t", "big", "odd", "max", "min"] {
        store.delete(key).await.unwrap();
    }
}

#[tokio::test]
async fn the_largest_value_fits_under_the_longest_key_and_namespace_with_a_ttl() {
    let Some(service) = common::service() else {
        return;
    };
    common::ensure_table(service);
    let (_, counter) = counted_backend("unused").await.unwrap();
    let client = aws_sdk_dynamodb::Client::from_conf(
        common::sdk_config(service)
            .interceptor(counter.clone())
            .build(),
    );
    let mut namespace = common::unique_namespace("largest");
    namespace.push_str(&"n".repeat(MAX_NAMESPACE_BYTES - namespace.len()));
    let store = DynamoDbBackend::builder(common::TABLE)
        .client(client)
        .namespace(namespace)
        .build()
        .await
        .unwrap();
    assert_eq!(store.max_value_bytes(), DEFAULT_MAX_VALUE_BYTES);
    let key = "k".repeat(MAX_KEY_BYTES);
    let largest = vec![0xA5; DEFAULT_MAX_VALUE_BYTES];
    store.set_with_ttl(&key, &largest, u64::MAX).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&largest[..])
    );
    assert!(store
        .compare_and_swap(&key, Some(&largest), &largest)
        .await
        .unwrap());
    counter.take();

    let too_large = vec![0; DEFAULT_MAX_VALUE_BYTES + 1];
    let expected = (DEFAULT_MAX_VALUE_BYTES + 1, DEFAULT_MAX_VALUE_BYTES);
    for result in [
        store.set(&key, &too_large).await,
        store.set_with_ttl(&key, &too_large, 1).await,
        store
            .compare_and_swap(&key, None, &too_large)
            .await
            .map(drop),
    ] {
        assert!(
            matches!(result, Err(KvError::ValueTooLarge { size, max }) if (size, max) == expected),
            "{result:?}"
        );
    }
    // An expected value longer than this backend's maximum may have been stored by a backend
    // with a larger one: the store is asked.
    assert!(!store
        .compare_and_swap(&key, Some(&too_large), b"x")
        .await
        .unwrap());
    assert_eq!(
        counter.take(),
        vec!["PutItem".to_owned()],
        "one conditional put"
    );
    // Longer than any backend may store: it cannot match, and no request is made.
    let impossible = vec![0; kv_dynamodb::AWS_MAX_VALUE_BYTES + 1];
    assert!(!store
        .compare_and_swap(&key, Some(&impossible), b"x")
        .await
        .unwrap());
    assert_eq!(
        counter.take(),
        Vec::<String>::new(),
        "refused before any request"
    );
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&largest[..])
    );
    assert!(store.delete(&key).await.unwrap());
}

#[tokio::test]
async fn list_keys_pages_through_large_partitions() {
    let Some((store, counter)) = counted_backend("paging").await else {
        return;
    };
    // DynamoDB reads at most 1 MB per Query page: 300 KB values make several pages.
    let value = vec![7; 300_000];
    let mut expected = Vec::new();
    for i in 0..12 {
        let key = format!("page/{i:02}");
        store.set(&key, &value).await.unwrap();
        expected.push(key);
    }
    store.set_with_ttl("page/expired", b"v", 1).await.unwrap();
    store.set("other", b"v").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    counter.take();

    assert_eq!(store.list_keys("page/").await.unwrap(), expected);
    let queries = counter.take();
    assert!(
        queries.len() >= 4 && queries.iter().all(|op| op == "Query"),
        "{queries:?}"
    );
    let mut all = vec!["other".to_owned()];
    all.extend(expected.iter().cloned());
    assert_eq!(store.list_keys("").await.unwrap(), all);
    assert_eq!(
        store.list_keys("page/1").await.unwrap(),
        ["page/10", "page/11"]
    );
    assert!(store.list_keys("pagf").await.unwrap().is_empty());
    counter.take();
    assert!(store
        .list_keys(&"p".repeat(MAX_KEY_BYTES + 1))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        counter.take(),
        Vec::<String>::new(),
        "no request for an impossible prefix"
    );
    for key in all.iter().map(String::as_str).chain(["page/expired"]) {
        store.delete(key).await.unwrap();
    }
}

#[tokio::test]
async fn each_operation_is_one_request_in_the_common_cases() {
    let Some((store, counter)) = counted_backend("requests").await else {
        return;
    };
    let client = sdk_client(common::service().unwrap());
    let ns = store.namespace().to_owned();
    async fn expect(counter: &common::RequestCounter, what: &str, requests: &[&str]) {
        assert_eq!(counter.take(), requests, "{what}");
    }
    // A refused `ADD` costs one more `GetItem` where the endpoint does not return the item of
    // a failed condition (dynalite): asked here with the plain SDK, not through kv-dynamodb.
    let refused_add: &[&str] = if returns_item_on_failed_condition(&client, &ns).await {
        &["UpdateItem"]
    } else {
        &["UpdateItem", "GetItem"]
    };
    let then = |next: &'static str| [refused_add, &[next]].concat();

    store.set("k", b"v").await.unwrap();
    expect(&counter, "set", &["PutItem"]).await;
    store.set_with_ttl("t", b"v", 60_000_000_000).await.unwrap();
    expect(&counter, "set_with_ttl", &["PutItem"]).await;
    store.get("k").await.unwrap();
    expect(&counter, "get", &["GetItem"]).await;
    store.get("absent").await.unwrap();
    expect(&counter, "get of an absent key", &["GetItem"]).await;
    store.exists("k").await.unwrap();
    expect(&counter, "exists", &["GetItem"]).await;
    store.list_keys("").await.unwrap();
    expect(&counter, "list_keys", &["Query"]).await;
    assert!(store.compare_and_swap("c", None, b"1").await.unwrap());
    expect(&counter, "CAS None, success", &["PutItem"]).await;
    assert!(!store.compare_and_swap("c", None, b"1").await.unwrap());
    expect(&counter, "CAS None, failure", &["PutItem"]).await;
    assert!(store.compare_and_swap("c", Some(b"1"), b"2").await.unwrap());
    expect(&counter, "CAS Some, success", &["PutItem"]).await;
    assert!(!store.compare_and_swap("c", Some(b"1"), b"3").await.unwrap());
    expect(&counter, "CAS Some, failure", &["PutItem"]).await;
    assert_eq!(store.increment("n", 5).await.unwrap(), 5);
    expect(&counter, "increment of an absent key", &["UpdateItem"]).await;
    assert_eq!(store.increment("n", -2).await.unwrap(), 3);
    expect(&counter, "increment of a counter", &["UpdateItem"]).await;
    assert_eq!(store.increment("t", 0).await.ok(), None);
    expect(&counter, "increment of a non-counter", refused_add).await;
    assert!(store.delete("k").await.unwrap());
    expect(&counter, "delete of a live key", &["DeleteItem"]).await;
    assert!(!store.delete("k").await.unwrap());
    expect(&counter, "delete of an absent key", &["DeleteItem"]).await;

    // The two cases that cost a second request.
    store.set("bytes", b"10").await.unwrap();
    counter.take();
    assert_eq!(store.increment("bytes", 1).await.unwrap(), 11);
    expect(
        &counter,
        "increment of a counter written by set",
        &then("UpdateItem"),
    )
    .await;
    assert_eq!(store.increment("bytes", 1).await.unwrap(), 12);
    expect(&counter, "then it is a counter", &["UpdateItem"]).await;
    put_raw(&client, &ns, "old", [("n", number(9)), ("exp", number(1))]).await;
    assert_eq!(store.increment("old", 1).await.unwrap(), 1);
    expect(
        &counter,
        "increment of an expired leftover",
        &then("PutItem"),
    )
    .await;

    // Invalid input never reaches DynamoDB.
    assert!(store.get("").await.is_err());
    assert!(store.set_with_ttl("k", b"v", 0).await.is_err());
    assert!(store
        .increment(&"x".repeat(MAX_KEY_BYTES + 1), 1)
        .await
        .is_err());
    expect(&counter, "invalid input", &[]).await;

    for key in ["t", "c", "n", "bytes", "old"] {
        store.delete(key).await.unwrap();
    }
}

/// Whether the endpoint returns the item with a failed condition when asked to
/// (`ReturnValuesOnConditionCheckFailure=ALL_OLD`): DynamoDB and moto do, dynalite does not.
async fn returns_item_on_failed_condition(client: &aws_sdk_dynamodb::Client, ns: &str) -> bool {
    use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
    put_raw(client, ns, "probe", [("v", binary(b"x"))]).await;
    let failed = client
        .put_item()
        .table_name(common::TABLE)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ns#{ns}")),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("probe".into()),
        )
        .condition_expression("attribute_not_exists(sk)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .expect_err("the item exists");
    let item = match failed.into_service_error() {
        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
            failed,
        ) => failed.item,
        other => panic!("expected a failed condition, got {other:?}"),
    };
    client
        .delete_item()
        .table_name(common::TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ns#{ns}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("probe".into()),
        )
        .send()
        .await
        .expect("delete the probe");
    item.is_some()
}

#[tokio::test]
async fn debug_shows_where_credentials_come_from_never_the_credentials() {
    let Some(service) = common::service() else {
        return;
    };
    // Opening checks the table: it must exist whichever test of this binary runs first.
    common::ensure_table(service);
    let url = format!(
        "dynamodb://AKIDDEBUGCHECK:debug%2Fsecret%2Bkey@{}?region=us-east-1&endpoint={}&namespace=dbg",
        common::TABLE,
        service.endpoint
    );
    let store = DynamoDbBackend::from_url(&url).await.unwrap();
    let shown = format!("{store:?}");
    for secret in [
        "AKIDDEBUGCHECK",
        "debug/secret",
        "secret+key",
        "debug%2Fsecret",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    for expected in [
        "kvkit-tests",
        "\"dbg\"",
        "us-east-1",
        "static (redacted)",
        "operation_timeout: Some(30s)",
        "attempt_timeout: Some(10s)",
        "max_attempts: Some(3)",
    ] {
        assert!(shown.contains(expected), "{expected} not in {shown}");
    }
    let from_client = DynamoDbBackend::from_client(sdk_client(service), common::TABLE).unwrap();
    let shown = format!("{from_client:?}");
    assert!(shown.contains("from the given client"), "{shown}");
    assert!(
        shown.contains("operation_timeout: Some(30s)"),
        "defaults applied: {shown}"
    );
}

/// A read that finds an expired item deletes it, conditional on the deadline it read: a
/// conditional write judged on a `:now` just before that deadline may still be on its way,
/// and must not apply after the read answered "gone" (see the README). The next read of the
/// key then finds no item.
#[tokio::test]
async fn a_read_of_an_expired_item_deletes_it_on_its_deadline() {
    let Some((store, counter)) = counted_backend("expired-read").await else {
        return;
    };
    let client = sdk_client(common::service().expect("a service, since the backend exists"));
    let ns = store.namespace().to_owned();
    for read in ["get", "exists", "get_many"] {
        store.set_with_ttl("k", b"old", 20_000_000).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            raw_item(&client, &ns, "k").await.is_some(),
            "{read}: the expired item is still stored before the read"
        );
        counter.take();
        match read {
            "get" => assert_eq!(store.get("k").await.unwrap(), None),
            "exists" => assert!(!store.exists("k").await.unwrap()),
            _ => assert_eq!(store.get_many(&["k"]).await.unwrap(), [None]),
        }
        let fetch = if read == "get_many" {
            "BatchGetItem"
        } else {
            "GetItem"
        };
        assert_eq!(counter.take(), [fetch, "DeleteItem"], "{read}");
        assert_eq!(
            raw_item(&client, &ns, "k").await,
            None,
            "{read}: the read deleted the expired item"
        );
    }
}
