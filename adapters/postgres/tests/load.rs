//! 10,000 tasks at once on one handle with the default settings (see `kv_conformance::load`):
//! every call succeeds (callers wait for one of the pool's connections), the pool bounds the
//! connections (16 by default) and memory stays bounded. Run with `--nocapture` for the
//! latencies.

mod common;

use kv_conformance::load::{assert_load, LoadOptions};
use kv_postgres::DEFAULT_POOL_SIZE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_handle() {
    let Some(store) = common::fresh("load").await else {
        return;
    };
    let options = LoadOptions::default().with_max_new_descriptors(DEFAULT_POOL_SIZE + 8);
    assert_load("postgres", &store, &options).await;
}
