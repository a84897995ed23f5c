//! The SQL of each operation: one statement each, decided inside the server.
//!
//! Liveness is judged with `clock_timestamp()`, the server's clock at the moment the row is
//! looked at (after any row-lock wait; `now()` would be the statement's start), and deadlines
//! are written as `clock_timestamp()` plus the TTL rounded up to the millisecond. Every
//! statement runs alone under `READ COMMITTED`, where a write that waited for another
//! writer's row lock re-checks its condition on the row that writer left: which is what makes
//! the conditional ones atomic without retries.

use crate::schema::TableName;

/// A live row: no deadline, or one still ahead on the server's clock.
const LIVE: &str = "(expires_at IS NULL OR expires_at > clock_timestamp())";

/// The message of the error `increment` raises for a value that is not a counter. SQL has
/// no `RAISE` outside PL/pgSQL, so the statement casts this text to `bigint`, which fails with
/// SQLSTATE 22P02 quoting it. (The text is built from the row, so that the planner cannot
/// fold the cast into a constant and fail before looking at any row; `coalesce`, so that a
/// NULL value, which a table changed by another program may hold, fails the same way instead
/// of making the sum NULL.)
pub(crate) const NOT_A_COUNTER: &str = "kv-postgres: not a counter";

/// Every statement's SQL for one table; `$1` is always the namespace, `$2` the key.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) get: String,
    pub(crate) get_settled: String,
    pub(crate) exists: String,
    pub(crate) exists_settled: String,
    pub(crate) set: String,
    pub(crate) set_with_ttl: String,
    pub(crate) delete: String,
    pub(crate) list_page: String,
    pub(crate) increment: String,
    pub(crate) insert_if_absent: String,
    pub(crate) replace_if_equal: String,
    pub(crate) sweep: String,
    pub(crate) get_many: String,
    pub(crate) set_many: String,
    pub(crate) delete_many: String,
}

impl Statements {
    pub(crate) fn new(table: &TableName) -> Self {
        let t = table.quoted();
        let marker_len = NOT_A_COUNTER.len();
        Self {
            // A row comes back for an expired key too, with a NULL value (`exists`: false),
            // so that the caller can settle it: a writer that judged the row live just before
            // its deadline may hold it and not have committed yet. The `_settled` forms wait
            // for such a writer's row lock (`FOR SHARE`) and judge the row it left.
            get: format!(
                "SELECT CASE WHEN {LIVE} THEN value END FROM {t} WHERE namespace = $1 AND key = $2"
            ),
            get_settled: format!(
                "SELECT CASE WHEN {LIVE} THEN value END FROM {t} WHERE namespace = $1 AND key = $2 \
                 FOR SHARE"
            ),
            exists: format!("SELECT {LIVE} FROM {t} WHERE namespace = $1 AND key = $2"),
            exists_settled: format!(
                "SELECT {LIVE} FROM {t} WHERE namespace = $1 AND key = $2 FOR SHARE"
            ),
            set: format!(
                "INSERT INTO {t} (namespace, key, value, expires_at) VALUES ($1, $2, $3, NULL) \
                 ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = NULL"
            ),
            // `$4`: the TTL in whole milliseconds, already rounded up.
            set_with_ttl: format!(
                "INSERT INTO {t} (namespace, key, value, expires_at) \
                 VALUES ($1, $2, $3, clock_timestamp() + $4::bigint * interval '1 millisecond') \
                 ON CONFLICT (namespace, key) DO UPDATE \
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
            ),
            // Removes an expired leftover too, and says whether the row was live.
            delete: format!(
                "DELETE FROM {t} WHERE namespace = $1 AND key = $2 RETURNING {LIVE}"
            ),
            // `$2..$3`: the prefix's range of keys (see `encoding::prefix_range`), `$4` the
            // page size. The primary key's index serves it as a range scan, in key order.
            list_page: format!(
                "SELECT key FROM {t} WHERE namespace = $1 AND key >= $2 AND key < $3 AND {LIVE} \
                 ORDER BY key LIMIT $4"
            ),
            // `$3`: the delta. An absent or expired row becomes `delta` without a TTL; a live
            // counter `n` becomes `n + delta` and keeps its TTL. A value that is not the
            // canonical form of an i64 (at most 19 digits, no leading zero, no `-0`, in range)
            // fails with 22P02 quoting NOT_A_COUNTER; a sum out of range fails with 22003.
            // Nested CASEs because SQL may evaluate the operands of AND in any order. Whether
            // the row has expired is decided once, in the sub-select, for both columns: read
            // twice, the clock could pass the deadline in between and leave a live counter's
            // sum without its TTL. The sub-select runs per row, after the row lock is taken.
            increment: format!(
                "INSERT INTO {t} AS t (namespace, key, value, expires_at) \
                 VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'), NULL) \
                 ON CONFLICT (namespace, key) DO UPDATE SET (value, expires_at) = ( \
                   SELECT CASE WHEN x.expired THEN EXCLUDED.value \
                     ELSE convert_to((CASE \
                       WHEN length(t.value) <= 20 \
                         AND encode(t.value, 'escape') ~ '^(0|-?[1-9][0-9]{{0,18}})$' \
                       THEN CASE \
                         WHEN encode(t.value, 'escape')::numeric \
                              BETWEEN -9223372036854775808 AND 9223372036854775807 \
                         THEN encode(t.value, 'escape')::bigint \
                         ELSE substr('{NOT_A_COUNTER}' || coalesce(t.value::text, ''), 1, {marker_len})::bigint \
                       END \
                       ELSE substr('{NOT_A_COUNTER}' || coalesce(t.value::text, ''), 1, {marker_len})::bigint \
                     END + $3::bigint)::text, 'UTF8') \
                   END, \
                   CASE WHEN x.expired THEN NULL ELSE t.expires_at END \
                   FROM (SELECT t.expires_at <= clock_timestamp() AS expired) AS x) \
                 RETURNING convert_from(value, 'UTF8')::bigint"
            ),
            // compare_and_swap(key, None, new): inserts, or takes over an expired row; a row
            // comes back iff it wrote.
            insert_if_absent: format!(
                "INSERT INTO {t} AS t (namespace, key, value, expires_at) VALUES ($1, $2, $3, NULL) \
                 ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = NULL \
                 WHERE t.expires_at <= clock_timestamp() \
                 RETURNING 1"
            ),
            // compare_and_swap(key, Some(expected), new): `$3` expected, `$4` new.
            replace_if_equal: format!(
                "UPDATE {t} SET value = $4, expires_at = NULL \
                 WHERE namespace = $1 AND key = $2 AND value = $3 AND {LIVE} \
                 RETURNING 1"
            ),
            // Up to `$2` expired rows of the namespace, found through the expiry index. Rows a
            // writer holds are skipped (it is replacing them anyway), and the deadline is
            // checked again on the row as it is when deleted.
            // `$2`: the keys (bytea[]). Rows come back in any order; the caller puts them in
            // the order asked. An expired row comes back with a NULL value, as for `get`.
            get_many: format!(
                "SELECT key, CASE WHEN {LIVE} THEN value END FROM {t} \
                 WHERE namespace = $1 AND key = ANY($2)"
            ),
            // `$2`, `$3`: keys and values (distinct keys: ON CONFLICT cannot touch a row
            // twice), `$4` the TTL in whole milliseconds or NULL for none. One statement: all
            // of it or none of it.
            set_many: format!(
                "INSERT INTO {t} (namespace, key, value, expires_at) \
                 SELECT $1, u.key, u.value, CASE WHEN $4::bigint IS NULL THEN NULL \
                   ELSE clock_timestamp() + $4::bigint * interval '1 millisecond' END \
                 FROM unnest($2::bytea[], $3::bytea[]) AS u(key, value) \
                 ON CONFLICT (namespace, key) DO UPDATE \
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
            ),
            // One row per removed row, saying whether it was live.
            delete_many: format!(
                "DELETE FROM {t} WHERE namespace = $1 AND key = ANY($2) RETURNING {LIVE}"
            ),
            sweep: format!(
                "DELETE FROM {t} WHERE namespace = $1 AND expires_at <= clock_timestamp() \
                 AND key IN (SELECT key FROM {t} \
                             WHERE namespace = $1 AND expires_at <= clock_timestamp() \
                             LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING 1"
            ),
        }
    }
}
