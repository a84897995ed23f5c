//! Items another program put in the table that kv-dynamodb did not write: a value of the
//! wrong attribute type, a counter that is a fraction, a deadline that is text, an item with
//! neither a value nor a counter. Every operation that has to read such an item answers
//! with a clear error (`Backend`, naming what is wrong, or the contract's own error where
//! one fits), never a panic, and leaves the item as it was; `set` replaces it.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use kv_trait::{KvBackend, KvError};

use common::{fresh_backend, number, put_raw, raw_item, sdk_client};

/// The items, by key, with the attributes besides `pk` and `sk`.
fn foreign_items() -> Vec<(&'static str, Vec<(&'static str, AttributeValue)>)> {
    vec![
        ("text-value", vec![("v", AttributeValue::S("text".into()))]),
        ("fraction", vec![("n", number("1.5"))]),
        (
            "text-deadline",
            vec![
                ("v", AttributeValue::B(vec![1, 2].into())),
                ("exp", AttributeValue::S("soon".into())),
            ],
        ),
        ("empty", vec![("colour", AttributeValue::S("blue".into()))]),
    ]
}

/// `Backend` naming the foreign item, or the contract's error for a value that is not a
/// counter (for `increment` of an item whose value DynamoDB cannot add to).
fn is_clear<T: std::fmt::Debug>(result: &Result<T, KvError>) -> bool {
    match result {
        Err(KvError::Backend(err)) => {
            let message = err.to_string();
            message.contains("not written by kv-dynamodb") || message.contains("Exception")
        }
        Err(KvError::NotAnInteger) => true,
        _ => false,
    }
}

/// moto answers `500 Internal Server Error` when a condition compares the text deadline with
/// a Number (DynamoDB finds the condition false); the adapter maps a 5xx to `Unavailable`, as
/// for DynamoDB's own. Accepted for that one case, which dynalite answers properly.
fn emulator_crashed<T>(result: &Result<T, KvError>) -> bool {
    matches!(result, Err(KvError::Unavailable(err)) if err.to_string().contains("StatusCode(500)"))
}

#[tokio::test]
async fn foreign_items_give_clear_errors_and_stay_as_they_were() {
    let Some(store) = fresh_backend("hostile").await else {
        return;
    };
    let client = sdk_client(common::service().expect("a service, since the store exists"));
    let ns = store.namespace().to_owned();
    for (key, attributes) in foreign_items() {
        put_raw(&client, &ns, key, attributes).await;
    }

    for (key, _) in foreign_items() {
        let before = raw_item(&client, &ns, key).await;
        let read = store.get(key).await;
        assert!(is_clear(&read), "get of {key}: {read:?}");
        // `exists` reads only the deadline: an item whose deadline it can read is live.
        let found = store.exists(key).await;
        if key == "text-deadline" {
            assert!(is_clear(&found), "exists of {key}: {found:?}");
        } else {
            assert!(matches!(found, Ok(true)), "exists of {key}: {found:?}");
        }
        let many = store.get_many(&[key]).await;
        assert!(is_clear(&many), "get_many of {key}: {many:?}");
        let bumped = store.increment(key, 1).await;
        assert!(is_clear(&bumped), "increment of {key}: {bumped:?}");
        let swapped = store.compare_and_swap(key, Some(b"x"), b"y").await;
        assert!(
            is_clear(&swapped) || matches!(swapped, Ok(false)) || emulator_crashed(&swapped),
            "compare_and_swap of {key}: {swapped:?}"
        );
        assert_eq!(
            raw_item(&client, &ns, key).await,
            before,
            "{key}: a failed call changed the item"
        );
    }
    // `list_keys` reads only the sort keys and deadlines: the text deadline is the one it
    // cannot judge.
    let listed = store.list_keys("").await;
    assert!(is_clear(&listed), "list_keys: {listed:?}");

    // A kvkit write replaces a foreign item whole.
    for (key, _) in foreign_items() {
        store
            .set(key, b"mine")
            .await
            .expect("set over a foreign item");
        assert_eq!(
            store.get(key).await.unwrap(),
            Some(b"mine".to_vec()),
            "{key}"
        );
    }
    let keys = store.list_keys("").await.expect("list after the writes");
    assert_eq!(keys, ["empty", "fraction", "text-deadline", "text-value"]);
    store
        .delete_many(&["empty", "fraction", "text-deadline", "text-value"])
        .await
        .expect("clean up");
}
