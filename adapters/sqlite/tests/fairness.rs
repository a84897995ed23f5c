//! Two processes writing to one file as fast as they can: each gets a share of the commits.
//!
//! The test re-runs its own binary as the second process (`writer_process` below, selected
//! with `--exact` and given the file through an environment variable), so both sides are the
//! same build of the backend, each with its own connections, locks and group commit.
#![allow(
    clippy::disallowed_methods,
    reason = "the processes agree on a wall-clock start and end; no store decision reads them"
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kv_sqlite::{SqliteBackend, SqliteBackendBuilder};
use kv_trait::KvBackend;

/// Where the second process finds the file, and when to start and stop (Unix ms).
const CHILD_FILE: &str = "KV_SQLITE_FAIRNESS_FILE";
const CHILD_START: &str = "KV_SQLITE_FAIRNESS_START_MS";
const CHILD_END: &str = "KV_SQLITE_FAIRNESS_END_MS";
const CHILD_POOL: &str = "KV_SQLITE_FAIRNESS_POOL_SIZE";

/// Writer tasks in each process: more than a batch holds, so the queue never empties and a
/// writer that ignored other processes would hold the lock back to back.
const WRITERS: usize = 300;

/// How long both processes write.
const WRITING: Duration = Duration::from_secs(3);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// Writes from [`WRITERS`] tasks between `start_ms` and `end_ms`; returns (acknowledged writes,
/// failed writes).
async fn write_between(
    path: &Path,
    pool_size: usize,
    tag: &str,
    start_ms: u64,
    end_ms: u64,
) -> (u64, u64) {
    let store = SqliteBackendBuilder::file(path)
        .pool_size(pool_size)
        .build()
        .await
        .expect("open the shared file");
    tokio::time::sleep(Duration::from_millis(start_ms.saturating_sub(unix_ms()))).await;
    let (written, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|task| {
            let (store, written, failed, stop) = (
                store.clone(),
                Arc::clone(&written),
                Arc::clone(&failed),
                Arc::clone(&stop),
            );
            let key = format!("{tag}-{task}");
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match store.increment(&key, 1).await {
                        Ok(_) => written.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(end_ms.saturating_sub(unix_ms()))).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a writer task");
    }
    (
        written.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_writing_flat_out_each_get_a_share_of_the_commits() {
    share_between_two_processes(4).await;
}

/// The hardest case: with one connection, a writer's next turn is the only job its thread
/// has, so only the pause between turns lets the other process in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_connection_each_get_a_share_of_the_commits() {
    share_between_two_processes(1).await;
}

/// Runs the second process and writes beside it; checks each got a fifth of the commits.
async fn share_between_two_processes(pool_size: usize) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("kv.db");
    drop(SqliteBackend::open(&path).await.expect("open")); // the schema, before either starts
    let start_ms = unix_ms() + 1_000; // time for the second process to start
    let end_ms = start_ms + WRITING.as_millis() as u64;
    let child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FILE, &path)
        .env(CHILD_START, start_ms.to_string())
        .env(CHILD_END, end_ms.to_string())
        .env(CHILD_POOL, pool_size.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the second process");
    let (mine, my_failures) = write_between(&path, pool_size, "parent", start_ms, end_ms).await;
    let output = child.wait_with_output().expect("the second process");
    assert!(output.status.success(), "the second process failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        // The harness prints the test's name on the same line, before the report.
        .find_map(|line| line.split_once("fairness: ").map(|(_, report)| report))
        .unwrap_or_else(|| panic!("no report from the second process:\n{stdout}"));
    let mut numbers = line.split(' ').map(|n| n.parse::<u64>().expect("a count"));
    let (theirs, their_failures) = (
        numbers.next().expect("two counts"),
        numbers.next().expect("two counts"),
    );
    println!(
        "this process: {mine} writes ({my_failures} failed); \
         the other: {theirs} ({their_failures} failed)"
    );
    let total = mine + theirs;
    assert!(total > 500, "too few writes to judge ({total})");
    for (who, count) in [("this process", mine), ("the other process", theirs)] {
        assert!(
            count * 5 >= total,
            "{who} got {count} of {total} commits: under a fifth"
        );
    }
    assert_eq!(
        my_failures + their_failures,
        0,
        "a writer timed out waiting"
    );
    // Every acknowledged write is in the file.
    let store = SqliteBackend::open(&path).await.expect("open");
    let mut stored = 0;
    for key in store.list_keys("").await.expect("list") {
        let value = store.get(&key).await.expect("get").expect("a listed key");
        stored += String::from_utf8(value)
            .expect("utf-8")
            .parse::<u64>()
            .expect("a counter");
    }
    assert_eq!(stored, total);
}

/// The second process of the test above when started by it. Run on its own (as every test
/// of this binary is), it writes alone for a moment and checks each write landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_process() {
    let Some(path) = std::env::var_os(CHILD_FILE) else {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        let start = unix_ms();
        let (written, failed) = write_between(&path, 4, "alone", start, start + 200).await;
        let store = SqliteBackend::open(&path).await.unwrap();
        let mut stored = 0;
        for key in store.list_keys("").await.unwrap() {
            let value = store.get(&key).await.unwrap().unwrap();
            stored += String::from_utf8(value).unwrap().parse::<u64>().unwrap();
        }
        assert_eq!((stored, failed), (written, 0));
        return;
    };
    let number = |name| std::env::var(name).unwrap().parse::<u64>().unwrap();
    let (start_ms, end_ms) = (number(CHILD_START), number(CHILD_END));
    let pool_size = number(CHILD_POOL) as usize;
    let (written, failed) =
        write_between(Path::new(&path), pool_size, "child", start_ms, end_ms).await;
    println!("fairness: {written} {failed}");
}
