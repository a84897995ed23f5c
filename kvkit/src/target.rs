//! [`Target`]: a parsed store URL, which adapter it names and how to open it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use kv_trait::url_config::StoreUrl;
use kv_trait::{KvBackend, KvError};
use url::Url;

/// The schemes this build of kvkit can open.
const KNOWN_SCHEMES: &[(&str, bool)] = &[
    ("memory", cfg!(feature = "memory")),
    ("sqlite", cfg!(feature = "sqlite")),
];

/// What a store declares about itself: what the conformance suite needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// The longest value the store accepts, in bytes.
    pub max_value_bytes: usize,
    /// How much later than its TTL a key may still be visible.
    pub ttl_granularity: Duration,
}

/// A store URL, parsed: which adapter, with which options and namespace.
///
/// ```
/// let target = kvkit::Target::parse("sqlite:///srv/kv.db?namespace=jobs").unwrap();
/// assert_eq!(target.scheme(), "sqlite");
/// assert_eq!(target.namespace(), "jobs");
/// let other = target.with_namespace("jobs:archive");
/// assert_eq!(other.namespace(), "jobs:archive");
/// ```
#[derive(Clone)]
pub struct Target {
    adapter: Adapter,
    namespace: String,
    /// The URL as given, with any password replaced, for messages.
    shown: String,
    /// Strings from the URL that must not be shown (passwords).
    secrets: Vec<String>,
}

#[derive(Clone)]
enum Adapter {
    #[cfg(feature = "memory")]
    Memory { name: Option<String> },
    #[cfg(feature = "sqlite")]
    Sqlite { url: String },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.shown)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Target {
    /// Parses `url`; `InvalidConfig` naming the problem when it is not a store kvkit knows.
    pub fn parse(url: &str) -> Result<Self, KvError> {
        let scheme = scheme_of(url)?;
        let known = KNOWN_SCHEMES.iter().find(|(name, _)| *name == scheme);
        match known {
            None => Err(KvError::InvalidConfig(format!(
                "unknown scheme `{scheme}` in `{}`: this kvkit opens {}",
                redact(url),
                enabled_schemes()
            ))),
            Some((_, false)) => Err(KvError::InvalidConfig(format!(
                "`{scheme}` URLs need kvkit's `{scheme}` cargo feature, which this build lacks"
            ))),
            Some(_) => Self::parse_known(scheme, url),
        }
    }

    fn parse_known(scheme: &str, url: &str) -> Result<Self, KvError> {
        let namespace = namespace_option(scheme, url)?;
        let adapter = match scheme {
            #[cfg(feature = "memory")]
            "memory" => Adapter::Memory {
                name: memory_store_name(url)?,
            },
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                // Let the adapter reject what it does not understand now, not at open.
                kv_sqlite::SqliteBackendBuilder::from_url(url)?;
                Adapter::Sqlite {
                    url: url.to_owned(),
                }
            }
            _ => {
                return Err(KvError::InvalidConfig(format!(
                    "`{scheme}` is not supported by this build"
                )))
            }
        };
        Ok(Self {
            adapter,
            namespace,
            shown: redact(url),
            secrets: password_of(url),
        })
    }

    /// The URL scheme, which names the adapter (`memory`, `sqlite`, ...).
    pub fn scheme(&self) -> &'static str {
        match self.adapter {
            #[cfg(feature = "memory")]
            Adapter::Memory { .. } => "memory",
            #[cfg(feature = "sqlite")]
            Adapter::Sqlite { .. } => "sqlite",
        }
    }

    /// The namespace the URL names (`""` when it names none).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The same store, in namespace `namespace` instead.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Strings in the URL that must never be shown (passwords), for `Debug` checks.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Whether two opens of this target reach the same data (a file, a named store, a
    /// server), as opposed to a new private store each time.
    pub fn is_shared(&self) -> bool {
        match &self.adapter {
            #[cfg(feature = "memory")]
            Adapter::Memory { name } => name.is_some(),
            #[cfg(feature = "sqlite")]
            Adapter::Sqlite { url } => !url.starts_with("sqlite::memory:"),
        }
    }

    /// Opens the store.
    pub async fn open(&self) -> Result<Arc<dyn KvBackend>, KvError> {
        Ok(self.open_with_info().await?.0)
    }

    /// Opens the store and says what it declares about itself.
    pub async fn open_with_info(&self) -> Result<(Arc<dyn KvBackend>, StoreInfo), KvError> {
        let millisecond = Duration::from_millis(1);
        match &self.adapter {
            #[cfg(feature = "memory")]
            Adapter::Memory { name } => {
                let store = memory_store(name.as_deref()).namespace(&self.namespace);
                let info = StoreInfo {
                    max_value_bytes: store.max_value_bytes(),
                    ttl_granularity: millisecond,
                };
                Ok((Arc::new(store), info))
            }
            #[cfg(feature = "sqlite")]
            Adapter::Sqlite { url } => {
                let builder =
                    kv_sqlite::SqliteBackendBuilder::from_url(url)?.namespace(&self.namespace);
                let store = builder.build().await?;
                let info = StoreInfo {
                    max_value_bytes: store.max_value_bytes(),
                    ttl_granularity: millisecond,
                };
                Ok((Arc::new(store), info))
            }
        }
    }
}

/// The scheme of `url`, including the non-hierarchical `sqlite::memory:`.
fn scheme_of(url: &str) -> Result<&str, KvError> {
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(KvError::InvalidConfig(format!(
            "`{}` is not a store URL: expected SCHEME://..., e.g. sqlite:///tmp/kv.db or memory://",
            redact(url)
        )));
    };
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid {
        return Err(KvError::InvalidConfig(format!(
            "`{}` does not start with a valid URL scheme",
            redact(url)
        )));
    }
    Ok(scheme)
}

/// The `namespace` query option, which every adapter takes.
fn namespace_option(scheme: &str, url: &str) -> Result<String, KvError> {
    Ok(StoreUrl::parse(url, scheme)?
        .take("namespace")
        .unwrap_or_default())
}

fn enabled_schemes() -> String {
    let enabled: Vec<String> = KNOWN_SCHEMES
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| format!("{name}://"))
        .collect();
    enabled.join(", ")
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn password_of(url: &str) -> Vec<String> {
    let password = Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned));
    password.into_iter().collect()
}

#[cfg(feature = "memory")]
fn memory_store_name(url: &str) -> Result<Option<String>, KvError> {
    let mut parsed = StoreUrl::parse(url, "memory")?;
    parsed.take("namespace");
    let name = parsed
        .location()
        .strip_prefix("//")
        .map(str::to_owned)
        .ok_or_else(|| {
            KvError::InvalidConfig(format!("expected memory:// or memory://NAME, not `{url}`"))
        })?;
    if name.contains('/') {
        return Err(KvError::InvalidConfig(format!(
            "memory:// URLs name a store, not a path: `{url}`"
        )));
    }
    parsed.finish(&["namespace"])?;
    Ok((!name.is_empty()).then_some(name))
}

/// The in-memory store for `name`: a new one when unnamed, else the process's store of that name.
#[cfg(feature = "memory")]
fn memory_store(name: Option<&str>) -> kv_memory::MemoryBackend {
    static NAMED: OnceLock<Mutex<HashMap<String, kv_memory::MemoryBackend>>> = OnceLock::new();
    let Some(name) = name else {
        return kv_memory::MemoryBackend::new();
    };
    let mut named = NAMED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    named.entry(name.to_owned()).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_are_named_with_the_alternatives() {
        let err = Target::parse("carrier-pigeon://loft")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown scheme `carrier-pigeon`"), "{err}");
        assert!(err.contains("memory://"), "{err}");
    }

    #[test]
    fn malformed_urls_say_what_is_expected() {
        for url in ["", "no-scheme-here", "://x", "1abc://x"] {
            let err = Target::parse(url).unwrap_err();
            assert!(matches!(err, KvError::InvalidConfig(_)), "{url}: {err}");
        }
    }

    #[test]
    fn passwords_are_redacted_and_remembered_as_secrets() {
        assert_eq!(
            redact("redis://user:hunter2@host:6379"),
            "redis://user:***@host:6379"
        );
        assert_eq!(password_of("redis://user:hunter2@host:6379"), ["hunter2"]);
        let err = Target::parse("nosuch://user:hunter2@host")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_namespace_option_is_read_once() {
        assert_eq!(
            namespace_option("memory", "memory://x?namespace=a%2Fb").unwrap(),
            "a/b"
        );
        assert_eq!(namespace_option("memory", "memory://x").unwrap(), "");
        assert!(namespace_option("memory", "memory://x?namespace=a&namespace=b").is_err());
    }

    #[cfg(feature = "memory")]
    #[test]
    fn memory_urls_take_a_name_and_a_namespace_only() {
        assert_eq!(memory_store_name("memory://").unwrap(), None);
        assert_eq!(
            memory_store_name("memory://cache?namespace=x")
                .unwrap()
                .as_deref(),
            Some("cache")
        );
        assert!(memory_store_name("memory://cache?size=3").is_err());
        assert!(memory_store_name("memory://cache/path").is_err());
    }
}
