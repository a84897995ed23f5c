//! Atomicity between backends with separate clients on one namespace: increments by `ADD`,
//! through the read-modify-write fallback (counters written by `set`, expired leftovers), and
//! compare-and-swap.

mod common;

use std::sync::Arc;

use kv_dynamodb::DynamoDbBackend;
use kv_trait::KvBackend;

use common::{fresh_backend, number, put_raw, twin};

const TASKS_PER_BACKEND: usize = 6;
const INCREMENTS_PER_TASK: usize = 10;

/// Every task increments `key` by 1, `INCREMENTS_PER_TASK` times; returns all results sorted.
async fn increment_from_everywhere(stores: &[DynamoDbBackend], key: &str) -> Vec<i64> {
    let mut tasks = Vec::new();
    for store in stores {
        for _ in 0..TASKS_PER_BACKEND {
            let (store, key) = (store.clone(), key.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..INCREMENTS_PER_TASK {
                    seen.push(store.increment(&key, 1).await.expect("increment"));
                }
                seen
            }));
        }
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.expect("incrementing task"));
    }
    results.sort_unstable();
    results
}

fn total(stores: usize) -> i64 {
    (stores * TASKS_PER_BACKEND * INCREMENTS_PER_TASK) as i64
}

/// A fresh backend and a twin on its namespace (separate clients), as the kit's shared-store
/// checks take them; `None` without an emulator.
async fn two_handles(label: &str) -> Option<[Arc<dyn KvBackend>; 2]> {
    let store = fresh_backend(label).await?;
    let other = twin(&store).await;
    Some([Arc::new(store), Arc::new(other)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_from_two_backends_are_exact_and_distinct() {
    let Some(handles) = two_handles("add").await else {
        return;
    };
    let checked = kv_conformance::shared_store::increments_across(
        &handles,
        TASKS_PER_BACKEND,
        INCREMENTS_PER_TASK,
    )
    .await;
    checked.unwrap_or_else(|failure| panic!("{failure}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_for_a_counter_written_by_set_loses_no_update_under_contention() {
    let Some(store) = fresh_backend("fallback").await else {
        return;
    };
    let stores = [store.clone(), twin(&store).await];
    // Several rounds: each starts with bytes, so every racer first fails its ADD, and exactly
    // one conversion wins while the others retry.
    for round in 0..3 {
        let start = 1000 * (round + 1);
        store
            .set("counter", start.to_string().as_bytes())
            .await
            .unwrap();
        let results = increment_from_everywhere(&stores, "counter").await;
        assert_eq!(
            results,
            (start + 1..=start + total(2)).collect::<Vec<_>>(),
            "round {round}"
        );
    }
    store.delete("counter").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_increments_of_an_expired_leftover_start_once_from_zero() {
    let Some(store) = fresh_backend("leftover").await else {
        return;
    };
    let stores = [store.clone(), twin(&store).await];
    let client = common::sdk_client(common::service().unwrap());
    put_raw(
        &client,
        store.namespace(),
        "counter",
        [("n", number(500)), ("exp", number(1)), ("ttl", number(1))],
    )
    .await;
    let results = increment_from_everywhere(&stores, "counter").await;
    assert_eq!(results, (1..=total(2)).collect::<Vec<_>>());
    store.delete("counter").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_has_one_winner_per_round_across_backends() {
    let Some(handles) = two_handles("cas").await else {
        return;
    };
    let checked = kv_conformance::shared_store::cas_rounds_across(&handles, 8, 4).await;
    checked.unwrap_or_else(|failure| panic!("{failure}"));
}

/// Many tasks on two handles at once, on one hot key each: increments, CAS rounds and a
/// get + CAS counter. On dynalite (which runs requests concurrently, each item's writes
/// atomic) this is real contention on one item; on moto it goes through the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_two_handles_stay_exact() {
    const TASKS: usize = 32;
    let Some(handles) = two_handles("many-add").await else {
        return;
    };
    kv_conformance::shared_store::increments_across(&handles, TASKS, 5)
        .await
        .unwrap_or_else(|failure| panic!("increments: {failure}"));
    let handles = two_handles("many-cas").await.expect("the same emulator");
    kv_conformance::shared_store::cas_rounds_across(&handles, 4, TASKS)
        .await
        .unwrap_or_else(|failure| panic!("cas rounds: {failure}"));
    let handles = two_handles("many-loop").await.expect("the same emulator");
    kv_conformance::shared_store::cas_loop_counter_across(&handles, 8, 3)
        .await
        .unwrap_or_else(|failure| panic!("cas loop: {failure}"));
}
