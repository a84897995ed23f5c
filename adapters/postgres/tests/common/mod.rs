//! What the kv-postgres tests share: the server, fresh namespaces, and a plain tokio-postgres
//! client to look at the table the way `psql` would.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};

use kv_postgres::{PostgresBackend, PostgresBackendBuilder};
use kv_test_services::postgres::{self, PostgresService};
use tokio_postgres::{Client, NoTls, Transaction};

/// The server of this test process; `None` (after a loud skip, or a panic under
/// `KVKIT_REQUIRE_SERVICES`) when there is none.
pub fn server() -> Option<&'static PostgresService> {
    postgres::server()
}

/// A namespace no other test of this run uses.
pub fn namespace(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{}-{n}", std::process::id())
}

/// A table name no other test of this run uses, with a raw client on its database; `None`
/// as [`server`].
pub async fn scratch_table(label: &str) -> Option<(String, Client)> {
    let server = server()?;
    let table = format!("t_{}", namespace(label).replace('-', "_"));
    Some((table, raw_client(&server.url).await))
}

/// The shared server's URL for kvkit's table `table`, with `options` (`a=1&b=2`).
pub fn table_url(table: &str, options: &str) -> String {
    server()
        .expect("a server")
        .url_with(&format!("table={table}&{options}"))
}

/// A builder on the shared server in a fresh namespace.
pub fn builder(label: &str) -> Option<PostgresBackendBuilder> {
    let server = server()?;
    Some(
        PostgresBackend::builder(&server.url)
            .expect("the service's URL parses")
            .namespace(namespace(label)),
    )
}

/// A backend on the shared server in a fresh namespace.
pub async fn fresh(label: &str) -> Option<PostgresBackend> {
    Some(builder(label)?.build().await.expect("open the backend"))
}

/// A second backend (its own pool) on `store`'s namespace and table.
pub async fn twin(store: &PostgresBackend) -> PostgresBackend {
    let server = server().expect("a server, since `store` exists");
    PostgresBackend::builder(&server.url)
        .expect("the service's URL parses")
        .namespace(store.namespace())
        .table(&store.table_name())
        .expect("the table name parses")
        .build()
        .await
        .expect("open the twin")
}

/// A plain connection to `url`'s database, for looking at and changing the table directly.
pub async fn raw_client(url: &str) -> Client {
    // tokio-postgres takes the libpq URL form; ours has extra options, so drop the query.
    let plain = url.split('?').next().unwrap_or(url);
    let (client, connection) = tokio_postgres::connect(plain, NoTls)
        .await
        .expect("a plain connection to the test server");
    tokio::spawn(connection);
    client
}

/// Takes the row lock of `key` in `store`'s namespace in a transaction of `client` (a plain
/// connection), so that writes to the key wait until the transaction ends.
pub async fn lock_row<'a>(
    client: &'a mut Client,
    store: &PostgresBackend,
    key: &str,
) -> Transaction<'a> {
    let transaction = client.transaction().await.expect("begin");
    let locked = transaction
        .execute(
            &format!(
                "SELECT 1 FROM {} WHERE namespace = $1 AND key = $2 FOR UPDATE",
                store.table_name()
            ),
            &[&store.namespace(), &key.as_bytes()],
        )
        .await
        .expect("lock the row");
    assert_eq!(locked, 1, "the row of {key:?} exists and is locked");
    transaction
}
