//! The table: its name, its versioned layout, and the check (or creation) at open.
//!
//! The layout is in the crate docs ("The table"). The version is the table's comment,
//! `kv-postgres schema N`, written when this crate creates the table; a later release that
//! changes the layout migrates from the version it finds. A table made by hand from the crate
//! docs' statement has no comment and is accepted when its columns (their types, a `value`
//! that is `NOT NULL` and an `expires_at` that allows NULL) and primary key have the expected
//! shape, so an application without `CREATE` rights can use a table its DBA made.

use std::fmt;

use kv_trait::KvError;
use tokio_postgres::Client;

use crate::config::invalid;
use crate::error::from_pg;

/// The layout this crate writes and reads.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The table comment that marks a version, followed by the number.
const VERSION_MARK: &str = "kv-postgres schema ";

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`); longer ones are truncated
/// silently, so they are refused here instead.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The columns, in order, with their types as `format_type` writes them.
const COLUMNS: [(&str, &str); 4] = [
    ("namespace", "text"),
    ("key", "bytea"),
    ("value", "bytea"),
    ("expires_at", "timestamp with time zone"),
];

/// A table name, `name` or `schema.name`: lowercase unquoted identifiers only, so the name
/// means the same table quoted (as the statements write it) and unquoted (as a DBA types it).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    pub(crate) fn parse(text: &str) -> Result<Self, KvError> {
        let (schema, name) = match text.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, text),
        };
        for part in schema.into_iter().chain([name]) {
            let valid = part.len() <= MAX_IDENTIFIER_BYTES
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(invalid(format!(
                    "table `{text}`: expected `name` or `schema.name`, each a lowercase letter or \
                     `_` followed by lowercase letters, digits or `_`, at most \
                     {MAX_IDENTIFIER_BYTES} bytes"
                )));
            }
        }
        Ok(Self {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// The name as SQL writes it, quoted: `"schema"."name"`.
    pub(crate) fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }

    /// The index on expiry deadlines (an index lives in its table's schema).
    fn expiry_index(&self) -> String {
        // Truncated like PostgreSQL would, but deliberately: `name_expiry` may be too long.
        let mut name = format!("{}_expiry", self.name);
        name.truncate(MAX_IDENTIFIER_BYTES);
        format!("\"{name}\"")
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The statements that create the table, its expiry index and its version mark: what the
/// crate docs show, for a DBA who creates the table by hand.
pub(crate) fn create_statements(table: &TableName) -> String {
    let quoted = table.quoted();
    format!(
        "CREATE TABLE IF NOT EXISTS {quoted} (\n    \
             namespace  text COLLATE \"C\" NOT NULL,\n    \
             key        bytea NOT NULL,\n    \
             value      bytea NOT NULL,\n    \
             expires_at timestamptz,\n    \
             PRIMARY KEY (namespace, key)\n\
         );\n\
         CREATE INDEX IF NOT EXISTS {index} ON {quoted} (namespace, expires_at)\n    \
             WHERE expires_at IS NOT NULL;\n\
         COMMENT ON TABLE {quoted} IS '{VERSION_MARK}{SCHEMA_VERSION}';\n",
        index = table.expiry_index()
    )
}

/// Makes sure `table` exists with a layout this crate can use: creates it when missing and
/// `create` is set, else fails with `InvalidConfig` saying what is wrong.
pub(crate) async fn prepare(
    client: &mut Client,
    table: &TableName,
    create: bool,
    dbname: &str,
) -> Result<(), KvError> {
    let name = table.to_string();
    if !exists(client, &name).await? {
        if !create {
            return Err(invalid(format!(
                "table `{name}` does not exist in database `{dbname}`: create it (the kv-postgres \
                 docs show the statement) or open with create_table=true"
            )));
        }
        // One creator at a time: `CREATE TABLE IF NOT EXISTS` run by two sessions at once can
        // still fail on the catalog's unique index. The lock is the transaction's, so it is
        // released with it.
        let transaction = client.transaction().await.map_err(from_pg)?;
        transaction
            .batch_execute(&format!(
                "SELECT pg_advisory_xact_lock(hashtext('kv-postgres create {name}'));\n{}",
                create_statements(table)
            ))
            .await
            .map_err(from_pg)?;
        transaction.commit().await.map_err(from_pg)?;
    }
    check(client, &name).await
}

async fn exists(client: &Client, name: &str) -> Result<bool, KvError> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(from_pg)?;
    Ok(row.get(0))
}

/// Checks the version mark and the shape of an existing table.
async fn check(client: &Client, name: &str) -> Result<(), KvError> {
    let comment: Option<String> = client
        .query_one(
            "SELECT obj_description(to_regclass($1), 'pg_class')",
            &[&name],
        )
        .await
        .map_err(from_pg)?
        .get(0);
    if let Some(version) = comment.as_deref().and_then(version_in) {
        if version > SCHEMA_VERSION {
            return Err(invalid(format!(
                "table `{name}` has the layout of kv-postgres schema {version}, newer than this \
                 release knows ({SCHEMA_VERSION}): upgrade kv-postgres"
            )));
        }
        // Migrations from older versions go here, once there is more than one.
    }

    let columns: Vec<(String, String, bool)> = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull \
             FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
             ORDER BY attnum",
            &[&name],
        )
        .await
        .map_err(from_pg)?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    for (column, expected_type) in COLUMNS {
        match columns.iter().find(|(found, _, _)| found == column) {
            None => {
                return Err(invalid(format!(
                    "table `{name}` has no column `{column}` ({expected_type}): it was not made \
                     for kv-postgres"
                )))
            }
            Some((_, found_type, _)) if found_type != expected_type => {
                return Err(invalid(format!(
                    "column `{column}` of table `{name}` is {found_type}, not {expected_type}"
                )))
            }
            Some(_) => {}
        }
    }
    if let Some((extra, _, _)) = columns
        .iter()
        .find(|(column, _, not_null)| *not_null && !COLUMNS.iter().any(|(c, _)| c == column))
    {
        return Err(invalid(format!(
            "table `{name}` has a NOT NULL column `{extra}` that kv-postgres does not write"
        )));
    }

    let keyed: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i \
               WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL \
                 AND ARRAY(SELECT a.attname::text \
                           FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) \
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                           ORDER BY k.position) = ARRAY['namespace', 'key'])",
            &[&name],
        )
        .await
        .map_err(from_pg)?
        .get(0);
    if !keyed {
        return Err(invalid(format!(
            "table `{name}` has no primary key or unique index on (namespace, key)"
        )));
    }
    // kv-postgres writes NULL for "no deadline" and never a NULL value: a value column that
    // allows NULL would let another program store a value no kvkit call can read or write,
    // and a deadline column that refuses NULL would refuse every write without a TTL.
    let not_null = |wanted: &str| {
        columns
            .iter()
            .any(|(column, _, not_null)| column == wanted && *not_null)
    };
    if !not_null("value") {
        return Err(invalid(format!(
            "column `value` of table `{name}` allows NULL, which kv-postgres never writes: \
             declare it NOT NULL"
        )));
    }
    if not_null("expires_at") {
        return Err(invalid(format!(
            "column `expires_at` of table `{name}` is NOT NULL, but kv-postgres writes NULL for \
             a key without a deadline: drop the constraint"
        )));
    }
    Ok(())
}

/// The version in a table comment written by this crate.
fn version_in(comment: &str) -> Option<u32> {
    comment.strip_prefix(VERSION_MARK)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_lowercase_identifiers() {
        for good in ["kvkit", "kv_2", "_t", "app.kv", &"a".repeat(63)] {
            assert!(TableName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Kv",
            "2kv",
            "kv-store",
            "kv store",
            "a.b.c",
            ".kv",
            "kv.",
            "kv\"",
            "kv;drop",
            &"a".repeat(64),
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_quoted_for_sql() {
        assert_eq!(TableName::parse("kv").unwrap().quoted(), "\"kv\"");
        let qualified = TableName::parse("app.kv").unwrap();
        assert_eq!(qualified.quoted(), "\"app\".\"kv\"");
        assert_eq!(qualified.expiry_index(), "\"kv_expiry\"");
        let long = TableName::parse(&"t".repeat(63)).unwrap();
        assert_eq!(long.expiry_index().len(), 63 + 2);
    }

    #[test]
    fn the_version_mark_round_trips() {
        let statements = create_statements(&TableName::parse("kv").unwrap());
        let comment = statements
            .split('\'')
            .nth(1)
            .expect("the comment is quoted");
        assert_eq!(version_in(comment), Some(SCHEMA_VERSION));
        assert_eq!(version_in("kv-postgres schema 7"), Some(7));
        assert_eq!(version_in("made by hand"), None);
    }
}
