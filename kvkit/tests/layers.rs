//! The whole conformance suite on every store kvkit opens, with every layer of its URL options
//! around it at once: the layers keep the contract whatever the adapter. (kv-layers' own
//! tests check what each layer does, on the in-memory store.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kv_conformance::{Profile, Suite};
use kv_test_services as services;
use kvkit::Target;

/// Every layer: a timeout on each attempt, retries, a bound on calls in flight, metrics, and
/// the chaos layer delaying one call in twenty (its faults have checks of their own).
const LAYERS: &str =
    "timeout=10s&retries=3&concurrency=64&metrics=kit&chaos_latency=200us&chaos_latency_rate=0.05";

/// `url` (which has a query already) with every layer.
fn layered(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{LAYERS}")
}

/// Runs the suite with a fresh namespace of the store at `url` per check; `None`: the service
/// could not be had, which the services crate has announced (or failed the test for, under
/// `KVKIT_REQUIRE_SERVICES`).
async fn suite(name: &str, url: Option<String>) {
    let Some(url) = url else { return };
    let target = Target::parse(&layered(&url)).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert!(target.has_layers());
    let probe = target
        .open()
        .await
        .unwrap_or_else(|err| panic!("{name}: {err}"));
    let mut profile = Profile::for_backend(&*probe);
    for secret in target.secrets() {
        profile = profile.with_secret(secret.clone());
    }
    let next = Arc::new(AtomicU64::new(0));
    let base = format!("layers-{}-{}", name.replace(' ', "-"), std::process::id());
    let factory = move || {
        let case = next.fetch_add(1, Ordering::Relaxed);
        let target = target.clone().with_namespace(format!("{base}-{case}"));
        async move { target.open().await }
    };
    let report = Suite::new(factory).with_profile(profile).run().await;
    assert!(report.passed(), "{name} with every layer:\n{report}");
}

fn unique(what: &str) -> String {
    format!("{what}_layers_{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    suite("memory", Some(format!("memory://{}", unique("memory")))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kv.db").display());
    suite("sqlite", Some(url)).await;
}

#[cfg(feature = "rocksdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rocksdb://{}", dir.path().join("db").display());
    suite("rocksdb", Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_server() {
    let url = services::redis::standalone().map(|service| service.url_with("namespace=layers"));
    suite("redis", url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster() {
    let url = services::redis::cluster().map(|service| service.url_with("namespace=layers"));
    suite("redis cluster", url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_emulator() {
    let url = services::dynamodb::endpoint()
        .map(|service| service.url(&unique("table"), "layers") + "&create_table=true");
    suite("dynamodb", url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server() {
    let url = services::postgres::server()
        .map(|service| service.url_with(&format!("table={}", unique("table"))));
    suite("postgres", url).await;
}

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster() {
    let url = services::etcd::cluster().map(|service| service.url_with("namespace=layers"));
    suite("etcd cluster", url).await;
}
