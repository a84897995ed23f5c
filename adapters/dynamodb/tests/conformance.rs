//! The whole conformance suite against `DynamoDbBackend`, one test per check, each in a fresh
//! namespace of one shared table on the emulator (`KV_DYNAMODB_ENDPOINT`, else a private moto
//! server; skipped loudly without either, failed under `KVKIT_REQUIRE_SERVICES=1`).

mod common;

use kv_dynamodb::{DynamoDbBackend, DEFAULT_MAX_VALUE_BYTES};
use kv_trait::KvError;

/// Credentials that must never show in `Debug` (emulators accept any).
const ACCESS_KEY_ID: &str = "AKIDCONFORMANCEKEY";
const SECRET_ACCESS_KEY: &str = "conformance-secret-Zx9";

async fn fresh_namespace() -> Result<DynamoDbBackend, KvError> {
    let Some(service) = common::service() else {
        return Err(KvError::unavailable(
            "no DynamoDB emulator (see the skip message above)",
        ));
    };
    common::ensure_table(service);
    let url = format!(
        "dynamodb://{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}@{}?region=us-east-1&endpoint={}&namespace={}",
        common::TABLE,
        service.endpoint,
        common::unique_namespace("conformance"),
    );
    DynamoDbBackend::from_url(&url).await
}

fn profile() -> kv_conformance::Profile {
    kv_conformance::Profile::default()
        .with_max_value_bytes(DEFAULT_MAX_VALUE_BYTES)
        .with_ttl_granularity(std::time::Duration::from_millis(1))
        .with_secret(ACCESS_KEY_ID)
        .with_secret(SECRET_ACCESS_KEY)
}

kv_conformance::conformance_tests!(
    fresh_namespace,
    // `None` without an emulator: each test returns after `services` announced the skip
    // (or failed it, under KVKIT_REQUIRE_SERVICES).
    common::service().map(|_| profile())
);
