//! 10,000 tasks at once on one handle with the default settings (see `kv_conformance::load`):
//! every call succeeds, the open files stay bounded (RocksDB's own: a WAL, a few SST files as
//! memtables flush) and memory stays bounded. Run with `--nocapture` for the latencies.

use kv_conformance::load::{assert_load, LoadOptions};
use kv_rocksdb::RocksDbBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_handle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RocksDbBackend::open(dir.path().join("db"))
        .await
        .expect("open");
    let options = LoadOptions::default().with_max_new_descriptors(32);
    assert_load("rocksdb", &store, &options).await;
}
