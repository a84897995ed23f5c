//! Raw tokio-postgres: a fixed set of connections taken in turn (tokio-postgres pipelines the
//! calls sharing one), each with its statements prepared once, on a table of the run's own:
//! `key text PRIMARY KEY, value bytea`. Upserts for `set` and `increment`, a conditional
//! `UPDATE` or `INSERT .. ON CONFLICT DO NOTHING` for compare-and-swap: what an application
//! writes by hand, without TTLs or namespaces.

use std::sync::atomic::{AtomicUsize, Ordering};

use kv_trait::{KvBackend, KvError};
use tokio_postgres::{Client, NoTls, Statement};

use crate::cli::bench::driver::Driver;

/// Connections: as many as the pool of the adapter's default build holds.
const CONNECTIONS: usize = 16;

/// One connection and its prepared statements.
struct Connection {
    client: Client,
    get: Statement,
    set: Statement,
    increment: Statement,
    swap: Statement,
    insert_new: Statement,
}

/// The raw PostgreSQL side.
pub(crate) struct RawPostgres {
    connections: Vec<Connection>,
    next: AtomicUsize,
    table: String,
}

impl RawPostgres {
    /// Connects to the database `url` names (kvkit's options are left out) and creates the
    /// run's table.
    pub(crate) async fn open(url: &str, run_id: &str) -> Result<Self, KvError> {
        let plain = url.split_once('?').map_or(url, |(before, _)| before);
        let table = format!(
            "kvkit_bench_raw_{}",
            run_id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        )
        .to_ascii_lowercase();
        let mut connections = Vec::with_capacity(CONNECTIONS);
        for n in 0..CONNECTIONS {
            let (client, connection) = tokio_postgres::connect(plain, NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            if n == 0 {
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {table} (key text PRIMARY KEY, value bytea NOT NULL)"
                    ))
                    .await
                    .map_err(failed)?;
            }
            let prepare = |sql: String| {
                let client = &client;
                async move { client.prepare(&sql).await.map_err(failed) }
            };
            connections.push(Connection {
                get: prepare(format!("SELECT value FROM {table} WHERE key = $1")).await?,
                set: prepare(format!(
                    "INSERT INTO {table} (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                ))
                .await?,
                increment: prepare(format!(
                    "INSERT INTO {table} AS t (key, value) \
                     VALUES ($1, convert_to($2::bigint::text, 'UTF8')) \
                     ON CONFLICT (key) DO UPDATE SET value = \
                       convert_to((convert_from(t.value, 'UTF8')::bigint + $2::bigint)::text, 'UTF8') \
                     RETURNING convert_from(value, 'UTF8')::bigint"
                ))
                .await?,
                swap: prepare(format!(
                    "UPDATE {table} SET value = $3 WHERE key = $1 AND value = $2"
                ))
                .await?,
                insert_new: prepare(format!(
                    "INSERT INTO {table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
                ))
                .await?,
                client,
            });
        }
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
            table,
        })
    }

    fn connection(&self) -> &Connection {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.connections[n % self.connections.len()]
    }
}

fn failed(err: tokio_postgres::Error) -> KvError {
    KvError::backend(err)
}

impl Driver for RawPostgres {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let c = self.connection();
        let row = c.client.query_opt(&c.get, &[&key]).await.map_err(failed)?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let c = self.connection();
        c.client
            .execute(&c.set, &[&key, &value])
            .await
            .map(drop)
            .map_err(failed)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let c = self.connection();
        let row = c
            .client
            .query_one(&c.increment, &[&key, &delta])
            .await
            .map_err(failed)?;
        Ok(row.get(0))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let c = self.connection();
        let changed = match expected {
            Some(expected) => c.client.execute(&c.swap, &[&key, &expected, &new]).await,
            None => c.client.execute(&c.insert_new, &[&key, &new]).await,
        }
        .map_err(failed)?;
        Ok(changed == 1)
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, _: Vec<String>) -> Result<(), KvError> {
        self.connections[0]
            .client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await
            .map_err(failed)
    }
}
