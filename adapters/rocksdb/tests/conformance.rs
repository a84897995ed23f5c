//! The whole conformance suite against `RocksDbBackend`, one test per check, each check in a
//! fresh namespace of one shared database (which also exercises the in-process registry: every
//! check opens the same path again).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use kv_rocksdb::{RocksDbBackend, RocksDbBackendBuilder};
use kv_trait::KvError;
use tempfile::TempDir;

fn shared_path() -> PathBuf {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
        .join("suite")
}

async fn fresh_namespace() -> Result<RocksDbBackend, KvError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    RocksDbBackendBuilder::new(shared_path())
        .namespace(format!("case-{n}"))
        .build()
        .await
}

kv_conformance::conformance_tests!(fresh_namespace);
