//! [`Target`]: a parsed store URL, which adapter it names and how to open it.

use std::fmt;
use std::sync::Arc;

use kv_trait::url_config::{passwords, redact, redact_error, StoreUrl};
use kv_trait::{KvBackend, KvError};

use crate::adapters::{for_scheme, Adapter, ADAPTERS, KNOWN};
use crate::layers::LayerOptions;

/// A store URL, parsed and checked: which adapter, with which options and namespace.
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
    adapter: &'static Adapter,
    /// The URL without its layer options: what the adapter reads.
    url: String,
    namespace: String,
    layers: LayerOptions,
    /// The URL as given, with any password replaced, for messages.
    shown: String,
    /// Strings from the URL that must not be shown (passwords).
    secrets: Vec<String>,
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
    /// Parses and checks `url` without opening anything; `InvalidConfig` naming the problem
    /// when it is not a store this build of kvkit knows.
    pub fn parse(url: &str) -> Result<Self, KvError> {
        let secrets = passwords(url);
        let scheme = scheme_of(url)?;
        let adapter = for_scheme(scheme).ok_or_else(|| unknown_scheme(scheme, url))?;
        let (store_url, layers) =
            LayerOptions::split(url).map_err(|err| redact_error(err, &secrets))?;
        // The adapters never quote a password; this makes sure of it for every message.
        (adapter.validate)(&store_url).map_err(|err| redact_error(err, &secrets))?;
        let namespace = StoreUrl::parse(&store_url, adapter.scheme)
            .map_err(|err| redact_error(err, &secrets))?
            .take("namespace")
            .unwrap_or_default();
        let shown = redact(url);
        Ok(Self {
            adapter,
            url: store_url,
            namespace,
            layers,
            shown,
            secrets,
        })
    }

    /// The URL scheme, which names the adapter (`memory`, `sqlite`, ...).
    pub fn scheme(&self) -> &'static str {
        self.adapter.scheme
    }

    /// The URL as given without its layer options, password included: for handing to a
    /// client, never for showing (`Display` shows the whole URL with the password replaced).
    pub fn url(&self) -> &str {
        &self.url
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
        (self.adapter.shared)(&self.url)
    }

    /// Whether the URL puts layers around the store (`timeout`, `retries`...).
    pub fn has_layers(&self) -> bool {
        !self.layers.is_empty()
    }

    /// Opens the store, with the URL's layers around it; what it declares about itself is its
    /// [`capabilities`](KvBackend::capabilities).
    pub async fn open(&self) -> Result<Arc<dyn KvBackend>, KvError> {
        let store = (self.adapter.open)(self.url.clone(), self.namespace.clone())
            .await
            .map_err(|err| redact_error(err, &self.secrets))?;
        self.layers.wrap(store)
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

fn unknown_scheme(scheme: &str, url: &str) -> KvError {
    if let Some((_, feature, needs)) = KNOWN
        .iter()
        .find(|(known, _, _)| known.eq_ignore_ascii_case(scheme))
    {
        let needs = needs.map_or(String::new(), |needs| format!(" (its build needs {needs})"));
        return KvError::InvalidConfig(format!(
            "`{scheme}` URLs need kvkit's `{feature}` cargo feature, which this build lacks: \
             build with `--features {feature}`{needs}"
        ));
    }
    let enabled: Vec<String> = ADAPTERS
        .iter()
        .map(|adapter| format!("{}://", adapter.scheme))
        .collect();
    KvError::InvalidConfig(format!(
        "unknown scheme `{scheme}` in `{}`: this kvkit opens {}",
        redact(url),
        enabled.join(", ")
    ))
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
    fn passwords_are_hidden_and_remembered_as_secrets() {
        let cluster = "redis+cluster://:p%40ss@127.0.0.1:7000,127.0.0.1:7001/?namespace=a@b";
        let target = Target::parse(cluster).unwrap();
        assert_eq!(
            target.to_string(),
            "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001/?namespace=a@b"
        );
        assert_eq!(target.secrets(), ["p%40ss", "p@ss"]);
        let target = Target::parse("dynamodb://AKID:SECRET@table?region=x").unwrap();
        assert_eq!(target.to_string(), "dynamodb://AKID:***@table?region=x");
        let target = Target::parse("postgres://app:p%2Fw@db:5432/kv?table=t").unwrap();
        assert_eq!(target.to_string(), "postgres://app:***@db:5432/kv?table=t");
        assert_eq!(target.secrets(), ["p%2Fw", "p/w"]);
        assert_eq!(
            Target::parse("sqlite:///tmp/a@b.db").unwrap().to_string(),
            "sqlite:///tmp/a@b.db"
        );
    }

    /// The malformed URLs a review found quoting their password, and more like them.
    #[test]
    fn no_error_for_a_malformed_url_quotes_its_password() {
        for url in [
            "nosuch://user:SECRET@host",
            "redis://u:SECRET/rest@host",
            "redis+cluster://u:SECRET/rest@host:1",
            "redis://u:SECRET@host:notaport",
            "redis://u:SECRET@host/notadb",
            "redis://u:SECRET@[::1",
            "dynamodb://t?endpoint=http://u:SECRET/x@h",
            "dynamodb://t?endpoint=http://u:SECRET@h&colour=blue",
            "dynamodb://t?endpoint=ftp://u:SECRET@h",
            "dynamodb://A:SECRET@bad%20table",
            "dynamodb://A:SECRET@t:1",
            "dynamodb://A:SECRET@t?endpoint=http%3A%2F%2Fu%3ASECRET%40h%3Ax",
            "postgres://u:SECRET@host:notaport/db",
            "postgres://u:SECRET/rest@host/db",
            "postgresql://u:SECRET@[::1/db",
            "postgres://u:SECRET@h/db?sslmode=verify-full",
            "postgres://u:SECRET@h/d%zz",
        ] {
            match Target::parse(url) {
                Err(err) => assert!(!err.to_string().contains("SECRET"), "{url}: {err}"),
                Ok(target) => {
                    assert!(!target.to_string().contains("SECRET"), "{url}: {target}");
                    assert!(
                        !format!("{target:?}").contains("SECRET"),
                        "{url}: {target:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_namespace_option_is_read_from_the_url() {
        let target = Target::parse("memory://x?namespace=a%2Fb").unwrap();
        assert_eq!(target.namespace(), "a/b");
        assert_eq!(Target::parse("memory://x").unwrap().namespace(), "");
        assert!(Target::parse("memory://x?namespace=a&namespace=b").is_err());
    }

    #[test]
    fn a_scheme_whose_feature_is_off_says_how_to_get_it() {
        // Called for any scheme the build lacks; RocksDB is the one off by default.
        let message = unknown_scheme("rocksdb", "rocksdb:///tmp/kv").to_string();
        assert!(message.contains("`--features rocksdb`"), "{message}");
        assert!(message.contains("libclang"), "{message}");
        let message = unknown_scheme("DynamoDB", "dynamodb://t").to_string();
        assert!(message.contains("`--features dynamodb`"), "{message}");
        assert!(!message.contains("libclang"), "{message}");
    }

    #[test]
    fn every_compiled_adapter_is_a_known_scheme() {
        for adapter in ADAPTERS {
            let known = KNOWN.iter().any(|(scheme, _, _)| *scheme == adapter.scheme);
            assert!(known, "{}", adapter.scheme);
        }
    }
}
