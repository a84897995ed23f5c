//! kv-rocksdb: `cargo run -p kvkit-examples --features rocksdb --example rocksdb [PATH]`
//! (default: the directory `kvkit-example-rocksdb` in the temporary directory; the build needs
//! libclang). Run it twice: the counter survives.

use std::process::ExitCode;

use kv_rocksdb::RocksDbBackend;
use kv_trait::KvError;

async fn run(path: &str) -> Result<(), KvError> {
    let store = RocksDbBackend::builder(path)
        .namespace("kvkit-example")
        .build()
        .await?; // or RocksDbBackend::from_url("rocksdb:///PATH?namespace=kvkit-example")

    println!("store               = {path}");
    kvkit_examples::tour(&store).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let default = std::env::temp_dir().join("kvkit-example-rocksdb");
    let path = kvkit_examples::address("KV_EXAMPLE_ROCKSDB_PATH", &default.to_string_lossy());
    kvkit_examples::finish(run(&path).await, &path, "")
}
