//! How keys, values, expiry and namespaces map into the SQLite file: the schema, its
//! migrations, and every SQL statement the backend runs. The layout is described in the crate
//! docs.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use kv_trait::{is_live_at, KvError, NEVER_UNIX_MS};

use crate::error::OpError;

/// The schema version this release writes and understands, stored in `PRAGMA user_version`.
///
/// A file with a lower version is migrated when opened; a file with a higher version (written
/// by a later release) is refused with [`KvError::InvalidConfig`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[n]` upgrades a file from schema version `n` to `n + 1`. Append only: a
/// released migration never changes, and a new release adds one at the end.
const MIGRATIONS: [&str; 1] = [
    // Version 1: the table and the index of deadlines.
    "CREATE TABLE kv_entries (
         namespace  TEXT    NOT NULL,
         key        BLOB    NOT NULL,
         expires_at INTEGER,
         value      BLOB    NOT NULL,
         PRIMARY KEY (namespace, key)
     ) WITHOUT ROWID;
     CREATE INDEX kv_entries_expiry ON kv_entries (expires_at) WHERE expires_at IS NOT NULL;",
];

/// The name of the table, for the "is this file ours?" check.
const TABLE: &str = "kv_entries";

/// Rows deleted per statement when reclaiming expired rows: small enough that the write lock
/// is held only briefly, large enough that reclaim outpaces keys expiring.
pub(crate) const PURGE_BATCH_ROWS: usize = 256;

const SELECT_ENTRY: &str =
    "SELECT value, expires_at FROM kv_entries WHERE namespace = ?1 AND key = ?2";
const SELECT_DEADLINE: &str = "SELECT expires_at FROM kv_entries WHERE namespace = ?1 AND key = ?2";
const UPSERT: &str = "INSERT INTO kv_entries (namespace, key, expires_at, value)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (namespace, key) DO UPDATE
     SET expires_at = excluded.expires_at, value = excluded.value";
const DELETE_RETURNING: &str =
    "DELETE FROM kv_entries WHERE namespace = ?1 AND key = ?2 RETURNING expires_at";
const KEYS_FROM: &str = "SELECT key, expires_at FROM kv_entries
     WHERE namespace = ?1 AND key >= ?2 ORDER BY key";
const KEYS_BETWEEN: &str = "SELECT key, expires_at FROM kv_entries
     WHERE namespace = ?1 AND key >= ?2 AND key < ?3 ORDER BY key";
// A page: after `?3` (strictly), within the prefix's range `?2..?4` (`?4` NULL: no upper
// bound), at most `?5` rows, expired ones included so that a page reads a bounded number.
const KEYS_PAGE: &str = "SELECT key, expires_at FROM kv_entries
     WHERE namespace = ?1 AND key >= ?2 AND key > ?3 AND (?4 IS NULL OR key < ?4)
     ORDER BY key LIMIT ?5";
// Row values keep the primary key a single comparison; the inner `expires_at <= ?1`
// implies `expires_at IS NOT NULL`, so SQLite uses the partial index.
const PURGE_BATCH: &str = "DELETE FROM kv_entries WHERE (namespace, key) IN (
     SELECT namespace, key FROM kv_entries WHERE expires_at <= ?1 LIMIT ?2)";

/// A stored row: the value and its deadline (`None`: never expires).
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    pub(crate) expires_at: Option<i64>,
}

impl Entry {
    /// Whether this row is live at clock reading `now_ms`.
    pub(crate) fn is_live_at(&self, now_ms: u64) -> bool {
        is_live(self.expires_at, now_ms)
    }
}

/// Whether a row with `expires_at` is live at clock reading `now_ms` (the kv-trait rule).
pub(crate) fn is_live(expires_at: Option<i64>, now_ms: u64) -> bool {
    match expires_at {
        None => true,
        // A negative deadline can only come from a hand-edited row: long expired.
        Some(deadline) => is_live_at(u64::try_from(deadline).unwrap_or(0), now_ms),
    }
}

/// The `expires_at` column value for a deadline in Unix milliseconds. Deadlines are at most
/// [`NEVER_UNIX_MS`] (`i64::MAX`), so this never saturates in practice; it is total anyway.
pub(crate) fn deadline_column(deadline_ms: u64) -> i64 {
    i64::try_from(deadline_ms.min(NEVER_UNIX_MS)).unwrap_or(i64::MAX)
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when there is none (the prefix is empty or all `0xFF`), meaning "no upper bound".
///
/// Trailing `0xFF` bytes cannot be incremented, so they are dropped and the byte before them
/// is incremented: every string starting with `ab\xFF` is below `ac`. (A UTF-8 prefix never
/// contains `0xFF`, but the rule is the general one.)
pub(crate) fn key_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last_incrementable = prefix.iter().rposition(|&byte| byte != 0xFF)?;
    let mut successor = prefix[..=last_incrementable].to_vec();
    successor[last_incrementable] += 1;
    Some(successor)
}

/// The row at `key`, live or not.
pub(crate) fn select_entry(
    conn: &Connection,
    namespace: &str,
    key: &str,
) -> Result<Option<Entry>, OpError> {
    let mut statement = conn.prepare_cached(SELECT_ENTRY)?;
    let entry = statement
        .query_row(params![namespace, key.as_bytes()], |row| {
            Ok(Entry {
                // `as_bytes` also accepts TEXT, in case a person stored a value by hand.
                value: row.get_ref(0)?.as_bytes()?.to_vec(),
                expires_at: row.get(1)?,
            })
        })
        .optional()?;
    Ok(entry)
}

/// The deadline of the row at `key` (outer `None`: no row), without reading its value.
pub(crate) fn select_deadline(
    conn: &Connection,
    namespace: &str,
    key: &str,
) -> Result<Option<Option<i64>>, OpError> {
    let mut statement = conn.prepare_cached(SELECT_DEADLINE)?;
    let deadline = statement
        .query_row(params![namespace, key.as_bytes()], |row| row.get(0))
        .optional()?;
    Ok(deadline)
}

/// Writes `value` at `key` with deadline `expires_at`, replacing any row there.
pub(crate) fn upsert(
    conn: &Connection,
    namespace: &str,
    key: &str,
    value: &[u8],
    expires_at: Option<i64>,
) -> Result<(), OpError> {
    let mut statement = conn.prepare_cached(UPSERT)?;
    statement.execute(params![namespace, key.as_bytes(), expires_at, value])?;
    Ok(())
}

/// Deletes the row at `key`; returns its deadline (outer `None`: there was no row).
pub(crate) fn delete_returning(
    conn: &Connection,
    namespace: &str,
    key: &str,
) -> Result<Option<Option<i64>>, OpError> {
    let mut statement = conn.prepare_cached(DELETE_RETURNING)?;
    let deadline = statement
        .query_row(params![namespace, key.as_bytes()], |row| row.get(0))
        .optional()?;
    Ok(deadline)
}

/// Every key live at `now_ms` that starts with the bytes `prefix`, in byte order.
pub(crate) fn live_keys(
    conn: &Connection,
    namespace: &str,
    prefix: &[u8],
    now_ms: u64,
) -> Result<Vec<String>, OpError> {
    let upper = key_successor(prefix);
    let mut statement = conn.prepare_cached(match upper {
        Some(_) => KEYS_BETWEEN,
        None => KEYS_FROM,
    })?;
    let mut rows = match &upper {
        Some(upper) => statement.query(params![namespace, prefix, upper])?,
        None => statement.query(params![namespace, prefix])?,
    };
    let mut keys = Vec::new();
    while let Some(row) = rows.next()? {
        if is_live(row.get(1)?, now_ms) {
            let key = row.get_ref(0)?.as_bytes().map_err(rusqlite::Error::from)?;
            keys.push(decode_key(key)?);
        }
    }
    Ok(keys)
}

/// One page of the keys live at `now_ms` that start with `prefix`, after `start_after`: it
/// reads at most `limit` rows (live or expired), so the page is bounded whatever the table
/// holds, and a page that read `limit` rows is not the last.
pub(crate) fn live_keys_page(
    conn: &Connection,
    namespace: &str,
    prefix: &[u8],
    start_after: Option<&[u8]>,
    limit: usize,
    now_ms: u64,
) -> Result<kv_trait::KeyPage, OpError> {
    let upper = key_successor(prefix);
    let mut statement = conn.prepare_cached(KEYS_PAGE)?;
    let after: &[u8] = start_after.unwrap_or_default();
    let rows_wanted = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = statement.query(params![namespace, prefix, after, upper, rows_wanted])?;
    let (mut keys, mut read, mut last) = (Vec::new(), 0, None);
    while let Some(row) = rows.next()? {
        read += 1;
        let key = decode_key(row.get_ref(0)?.as_bytes().map_err(rusqlite::Error::from)?)?;
        if is_live(row.get(1)?, now_ms) {
            keys.push(key.clone());
        }
        last = Some(key);
    }
    let next = if read == limit { last } else { None };
    Ok(kv_trait::KeyPage { keys, next })
}

/// Deletes up to `limit` rows (of any namespace) whose deadline is at or before `now_ms`;
/// returns how many it deleted.
pub(crate) fn purge_expired(
    conn: &Connection,
    now_ms: u64,
    limit: usize,
) -> Result<usize, OpError> {
    let mut statement = conn.prepare_cached(PURGE_BATCH)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(statement.execute(params![deadline_column(now_ms), limit])?)
}

/// A key read back from the file. Keys are written from `&str`, so anything else is a row
/// someone else wrote, reported rather than mangled.
fn decode_key(bytes: &[u8]) -> Result<String, OpError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        OpError::Kv(KvError::backend(format!(
            "the file holds a key that is not UTF-8: {bytes:?}"
        )))
    })
}

/// Brings the file's schema to [`SCHEMA_VERSION`], or refuses a file it cannot use.
///
/// The version is read again inside an immediate (write-locked) transaction, so connections
/// and processes opening the same new file at once migrate it exactly once.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), OpError> {
    if check_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = check_version(&transaction)?;
    if found == 0 && table_exists(&transaction)? {
        return Err(OpError::Kv(KvError::InvalidConfig(format!(
            "the database has a `{TABLE}` table but no kv-sqlite schema version \
             (PRAGMA user_version is 0): it was not created by kv-sqlite"
        ))));
    }
    for migration in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        transaction.execute_batch(migration)?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}

/// The file's schema version, refusing versions this release does not know.
fn check_version(conn: &Connection) -> Result<i64, OpError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(OpError::Kv(KvError::InvalidConfig(format!(
            "the database has kv-sqlite schema version {found}, newer than version \
             {SCHEMA_VERSION} that this release understands; open it with a newer kv-sqlite"
        ))));
    }
    if found < 0 {
        return Err(OpError::Kv(KvError::InvalidConfig(format!(
            "the database has PRAGMA user_version {found}: it was not created by kv-sqlite"
        ))));
    }
    Ok(found)
}

fn table_exists(conn: &Connection) -> Result<bool, OpError> {
    let count: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [TABLE],
        |row| row.get(0),
    )?;
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_increments_the_last_byte_that_can_be() {
        assert_eq!(key_successor(b"abc"), Some(b"abd".to_vec()));
        assert_eq!(key_successor(b"ab\xFF"), Some(b"ac".to_vec()));
        assert_eq!(key_successor(b"a\xFF\xFF"), Some(b"b".to_vec()));
        assert_eq!(key_successor(b"a\x00"), Some(b"a\x01".to_vec()));
        assert_eq!(key_successor("é".as_bytes()), Some(vec![0xC3, 0xAA]));
        assert_eq!(key_successor(b"\xFE"), Some(vec![0xFF]));
        assert_eq!(key_successor(b"\xFF\xFF"), None);
        assert_eq!(key_successor(b""), None);
    }

    #[test]
    fn successor_bounds_exactly_the_prefixed_strings() {
        let prefix = b"k\xFF";
        let upper = key_successor(prefix).unwrap();
        for inside in [&b"k\xFF"[..], b"k\xFF\xFF\xFF", b"k\xFF\x00"] {
            assert!(
                inside >= &prefix[..] && inside < upper.as_slice(),
                "{inside:?}"
            );
        }
        for outside in [&b"l"[..], b"k\xFE\xFF", b"l\x00"] {
            assert!(
                !(outside >= &prefix[..] && outside < upper.as_slice()),
                "{outside:?}"
            );
        }
    }

    #[test]
    fn liveness_follows_kv_trait() {
        assert!(is_live(None, u64::MAX));
        assert!(is_live(Some(1001), 1000));
        assert!(!is_live(Some(1001), 1001));
        assert!(!is_live(Some(-5), 0));
        assert_eq!(deadline_column(NEVER_UNIX_MS), i64::MAX);
        assert_eq!(deadline_column(u64::MAX), i64::MAX);
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_newer_files_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(OpError::Kv(KvError::InvalidConfig(_)))
        ));
    }

    #[test]
    fn a_foreign_table_of_the_same_name_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE kv_entries (id INTEGER)")
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(OpError::Kv(KvError::InvalidConfig(message))) if message.contains("not created")
        ));
    }

    #[test]
    fn prefix_scans_use_the_primary_key_and_purge_uses_the_deadline_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let plan = |sql: &str| -> String {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            // Unbound parameters are NULL: enough for the planner.
            let nulls = vec![rusqlite::types::Null; statement.parameter_count()];
            let rows = statement
                .query_map(rusqlite::params_from_iter(nulls), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let scan = plan(KEYS_BETWEEN);
        assert!(
            scan.contains("PRIMARY KEY (namespace=? AND key>? AND key<?)"),
            "{scan}"
        );
        let purge = plan(PURGE_BATCH);
        assert!(
            purge.contains("kv_entries_expiry (expires_at<?)"),
            "{purge}"
        );
    }
}
