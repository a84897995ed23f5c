//! kv-memory: `cargo run -p kvkit-examples --example memory`.

use std::process::ExitCode;

use kv_memory::MemoryBackend;
use kv_trait::KvError;

async fn run() -> Result<(), KvError> {
    let store = MemoryBackend::new(); // or MemoryBackend::builder().shards(64).build()?

    kvkit_examples::tour(&store).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    kvkit_examples::finish(run().await, "the in-memory store", "")
}
