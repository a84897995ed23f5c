//! Atomicity across handles on one table and namespace: two backends with their own pools in
//! this process, and increments and compare-and-swaps from three OS processes at once.
//!
//! The parent test re-runs this very test binary as child processes, each running only
//! [`child_process`] with the shared namespace in `KV_POSTGRES_CHILD_NAMESPACE`; the server
//! reaches them through `KV_POSTGRES_URL`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use kv_conformance::shared_store::{check_process_tallies, process_workload, ProcessTally};
use kv_postgres::PostgresBackend;
use kv_trait::KvBackend;

use common::{builder, fresh, raw_client, server, twin};

/// Set only in child processes: the namespace to work in.
const CHILD_NAMESPACE_VAR: &str = "KV_POSTGRES_CHILD_NAMESPACE";
/// The test function children run (`--exact` matches its full name).
const CHILD_TEST: &str = "child_process";
const CHILDREN: usize = 2;
const TASKS_PER_PROCESS: usize = 8;
const INCREMENTS_PER_TASK: usize = 25;
const CAS_PER_TASK: usize = 15;

async fn two_handles(label: &str) -> Option<[Arc<dyn KvBackend>; 2]> {
    let store = fresh(label).await?;
    let other = twin(&store).await;
    Some([Arc::new(store), Arc::new(other)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_from_two_backends_are_exact_and_distinct() {
    let Some(handles) = two_handles("increments").await else {
        return;
    };
    kv_conformance::shared_store::increments_across(&handles, 8, 25)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cas_winner_per_round_across_two_backends() {
    let Some(handles) = two_handles("cas-rounds").await else {
        return;
    };
    kv_conformance::shared_store::cas_rounds_across(&handles, 30, 6)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_loop_counter_across_two_backends_is_exact() {
    let Some(handles) = two_handles("cas-loop").await else {
        return;
    };
    kv_conformance::shared_store::cas_loop_counter_across(&handles, 6, 20)
        .await
        .unwrap();
}

/// Child entry point, not a test on its own: with `KV_POSTGRES_CHILD_NAMESPACE` unset (a
/// normal run) it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Some(namespace) = std::env::var_os(CHILD_NAMESPACE_VAR) else {
        return;
    };
    let server = server().expect("the parent's server, from KV_POSTGRES_URL");
    let store = PostgresBackend::builder(&server.url)
        .unwrap()
        .namespace(namespace.to_string_lossy())
        .build()
        .await
        .unwrap();
    let tally = process_workload(
        Arc::new(store),
        TASKS_PER_PROCESS,
        INCREMENTS_PER_TASK,
        CAS_PER_TASK,
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
    println!("{}", tally.to_line());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_and_cas_from_three_processes_are_exact() {
    let Some(store) = fresh("processes").await else {
        return;
    };
    let server = server().unwrap();
    let test_binary = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&test_binary)
                .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_NAMESPACE_VAR, store.namespace())
                .env(kv_test_services::postgres::URL_ENV, &server.url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    let mut tallies = vec![process_workload(
        Arc::new(store.clone()),
        TASKS_PER_PROCESS,
        INCREMENTS_PER_TASK,
        CAS_PER_TASK,
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"))];
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for output in &outputs {
        assert!(
            output.status.success(),
            "child failed: {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let tally = ProcessTally::from_output(&stdout)
            .unwrap_or_else(|| panic!("no tally from a child; stdout:\n{stdout}"));
        assert_eq!(
            tally.increments.len(),
            TASKS_PER_PROCESS * INCREMENTS_PER_TASK
        );
        tallies.push(tally);
    }
    assert_eq!(tallies.len(), CHILDREN + 1);
    check_process_tallies(
        &store,
        &tallies,
        TASKS_PER_PROCESS,
        INCREMENTS_PER_TASK,
        CAS_PER_TASK,
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
}

/// A writer that judged a row live just before its deadline (an `increment` or a
/// compare-and-swap) may commit after the deadline. A read that finds the row expired
/// meanwhile waits for it, instead of answering "gone" and letting the writer's value appear
/// after (not linearizable). Here a plain connection plays that writer: it has rewritten the
/// expired row in a transaction that it has not committed yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_an_expired_row_waits_for_the_writer_holding_it() {
    let Some(builder) = builder("expired-held") else {
        return;
    };
    // No sweeper, which could delete the expired row before the writer takes it.
    let store = builder.sweep_interval(None).build().await.unwrap();
    let mut client = raw_client(&server().expect("a server, since the store exists").url).await;
    for read in ["get", "exists", "get_many"] {
        store.set_with_ttl("k", b"old", 20_000_000).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let writer = client.transaction().await.unwrap();
        let rewritten = writer
            .execute(
                &format!(
                    "UPDATE {} SET value = $3, expires_at = NULL WHERE namespace = $1 AND key = $2",
                    store.table_name()
                ),
                &[&store.namespace(), &&b"k"[..], &&b"new"[..]],
            )
            .await
            .unwrap();
        assert_eq!(rewritten, 1, "{read}: the writer holds the expired row");
        let reader = store.clone();
        let reading = tokio::spawn(async move {
            match read {
                "get" => reader.get("k").await.map(|value| value.is_some()),
                "exists" => reader.exists("k").await,
                _ => reader
                    .get_many(&["k"])
                    .await
                    .map(|values| values[0].is_some()),
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !reading.is_finished(),
            "{read} answered while a writer held the expired row"
        );
        writer.commit().await.unwrap();
        assert!(
            reading.await.unwrap().unwrap(),
            "{read}: after the writer's commit, its value is live"
        );
        store.delete("k").await.unwrap();
    }
}
