//! Atomicity across handles on one namespace of the three-member cluster: two backends with
//! their own connections in this process, and increments and compare-and-swaps from three OS
//! processes at once.
//!
//! The parent test re-runs this very test binary as child processes, each running only
//! [`child_process`] with the shared namespace in `KV_ETCD_CHILD_NAMESPACE`; the cluster
//! reaches them through `KV_ETCD_CLUSTER_URL`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use kv_conformance::shared_store::{check_process_tallies, process_workload, ProcessTally};
use kv_etcd::EtcdBackend;
use kv_trait::KvBackend;

use common::{builder, cluster, twin};

/// Set only in child processes: the namespace to work in.
const CHILD_NAMESPACE_VAR: &str = "KV_ETCD_CHILD_NAMESPACE";
/// The test function children run (`--exact` matches its full name).
const CHILD_TEST: &str = "child_process";
const CHILDREN: usize = 2;
const TASKS_PER_PROCESS: usize = 8;
const INCREMENTS_PER_TASK: usize = 10;
const CAS_PER_TASK: usize = 6;

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
