//! `impl Store for PostgresBackend`: one statement, one round trip, per operation (`list_keys`
//! one per page). `kv_trait` validates every input before it gets here.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use kv_trait::store::{last_of_each, Key, Store, Ttl, Value};
use kv_trait::url_config::error_chain;
use kv_trait::{async_trait, Capabilities, KeyPage, KvError, Sharing, WatchScope, WatchStream};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::config::PostgresBackendBuilder;
use crate::encoding::{after, column, key_from_row, prefix_range, ttl_millis};
use crate::pool::{self, Resend};
use crate::schema::{self, TableName};
use crate::statements::{Statements, NOT_A_COUNTER};

/// Keys fetched per statement by `list_keys`: what bounds its memory on the server and in
/// flight, whatever the number of keys.
pub(crate) const LIST_PAGE: i64 = 1000;

/// Keys per statement of a batch, and the most value bytes (about) one statement carries: a
/// statement is one message, which PostgreSQL caps at 1 GiB, and a smaller one holds fewer
/// row locks for less time.
const BATCH_KEYS: usize = 1000;
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Expired rows deleted per statement by the sweeper, so no statement holds many row locks.
const SWEEP_BATCH: i64 = 500;

/// A key-value store in one PostgreSQL table that keeps the whole kvkit contract.
///
/// Every operation is one statement that decides inside the server, so `increment` and
/// `compare_and_swap` are atomic across any number of connections, processes and hosts using
/// the same table and namespace. The crate docs describe the table and the statements.
///
/// Cloning is cheap: clones share the connection pool.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # // The server the tests use (skipped without one).
/// # let Some(server) = kv_test_services::postgres::server() else { return Ok(()) };
/// # let url = server.url_with(&format!("namespace=doc-{}", std::process::id()));
/// use kv_postgres::PostgresBackend;
/// use kv_trait::KvBackend;
///
/// // e.g. "postgres://app:secret@db.internal/appdb?namespace=web"
/// let store = PostgresBackend::from_url(&url).await?;
/// store.set_with_ttl("session/42", b"token", 30_000_000_000).await?; // 30 s
/// assert_eq!(store.increment("visits", 1).await?, 1);
/// assert!(store.compare_and_swap("lock", None, b"me").await?);
/// assert_eq!(store.list_keys("").await?, ["lock", "session/42", "visits"]);
/// # for key in ["lock", "session/42", "visits"] { store.delete(key).await?; }
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct PostgresBackend {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    statements: Arc<Statements>,
    namespace: String,
    max_value_bytes: usize,
    request_timeout: Duration,
    /// For `Debug` and errors: never the password.
    endpoint: String,
    table: TableName,
    /// Deletes expired rows of the namespace now and then; stopped with the last clone.
    sweeper: Option<JoinHandle<()>>,
    /// How watchers listen, when opened with `watch=true`.
    watch: Option<crate::watch::Setup>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(sweeper) = &self.sweeper {
            sweeper.abort();
        }
    }
}

impl PostgresBackend {
    /// Opens the store a `postgres://` or `postgresql://` URL names (see
    /// [`PostgresBackendBuilder::from_url`] for the form and options), creating the table if it
    /// is missing.
    pub async fn from_url(url: &str) -> Result<Self, KvError> {
        PostgresBackendBuilder::from_url(url)?.build().await
    }

    /// A builder from a URL, to adjust settings before opening.
    pub fn builder(url: &str) -> Result<PostgresBackendBuilder, KvError> {
        PostgresBackendBuilder::from_url(url)
    }

    pub(crate) async fn open(config: PostgresBackendBuilder) -> Result<Self, KvError> {
        let pool = pool::pool(&config)?;
        let opened = tokio::time::timeout(config.connect_timeout + config.request_timeout, async {
            let mut client = pool.get().await.map_err(pool::from_pool)?;
            schema::prepare(
                &mut client,
                &config.table,
                config.create_table,
                &config.dbname,
            )
            .await?;
            match config.watch {
                true => crate::watch::install(&mut client, &config.table)
                    .await
                    .map(Some),
                false => Ok(None),
            }
        })
        .await;
        let channel = match opened {
            Ok(result) => result.map_err(|err| in_context(err, &config.endpoint()))?,
            Err(_) => {
                return Err(KvError::unavailable(format!(
                    "{}: PostgreSQL did not answer within {:?}",
                    config.endpoint(),
                    config.connect_timeout + config.request_timeout
                )))
            }
        };
        let watch = channel.map(|channel| crate::watch::Setup {
            config: config.clone(),
            channel,
        });

        let statements = Arc::new(Statements::new(&config.table));
        let sweeper = config.sweep_interval.map(|interval| {
            tokio::spawn(sweep_forever(
                pool.clone(),
                Arc::clone(&statements),
                config.namespace.clone(),
                interval,
                config.request_timeout,
            ))
        });
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                statements,
                namespace: config.namespace.clone(),
                max_value_bytes: config.max_value_bytes,
                request_timeout: config.request_timeout,
                endpoint: config.endpoint(),
                table: config.table.clone(),
                sweeper,
                watch,
            }),
        })
    }

    /// The longest value this backend accepts, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    /// This backend's namespace.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The table, as configured (`name` or `schema.name`).
    pub fn table_name(&self) -> String {
        self.shared.table.to_string()
    }

    /// Deletes the namespace's expired rows now, as the sweeper does every
    /// `sweep_interval`; returns how many it deleted.
    pub async fn sweep_expired(&self) -> Result<u64, KvError> {
        let s = &self.shared;
        sweep(&s.pool, &s.statements, &s.namespace, s.request_timeout).await
    }

    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        resend: Resend,
    ) -> Result<Vec<tokio_postgres::Row>, KvError> {
        pool::rows(
            &self.shared.pool,
            self.shared.request_timeout,
            sql,
            params,
            resend,
        )
        .await
    }

    /// Runs a `_settled` statement (see [`crate::statements`]) for a row found expired: it
    /// waits for any writer holding the row and judges the row that writer left. A writer
    /// that judged the row live just before its deadline (an `increment` or a
    /// compare-and-swap) took effect while the key was live, before the caller's read began;
    /// answering "gone" before its commit makes its value appear would not be linearizable.
    /// `None`: no row, or its one column is NULL (an expired value).
    async fn settled<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>, KvError>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let rows = self.rows(sql, params, Resend::Safe).await?;
        match rows.first() {
            Some(row) => column::<Option<T>>(row, 0),
            None => Ok(None),
        }
    }
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("PostgresBackend")
            .field("endpoint", &s.endpoint)
            .field("table", &s.table)
            .field("namespace", &s.namespace)
            .field("max_value_bytes", &s.max_value_bytes)
            .field("request_timeout", &s.request_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for PostgresBackend {
    const KIND: &'static str = "postgres";

    fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    fn namespace_name(&self) -> &str {
        &self.shared.namespace
    }

    /// One `SELECT`; a second, waiting for the row's lock, if the row has expired (see
    /// `settled`).
    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
        let s = &self.shared;
        let params: [&(dyn ToSql + Sync); 2] = [&s.namespace, &key.as_bytes()];
        let Some(row) = self
            .rows(&s.statements.get, &params, Resend::Safe)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        match column::<Option<Vec<u8>>>(&row, 0)? {
            Some(value) => Ok(Some(value)),
            None => self.settled(&s.statements.get_settled, &params).await,
        }
    }

    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError> {
        let s = &self.shared;
        let (namespace, key, value) = (&s.namespace, &key.as_bytes(), &value.as_bytes());
        match ttl {
            None => {
                self.rows(&s.statements.set, &[namespace, key, value], Resend::Never)
                    .await?
            }
            Some(ttl) => {
                let millis = ttl_millis(ttl.millis_ceil());
                self.rows(
                    &s.statements.set_with_ttl,
                    &[namespace, key, value, &millis],
                    Resend::Never,
                )
                .await?
            }
        };
        Ok(())
    }

    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
        let s = &self.shared;
        let rows = self
            .rows(
                &s.statements.delete,
                &[&s.namespace, &key.as_bytes()],
                Resend::Never,
            )
            .await?;
        match rows.first() {
            Some(row) => column(row, 0),
            None => Ok(false),
        }
    }

    /// As `read`: one `SELECT`, and a second if the row has expired.
    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
        let s = &self.shared;
        let params: [&(dyn ToSql + Sync); 2] = [&s.namespace, &key.as_bytes()];
        let Some(row) = self
            .rows(&s.statements.exists, &params, Resend::Safe)
            .await?
            .pop()
        else {
            return Ok(false);
        };
        if column::<bool>(&row, 0)? {
            return Ok(true);
        }
        let settled: Option<bool> = self.settled(&s.statements.exists_settled, &params).await?;
        Ok(settled.unwrap_or(false))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let s = &self.shared;
        let (mut start, end) = prefix_range(prefix);
        let mut keys = Vec::new();
        loop {
            let rows = self
                .rows(
                    &s.statements.list_page,
                    &[&s.namespace, &start, &end, &LIST_PAGE],
                    Resend::Safe,
                )
                .await?;
            let full = rows.len() as i64 == LIST_PAGE;
            for row in rows {
                keys.push(key_from_row(column(&row, 0)?)?);
            }
            match keys.last() {
                Some(last) if full => start = after(last.as_bytes()),
                _ => return Ok(keys),
            }
        }
    }

    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
        let s = &self.shared;
        let result = self
            .rows(
                &s.statements.increment,
                &[&s.namespace, &key.as_bytes(), &delta],
                Resend::Never,
            )
            .await;
        match result {
            Ok(rows) => match rows.first() {
                Some(row) => column::<i64>(row, 0),
                None => Err(KvError::backend("the increment statement returned no row")),
            },
            Err(err) => Err(counter_error(err)),
        }
    }

    async fn swap_if(
        &self,
        key: Key<'_>,
        expected: Option<&[u8]>,
        new: Value<'_>,
    ) -> Result<bool, KvError> {
        let s = &self.shared;
        let (namespace, key, new) = (&s.namespace, &key.as_bytes(), &new.as_bytes());
        let rows = match expected {
            None => {
                self.rows(
                    &s.statements.insert_if_absent,
                    &[namespace, key, new],
                    Resend::Never,
                )
                .await?
            }
            Some(expected) => {
                self.rows(
                    &s.statements.replace_if_equal,
                    &[namespace, key, &expected, new],
                    Resend::Never,
                )
                .await?
            }
        };
        Ok(!rows.is_empty())
    }

    /// One `SELECT ... key = ANY($2)` per `BATCH_KEYS` keys, each one snapshot. A chunk that finds expired
    /// rows settles each of them (see `settled`), one at a time so that it never holds one
    /// row's lock while waiting for another's, then is read again whole, until a reading
    /// finds no expired row it has not settled.
    async fn read_many(&self, keys: &[Key<'_>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let s = &self.shared;
        let mut found: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for chunk in keys.chunks(BATCH_KEYS) {
            let names: Vec<&[u8]> = chunk.iter().map(|key| key.as_bytes()).collect();
            let mut settled: HashSet<Vec<u8>> = HashSet::new();
            loop {
                let rows = self
                    .rows(
                        &s.statements.get_many,
                        &[&s.namespace, &names],
                        Resend::Safe,
                    )
                    .await?;
                let mut live = Vec::with_capacity(rows.len());
                let mut unsettled = Vec::new();
                for row in rows {
                    let (key, value): (Vec<u8>, Option<Vec<u8>>) =
                        (column(&row, 0)?, column(&row, 1)?);
                    match value {
                        Some(value) => live.push((key, value)),
                        None if !settled.contains(&key) => unsettled.push(key),
                        None => {}
                    }
                }
                if unsettled.is_empty() {
                    found.extend(live);
                    break;
                }
                for key in unsettled {
                    let params: [&(dyn ToSql + Sync); 2] = [&s.namespace, &key];
                    self.settled::<Vec<u8>>(&s.statements.get_settled, &params)
                        .await?;
                    settled.insert(key);
                }
            }
        }
        Ok(keys
            .iter()
            .map(|key| found.get(key.as_bytes()).cloned())
            .collect())
    }

    /// One `INSERT ... SELECT FROM unnest(...)` per `BATCH_KEYS` distinct keys or
    /// `BATCH_BYTES` of values; of a repeated key only the last value is sent.
    async fn write_many(
        &self,
        entries: &[(Key<'_>, Value<'_>)],
        ttl: Option<Ttl>,
    ) -> Result<(), KvError> {
        let s = &self.shared;
        let millis = ttl.map(|ttl| ttl_millis(ttl.millis_ceil()));
        let distinct = last_of_each(entries);
        let (mut keys, mut values, mut bytes): (Vec<&[u8]>, Vec<&[u8]>, usize) =
            (Vec::new(), Vec::new(), 0);
        for (key, value) in &distinct {
            if !keys.is_empty() && (keys.len() == BATCH_KEYS || bytes + value.len() > BATCH_BYTES) {
                self.rows(
                    &s.statements.set_many,
                    &[&s.namespace, &keys, &values, &millis],
                    Resend::Never,
                )
                .await?;
                (keys, values, bytes) = (Vec::new(), Vec::new(), 0);
            }
            keys.push(key.as_bytes());
            values.push(value.as_bytes());
            bytes += value.len();
        }
        if !keys.is_empty() {
            self.rows(
                &s.statements.set_many,
                &[&s.namespace, &keys, &values, &millis],
                Resend::Never,
            )
            .await?;
        }
        Ok(())
    }

    /// One `DELETE ... key = ANY($2) RETURNING` per `BATCH_KEYS` distinct keys.
    async fn remove_many(&self, keys: &[Key<'_>]) -> Result<u64, KvError> {
        let s = &self.shared;
        let distinct: std::collections::BTreeSet<&[u8]> =
            keys.iter().map(|key| key.as_bytes()).collect();
        let distinct: Vec<&[u8]> = distinct.into_iter().collect();
        let mut removed = 0;
        for chunk in distinct.chunks(BATCH_KEYS) {
            let rows = self
                .rows(
                    &s.statements.delete_many,
                    &[&s.namespace, &chunk],
                    Resend::Never,
                )
                .await?;
            for row in &rows {
                removed += u64::from(column::<bool>(row, 0)?);
            }
        }
        Ok(removed)
    }

    /// One range read of the primary key, of at most `limit` live keys.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: NonZeroUsize,
    ) -> Result<KeyPage, KvError> {
        let s = &self.shared;
        let (start, end) = prefix_range(prefix);
        let start = match start_after.map(|key| after(key.as_bytes())) {
            Some(from) if from > start => from,
            _ => start,
        };
        let limit = i64::try_from(limit.get()).unwrap_or(i64::MAX);
        let rows = self
            .rows(
                &s.statements.list_page,
                &[&s.namespace, &start, &end, &limit],
                Resend::Safe,
            )
            .await?;
        let full = rows.len() as i64 == limit;
        let keys = rows
            .into_iter()
            .map(|row| key_from_row(column(&row, 0)?))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if full { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, next })
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        match &self.shared.watch {
            Some(setup) => crate::watch::watch(setup.clone(), self.clone(), prefix).await,
            None => Err(KvError::Unsupported(
                "watch: open the backend with watch=true (a trigger on the table notifies \
                 watchers; see kv-postgres' docs)"
                    .into(),
            )),
        }
    }

    fn capabilities(&self) -> Capabilities {
        let watch = match self.shared.watch {
            Some(_) => WatchScope::Store,
            None => WatchScope::Unsupported,
        };
        Capabilities::new(self.shared.max_value_bytes)
            .with_sharing(Sharing::Network)
            .with_native_batches(true)
            .with_native_paging(true)
            .with_watch(watch)
    }
}

kv_trait::impl_kv_backend!(PostgresBackend);

/// The increment statement's own failures: a value that is not a counter (the statement's
/// cast of [`NOT_A_COUNTER`]) and a sum outside `i64` (`bigint` overflow).
fn counter_error(err: KvError) -> KvError {
    let KvError::Backend(source) = &err else {
        return err;
    };
    let Some(pg) = source.downcast_ref::<tokio_postgres::Error>() else {
        return err;
    };
    let Some(db) = pg.as_db_error() else {
        return err;
    };
    if *db.code() == SqlState::INVALID_TEXT_REPRESENTATION && db.message().contains(NOT_A_COUNTER) {
        KvError::NotAnInteger
    } else if *db.code() == SqlState::NUMERIC_VALUE_OUT_OF_RANGE {
        KvError::IntegerOverflow
    } else {
        err
    }
}

/// An open failure with the endpoint in front, keeping its kind; a refused login or a missing
/// database is the configuration's fault.
fn in_context(err: KvError, endpoint: &str) -> KvError {
    let refused_login = match &err {
        KvError::Backend(source) => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
            .is_some_and(|code| {
                code.code().starts_with("28") || *code == SqlState::INVALID_CATALOG_NAME
            }),
        _ => false,
    };
    match err {
        KvError::InvalidConfig(message) => KvError::InvalidConfig(format!("{endpoint}: {message}")),
        KvError::Backend(source) if refused_login => {
            KvError::InvalidConfig(format!("{endpoint}: {}", error_chain(&*source)))
        }
        KvError::Unavailable(source) => {
            KvError::unavailable(format!("{endpoint}: {}", error_chain(&*source)))
        }
        KvError::Backend(source) => {
            KvError::backend(format!("{endpoint}: {}", error_chain(&*source)))
        }
        other => other,
    }
}

/// Deletes expired rows of `namespace` until none is left, in batches.
async fn sweep(
    pool: &Pool,
    statements: &Statements,
    namespace: &str,
    timeout: Duration,
) -> Result<u64, KvError> {
    let mut deleted = 0;
    loop {
        let batch = pool::rows(
            pool,
            timeout,
            &statements.sweep,
            &[&namespace, &SWEEP_BATCH],
            Resend::Never,
        )
        .await?;
        deleted += batch.len() as u64;
        if (batch.len() as i64) < SWEEP_BATCH {
            return Ok(deleted);
        }
    }
}

async fn sweep_forever(
    pool: Pool,
    statements: Arc<Statements>,
    namespace: String,
    interval: Duration,
    timeout: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        match sweep(&pool, &statements, &namespace, timeout).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "deleted expired rows"),
            Err(err) => {
                tracing::debug!(error = %err, "sweeping expired rows failed; trying again later")
            }
        }
    }
}
