//! kv-sqlite: `cargo run -p kvkit-examples --example sqlite [PATH]` (default: `kvkit-example.db`
//! in the temporary directory). Run it twice: the counter survives.

use std::process::ExitCode;

use kv_sqlite::SqliteBackend;
use kv_trait::KvError;

async fn run(path: &str) -> Result<(), KvError> {
    let url = format!("sqlite://{path}?namespace=kvkit-example");
    let store = SqliteBackend::from_url(&url).await?;

    println!("store               = {url}");
    kvkit_examples::tour(&store).await?;
    println!("look inside: sqlite3 {path} \"SELECT namespace, CAST(key AS TEXT), CAST(value AS TEXT), expires_at FROM kv_entries\"");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let default = std::env::temp_dir().join("kvkit-example.db");
    let path = kvkit_examples::address("KV_EXAMPLE_SQLITE_PATH", &default.to_string_lossy());
    kvkit_examples::finish(run(&path).await, &path, "")
}
