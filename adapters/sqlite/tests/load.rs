//! 10,000 tasks at once on one handle with the default settings (see `kv_conformance::load`):
//! every call succeeds (callers beyond `max_queued` wait for a place), the pool bounds the
//! open files (each connection holds the database, its WAL and its shared-memory index), and
//! memory stays bounded. Run with `--nocapture` for the latencies.

mod common;

use kv_conformance::load::{assert_load, LoadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_handle() {
    let file = common::file_store().await;
    // 4 pooled connections × 3 files, a handful for temporary files, and room to spare.
    let options = LoadOptions::default().with_max_new_descriptors(32);
    assert_load("sqlite", &file.store, &options).await;
}
