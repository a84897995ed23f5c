//! Runs the conformance suite against `MyStore` and prints the report, as in the kit's docs.

use custom_backend_example::MyStore;

#[tokio::main]
async fn main() {
    let report = kv_conformance::Suite::new(|| async { Ok(MyStore::new()) })
        .with_profile(kv_conformance::Profile::default()) // optional
        .run()
        .await;
    println!("{report}");
    assert!(report.passed(), "{report}");
}
