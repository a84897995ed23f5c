//! 10,000 tasks at once on one handle with the default settings (see `kv_conformance::load`):
//! every call succeeds, connections to the endpoint stay bounded and memory stays bounded.
//! Run with `--nocapture` for the latencies.
//!
//! The SDK's connection pool has no limit: before `max_concurrent_requests` this burst opened
//! some 14,600 connections and 4,000 calls failed. With 64 requests in flight at most, one
//! increment still failed, reset on a pooled connection that dynalite closed after its 5 s
//! keep-alive; pooled connections now close after 4 s idle. The pool may hold idle
//! connections besides those in use (one returns to the pool a moment after its answer,
//! while the next request opens another): the bound allows three per place (94 at the peak
//! here).

mod common;

use kv_conformance::load::{assert_load, LoadOptions};
use kv_dynamodb::DEFAULT_MAX_CONCURRENT_REQUESTS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_handle() {
    let Some(store) = common::fresh_backend("load").await else {
        return;
    };
    let options =
        LoadOptions::default().with_max_new_descriptors(3 * DEFAULT_MAX_CONCURRENT_REQUESTS);
    assert_load("dynamodb", &store, &options).await;
}
