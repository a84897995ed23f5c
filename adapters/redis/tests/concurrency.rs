//! Linearizable counters and compare-and-swap across backends (separate connections, as two
//! processes of one application would have) and across OS processes, and compare-and-swap
//! under a stream of writes from another client.

// The checks are plain async fns that the generated #[test]s call; like tests, they unwrap.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kv_redis::RedisBackend;
use kv_test_services::redis::{self as services, RedisService};
use kv_trait::KvBackend;

use common::{backend, builder, namespace, Admin};

on_standalone_and_cluster!(
    increments_from_two_backends_are_exact_and_distinct,
    compare_and_swap_rounds_across_two_backends_have_one_winner,
    a_get_and_swap_loop_counter_across_two_backends_is_exact,
);

const TASKS_PER_BACKEND: usize = 8;

/// Two backends on one namespace, each with its own connections.
async fn two_backends(service: &RedisService, label: &str) -> [RedisBackend; 2] {
    let ns = namespace(label);
    [
        backend(service, &ns).await,
        builder(service, &ns)
            .max_concurrent_requests(4)
            .build()
            .await
            .unwrap(),
    ]
}

/// The two backends as the handles the kit's shared-store checks take.
async fn two_handles(service: &RedisService, label: &str) -> [Arc<dyn KvBackend>; 2] {
    two_backends(service, label)
        .await
        .map(|backend| Arc::new(backend) as Arc<dyn KvBackend>)
}

async fn increments_from_two_backends_are_exact_and_distinct(service: &RedisService) {
    let handles = two_handles(service, "incr").await;
    let checked =
        kv_conformance::shared_store::increments_across(&handles, TASKS_PER_BACKEND, 40).await;
    checked.unwrap_or_else(|failure| panic!("{failure}"));
}

async fn compare_and_swap_rounds_across_two_backends_have_one_winner(service: &RedisService) {
    let handles = two_handles(service, "cas").await;
    let checked =
        kv_conformance::shared_store::cas_rounds_across(&handles, 20, TASKS_PER_BACKEND).await;
    checked.unwrap_or_else(|failure| panic!("{failure}"));
}

async fn a_get_and_swap_loop_counter_across_two_backends_is_exact(service: &RedisService) {
    let handles = two_handles(service, "cas-loop").await;
    let checked =
        kv_conformance::shared_store::cas_loop_counter_across(&handles, TASKS_PER_BACKEND, 15)
            .await;
    checked.unwrap_or_else(|failure| panic!("{failure}"));
}

/// Another client rewrites the key with the expected value without pause. Each swap is one
/// script, which no write can interrupt between its read and its write: every call ends in a
/// successful swap, at one `EVALSHA` each (plus one `EVAL` when the server did not have the
/// script yet), with no retry. (The `WATCH` transactions this replaced were aborted by such a
/// writer and had to retry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_writes_of_the_expected_value_never_fails_a_swap() {
    let Some(server) = services::private_standalone() else {
        return;
    };
    let store = backend(&server, "").await;
    let admin = Admin::connect(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let client = redis::Client::open(common::node_info(&server, &server.nodes[0])).unwrap();
    let writer = tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut writes = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let _: () = redis::cmd("SET")
                    .arg("k")
                    .arg("x")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                writes += 1;
            }
            writes
        }
    });
    common::sleep_ms(20).await;
    let before = admin.command_calls().await;
    const SWAPS: u64 = 150;
    for _ in 0..SWAPS {
        // Only this loop ever writes `y`; whoever reads `k` now finds `x`.
        admin.must::<()>(redis::cmd("SET").arg("k").arg("x")).await;
        assert!(store.compare_and_swap("k", Some(b"x"), b"y").await.unwrap());
    }
    let after = admin.command_calls().await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let (scripts, loaded) = (delta("evalsha"), delta("eval"));
    eprintln!("{SWAPS} swaps beside {writes} writes of the expected value: {scripts} EVALSHA, {loaded} EVAL");
    assert!(
        writes > SWAPS,
        "the writer wrote {writes} times: it raced nothing"
    );
    assert_eq!(scripts, SWAPS, "one script call per swap, none retried");
    assert!(loaded <= 1, "{loaded} EVALs");
    assert_eq!(delta("watch") + delta("exec"), 0, "no transaction");
}

/// Set only in child processes: the URL of the server to increment on.
const CHILD_URL_VAR: &str = "KV_REDIS_TEST_CHILD_URL";
const CHILD_TEST: &str = "child_process_increments_and_swaps";
const RESULTS_MARKER: &str = "kv-redis child results: ";
const CHILDREN: usize = 3;
const PER_CHILD: usize = 60;

/// Child entry point, not a test on its own: with `KV_REDIS_TEST_CHILD_URL` unset it returns at
/// once. In a child it increments a shared counter, then adds to a get-and-swap counter, and
/// prints what the increments returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_increments_and_swaps() {
    let Ok(url) = std::env::var(CHILD_URL_VAR) else {
        return;
    };
    let store = RedisBackend::from_url(&url).await.unwrap();
    let mut results = Vec::new();
    for _ in 0..PER_CHILD {
        results.push(store.increment("counter", 1).await.unwrap().to_string());
        loop {
            let current = store.get("swapped").await.unwrap();
            let next = current.as_deref().map_or(0, |v| {
                std::str::from_utf8(v).unwrap().parse::<u64>().unwrap()
            }) + 1;
            if store
                .compare_and_swap("swapped", current.as_deref(), next.to_string().as_bytes())
                .await
                .unwrap()
            {
                break;
            }
        }
    }
    println!("{RESULTS_MARKER}{}", results.join(","));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_and_swaps_from_several_processes_are_exact() {
    for service in common::services() {
        let ns = namespace("processes");
        let url = service.url_with(&format!("namespace={ns}"));
        let children: Vec<_> = (0..CHILDREN)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
                    .env(CHILD_URL_VAR, &url)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut results: Vec<i64> = Vec::new();
        for child in children {
            let output = tokio::task::spawn_blocking(move || child.wait_with_output())
                .await
                .unwrap()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "child failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let line = stdout
                .lines()
                .find_map(|line| line.split_once(RESULTS_MARKER).map(|(_, rest)| rest.trim()))
                .unwrap_or_else(|| panic!("no results from a child:\n{stdout}"));
            results.extend(line.split(',').map(|n| n.parse::<i64>().unwrap()));
        }
        results.sort_unstable();
        let total = CHILDREN * PER_CHILD;
        assert_eq!(results, (1..=total as i64).collect::<Vec<_>>());
        let store = backend(service, &ns).await;
        assert_eq!(
            store.get("swapped").await.unwrap(),
            Some(total.to_string().into_bytes())
        );
        for key in ["counter", "swapped"] {
            assert!(store.delete(key).await.unwrap());
        }
    }
}
