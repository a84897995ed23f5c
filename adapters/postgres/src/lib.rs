#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod encoding;
mod error;
mod pool;
mod schema;
mod statements;
#[cfg(feature = "tls")]
mod tls;
mod watch;

pub use backend::PostgresBackend;
pub use config::{
    PostgresBackendBuilder, SslMode, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_SWEEP_INTERVAL, DEFAULT_TABLE, LARGEST_MAX_VALUE_BYTES,
};

/// The statements that create `table` (`name` or `schema.name`) as kv-postgres would: for a
/// DBA who creates it by hand, so that the application may open it with `create_table=false`
/// and item-level rights only.
///
/// ```
/// let sql = kv_postgres::create_table_statements("app.kv")?;
/// assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS \"app\".\"kv\""));
/// # Ok::<(), kv_trait::KvError>(())
/// ```
pub fn create_table_statements(table: &str) -> Result<String, kv_trait::KvError> {
    Ok(schema::create_statements(&schema::TableName::parse(table)?))
}

/// The crate's version of tokio-postgres, re-exported so callers use the same one.
pub use tokio_postgres;
