//! kv-postgres: `cargo run -p kvkit-examples --example postgres [URL]` (else `KV_POSTGRES_URL`,
//! else `postgres://postgres@127.0.0.1:5432/postgres`). It creates the table `kvkit` if it is
//! missing and works in the namespace `kvkit-example`.

use std::process::ExitCode;

use kv_postgres::PostgresBackend;
use kv_trait::KvError;

async fn run(url: &str) -> Result<(), KvError> {
    let store = PostgresBackend::builder(url)?
        .namespace("kvkit-example")
        .build()
        .await?;

    kvkit_examples::tour(&store).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = kvkit_examples::address(
        "KV_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    kvkit_examples::finish(
        run(&url).await,
        &format!("PostgreSQL at {}", kv_trait::url_config::redact(&url)),
        "Start a server (`docker run -e POSTGRES_PASSWORD=pw -p 5432:5432 postgres:16`, then \
         pass postgres://postgres:pw@127.0.0.1/postgres) or pass its URL as the first argument \
         or in KV_POSTGRES_URL.",
    )
}
