//! [`PostgresBackendBuilder`]: which server, which table and namespace, and the backend's
//! limits; also parses `postgres://` and `postgresql://` URLs into a builder, so a URL and the
//! builder methods configure exactly the same settings.
//!
//! Nothing here ever shows the password: `Debug`, [`PostgresBackendBuilder::endpoint`] and
//! every error message print `***` in its place.

use std::fmt;
use std::time::Duration;

use kv_trait::url_config::{
    encode_component, parse_host_port, percent_decode, redact, split_userinfo, Secret, StoreUrl,
    REDACTED,
};
use kv_trait::{KvError, DEFAULT_MAX_VALUE_BYTES};

use crate::schema::TableName;
use crate::PostgresBackend;

/// The port of a URL that names none: PostgreSQL's default.
pub const DEFAULT_PORT: u16 = 5432;

/// The table a URL without `?table=` uses.
pub const DEFAULT_TABLE: &str = "kvkit";

/// How long establishing a connection (TCP, TLS, authentication) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one operation may take, waiting for a pooled connection included, before it fails
/// with `Unavailable`. The server is told the same limit (`statement_timeout`), so a statement
/// the client gave up on does not run on.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections the pool keeps at most.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The most connections a backend may hold: each is a server process.
const MAX_POOL_SIZE: usize = 1024;

/// How often expired rows of the namespace are deleted (see the crate docs, "Expiry").
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The largest `max_value_bytes` accepted. A `bytea` holds up to 1 GiB, but a value travels in
/// one protocol message and is held whole in the server's memory; 256 MiB keeps that sane.
pub const LARGEST_MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;

/// The `?name=value` options of a PostgreSQL URL.
const URL_OPTIONS: [&str; 12] = [
    "namespace",
    "table",
    "create_table",
    "pool_size",
    "connect_timeout_ms",
    "request_timeout_ms",
    "sweep_interval_ms",
    "max_value_bytes",
    "sslmode",
    "sslrootcert",
    "application_name",
    "watch",
];

/// Where the server is: a TCP host and port, or the directory of a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Tcp { host: String, port: u16 },
    Socket { dir: String, port: u16 },
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Host::Tcp { host, port } => write!(f, "{host}:{port}"),
            Host::Socket { dir, port } => write!(f, "{}:{port}", encode_component(dir)),
        }
    }
}

/// Whether the connection uses TLS (`sslmode`, with libpq's names).
///
/// Whenever TLS is used, the server's certificate is verified, chain and host name, against
/// `sslrootcert` or else the Mozilla roots: kv-postgres never sends a password over TLS it has
/// not verified. That makes `require` and `verify-ca` as strict as `verify-full`, which is
/// stricter than libpq (whose `prefer` and `require` encrypt without verifying).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP only (`sslmode=disable`).
    Disable,
    /// TLS if the server offers it, else plain TCP (`sslmode=prefer`, libpq's default).
    /// Without the `tls` feature, or when the application installed no rustls crypto
    /// provider, always plain TCP, as libpq built without TLS does.
    Prefer,
    /// TLS or no connection (`sslmode=require`, `verify-ca`, `verify-full`; `tls` feature).
    Require,
}

/// Builds a [`PostgresBackend`] with non-default settings.
///
/// Start from [`from_url`](Self::from_url), adjust, then [`build`](Self::build) (async: it
/// connects and checks or creates the table, so a wrong address, password or table fails
/// there rather than at the first operation).
///
/// ```
/// use std::time::Duration;
/// use kv_postgres::PostgresBackendBuilder;
///
/// let builder = PostgresBackendBuilder::from_url("postgres://app:s3cret@db.internal/appdb?table=kv")?
///     .namespace("sessions")
///     .pool_size(32)
///     .request_timeout(Duration::from_millis(800));
/// // The password never appears, in Debug or anywhere else.
/// assert_eq!(builder.endpoint(), "postgres://app:***@db.internal:5432/appdb");
/// assert!(!format!("{builder:?}").contains("s3cret"));
/// # Ok::<(), kv_trait::KvError>(())
/// ```
#[derive(Clone)]
pub struct PostgresBackendBuilder {
    pub(crate) hosts: Vec<Host>,
    pub(crate) user: String,
    pub(crate) password: Option<Secret>,
    pub(crate) dbname: String,
    pub(crate) table: TableName,
    pub(crate) create_table: bool,
    pub(crate) namespace: String,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) sweep_interval: Option<Duration>,
    pub(crate) max_value_bytes: usize,
    pub(crate) ssl_mode: SslMode,
    /// PEM root certificates to trust instead of the Mozilla roots (`sslrootcert`).
    pub(crate) ssl_root_cert: Option<std::path::PathBuf>,
    pub(crate) application_name: String,
    /// Whether `watch` is served: a trigger on the table notifies listeners of every change.
    pub(crate) watch: bool,
}

impl PostgresBackendBuilder {
    /// A builder configured from a URL:
    ///
    /// `postgres://user[:password]@host[:port][,host[:port]...][/dbname][?options]`
    /// (`postgresql://` too).
    ///
    /// - The port is 5432 unless given; the database is the user's name unless given, as
    ///   with libpq. An IPv6 host is written in brackets (`[::1]:5432`); a host that
    ///   percent-decodes to an absolute path is the directory of a Unix socket
    ///   (`postgres://app@%2Fvar%2Frun%2Fpostgresql/appdb`).
    /// - Several hosts: connections go to the first one that accepts writes (the primary), so
    ///   the backend follows a failover on its own.
    /// - User name, password and database are percent-decoded (write `@`, `:`, `/`, `?`, `#`
    ///   and `%` as `%40`, `%3A`, `%2F`, `%3F`, `%23` and `%25`).
    /// - Options: `namespace`, `table` (`name` or `schema.name`), `create_table`
    ///   (`true`/`false`), `pool_size`, `connect_timeout_ms`, `request_timeout_ms`,
    ///   `sweep_interval_ms` (0: never), `max_value_bytes` and `application_name` mean what
    ///   the builder methods of the same names mean; `sslmode` is `disable`, `prefer` (the
    ///   default), or `require`, `verify-ca` and `verify-full` (the `tls` feature; all three
    ///   verify the certificate and the host name, see [`SslMode`]); `sslrootcert=PATH` is
    ///   a PEM file of the roots to trust.
    ///
    /// Another scheme, a missing user, a malformed host, port or database, an unknown or
    /// repeated option, or a malformed value is [`KvError::InvalidConfig`] naming the problem
    /// (never the password).
    ///
    /// ```
    /// use kv_postgres::PostgresBackendBuilder;
    ///
    /// let b = PostgresBackendBuilder::from_url(
    ///     "postgresql://app:pw@10.0.0.1,10.0.0.2:6432/kv?namespace=jobs&table=cache.entries",
    /// )?;
    /// assert_eq!(b.endpoint(), "postgres://app:***@10.0.0.1:5432,10.0.0.2:6432/kv");
    /// assert_eq!(b.table_name(), "cache.entries");
    /// assert!(PostgresBackendBuilder::from_url("postgres://app@db?colour=blue").is_err());
    /// assert!(PostgresBackendBuilder::from_url("mysql://app@db").is_err());
    /// # Ok::<(), kv_trait::KvError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, KvError> {
        let scheme = url
            .split_once("://")
            .map(|(scheme, _)| scheme)
            .filter(|scheme| {
                scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
            })
            .ok_or_else(|| {
                invalid(format!(
                    "`{}` is not a PostgreSQL URL: it starts with `postgres://` or `postgresql://`",
                    redact(url)
                ))
            })?;
        let mut parsed = StoreUrl::parse(url, scheme)?;
        let location = parsed
            .location()
            .strip_prefix("//")
            .ok_or_else(|| invalid("a PostgreSQL URL is `postgres://user@host/dbname`".into()))?
            .to_owned();
        let (userinfo, rest) = split_userinfo(&location);
        let (user, password) = parse_userinfo(userinfo)?;
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = parse_hosts(hosts)?;
        let dbname = match path {
            "" => user.clone(),
            path => percent_decode(path, "the database name")?,
        };
        if dbname.contains('/') || dbname.contains('\0') {
            return Err(invalid(format!(
                "the database name `{dbname}` may not contain `/` or NUL"
            )));
        }

        let mut builder = Self {
            hosts,
            user,
            password,
            dbname,
            table: TableName::parse(DEFAULT_TABLE)?,
            create_table: true,
            namespace: String::new(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            application_name: "kvkit".to_owned(),
            watch: false,
        };
        if let Some(namespace) = parsed.take("namespace") {
            builder = builder.namespace(namespace);
        }
        if let Some(table) = parsed.take("table") {
            builder.table = TableName::parse(&table)?;
        }
        if let Some(create) = parsed.take_bool("create_table")? {
            builder.create_table = create;
        }
        if let Some(watch) = parsed.take_bool("watch")? {
            builder.watch = watch;
        }
        if let Some(size) = parsed.take_number("pool_size")? {
            builder = builder.pool_size(size);
        }
        if let Some(ms) = parsed.take_number("connect_timeout_ms")? {
            builder = builder.connect_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = parsed.take_number("request_timeout_ms")? {
            builder = builder.request_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = parsed.take_number::<u64>("sweep_interval_ms")? {
            builder.sweep_interval = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(max) = parsed.take_number("max_value_bytes")? {
            builder = builder.max_value_bytes(max);
        }
        if let Some(mode) = parsed.take("sslmode") {
            builder.ssl_mode = match mode.as_str() {
                "disable" => SslMode::Disable,
                "prefer" => SslMode::Prefer,
                "require" | "verify-ca" | "verify-full" => SslMode::Require,
                other => {
                    return Err(invalid(format!(
                        "URL option `sslmode={other}`: expected disable, prefer, require, \
                         verify-ca or verify-full (`allow` is not supported)"
                    )))
                }
            };
        }
        if let Some(path) = parsed.take("sslrootcert") {
            builder.ssl_root_cert = Some(path.into());
        }
        if let Some(name) = parsed.take("application_name") {
            builder.application_name = name;
        }
        parsed.finish(&URL_OPTIONS)?;
        builder.check()?;
        Ok(builder)
    }

    /// The namespace this backend's keys live in (default: the empty one). Namespaces share the
    /// table and never see each other's keys. A namespace may be any string without NUL.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The table (`name`, or `schema.name`), default [`DEFAULT_TABLE`]. Each part is an
    /// unquoted SQL identifier: a letter or `_`, then letters, digits or `_`, at most 63 bytes.
    pub fn table(mut self, table: &str) -> Result<Self, KvError> {
        self.table = TableName::parse(table)?;
        Ok(self)
    }

    /// Whether opening creates the table when it is missing (default `true`). Off, opening a
    /// database without the table fails with `InvalidConfig`, and the backend needs only
    /// `SELECT`, `INSERT`, `UPDATE` and `DELETE` on the table (see the crate docs).
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// Whether to serve `watch` (default `false`; URL option `watch=true`). Opening then
    /// installs a trigger on the table (once, for every backend of the table: it needs the
    /// rights to create a function and a trigger) that notifies listeners of every change by
    /// any writer, in commit order; each watcher holds a connection of its own, outside the
    /// pool. Off by default because the trigger costs every write of the table a
    /// notification, watched or not (see the crate docs, "Watch").
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// The most connections the pool holds (default [`DEFAULT_POOL_SIZE`], 1 to 1024).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long connecting may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one operation may take (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often expired rows of this namespace are deleted (default
    /// [`DEFAULT_SWEEP_INTERVAL`]; `None`: never, e.g. when one handle of many is enough).
    /// Expired rows are invisible at once either way; this only reclaims their space.
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The longest value accepted, in bytes (default 1 MiB; 64 KiB to 256 MiB).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// The server, user and database, with `***` for the password, e.g.
    /// `postgres://app:***@db:5432/appdb`.
    pub fn endpoint(&self) -> String {
        let password = match self.password {
            Some(_) => format!(":{REDACTED}"),
            None => String::new(),
        };
        let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        format!(
            "postgres://{}{password}@{}/{}",
            encode_component(&self.user),
            hosts.join(","),
            encode_component(&self.dbname)
        )
    }

    /// The table, as configured (`name` or `schema.name`).
    pub fn table_name(&self) -> String {
        self.table.to_string()
    }

    /// Connects, checks (or creates) the table and returns the backend.
    pub async fn build(self) -> Result<PostgresBackend, KvError> {
        self.check()?;
        PostgresBackend::open(self).await
    }

    /// How the connection is secured (default [`SslMode::Prefer`]).
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// A PEM file of the root certificates to trust for TLS, instead of the Mozilla roots
    /// (`sslrootcert`): a private CA's. Read when the backend opens.
    pub fn ssl_root_certificate_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// The limits every setting must keep.
    fn check(&self) -> Result<(), KvError> {
        if self.ssl_mode == SslMode::Require && !cfg!(feature = "tls") {
            return Err(invalid(
                "sslmode=require (and verify-ca, verify-full) needs kv-postgres's `tls` feature; \
                 without it, use sslmode=disable or prefer"
                    .into(),
            ));
        }
        if self.namespace.contains('\0') {
            return Err(invalid("a namespace may not contain NUL".into()));
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(invalid(format!(
                "pool_size must be 1 to {MAX_POOL_SIZE}, not {}",
                self.pool_size
            )));
        }
        kv_trait::check_max_value_bytes(self.max_value_bytes, LARGEST_MAX_VALUE_BYTES)?;
        kv_trait::check_timeouts([
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ])?;
        Ok(())
    }
}

impl fmt::Debug for PostgresBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackendBuilder")
            .field("endpoint", &self.endpoint())
            .field("table", &self.table.to_string())
            .field("create_table", &self.create_table)
            .field("namespace", &self.namespace)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("sweep_interval", &self.sweep_interval)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

pub(crate) fn invalid(message: String) -> KvError {
    KvError::InvalidConfig(message)
}

/// `user[:password]`, decoded. The password is never quoted in an error.
fn parse_userinfo(userinfo: Option<&str>) -> Result<(String, Option<Secret>), KvError> {
    let userinfo = userinfo.ok_or_else(|| {
        invalid("the URL names no user: write `postgres://USER[:PASSWORD]@host/dbname`".into())
    })?;
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let user = percent_decode(user, "the user name")?;
    if user.is_empty() {
        return Err(invalid("the URL's user name is empty".into()));
    }
    let password = password
        .map(|password| percent_decode(password, "the password").map(Secret::new))
        .transpose()?;
    Ok((user, password))
}

/// `host[:port][,host[:port]...]`.
fn parse_hosts(hosts: &str) -> Result<Vec<Host>, KvError> {
    if hosts.is_empty() {
        return Err(invalid("the URL names no host".into()));
    }
    hosts.split(',').map(parse_host).collect()
}

/// A TCP `host[:port]` (see `parse_host_port`), or a Unix socket directory written as a
/// percent-encoded absolute path (`%2Frun%2Fpostgresql[:port]`).
fn parse_host(text: &str) -> Result<Host, KvError> {
    if text.len() >= 3 && text[..3].eq_ignore_ascii_case("%2F") {
        let (dir, port) = match text.rsplit_once(':') {
            Some((dir, port)) => (dir, Some(port)),
            None => (text, None),
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(digits) => parse_host_port(&format!("localhost:{digits}"), DEFAULT_PORT)?.1,
        };
        let dir = percent_decode(dir, "a socket directory")?;
        return Ok(Host::Socket { dir, port });
    }
    let (host, port) = parse_host_port(text, DEFAULT_PORT)?;
    Ok(Host::Tcp { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> PostgresBackendBuilder {
        PostgresBackendBuilder::from_url(url).unwrap()
    }

    fn error(url: &str) -> String {
        PostgresBackendBuilder::from_url(url)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_url_sets_every_field() {
        let b = parse(
            "postgres://app:p%40ss@db.internal:6543/app%20db?namespace=web&table=kv.entries\
             &create_table=false&pool_size=3&connect_timeout_ms=250&request_timeout_ms=900\
             &sweep_interval_ms=0&max_value_bytes=65536&sslmode=disable&application_name=web1",
        );
        assert_eq!(
            b.hosts,
            [Host::Tcp {
                host: "db.internal".into(),
                port: 6543
            }]
        );
        assert_eq!(b.user, "app");
        assert_eq!(b.password, Some(Secret::new("p@ss")));
        assert_eq!(b.dbname, "app db");
        assert_eq!(b.namespace, "web");
        assert_eq!(b.table.to_string(), "kv.entries");
        assert!(!b.create_table);
        assert_eq!(b.pool_size, 3);
        assert_eq!(b.connect_timeout, Duration::from_millis(250));
        assert_eq!(b.request_timeout, Duration::from_millis(900));
        assert_eq!(b.sweep_interval, None);
        assert_eq!(b.max_value_bytes, 65536);
        assert_eq!(b.ssl_mode, SslMode::Disable);
        assert_eq!(b.application_name, "web1");
    }

    #[test]
    fn defaults_follow_libpq_where_it_has_one() {
        let b = parse("postgresql://app@db");
        assert_eq!(
            b.hosts,
            [Host::Tcp {
                host: "db".into(),
                port: 5432
            }]
        );
        assert_eq!(b.dbname, "app", "the database defaults to the user's name");
        assert_eq!(b.password, None);
        assert_eq!(b.table.to_string(), DEFAULT_TABLE);
        assert!(b.create_table);
        assert_eq!(b.ssl_mode, SslMode::Prefer);
        assert_eq!(b.sweep_interval, Some(DEFAULT_SWEEP_INTERVAL));
    }

    #[test]
    fn hosts_ipv6_sockets_and_lists() {
        let b = parse("postgres://u@[::1]:5433,db2,%2Frun%2Fpg:5434/x");
        assert_eq!(
            b.hosts,
            [
                Host::Tcp {
                    host: "::1".into(),
                    port: 5433
                },
                Host::Tcp {
                    host: "db2".into(),
                    port: 5432
                },
                Host::Socket {
                    dir: "/run/pg".into(),
                    port: 5434
                },
            ]
        );
        assert_eq!(
            b.endpoint(),
            "postgres://u@[::1]:5433,db2:5432,%2Frun%2Fpg:5434/x"
        );
    }

    #[test]
    fn a_password_with_reserved_characters_stays_in_the_userinfo() {
        // The userinfo runs to the last `@`: the password's `@` and `/` are never a host.
        let b = parse("postgres://u:a/b@c@db/x");
        assert_eq!(b.password, Some(Secret::new("a/b@c")));
        assert_eq!(b.endpoint(), "postgres://u:***@db:5432/x");
    }

    #[test]
    fn malformed_urls_say_what_is_wrong_and_never_quote_the_password() {
        for (url, expected) in [
            ("redis://u@db", "not a PostgreSQL URL"),
            ("postgres://db/x", "names no user"),
            ("postgres://u:hunter2@/x", "names no host"),
            ("postgres://u:hunter2@db:0/x", "is not a port"),
            ("postgres://u:hunter2@db:99999/x", "is not a port"),
            ("postgres://u:hunter2@db:+1/x", "is not a port"),
            ("postgres://u:hunter2@[::1/x", "closing `]`"),
            ("postgres://u:hunter2@db/x?colour=blue", "colour"),
            ("postgres://u:hunter2@db/x?pool_size=0", "pool_size"),
            ("postgres://u:hunter2@db/x?pool_size=-1", "pool_size"),
            (
                "postgres://u:hunter2@db/x?max_value_bytes=10",
                "max_value_bytes",
            ),
            (
                "postgres://u:hunter2@db/x?request_timeout_ms=0",
                "request_timeout",
            ),
            #[cfg(not(feature = "tls"))]
            ("postgres://u:hunter2@db/x?sslmode=require", "`tls` feature"),
            ("postgres://u:hunter2@db/x?sslmode=allow", "not supported"),
            (
                "postgres://u:hunter2@db/x?sslmode=maybe",
                "expected disable",
            ),
            ("postgres://u:hunter2@db/x?table=kv;drop", "table"),
            ("postgres://u:hunter2@db/x?namespace=a%00b", "NUL"),
            ("postgres://u:hunter2@db/a%2Fb", "database name"),
            (
                "postgres://u:hunter2@db/x?namespace=a&namespace=b",
                "more than once",
            ),
        ] {
            let message = error(url);
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }

    #[test]
    fn debug_shows_no_password() {
        let b = parse("postgres://u:hunter2@db/x");
        let debug = format!("{b:?}");
        assert!(debug.contains("postgres://u:***@db:5432/x"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
