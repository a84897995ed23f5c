//! Raw tokio-postgres through deadpool-postgres, as an application writes it: a pool of up to
//! 16 connections (the size of the adapter's default pool) and statements prepared once per
//! connection, on a table of the run's own, `key text PRIMARY KEY, value bytea`. Upserts for
//! `set` and `increment`, a conditional `UPDATE` or `INSERT .. ON CONFLICT DO NOTHING` for
//! compare-and-swap: the same work as the adapter's, without TTLs or namespaces.
//!
//! A batch is one statement, one round trip: `get_many` a `SELECT key, value .. WHERE key =
//! ANY($1)` of the whole batch (one snapshot; rows come in no particular order and are
//! matched to the keys asked), `set_many` one `INSERT .. SELECT FROM unnest($1, $2) ON
//! CONFLICT (key) DO UPDATE` (atomic). An upsert may not touch one row twice, so a key given
//! twice is sent once, with its last value; and the rows are sent sorted by key, because an
//! upsert locks rows in the order it meets them: batches over overlapping keys, in orders of
//! their own, could otherwise each hold a row the other waits for, and one would fail as a
//! deadlock.

use std::collections::HashMap;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use kv_trait::{KvBackend, KvError};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::cli::bench::driver::Driver;

/// Connections: as many as the adapter's default pool holds.
const CONNECTIONS: usize = 16;

/// The raw PostgreSQL side.
pub(crate) struct RawPostgres {
    pool: Pool,
    table: String,
    get: String,
    set: String,
    increment: String,
    swap: String,
    insert_new: String,
    get_many: String,
    set_many: String,
}

impl RawPostgres {
    /// Connects to the database `url` names (kvkit's options are left out) and creates the
    /// run's table.
    pub(crate) async fn open(url: &str, run_id: &str) -> Result<Self, KvError> {
        let plain = url.split_once('?').map_or(url, |(before, _)| before);
        let config: tokio_postgres::Config = plain
            .parse()
            .map_err(|err| KvError::InvalidConfig(format!("PostgreSQL URL: {err}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(CONNECTIONS)
            .build()
            .map_err(|err| KvError::InvalidConfig(format!("PostgreSQL pool: {err}")))?;
        let table = format!(
            "kvkit_bench_raw_{}",
            run_id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        )
        .to_ascii_lowercase();
        let raw = Self {
            get: format!("SELECT value FROM {table} WHERE key = $1"),
            set: format!(
                "INSERT INTO {table} (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            increment: format!(
                "INSERT INTO {table} AS t (key, value) \
                 VALUES ($1, convert_to($2::bigint::text, 'UTF8')) \
                 ON CONFLICT (key) DO UPDATE SET value = \
                   convert_to((convert_from(t.value, 'UTF8')::bigint + $2::bigint)::text, 'UTF8') \
                 RETURNING convert_from(value, 'UTF8')::bigint"
            ),
            swap: format!(
                "UPDATE {table} SET value = $3 WHERE key = $1 AND value = $2 RETURNING 1"
            ),
            insert_new: format!(
                "INSERT INTO {table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING \
                 RETURNING 1"
            ),
            get_many: format!("SELECT key, value FROM {table} WHERE key = ANY($1)"),
            set_many: format!(
                "INSERT INTO {table} (key, value) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            pool,
            table,
        };
        raw.client()
            .await?
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value bytea NOT NULL)",
                raw.table
            ))
            .await
            .map_err(failed)?;
        Ok(raw)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, KvError> {
        self.pool.get().await.map_err(KvError::backend)
    }

    async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, KvError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(failed)?;
        client.query(&statement, params).await.map_err(failed)
    }
}

fn failed(err: tokio_postgres::Error) -> KvError {
    KvError::backend(err)
}

impl Driver for RawPostgres {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let rows = self.rows(&self.get, &[&key]).await?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.rows(&self.set, &[&key, &value]).await.map(drop)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let rows = self.rows(&self.increment, &[&key, &delta]).await?;
        rows.first()
            .map(|row| row.get(0))
            .ok_or_else(|| KvError::backend("the upsert returned no row"))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let rows = match expected {
            Some(expected) => self.rows(&self.swap, &[&key, &expected, &new]).await?,
            None => self.rows(&self.insert_new, &[&key, &new]).await?,
        };
        Ok(!rows.is_empty())
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let rows = self.rows(&self.get_many, &[&keys]).await?;
        let found: HashMap<String, Vec<u8>> = rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        // Cloned, not moved out: a key asked twice is answered twice.
        Ok(keys.iter().map(|&key| found.get(key).cloned()).collect())
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        let (keys, values): (Vec<&str>, Vec<&[u8]>) =
            super::last_of_each_sorted(entries).into_iter().unzip();
        self.rows(&self.set_many, &[&keys, &values]).await.map(drop)
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, _: Vec<String>) -> Result<(), KvError> {
        self.client()
            .await?
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await
            .map_err(failed)
    }
}
