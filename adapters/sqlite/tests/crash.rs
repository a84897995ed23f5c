//! Crash rounds: a child process writes and increments through the backend, printing each
//! acknowledged operation; it is killed with `SIGKILL` at a random moment while it writes,
//! many times over, each round on the same file. After every kill the file opens cleanly and
//! holds every acknowledged write (`kv_conformance::crash`), and another process is not kept
//! out by the killed one's locks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kv_conformance::crash::{crash_rounds, crash_workload};
use kv_sqlite::SqliteBackend;
use kv_trait::KvBackend;

const CHILD_FILE: &str = "KV_SQLITE_CRASH_FILE";
const CHILD_START: &str = "KV_SQLITE_CRASH_START";
/// Kills under `cargo test`, and in the reliability report's long run.
const ROUNDS: (u64, u64) = (12, 100);
const TASKS: usize = 4;

/// The child of round `round` on `path`.
fn child(path: &Path, round: u64) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_FILE, path)
        .env(CHILD_START, (round * 1_000_000).to_string())
        .stderr(Stdio::null());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_loses_no_acknowledged_write_round_after_round() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("kv.db");
    drop(SqliteBackend::open(&path).await.expect("create the file"));
    let rounds = kv_conformance::reliability::scaled(ROUNDS.0, ROUNDS.1);
    let outcome = crash_rounds(
        rounds,
        TASKS,
        |round| child(&path, round),
        || async {
            SqliteBackend::builder(&path)
                .busy_timeout(Duration::from_secs(2))
                .build()
                .await
        },
    )
    .await;
    kv_conformance::crash::record("sqlite", rounds, &outcome);
    let all = outcome.unwrap_or_else(|failure| panic!("{failure}"));
    println!(
        "sqlite crash rounds: {rounds} kills, {} acknowledged writes and {} increments, none lost",
        all.sets.len(),
        all.increments
    );
}

/// The child of the test above (started by it, with the file in its environment). Run on its
/// own, it writes on a file of its own for a moment and checks that the writes landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_FILE) else {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store: Arc<dyn KvBackend> =
            Arc::new(SqliteBackend::open(dir.path().join("kv.db")).await.unwrap());
        let workload = crash_workload(Arc::clone(&store), TASKS, 0);
        assert!(tokio::time::timeout(Duration::from_millis(300), workload)
            .await
            .is_err());
        let written = store.list_keys("crash/w").await.unwrap();
        let counter = store.get(kv_conformance::crash::COUNTER).await.unwrap();
        assert!(
            !written.is_empty() && counter.is_some(),
            "{written:?} {counter:?}"
        );
        return;
    };
    let start: u64 = std::env::var(CHILD_START)
        .expect("the start")
        .parse()
        .expect("a number");
    let store = SqliteBackend::open(Path::new(&path))
        .await
        .expect("open in the child");
    crash_workload(Arc::new(store) as Arc<dyn KvBackend>, TASKS, start).await
}
