//! Atomicity across handles on one namespace of the three-member cluster: two backends with
//! their own connections in this process, and increments and compare-and-swaps from three OS
//! processes at once.
//!
//! The parent test re-runs this very test binary as child processes, each running only
//! [`child_process`] with the shared namespace in `KV_ETCD_CHILD_NAMESPACE`; the cluster
//! reaches them through `KV_ETCD_CLUSTER_URL`.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use kv_etcd::EtcdBackend;
use kv_trait::KvBackend;

use common::{builder, cluster, twin};

/// Set only in child processes: the namespace to work in.
const CHILD_NAMESPACE_VAR: &str = "KV_ETCD_CHILD_NAMESPACE";
/// The test function children run (`--exact` matches its full name).
const CHILD_TEST: &str = "child_process";
/// Precedes, on one line of a child's output, its increments' results, then `|`, then how
/// many compare-and-swaps it won.
const RESULTS_MARKER: &str = "kv-etcd child results: ";
const CHILDREN: usize = 2;
const TASKS_PER_PROCESS: usize = 8;
const INCREMENTS_PER_TASK: usize = 10;
const CAS_PER_TASK: usize = 6;
const COUNTER: &str = "processes/counter";
const CAS_COUNTER: &str = "processes/cas-counter";

/// A backend on the three-member cluster in a fresh namespace.
async fn fresh(label: &str) -> Option<EtcdBackend> {
    Some(
        builder(cluster()?, label)
            .build()
            .await
            .expect("open the backend"),
    )
}

async fn two_handles(label: &str) -> Option<[Arc<dyn KvBackend>; 2]> {
    let store = fresh(label).await?;
    let other = twin(cluster()?, &store).await;
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

/// `TASKS_PER_PROCESS` tasks, each incrementing `COUNTER` and then adding one to
/// `CAS_COUNTER` through a compare-and-swap loop; returns every increment's result and how
/// many compare-and-swaps won.
async fn work(store: &EtcdBackend) -> (Vec<i64>, usize) {
    let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..INCREMENTS_PER_TASK {
                    seen.push(store.increment(COUNTER, 1).await.expect("increment"));
                }
                let mut won = 0;
                while won < CAS_PER_TASK {
                    let current = store.get(CAS_COUNTER).await.expect("get");
                    let next = next_count(current.as_deref());
                    if store
                        .compare_and_swap(
                            CAS_COUNTER,
                            current.as_deref(),
                            next.to_string().as_bytes(),
                        )
                        .await
                        .expect("compare_and_swap")
                    {
                        won += 1;
                    }
                }
                (seen, won)
            })
        })
        .collect();
    let mut results = Vec::new();
    let mut won = 0;
    for task in tasks {
        let (seen, wins) = task.await.expect("a worker task");
        results.extend(seen);
        won += wins;
    }
    (results, won)
}

/// The CAS-loop counter after `current`.
fn next_count(current: Option<&[u8]>) -> u64 {
    current.map_or(0, |bytes| {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .expect("a counter")
    }) + 1
}

/// Child entry point, not a test on its own: with `KV_ETCD_CHILD_NAMESPACE` unset (a
/// normal run) it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Some(namespace) = std::env::var_os(CHILD_NAMESPACE_VAR) else {
        return;
    };
    let cluster = cluster().expect("the parent's cluster, from KV_ETCD_CLUSTER_URL");
    let store = EtcdBackend::builder(&cluster.url)
        .unwrap()
        .namespace(namespace.to_string_lossy())
        .build()
        .await
        .unwrap();
    let (results, won) = work(&store).await;
    let results: Vec<String> = results.iter().map(i64::to_string).collect();
    println!("{RESULTS_MARKER}{}|{won}", results.join(","));
}

fn child_results(output: &Output) -> (Vec<i64>, usize) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.split_once(RESULTS_MARKER).map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no results from a child; stdout:\n{stdout}"));
    let (numbers, won) = line.split_once('|').expect("results|wins");
    let numbers = numbers
        .split(',')
        .map(|n| n.parse().expect("a number"))
        .collect();
    (numbers, won.parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_and_cas_from_three_processes_are_exact() {
    let Some(store) = fresh("processes").await else {
        return;
    };
    let cluster = cluster().unwrap();
    let test_binary = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&test_binary)
                .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_NAMESPACE_VAR, store.namespace())
                .env(kv_test_services::etcd::CLUSTER_URL_ENV, &cluster.url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    let (mut results, mut won) = work(&store).await;
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
        let (from_child, child_won) = child_results(output);
        assert_eq!(from_child.len(), TASKS_PER_PROCESS * INCREMENTS_PER_TASK);
        results.extend(from_child);
        won += child_won;
    }

    let processes = CHILDREN + 1;
    let increments = (processes * TASKS_PER_PROCESS * INCREMENTS_PER_TASK) as i64;
    results.sort_unstable();
    assert_eq!(
        results,
        (1..=increments).collect::<Vec<_>>(),
        "each distinct, none lost"
    );
    assert_eq!(
        store.get(COUNTER).await.unwrap(),
        Some(increments.to_string().into_bytes())
    );
    let swaps = processes * TASKS_PER_PROCESS * CAS_PER_TASK;
    assert_eq!(won, swaps);
    assert_eq!(
        store.get(CAS_COUNTER).await.unwrap(),
        Some(swaps.to_string().into_bytes())
    );
    store.delete(COUNTER).await.unwrap();
    store.delete(CAS_COUNTER).await.unwrap();
}

/// Reads are linearizable, not served from a member's possibly stale copy: a write through
/// a backend that talks to one member only is seen at once by a backend that talks only to
/// another member (which a `serializable` read would miss now and then, a follower applying
/// entries a little after the leader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_member_is_read_at_once_through_another() {
    let Some(cluster) = cluster() else {
        return;
    };
    let namespace = format!("pinned-{}", std::process::id());
    let options = format!("namespace={namespace}");
    let mut pinned = Vec::new();
    for member in 0..cluster.members.len() {
        let url = cluster.member_url(member, &options).unwrap();
        pinned.push(EtcdBackend::from_url(&url).await.unwrap());
    }
    let members = pinned.len();
    for round in 0..150 {
        let (writer, reader) = (&pinned[round % members], &pinned[(round + 1) % members]);
        let value = round.to_string();
        writer.set("k", value.as_bytes()).await.unwrap();
        assert_eq!(
            reader.get("k").await.unwrap().as_deref(),
            Some(value.as_bytes()),
            "round {round}: a stale read"
        );
        assert_eq!(
            reader.increment("n", 1).await.unwrap(),
            round as i64 + 1,
            "round {round}"
        );
        assert_eq!(
            writer.get("n").await.unwrap(),
            Some((round + 1).to_string().into_bytes())
        );
    }
    pinned[0].delete("k").await.unwrap();
    pinned[0].delete("n").await.unwrap();
}
