//! `postgres://` and `postgresql://`: kv-postgres.

use kv_postgres::PostgresBackendBuilder;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

const fn for_scheme(scheme: &'static str) -> Adapter {
    Adapter {
        scheme,
        validate: |url| PostgresBackendBuilder::from_url(url).map(drop),
        open: |url, namespace| Box::pin(open(url, namespace)),
        shared: |_| true,
    }
}

pub(super) const ADAPTERS: [Adapter; 2] = [for_scheme("postgres"), for_scheme("postgresql")];

async fn open(url: String, namespace: String) -> Result<Opened, KvError> {
    let store = PostgresBackendBuilder::from_url(&url)?
        .namespace(namespace)
        .build()
        .await?;
    Ok(opened(store))
}
