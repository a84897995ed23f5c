//! One test per conformance check, exactly as a user writes it.

use custom_backend_example::MyStore;

kv_conformance::conformance_tests!(|| async { Ok(MyStore::new()) });
