//! [`SqliteBackendBuilder`]: where the database lives, and the knobs of the connection pool.
//!
//! Also parses `sqlite:` URLs into a builder, so a URL and the builder methods configure
//! exactly the same settings.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kv_trait::url_config::StoreUrl;
use kv_trait::{KvError, DEFAULT_MAX_VALUE_BYTES};
use tokio::sync::Semaphore;

use crate::SqliteBackend;

/// Connections a file-backed backend opens unless told otherwise: enough for reads to run
/// beside a write (WAL readers never wait for the writer) on a small machine.
pub(crate) const DEFAULT_FILE_POOL_SIZE: usize = 4;

/// The most connections a pool may have. Writes to one file take turns whatever the pool
/// size, so connections beyond a few only add readers, and each one is a thread.
pub(crate) const MAX_POOL_SIZE: usize = 64;

/// How long a connection waits for another connection's write lock before giving up with
/// [`KvError::Unavailable`].
pub(crate) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many operations a backend holds at once (queued or running) by default.
pub(crate) const DEFAULT_MAX_QUEUED: usize = 1024;

/// The largest `max_value_bytes` accepted. SQLite refuses any string, blob or row longer than
/// `SQLITE_MAX_LENGTH` (10^9 bytes by default); half a GiB leaves ample room for the key and
/// the record header.
pub(crate) const LARGEST_MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// The options a `sqlite:` URL takes.
const URL_OPTIONS: &[&str] = &[
    "namespace",
    "busy_timeout_ms",
    "synchronous",
    "pool_size",
    "max_value_bytes",
    "max_queued",
];

/// The SQLite file name that means "a private in-memory database" rather than a file.
const MEMORY_FILE_NAME: &str = ":memory:";

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A database file, created if missing.
    File(PathBuf),
    /// A private in-memory database, gone when the backend is dropped.
    Memory,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Memory => f.write_str(MEMORY_FILE_NAME),
        }
    }
}

/// How hard SQLite works to get a commit onto stable storage: `PRAGMA synchronous`.
///
/// Every level keeps the database consistent; they differ in what a power loss or OS crash
/// (not a crash of the process) can take back. An application crash never loses an
/// acknowledged write at any level, because committed data is in the operating system's hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// No syncing: fastest, and an OS crash or power loss may corrupt the file.
    Off,
    /// Sync at WAL checkpoints only: a power loss may roll back the last commits, never
    /// corrupt the file. SQLite's usual choice for WAL databases.
    Normal,
    /// Sync the WAL on every commit: an acknowledged write survives a power loss. The default,
    /// because this crate is the durable store of the kvkit family.
    #[default]
    Full,
    /// Like `Full`, and also syncs the directory after deleting a rollback journal.
    Extra,
}

impl Synchronous {
    /// The keyword `PRAGMA synchronous` takes.
    pub(crate) fn as_pragma(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Synchronous::Off,
            Synchronous::Normal,
            Synchronous::Full,
            Synchronous::Extra,
        ]
        .into_iter()
        .find(|level| level.as_pragma().eq_ignore_ascii_case(text))
    }
}

/// Builds a [`SqliteBackend`] with non-default settings.
///
/// Start from [`file`](Self::file), [`in_memory`](Self::in_memory) or
/// [`from_url`](Self::from_url), adjust, then [`build`](Self::build) (async: connections are
/// opened on the backend's own threads, not on the executor).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use kv_sqlite::{SqliteBackendBuilder, Synchronous};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteBackendBuilder::file(dir.path().join("app.db"))
///     .namespace("sessions")
///     .busy_timeout(Duration::from_secs(2))
///     .synchronous(Synchronous::Normal)
///     .pool_size(2)
///     .max_value_bytes(64 * 1024)
///     .build()
///     .await?;
/// assert_eq!(store.namespace(), "sessions");
/// assert_eq!(store.pool_size(), 2);
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteBackendBuilder {
    pub(crate) location: Location,
    pub(crate) namespace: String,
    pub(crate) busy_timeout: Duration,
    pub(crate) synchronous: Synchronous,
    /// `None`: the location's default (4 for a file, 1 in memory).
    pub(crate) pool_size: Option<usize>,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_queued: usize,
}

impl SqliteBackendBuilder {
    /// A backend over the database file at `path`, created (with its parent directory
    /// required to exist) if missing.
    ///
    /// The path is a plain file name: `file:` URIs are not interpreted, and `":memory:"` is
    /// refused by [`build`](Self::build) (use [`in_memory`](Self::in_memory)).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::at(Location::File(path.into()))
    }

    /// A backend over a private in-memory database that lives as long as the backend (and
    /// its clones). Every call makes a new, independent database.
    ///
    /// Uses exactly one connection: a second connection would need SQLite's shared cache,
    /// whose table locks fail with `SQLITE_LOCKED` instead of waiting.
    pub fn in_memory() -> Self {
        Self::at(Location::Memory)
    }

    /// A builder configured from a URL; the forms are:
    ///
    /// | URL | database |
    /// | --- | --- |
    /// | `sqlite:///var/lib/app/kv.db` | the absolute path `/var/lib/app/kv.db` |
    /// | `sqlite://data/kv.db` | the path `data/kv.db`, relative to the working directory |
    /// | `sqlite::memory:` | a private in-memory database |
    ///
    /// The path is percent-decoded (`%20` is a space; write `?`, `#` and `%` as `%3F`, `%23`
    /// and `%25`). Options follow a `?` as `name=value` pairs joined by `&`:
    /// `namespace`, `busy_timeout_ms`, `synchronous` (`off`, `normal`, `full`, `extra`),
    /// `pool_size`, `max_value_bytes` and `max_queued`, meaning what the builder methods of the same names
    /// mean. A URL of another form, an unknown or repeated option, or a malformed value is
    /// [`KvError::InvalidConfig`] naming the problem.
    ///
    /// ```
    /// use kv_sqlite::SqliteBackendBuilder;
    ///
    /// let builder =
    ///     SqliteBackendBuilder::from_url("sqlite:///srv/kv.db?namespace=jobs&pool_size=8")?;
    /// assert!(SqliteBackendBuilder::from_url("sqlite://kv.db?colour=blue").is_err());
    /// # Ok::<(), kv_trait::KvError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, KvError> {
        let mut parsed = StoreUrl::parse(url, "sqlite")?;
        let mut builder = if parsed.location() == MEMORY_FILE_NAME {
            Self::at(Location::Memory)
        } else {
            Self::at(Location::File(parsed.file_path()?))
        };
        if let Some(namespace) = parsed.take("namespace") {
            builder = builder.namespace(namespace);
        }
        if let Some(ms) = parsed.take_number("busy_timeout_ms")? {
            builder = builder.busy_timeout(Duration::from_millis(ms));
        }
        if let Some(level) = parsed.take("synchronous") {
            let level = Synchronous::parse(&level).ok_or_else(|| {
                invalid(format!(
                    "URL option `synchronous={level}`: expected off, normal, full or extra"
                ))
            })?;
            builder = builder.synchronous(level);
        }
        if let Some(size) = parsed.take_number("pool_size")? {
            builder = builder.pool_size(size);
        }
        if let Some(max) = parsed.take_number("max_value_bytes")? {
            builder = builder.max_value_bytes(max);
        }
        if let Some(max) = parsed.take_number("max_queued")? {
            builder = builder.max_queued(max);
        }
        parsed.finish(URL_OPTIONS)?;
        Ok(builder)
    }

    /// The namespace this backend's keys live in (default: the empty namespace `""`).
    ///
    /// Backends with different namespaces share one file without seeing each other's keys.
    /// Any string without NUL characters is a namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long an operation waits for another connection's (or process's) write lock before
    /// failing with [`KvError::Unavailable`] (default 5 s; zero means never wait).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The durability level, `PRAGMA synchronous` (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, level: Synchronous) -> Self {
        self.synchronous = level;
        self
    }

    /// How many connections, each on its own thread, serve operations (default 4 for a file,
    /// at most 64; an in-memory database allows only 1).
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = Some(connections);
        self
    }

    /// The longest value accepted, in bytes (default 1 MiB; at least 64 KiB, at most 512 MiB).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// How many operations the backend holds at once, queued or running (default 1024, at
    /// least 1). A caller beyond that waits, asynchronously, until one is answered: memory
    /// stays bounded however fast callers arrive, and a caller that gives up while waiting
    /// leaves nothing behind.
    pub fn max_queued(mut self, operations: usize) -> Self {
        self.max_queued = operations;
        self
    }

    /// Opens the database (creating or migrating its schema) and starts the connection pool.
    ///
    /// Fails with [`KvError::InvalidConfig`] for a setting out of range or a file whose schema
    /// is newer than this release understands, and with the mapped SQLite error when the file
    /// cannot be opened.
    pub async fn build(self) -> Result<SqliteBackend, KvError> {
        self.validate()?;
        SqliteBackend::from_builder(self).await
    }

    /// The number of connections this configuration opens.
    pub(crate) fn effective_pool_size(&self) -> usize {
        self.pool_size.unwrap_or(match self.location {
            Location::File(_) => DEFAULT_FILE_POOL_SIZE,
            Location::Memory => 1,
        })
    }

    fn at(location: Location) -> Self {
        Self {
            location,
            namespace: String::new(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            synchronous: Synchronous::default(),
            pool_size: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }

    fn validate(&self) -> Result<(), KvError> {
        if let Location::File(path) = &self.location {
            check_file_path(path)?;
        }
        if self.namespace.contains('\0') {
            return Err(invalid("the namespace must not contain NUL characters"));
        }
        kv_trait::check_max_value_bytes(self.max_value_bytes, LARGEST_MAX_VALUE_BYTES)?;
        if !(1..=Semaphore::MAX_PERMITS).contains(&self.max_queued) {
            return Err(invalid(format!(
                "max_queued is {}; it must be between 1 and {}",
                self.max_queued,
                Semaphore::MAX_PERMITS
            )));
        }
        if i32::try_from(self.busy_timeout.as_millis()).is_err() {
            return Err(invalid(format!(
                "busy_timeout of {:?} is longer than SQLite accepts ({} ms)",
                self.busy_timeout,
                i32::MAX
            )));
        }
        match (&self.location, self.effective_pool_size()) {
            (_, 0) => Err(invalid("pool_size must be at least 1")),
            (_, size) if size > MAX_POOL_SIZE => Err(invalid(format!(
                "pool_size is {size}; the most is {MAX_POOL_SIZE} (writes take turns anyway)"
            ))),
            (Location::Memory, size @ 2..) => Err(invalid(format!(
                "pool_size is {size}, but an in-memory database has exactly one connection \
                 (a private in-memory database cannot be shared between connections)"
            ))),
            _ => Ok(()),
        }
    }
}

fn invalid(message: impl Into<String>) -> KvError {
    KvError::InvalidConfig(message.into())
}

/// Refuses file names SQLite would not treat as a plain file.
fn check_file_path(path: &Path) -> Result<(), KvError> {
    if path.as_os_str().is_empty() {
        // SQLite would silently open a private temporary database.
        return Err(invalid("the database path is empty"));
    }
    if path.as_os_str() == MEMORY_FILE_NAME {
        return Err(invalid(
            "the path \":memory:\" names SQLite's in-memory database, not a file; use \
             SqliteBackend::open_in_memory() or the URL sqlite::memory:",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> SqliteBackendBuilder {
        SqliteBackendBuilder::from_url(url).unwrap()
    }

    fn parse_error(url: &str) -> String {
        match SqliteBackendBuilder::from_url(url) {
            Err(KvError::InvalidConfig(message)) => message,
            other => panic!("{url}: expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn three_slashes_make_an_absolute_path_and_two_a_relative_one() {
        assert_eq!(
            parse("sqlite:///var/lib/kv.db").location,
            Location::File("/var/lib/kv.db".into())
        );
        assert_eq!(
            parse("sqlite://data/kv.db").location,
            Location::File("data/kv.db".into())
        );
        assert_eq!(
            parse("sqlite://kv.db").location,
            Location::File("kv.db".into())
        );
    }

    #[test]
    fn memory_url_and_scheme_case() {
        assert_eq!(parse("sqlite::memory:").location, Location::Memory);
        assert_eq!(
            parse("SQLite::memory:?namespace=a").location,
            Location::Memory
        );
        assert_eq!(parse("sqlite::memory:").effective_pool_size(), 1);
        assert_eq!(
            parse("sqlite://kv.db").effective_pool_size(),
            DEFAULT_FILE_POOL_SIZE
        );
    }

    #[test]
    fn path_is_percent_decoded_and_query_split_off() {
        assert_eq!(
            parse("sqlite:///tmp/my%20data%3F%25.db?namespace=x").location,
            Location::File("/tmp/my data?%.db".into())
        );
        assert_eq!(
            parse("sqlite://caf%C3%A9.db").location,
            Location::File("café.db".into())
        );
        assert_eq!(
            parse("sqlite://a+b.db").location,
            Location::File("a+b.db".into()),
            "`+` is a space only in query strings"
        );
    }

    #[test]
    fn every_option_is_applied() {
        let builder = parse(
            "sqlite://kv.db?namespace=tenant%2F1+a&busy_timeout_ms=250&synchronous=Normal\
             &pool_size=2&max_value_bytes=65536",
        );
        assert_eq!(builder.namespace, "tenant/1 a");
        assert_eq!(builder.busy_timeout, Duration::from_millis(250));
        assert_eq!(builder.synchronous, Synchronous::Normal);
        assert_eq!(builder.pool_size, Some(2));
        assert_eq!(builder.max_value_bytes, 65536);
    }

    #[test]
    fn defaults_without_options() {
        let builder = parse("sqlite://kv.db");
        assert_eq!(builder.namespace, "");
        assert_eq!(builder.busy_timeout, DEFAULT_BUSY_TIMEOUT);
        assert_eq!(builder.synchronous, Synchronous::Full);
        assert_eq!(builder.pool_size, None);
        assert_eq!(builder.max_value_bytes, DEFAULT_MAX_VALUE_BYTES);
        assert!(builder.validate().is_ok());
    }

    #[test]
    fn malformed_urls_name_the_problem() {
        for (url, mentions) in [
            ("postgres://kv.db", "not a sqlite URL"),
            ("sqlite:kv.db", "expected sqlite://PATH"),
            ("sqlite://", "empty path"),
            ("sqlite://?namespace=a", "empty path"),
            ("sqlite://kv.db#frag", "%23"),
            ("sqlite://kv%2.db", "two hex digits"),
            ("sqlite://kv%+1.db", "two hex digits"),
            ("sqlite://kv%FF.db", "UTF-8"),
            ("sqlite://kv.db?colour=blue", "unknown URL option `colour`"),
            ("sqlite://kv.db?pool_size=two", "pool_size=two"),
            ("sqlite://kv.db?pool_size=%2B2", "pool_size=+2"),
            ("sqlite://kv.db?pool_size=+2", "pool_size= 2"),
            ("sqlite://kv.db?pool_size=", "pool_size="),
            ("sqlite://kv.db?busy_timeout_ms=-1", "busy_timeout_ms=-1"),
            ("sqlite://kv.db?max_value_bytes=1e6", "max_value_bytes=1e6"),
            (
                "sqlite://kv.db?synchronous=sometimes",
                "synchronous=sometimes",
            ),
            ("sqlite://kv.db?namespace=a&namespace=b", "more than once"),
            ("", "not a sqlite URL"),
            ("sqlit", "not a sqlite URL"),
            ("é", "not a sqlite URL"),
        ] {
            let message = parse_error(url);
            assert!(message.contains(mentions), "{url}: {message}");
        }
    }

    #[test]
    fn out_of_range_settings_are_refused_by_validate() {
        let cases = [
            (
                SqliteBackendBuilder::file("kv.db").pool_size(0),
                "at least 1",
            ),
            (
                SqliteBackendBuilder::file("kv.db").pool_size(65),
                "the most is 64",
            ),
            (SqliteBackendBuilder::in_memory().pool_size(2), "in-memory"),
            (parse("sqlite::memory:?pool_size=3"), "in-memory"),
            (
                SqliteBackendBuilder::file("kv.db").max_value_bytes(1024),
                "max_value_bytes",
            ),
            (
                SqliteBackendBuilder::file("kv.db").max_value_bytes(usize::MAX),
                "max_value_bytes",
            ),
            (
                SqliteBackendBuilder::file("kv.db").busy_timeout(Duration::from_secs(u64::MAX)),
                "busy_timeout",
            ),
            (SqliteBackendBuilder::file("kv.db").namespace("a\0b"), "NUL"),
            (SqliteBackendBuilder::file(""), "empty"),
            (SqliteBackendBuilder::file(":memory:"), "open_in_memory"),
            (parse("sqlite://%3Amemory%3A"), "open_in_memory"),
        ];
        for (builder, mentions) in cases {
            match builder.validate() {
                Err(KvError::InvalidConfig(message)) => {
                    assert!(message.contains(mentions), "{builder:?}: {message}")
                }
                other => panic!("{builder:?}: expected InvalidConfig, got {other:?}"),
            }
        }
        assert!(SqliteBackendBuilder::in_memory()
            .pool_size(1)
            .validate()
            .is_ok());
    }
}
