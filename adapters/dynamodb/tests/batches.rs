//! The batch operations' requests, counted: DynamoDB's chunk sizes (100 keys per
//! `BatchGetItem`, 25 items per `BatchWriteItem`), each key asked once, items encoded as the
//! single writes encode them; and keys and items DynamoDB leaves unprocessed resent until none
//! are left, never dropped, within the operation timeout.
//!
//! The emulators never leave anything unprocessed by themselves (they neither throttle nor
//! apply DynamoDB's 16 MB answer limit to these sizes), so [`HoldBack`], an interceptor,
//! makes the answers look as AWS's do under throttling.

#![allow(
    clippy::disallowed_methods,
    reason = "the tests time themselves; no store decision reads this clock"
)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use aws_sdk_dynamodb::Client;
use common::{counted_backend, raw_item, sdk_client, RequestCounter, TABLE};
use kv_dynamodb::DynamoDbBackend;
use kv_trait::{KvBackend, KvError};

type Item = std::collections::HashMap<String, AttributeValue>;

fn keys(label: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{label}/{i:04}")).collect()
}

fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

fn times(n: usize, operation: &str) -> Vec<String> {
    vec![operation.to_owned(); n]
}

#[tokio::test]
async fn batches_take_one_request_per_chunk_and_ask_each_key_once() {
    let Some((store, counter)) = counted_backend("batch-requests").await else {
        return;
    };

    // 60 puts: 25 + 25 + 10.
    let written = keys("w", 60);
    let values: Vec<Vec<u8>> = (0..60).map(|i| format!("value {i}").into_bytes()).collect();
    let entries: Vec<(&str, &[u8])> = written
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    store.set_many(&entries, None).await.unwrap();
    assert_eq!(counter.take(), times(3, "BatchWriteItem"), "set_many of 60");

    // 250 keys, 60 of them present: 100 + 100 + 50.
    let mut asked = written.clone();
    asked.extend(keys("absent", 190));
    let answers = store.get_many(&refs(&asked)).await.unwrap();
    assert_eq!(counter.take(), times(3, "BatchGetItem"), "get_many of 250");
    for (i, answer) in answers.iter().enumerate() {
        let expected = values.get(i).map(Vec::as_slice);
        assert_eq!(answer.as_deref(), expected, "{}", asked[i]);
    }

    // 300 keys, 150 distinct (each asked twice, the second time in reverse order): 100 + 50,
    // and every key answered where it was asked.
    let mut twice = keys("w", 150);
    twice.extend(keys("w", 150).into_iter().rev());
    let answers = store.get_many(&refs(&twice)).await.unwrap();
    assert_eq!(
        counter.take(),
        times(2, "BatchGetItem"),
        "150 distinct of 300"
    );
    for (key, answer) in twice.iter().zip(&answers) {
        let expected = written
            .iter()
            .position(|k| k == key)
            .map(|i| values[i].as_slice());
        assert_eq!(answer.as_deref(), expected, "{key}");
    }

    // 60 entries over 30 distinct keys, each given twice: the last value stays, 25 + 5.
    let repeated = keys("r", 30);
    let mut entries: Vec<(&str, &[u8])> = repeated
        .iter()
        .map(|k| (k.as_str(), &b"first"[..]))
        .collect();
    entries.extend(repeated.iter().map(|k| (k.as_str(), &b"last"[..])));
    store.set_many(&entries, None).await.unwrap();
    assert_eq!(
        counter.take(),
        times(2, "BatchWriteItem"),
        "30 distinct of 60"
    );
    let answers = store.get_many(&refs(&repeated)).await.unwrap();
    assert!(
        answers.iter().all(|a| a.as_deref() == Some(&b"last"[..])),
        "{answers:?}"
    );
    counter.take();

    // Expired items read as absent, as `get` reads them, and are deleted on their deadline
    // as `get` deletes them: one conditional DeleteItem each.
    store
        .set_many(&[("short/0", b"v"), ("short/1", b"v")], Some(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let answers = store
        .get_many(&["short/0", "w/0000", "short/1"])
        .await
        .unwrap();
    assert_eq!(answers, [None, Some(values[0].clone()), None]);
    assert_eq!(
        counter.take(),
        ["BatchWriteItem", "BatchGetItem", "DeleteItem", "DeleteItem"]
    );

    // delete_many: one DeleteItem per distinct key (returning the old item, so only live
    // keys count): 60 written + 2 expired (deleted by now) + 1 absent, with one key given twice.
    let mut doomed = refs(&written);
    doomed.extend(["short/0", "short/1", "never", "w/0000"]);
    assert_eq!(store.delete_many(&doomed).await.unwrap(), 60);
    assert_eq!(counter.take(), times(63, "DeleteItem"), "63 distinct keys");
    assert!(store
        .get_many(&refs(&written))
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
    assert_eq!(store.delete_many(&refs(&repeated)).await.unwrap(), 30);
    assert!(store.list_keys("").await.unwrap().is_empty());
}

#[tokio::test]
async fn batch_writes_encode_items_as_single_writes_do() {
    let Some(store) = common::fresh_backend("batch-items").await else {
        return;
    };
    let client = sdk_client(common::service().unwrap());
    let ns = store.namespace().to_owned();
    let hour = 3_600_000_000_000;
    store.set_with_ttl("single", b"v", hour).await.unwrap();
    store
        .set_many(&[("batched", b"v")], Some(hour))
        .await
        .unwrap();
    let single = raw_item(&client, &ns, "single").await.unwrap();
    let batched = raw_item(&client, &ns, "batched").await.unwrap();
    let names = |item: &Item| {
        let mut names: Vec<String> = item.keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(names(&batched), ["exp", "pk", "sk", "ttl", "v"]);
    assert_eq!(names(&single), names(&batched));
    assert_eq!(single["v"], batched["v"]);
    // Deadlines read a moment apart: within a second of each other, in Unix ms.
    let deadline = |item: &Item| item["exp"].as_n().unwrap().parse::<u64>().unwrap();
    assert!(deadline(&batched).abs_diff(deadline(&single)) < 1000);

    // A counter or a TTL goes, as with `set`.
    store.increment("count", 1).await.unwrap();
    store
        .set_many(&[("count", b"7"), ("batched", b"w")], None)
        .await
        .unwrap();
    let count = raw_item(&client, &ns, "count").await.unwrap();
    assert_eq!(names(&count), ["pk", "sk", "v"]);
    assert_eq!(
        names(&raw_item(&client, &ns, "batched").await.unwrap()),
        ["pk", "sk", "v"]
    );
    assert_eq!(store.increment("count", 1).await.unwrap(), 8);
    store
        .delete_many(&["single", "batched", "count"])
        .await
        .unwrap();
}

#[tokio::test]
async fn each_page_is_one_query_bounded_by_its_limit() {
    let Some((store, counter)) = counted_backend("pages").await else {
        return;
    };
    let written = keys("p", 25);
    let entries: Vec<(&str, &[u8])> = written.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
    store.set_many(&entries, None).await.unwrap();
    store
        .set_many(&[("q", b"v"), ("o", b"v")], None)
        .await
        .unwrap();
    counter.take();

    let limit = std::num::NonZeroUsize::new(10).unwrap();
    let (mut listed, mut after, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = store
            .list_keys_page("p/", after.as_deref(), limit)
            .await
            .unwrap();
        pages += 1;
        assert!(page.keys.len() <= 10);
        listed.extend(page.keys);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, written);
    // 10 + 10 + 5: the third read fewer than the limit and DynamoDB had nothing left.
    assert_eq!(pages, 3);
    assert_eq!(counter.take(), times(3, "Query"), "one Query per page");

    // After the prefix's last key, and a start before the prefix.
    let page = store.list_keys_page("p/", Some("p0"), limit).await.unwrap();
    assert_eq!((page.keys.len(), page.next), (0, None));
    let page = store.list_keys_page("p/", Some("a"), limit).await.unwrap();
    assert_eq!(page.keys, written[..10]);
    let page = store
        .list_keys_page("", Some("p/0024"), limit)
        .await
        .unwrap();
    assert_eq!(page.keys, ["q"]);
    assert_eq!(
        counter.take(),
        times(2, "Query"),
        "none for a start past the prefix"
    );
    store.delete_many(&refs(&written)).await.unwrap();
    store.delete_many(&["q", "o"]).await.unwrap();
}

/// What [`HoldBack`] does to the batch requests that go through it.
#[derive(Debug)]
enum Plan {
    /// For each of the next batch requests, this many of its keys or items are taken out of
    /// the request before it is sent (so they are really not read or written) and put back
    /// in its answer as unprocessed, as DynamoDB reports what it did not do.
    Rounds(VecDeque<usize>),
    /// Every answer reports the request's last key or item unprocessed (the request goes
    /// out whole: DynamoDB refuses an empty batch, so a resend of one item cannot be emptied).
    Always,
}

/// What one request had held back, for its answer.
#[derive(Debug)]
enum Held {
    Keys(Vec<Item>),
    Writes(Vec<WriteRequest>),
}

/// Makes answers leave part of a batch unprocessed (see [`Plan`]), and counts what it held.
#[derive(Debug, Clone)]
struct HoldBack {
    plan: Arc<Mutex<Plan>>,
    held: Arc<Mutex<Option<Held>>>,
    total_held: Arc<Mutex<usize>>,
}

impl HoldBack {
    fn new() -> Self {
        Self {
            plan: Arc::new(Mutex::new(Plan::Rounds(VecDeque::new()))),
            held: Arc::new(Mutex::new(None)),
            total_held: Arc::new(Mutex::new(0)),
        }
    }

    fn plan(&self, plan: Plan) {
        *self.plan.lock().expect("hold-back lock") = plan;
        *self.total_held.lock().expect("hold-back lock") = 0;
    }

    fn total_held(&self) -> usize {
        *self.total_held.lock().expect("hold-back lock")
    }

    /// How many of `len` keys or items to hold back, and whether to take them out.
    fn next_hold(&self, len: usize) -> (usize, bool) {
        match &mut *self.plan.lock().expect("hold-back lock") {
            Plan::Rounds(rounds) => {
                let hold = rounds.pop_front().unwrap_or(0);
                assert!(
                    hold < len,
                    "cannot hold back {hold} of {len}: DynamoDB refuses an empty batch"
                );
                (hold, true)
            }
            Plan::Always => (1, false),
        }
    }

    fn hold<T: Clone>(&self, batch: &mut Vec<T>) -> Vec<T> {
        let (hold, take_out) = self.next_hold(batch.len());
        *self.total_held.lock().expect("hold-back lock") += hold;
        let at = batch.len() - hold;
        match take_out {
            true => batch.split_off(at),
            false => batch[at..].to_vec(),
        }
    }
}

impl Intercept for HoldBack {
    fn name(&self) -> &'static str {
        "hold back part of each batch"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let held = if let Some(input) = input.downcast_mut::<BatchGetItemInput>() {
            let request = input.request_items.as_mut().and_then(|t| t.get_mut(TABLE));
            request.map(|request| Held::Keys(self.hold(&mut request.keys)))
        } else if let Some(input) = input.downcast_mut::<BatchWriteItemInput>() {
            let request = input.request_items.as_mut().and_then(|t| t.get_mut(TABLE));
            request.map(|writes| Held::Writes(self.hold(writes)))
        } else {
            None
        };
        *self.held.lock().expect("hold-back lock") = held;
        Ok(())
    }

    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(held) = self.held.lock().expect("hold-back lock").take() else {
            return Ok(());
        };
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        match held {
            Held::Keys(keys) if !keys.is_empty() => {
                let output = output
                    .downcast_mut::<BatchGetItemOutput>()
                    .ok_or("a BatchGetItem answered with another output")?;
                // Under `Plan::Always` the key was read: its item leaves the answer.
                let held_sk: Vec<&AttributeValue> = keys.iter().map(|k| &k["sk"]).collect();
                if let Some(items) = output.responses.as_mut().and_then(|t| t.get_mut(TABLE)) {
                    items.retain(|item| !held_sk.contains(&&item["sk"]));
                }
                let unprocessed = output.unprocessed_keys.get_or_insert_default();
                let mut all = unprocessed
                    .remove(TABLE)
                    .map(|k| k.keys)
                    .unwrap_or_default();
                all.extend(keys);
                let request = KeysAndAttributes::builder().set_keys(Some(all)).build()?;
                unprocessed.insert(TABLE.to_owned(), request);
            }
            Held::Writes(writes) if !writes.is_empty() => {
                let output = output
                    .downcast_mut::<BatchWriteItemOutput>()
                    .ok_or("a BatchWriteItem answered with another output")?;
                let unprocessed = output.unprocessed_items.get_or_insert_default();
                unprocessed
                    .entry(TABLE.to_owned())
                    .or_default()
                    .extend(writes);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A backend in a fresh namespace whose requests go through `hold` and `counter`.
async fn holding_backend(
    label: &str,
    hold: &HoldBack,
    operation_timeout: Duration,
) -> Option<(DynamoDbBackend, RequestCounter)> {
    let service = common::service()?;
    common::ensure_table(service);
    let counter = RequestCounter::default();
    let client = Client::from_conf(
        common::sdk_config(service)
            .interceptor(hold.clone())
            .interceptor(counter.clone())
            .build(),
    );
    let store = DynamoDbBackend::builder(TABLE)
        .client(client)
        .namespace(common::unique_namespace(label))
        .operation_timeout(operation_timeout)
        .build()
        .await
        .expect("holding backend");
    counter.take();
    Some((store, counter))
}

#[tokio::test]
async fn unprocessed_keys_and_items_are_resent_until_none_are_left() {
    let hold = HoldBack::new();
    let Some((store, counter)) =
        holding_backend("unprocessed", &hold, Duration::from_secs(30)).await
    else {
        return;
    };
    let written = keys("k", 60);
    let entries: Vec<(&str, &[u8])> = written.iter().map(|k| (k.as_str(), k.as_bytes())).collect();

    // The first chunk's answer leaves 5 of its 25 items unprocessed, the resend's answer 2
    // of those 5: two resends, after waits of 25 and 50 ms.
    hold.plan(Plan::Rounds(VecDeque::from([5, 2])));
    let started = Instant::now();
    store.set_many(&entries, None).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        counter.take(),
        times(5, "BatchWriteItem"),
        "3 chunks + 2 resends"
    );
    assert_eq!(hold.total_held(), 7);
    assert!(elapsed >= Duration::from_millis(75), "{elapsed:?}");

    // Every item is there: none of the held ones was dropped. (Read without holding.)
    hold.plan(Plan::Rounds(VecDeque::new()));
    let answers = store.get_many(&refs(&written)).await.unwrap();
    assert_eq!(counter.take(), ["BatchGetItem"]);
    for (key, answer) in written.iter().zip(&answers) {
        assert_eq!(answer.as_deref(), Some(key.as_bytes()), "{key}");
    }

    // 250 keys: the first answer leaves 30 unprocessed, the next 10 of those 30. If any was
    // dropped it would read as absent.
    let mut asked = written.clone();
    asked.extend(keys("absent", 190));
    hold.plan(Plan::Rounds(VecDeque::from([30, 10])));
    let answers = store.get_many(&refs(&asked)).await.unwrap();
    assert_eq!(
        counter.take(),
        times(5, "BatchGetItem"),
        "3 chunks + 2 resends"
    );
    assert_eq!(hold.total_held(), 40);
    for (i, (key, answer)) in asked.iter().zip(&answers).enumerate() {
        let expected = (i < 60).then_some(key.as_bytes());
        assert_eq!(answer.as_deref(), expected, "{key}");
    }
    hold.plan(Plan::Rounds(VecDeque::new()));
    assert_eq!(store.delete_many(&refs(&written)).await.unwrap(), 60);
}

#[tokio::test]
async fn a_batch_still_unprocessed_at_the_operation_timeout_is_unavailable() {
    let hold = HoldBack::new();
    let timeout = Duration::from_millis(600);
    let Some((store, counter)) = holding_backend("never-done", &hold, timeout).await else {
        return;
    };
    hold.plan(Plan::Always);
    for operation in ["BatchWriteItem", "BatchGetItem"] {
        let started = Instant::now();
        let outcome = match operation {
            "BatchWriteItem" => store.set_many(&[("a", b"1"), ("b", b"2")], None).await,
            _ => store.get_many(&["a", "b"]).await.map(drop),
        };
        let elapsed = started.elapsed();
        match outcome {
            Err(err @ KvError::Unavailable(_)) => {
                assert!(err.to_string().contains("operation timeout"), "{err}")
            }
            other => panic!("{operation}: expected Unavailable, got {other:?}"),
        }
        // It gives up as soon as the next wait would end past the timeout, or cuts off a
        // request still in flight at the timeout (on a slow emulator): never much later.
        assert!(
            elapsed < timeout + Duration::from_millis(150),
            "{operation}: {elapsed:?}"
        );
        // Waits of 25, 50, 100 and 200 ms fit in 600 ms, the next 400 ms would not: 4
        // resends (fewer if the emulator is slow, none if one request takes it all), never
        // an unbounded number.
        let sent = counter.take();
        assert!(
            (1..=5).contains(&sent.len()) && sent.iter().all(|op| op == operation),
            "{operation}: {sent:?}"
        );
    }
    hold.plan(Plan::Rounds(VecDeque::new()));
    store.delete_many(&["a", "b"]).await.unwrap();
}
