//! The stores kvkit can open: one entry per URL scheme, each in its own file and behind its
//! own cargo feature. Adding a store is one file and one line in [`ADAPTERS`].

use std::sync::Arc;

use futures::future::BoxFuture;
use kv_trait::{KvBackend, KvError};

#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "rocksdb")]
mod rocksdb;
#[cfg(feature = "sqlite")]
mod sqlite;

/// An opened store; what it declares about itself is its
/// [`capabilities`](KvBackend::capabilities).
pub(crate) type Opened = Arc<dyn KvBackend>;

/// How kvkit handles one URL scheme.
#[derive(Clone, Copy)]
pub(crate) struct Adapter {
    /// The URL scheme, e.g. `sqlite`.
    pub(crate) scheme: &'static str,
    /// Checks a URL of this scheme without opening anything.
    pub(crate) validate: fn(&str) -> Result<(), KvError>,
    /// Opens the store at a URL, in the given namespace (overriding the URL's own).
    pub(crate) open: fn(String, String) -> BoxFuture<'static, Result<Opened, KvError>>,
    /// Whether two opens of the URL reach the same data (rather than a new private store).
    pub(crate) shared: fn(&str) -> bool,
}

/// A store, opened.
pub(crate) fn opened(store: impl KvBackend + 'static) -> Opened {
    Arc::new(store)
}

/// Every scheme kvkit knows, whether or not its feature is compiled in: the scheme, its cargo
/// feature, and what that feature's build needs beyond Rust and a C compiler.
pub(crate) const KNOWN: &[(&str, &str, Option<&str>)] = &[
    ("memory", "memory", None),
    ("sqlite", "sqlite", None),
    (
        "rocksdb",
        "rocksdb",
        Some("libclang, e.g. Debian's `libclang-dev`"),
    ),
    ("redis", "redis", None),
    ("rediss", "redis", None),
    ("redis+cluster", "redis", None),
    ("rediss+cluster", "redis", None),
    ("dynamodb", "dynamodb", None),
    ("postgres", "postgres", None),
    ("postgresql", "postgres", None),
    (
        "etcd",
        "etcd",
        Some("protoc, e.g. Debian's `protobuf-compiler`"),
    ),
];

/// The adapters compiled into this build.
pub(crate) const ADAPTERS: &[Adapter] = &[
    #[cfg(feature = "memory")]
    memory::ADAPTER,
    #[cfg(feature = "sqlite")]
    sqlite::ADAPTER,
    #[cfg(feature = "rocksdb")]
    rocksdb::ADAPTER,
    #[cfg(feature = "redis")]
    redis::ADAPTERS[0],
    #[cfg(feature = "redis")]
    redis::ADAPTERS[1],
    #[cfg(feature = "redis")]
    redis::ADAPTERS[2],
    #[cfg(feature = "redis")]
    redis::ADAPTERS[3],
    #[cfg(feature = "dynamodb")]
    dynamodb::ADAPTER,
    #[cfg(feature = "postgres")]
    postgres::ADAPTERS[0],
    #[cfg(feature = "postgres")]
    postgres::ADAPTERS[1],
    #[cfg(feature = "etcd")]
    etcd::ADAPTER,
];

/// The adapter for `scheme`, if compiled in.
pub(crate) fn for_scheme(scheme: &str) -> Option<&'static Adapter> {
    ADAPTERS
        .iter()
        .find(|adapter| adapter.scheme.eq_ignore_ascii_case(scheme))
}
