//! Increments from several OS processes sharing one file are exact and each distinct.
//!
//! The parent test re-runs this very test binary as child processes, each running only
//! [`child_increments_shared_counter`] with the database path in `KV_SQLITE_CHILD_DB`.

mod common;

use std::process::{Command, Output, Stdio};

use kv_sqlite::SqliteBackend;
use kv_trait::KvBackend;

/// Set only in child processes: the database file to increment in.
const CHILD_DB_VAR: &str = "KV_SQLITE_CHILD_DB";
/// The test function children run (`--exact` matches its full name).
const CHILD_TEST: &str = "child_increments_shared_counter";
/// Precedes, on one line of the child's output, the list of every value its increments returned.
const RESULTS_MARKER: &str = "kv-sqlite child results: ";
const CHILDREN: usize = 3;
const INCREMENTS_PER_PROCESS: usize = 100;
const KEY: &str = "shared-counter";

async fn increment_many(store: &SqliteBackend) -> Vec<i64> {
    let mut results = Vec::with_capacity(INCREMENTS_PER_PROCESS);
    for _ in 0..INCREMENTS_PER_PROCESS {
        results.push(store.increment(KEY, 1).await.expect("increment"));
    }
    results
}

/// Child entry point, not a test on its own: with `KV_SQLITE_CHILD_DB` unset (a normal
/// `cargo test` run) it returns at once. In a child it increments the shared counter and
/// prints the results for the parent.
#[tokio::test]
async fn child_increments_shared_counter() {
    let Some(path) = std::env::var_os(CHILD_DB_VAR) else {
        return;
    };
    let store = SqliteBackend::open(path).await.unwrap();
    let results: Vec<String> = increment_many(&store)
        .await
        .iter()
        .map(i64::to_string)
        .collect();
    println!("{RESULTS_MARKER}{}", results.join(","));
}

fn child_results(output: &Output) -> Vec<i64> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        // The harness may print "test ... " on the same line before it.
        .find_map(|line| {
            line.split_once(RESULTS_MARKER)
                .map(|(_, numbers)| numbers.trim())
        })
        .unwrap_or_else(|| panic!("no results from child; stdout:\n{stdout}"));
    line.split(',')
        .map(|n| n.parse().expect("a number"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_from_several_processes_are_exact_and_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let store = SqliteBackend::open(&path).await.unwrap();

    let test_binary = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&test_binary)
                .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_DB_VAR, &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    let mut results = increment_many(&store).await;

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
        let from_child = child_results(output);
        assert_eq!(from_child.len(), INCREMENTS_PER_PROCESS);
        results.extend(from_child);
    }

    let total = ((CHILDREN + 1) * INCREMENTS_PER_PROCESS) as i64;
    results.sort_unstable();
    assert_eq!(
        results,
        (1..=total).collect::<Vec<_>>(),
        "each result distinct, none lost"
    );
    assert_eq!(
        store.get(KEY).await.unwrap(),
        Some(total.to_string().into_bytes())
    );
}
