//! The whole conformance suite against `SqliteBackend`, one test per check: on a file (a fresh
//! namespace of one shared file per check, the way several applications share a file) and on
//! private in-memory databases.

mod file_namespaces {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    use kv_sqlite::SqliteBackendBuilder;
    use tempfile::TempDir;

    /// One database file for every check of this test binary, removed when it exits.
    fn shared_file() -> PathBuf {
        static DIR: OnceLock<TempDir> = OnceLock::new();
        DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
            .path()
            .join("suite.db")
    }

    async fn fresh_namespace() -> Result<kv_sqlite::SqliteBackend, kv_trait::KvError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        SqliteBackendBuilder::file(shared_file())
            .namespace(format!("case-{n}"))
            .build()
            .await
    }

    kv_conformance::conformance_tests!(fresh_namespace);
}

mod in_memory {
    kv_conformance::conformance_tests!(kv_sqlite::SqliteBackend::open_in_memory);
}
