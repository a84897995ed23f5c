//! 10,000 tasks at once on one handle with the default settings (see `kv_conformance::load`),
//! on the single member and on the three-member cluster: every call succeeds (requests are
//! multiplexed as HTTP/2 streams), connections stay bounded (one per endpoint) and memory
//! stays bounded. Run with `--nocapture` for the latencies.

mod common;

use kv_conformance::load::{assert_load, LoadOptions};

/// `store` as the reliability report names it: `etcd` or `etcd-cluster`.
async fn burst(store_name: &str, store: kv_etcd::EtcdBackend) {
    let options = LoadOptions::default().with_max_new_descriptors(32);
    assert_load(store_name, &store, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_handle() {
    if let Some(store) = common::fresh("load").await {
        burst("etcd", store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_cluster_handle() {
    if let Some(cluster) = common::cluster() {
        let store = common::builder(cluster, "load-cluster")
            .build()
            .await
            .expect("open the backend");
        burst("etcd-cluster", store).await;
    }
}
