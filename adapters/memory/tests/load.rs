//! 10,000 tasks at once on one handle with the default settings (see `kv_conformance::load`):
//! every call succeeds, the store opens no file descriptor (2 allowed for the runtime), and
//! memory stays bounded. Run with `--nocapture` for the latencies.

use kv_conformance::load::{assert_load, LoadOptions};
use kv_memory::MemoryBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_on_one_handle() {
    let store = MemoryBackend::new();
    let options = LoadOptions::default().with_max_new_descriptors(2);
    assert_load("memory", &store, &options).await;
}
