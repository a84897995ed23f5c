//! kv-dynamodb against an emulator: `cargo run -p kvkit-examples --example dynamodb [ENDPOINT]`
//! (else `KV_DYNAMODB_ENDPOINT`, else `http://127.0.0.1:8000`, DynamoDB Local's port). It uses
//! dummy credentials, which emulators accept; on AWS, leave them and the endpoint out of the
//! URL and let the standard AWS chain find yours.

use std::process::ExitCode;

use kv_dynamodb::DynamoDbBackend;
use kv_trait::KvError;

async fn run(endpoint: &str) -> Result<(), KvError> {
    let store = DynamoDbBackend::builder("kvkit-example")
        .endpoint(endpoint)
        .region("us-east-1")
        .credentials("test", "test")
        .namespace("kvkit-example")
        .max_attempts(1)
        // A deploy step's work, done here so the example runs on an empty emulator; an
        // application opening a table made by Terraform needs neither (least privilege).
        .create_table(true) // create_table_if_missing() when it builds
        .manage_ttl(true) // enable_ttl_deletion(): DynamoDB deletes expired items
        .build()
        .await?;

    kvkit_examples::tour(&store).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let endpoint = kvkit_examples::address("KV_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
    kvkit_examples::finish(
        run(&endpoint).await,
        &format!("DynamoDB at {endpoint}"),
        "Start an emulator (`docker run -p 8000:8000 amazon/dynamodb-local`, \
         `npx dynalite --port 8000` or `moto_server -p 8000`) or pass its endpoint as the \
         first argument or in KV_DYNAMODB_ENDPOINT.",
    )
}
