//! The whole conformance suite against `PostgresBackend`, one test per check, each in a fresh
//! namespace of the shared server's default table, the way applications share one.
//!
//! The server comes from `KV_POSTGRES_URL`, else a private PostgreSQL started for this test
//! binary (see `kv_test_services::postgres`).

mod common;

use kv_conformance::Profile;
use kv_postgres::PostgresBackend;
use kv_trait::KvError;

async fn fresh_namespace() -> Result<PostgresBackend, KvError> {
    let builder = common::builder("conformance").ok_or_else(|| {
        KvError::InvalidConfig(format!(
            "no PostgreSQL server for this test. {}",
            kv_test_services::postgres::HOW_TO_GET_ONE
        ))
    })?;
    builder.build().await
}

/// 1 MiB values, 1 ms TTL granularity (the defaults), and the server's password as a secret
/// that `Debug` must not show.
fn profile() -> Profile {
    common::server()
        .and_then(|server| server.password.clone())
        .into_iter()
        .fold(Profile::default(), Profile::with_secret)
}

kv_conformance::conformance_tests!(fresh_namespace, profile());

/// With `watch=true`, on a table of its own (its trigger notifies every write): the checks a
/// watched table changes, `watch_delivers_every_change` (now against the notifications) and
/// `capabilities_are_true` (which now declare the watch). The statements are the same as above,
/// so the rest of the suite is not run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_table_passes_the_watch_checks() {
    if common::server().is_none() {
        return;
    }
    let report = kv_conformance::Suite::new(|| async {
        let builder = common::builder("conformance-watch").ok_or_else(|| {
            KvError::InvalidConfig(kv_test_services::postgres::HOW_TO_GET_ONE.to_owned())
        })?;
        builder.table("kv_watched")?.watch(true).build().await
    })
    .with_profile(profile())
    .only(["watch_delivers_every_change", "capabilities_are_true"])
    .run()
    .await;
    assert!(report.passed(), "{report}");
}
