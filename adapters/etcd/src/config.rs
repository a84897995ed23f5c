//! [`EtcdBackendBuilder`]: which cluster, which namespace, and the backend's limits; also
//! parses `etcd://` URLs into a builder, so a URL and the builder methods configure exactly
//! the same settings.
//!
//! Nothing here ever shows the password: `Debug`, [`EtcdBackendBuilder::endpoint`] and every
//! error message print `***` in its place.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kv_trait::url_config::{
    encode_component, parse_host_port, percent_decode, redact, split_userinfo, Secret, StoreUrl,
    REDACTED,
};
use kv_trait::{KvError, DEFAULT_MAX_VALUE_BYTES};

use crate::EtcdBackend;

/// The port of an endpoint that names none: etcd's client port.
pub const DEFAULT_PORT: u16 = 2379;

/// How long opening may take to reach a member and read through the cluster's leader.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one operation may take, retries and round trips included, before it fails with
/// `Unavailable`. Each gRPC request also carries it as its deadline, so etcd stops working on
/// a request the client gave up on.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How many operations of one backend (and its clones) are in flight at once by default:
/// the others wait for a place before their request timeout starts. Without a bound, a burst
/// of thousands of calls on one handle outran a member's applying of committed entries, and
/// etcd refused requests as `too many requests`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;

/// The largest `max_concurrent_requests` accepted: the core's bound for every backend.
pub use kv_trait::LARGEST_MAX_CONCURRENT_REQUESTS;

/// The largest `max_value_bytes` accepted: etcd refuses requests over 1.5 MiB
/// (`--max-request-bytes`) by default, and a value travels in one request with its key and
/// envelope.
pub const LARGEST_MAX_VALUE_BYTES: usize = DEFAULT_MAX_VALUE_BYTES;

/// The `?name=value` options of an etcd URL.
const URL_OPTIONS: [&str; 10] = [
    "namespace",
    "connect_timeout_ms",
    "request_timeout_ms",
    "max_value_bytes",
    "max_concurrent_requests",
    "tls",
    "ca_file",
    "cert_file",
    "key_file",
    "tls_server_name",
];

/// How the client secures its connections to the members: the `tls`, `ca_file`, `cert_file`,
/// `key_file` and `tls_server_name` URL options, or the builder's `tls*` methods.
///
/// The files are read when the backend opens, so a missing or malformed one fails there, as
/// `InvalidConfig` naming the file (never its contents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Whether the members are reached over TLS (`https`), verifying their certificates.
    pub enabled: bool,
    /// PEM certificates of the authorities to trust (etcd's `--trusted-ca-file` on the
    /// server side); `None`: the Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// The client's PEM certificate and its private key, for members started with
    /// `--client-cert-auth`: both or neither.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// The name the members' certificates must carry, when it is not the host of the URL
    /// (members reached by address whose certificates name a DNS name).
    pub server_name: Option<String>,
}

/// Builds an [`EtcdBackend`] with non-default settings.
///
/// Start from [`from_url`](Self::from_url), adjust, then [`build`](Self::build) (async: it
/// reads through the cluster once, so a wrong address or password fails there rather than at
/// the first operation).
///
/// ```
/// use std::time::Duration;
/// use kv_etcd::EtcdBackendBuilder;
///
/// let builder = EtcdBackendBuilder::from_url("etcd://app:s3cret@10.0.0.1,10.0.0.2:2381?namespace=jobs")?
///     .request_timeout(Duration::from_millis(800));
/// // The password never appears, in Debug or anywhere else.
/// assert_eq!(builder.endpoint(), "etcd://app:***@10.0.0.1:2379,10.0.0.2:2381");
/// assert!(!format!("{builder:?}").contains("s3cret"));
/// # Ok::<(), kv_trait::KvError>(())
/// ```
#[derive(Clone)]
pub struct EtcdBackendBuilder {
    /// `host` and port of each member to talk to.
    pub(crate) members: Vec<(String, u16)>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) namespace: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_concurrent_requests: usize,
    pub(crate) tls: TlsSettings,
}

impl EtcdBackendBuilder {
    /// A builder configured from a URL:
    ///
    /// `etcd://[user:password@]host[:port][,host[:port]...][?options]`
    ///
    /// - Each `host[:port]` is a member's client address (port 2379 unless given; IPv6 in
    ///   brackets). Requests are spread over all of them and go to another one when a member
    ///   stops answering.
    /// - User name and password (etcd's authentication) are percent-decoded: write `@`, `:`,
    ///   `/` and `%` as `%40`, `%3A`, `%2F` and `%25`.
    /// - Options: `namespace`, `connect_timeout_ms`, `request_timeout_ms`,
    ///   `max_value_bytes` and `max_concurrent_requests` mean what the builder methods of the
    ///   same names mean.
    /// - TLS (kv-etcd's `tls` feature; see [`TlsSettings`]): `tls=true` reaches the members
    ///   over TLS; `ca_file=PATH` trusts that authority instead of the Mozilla roots;
    ///   `cert_file=PATH&key_file=PATH` present a client certificate; `tls_server_name=NAME`
    ///   checks the members' certificates against NAME. Any of the last four turns TLS on;
    ///   with `tls=false` they are an error.
    ///
    /// Another scheme, a path, a malformed host or port, a user without a password, an
    /// unknown or repeated option or a malformed value is [`KvError::InvalidConfig`] naming
    /// the problem (never the password).
    ///
    /// ```
    /// use kv_etcd::EtcdBackendBuilder;
    ///
    /// let b = EtcdBackendBuilder::from_url("etcd://127.0.0.1:2379,[::1]?namespace=app")?;
    /// assert_eq!(b.endpoint(), "etcd://127.0.0.1:2379,[::1]:2379");
    /// assert!(EtcdBackendBuilder::from_url("etcd://db?colour=blue").is_err());
    /// assert!(EtcdBackendBuilder::from_url("redis://db").is_err());
    /// # Ok::<(), kv_trait::KvError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, KvError> {
        let mut parsed = StoreUrl::parse(url, "etcd")?;
        let location = parsed
            .location()
            .strip_prefix("//")
            .ok_or_else(|| {
                invalid(format!(
                    "`{}`: an etcd URL is `etcd://host:port[,host:port...]`",
                    redact(url)
                ))
            })?
            .to_owned();
        let (userinfo, rest) = split_userinfo(&location);
        let (user, password) = parse_userinfo(userinfo)?;
        let hosts = match rest.split_once('/') {
            None => rest,
            Some((hosts, "")) => hosts,
            Some(_) => {
                return Err(invalid(
                    "an etcd URL has no path: the key space is chosen with `?namespace=`".into(),
                ))
            }
        };
        if hosts.is_empty() {
            return Err(invalid("the etcd URL names no member".into()));
        }
        let members = hosts
            .split(',')
            .map(|member| parse_host_port(member, DEFAULT_PORT))
            .collect::<Result<Vec<_>, _>>()?;

        let mut builder = Self {
            members,
            user,
            password,
            namespace: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            tls: TlsSettings::default(),
        };
        if let Some(namespace) = parsed.take("namespace") {
            builder = builder.namespace(namespace);
        }
        if let Some(ms) = parsed.take_number("connect_timeout_ms")? {
            builder = builder.connect_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = parsed.take_number("request_timeout_ms")? {
            builder = builder.request_timeout(Duration::from_millis(ms));
        }
        if let Some(max) = parsed.take_number("max_value_bytes")? {
            builder = builder.max_value_bytes(max);
        }
        if let Some(max) = parsed.take_number("max_concurrent_requests")? {
            builder = builder.max_concurrent_requests(max);
        }
        let tls = parsed.take_bool("tls")?;
        if let Some(path) = parsed.take("ca_file") {
            builder = builder.tls_ca_file(path);
        }
        match (parsed.take("cert_file"), parsed.take("key_file")) {
            (Some(cert), Some(key)) => builder = builder.tls_client_identity(cert, key),
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "a client certificate needs both `cert_file` and `key_file`".into(),
                ))
            }
        }
        if let Some(name) = parsed.take("tls_server_name") {
            builder = builder.tls_server_name(name);
        }
        // After the files, so that `tls=false` beside them reaches `check` as the contradiction
        // it is.
        if let Some(enabled) = tls {
            builder = builder.tls(enabled);
        }
        parsed.finish(&URL_OPTIONS)?;
        builder.check()?;
        Ok(builder)
    }

    /// The namespace this backend's keys live in (default: the empty one): any string.
    /// Namespaces share the cluster and never see each other's keys.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long opening may take (default [`DEFAULT_CONNECT_TIMEOUT`]); also the limit for
    /// each TCP connection to a member.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one operation may take before it fails with `Unavailable` (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The longest value accepted, in bytes (default and most: 1 MiB; at least 64 KiB).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// How many operations of this backend and its clones are in flight at once (default
    /// [`DEFAULT_MAX_CONCURRENT_REQUESTS`], 1 to [`LARGEST_MAX_CONCURRENT_REQUESTS`]). The
    /// others wait for a place, and an operation's [`request_timeout`](Self::request_timeout)
    /// starts once it has one, so a burst queues in the client instead of overloading etcd
    /// (which refuses requests while it lags more than 5,000 entries behind in applying them).
    pub fn max_concurrent_requests(mut self, max: usize) -> Self {
        self.max_concurrent_requests = max;
        self
    }

    /// Whether to reach the members over TLS (default: no), trusting the Mozilla roots unless
    /// [`tls_ca_file`](Self::tls_ca_file) names an authority. Needs the `tls` feature:
    /// without it, [`build`](Self::build) fails with `InvalidConfig`.
    pub fn tls(mut self, enabled: bool) -> Self {
        self.tls.enabled = enabled;
        self
    }

    /// Trusts the PEM certificates in `path` (a private CA's, as etcd's `--trusted-ca-file`)
    /// instead of the Mozilla roots; turns TLS on.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self.tls(true)
    }

    /// Presents the PEM certificate in `cert` with the private key in `key`, for members that
    /// require client certificates (`--client-cert-auth`); turns TLS on.
    pub fn tls_client_identity(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.tls.client_identity = Some((cert.into(), key.into()));
        self.tls(true)
    }

    /// Checks the members' certificates against `name` instead of the URL's host names;
    /// turns TLS on.
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls.server_name = Some(name.into());
        self.tls(true)
    }

    /// The TLS settings (see [`TlsSettings`]).
    pub fn tls_settings(&self) -> &TlsSettings {
        &self.tls
    }

    /// The cluster as a URL without the password and options, e.g.
    /// `etcd://app:***@10.0.0.1:2379,10.0.0.2:2379`: for logs and errors.
    pub fn endpoint(&self) -> String {
        let userinfo = match (&self.user, &self.password) {
            (Some(user), Some(_)) => format!("{}:{REDACTED}@", encode_component(user)),
            _ => String::new(),
        };
        format!("etcd://{userinfo}{}", self.member_list(",", ""))
    }

    /// The members as `host:port`, each preceded by `scheme`, joined by `separator`.
    pub(crate) fn member_list(&self, separator: &str, scheme: &str) -> String {
        self.members
            .iter()
            .map(|(host, port)| match host.contains(':') {
                true => format!("{scheme}[{host}]:{port}"),
                false => format!("{scheme}{host}:{port}"),
            })
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// Connects and reads through the cluster once.
    pub async fn build(self) -> Result<EtcdBackend, KvError> {
        self.check()?;
        EtcdBackend::open(self).await
    }

    /// The limits every setting must keep.
    fn check(&self) -> Result<(), KvError> {
        kv_trait::check_max_value_bytes(self.max_value_bytes, LARGEST_MAX_VALUE_BYTES)?;
        kv_trait::check_max_concurrent_requests(
            self.max_concurrent_requests,
            LARGEST_MAX_CONCURRENT_REQUESTS,
        )?;
        kv_trait::check_timeouts([
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ])?;
        let tls = &self.tls;
        if !tls.enabled
            && (tls.ca_file.is_some() || tls.client_identity.is_some() || tls.server_name.is_some())
        {
            return Err(invalid(
                "TLS is off (`tls=false`), yet a CA file, client certificate or server name is \
                 set: turn TLS on or drop them"
                    .into(),
            ));
        }
        if tls.enabled && !cfg!(feature = "tls") {
            return Err(invalid(
                "TLS needs kv-etcd's `tls` feature (kvkit's and kvkit-cli's `etcd-tls`)".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for EtcdBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackendBuilder")
            .field("endpoint", &self.endpoint())
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> KvError {
    KvError::InvalidConfig(message)
}

/// `user:password`, decoded; etcd authenticates with both or neither. The password is never
/// quoted in an error.
fn parse_userinfo(userinfo: Option<&str>) -> Result<(Option<String>, Option<Secret>), KvError> {
    let Some(userinfo) = userinfo else {
        return Ok((None, None));
    };
    let (user, password) = userinfo.split_once(':').ok_or_else(|| {
        invalid("etcd authenticates with a user and a password: write `user:password@`".into())
    })?;
    let user = percent_decode(user, "the user name")?;
    if user.is_empty() {
        return Err(invalid("the URL's user name is empty".into()));
    }
    let password = percent_decode(password, "the password")?;
    Ok((Some(user), Some(Secret::new(password))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> EtcdBackendBuilder {
        EtcdBackendBuilder::from_url(url).unwrap()
    }

    fn error(url: &str) -> String {
        EtcdBackendBuilder::from_url(url).unwrap_err().to_string()
    }

    #[test]
    fn a_full_url_sets_every_field() {
        let b = parse(
            "etcd://app:p%40ss@db1:2381,[::1],10.0.0.3/?namespace=a%2Fb&connect_timeout_ms=250\
             &request_timeout_ms=900&max_value_bytes=65536&max_concurrent_requests=8",
        );
        assert_eq!(
            b.members,
            [
                ("db1".to_owned(), 2381),
                ("::1".to_owned(), 2379),
                ("10.0.0.3".to_owned(), 2379)
            ]
        );
        assert_eq!(b.user.as_deref(), Some("app"));
        assert_eq!(b.password, Some(Secret::new("p@ss")));
        assert_eq!(b.namespace, "a/b");
        assert_eq!(b.connect_timeout, Duration::from_millis(250));
        assert_eq!(b.request_timeout, Duration::from_millis(900));
        assert_eq!(b.max_value_bytes, 65536);
        assert_eq!(b.max_concurrent_requests, 8);
        assert_eq!(
            b.member_list(",", "http://"),
            "http://db1:2381,http://[::1]:2379,http://10.0.0.3:2379"
        );
    }

    #[test]
    fn defaults() {
        let b = parse("ETCD://localhost");
        assert_eq!(b.members, [("localhost".to_owned(), DEFAULT_PORT)]);
        assert_eq!((b.user, b.password), (None, None));
        assert_eq!(b.namespace, "");
        assert_eq!(b.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(b.max_value_bytes, DEFAULT_MAX_VALUE_BYTES);
        assert_eq!(b.max_concurrent_requests, DEFAULT_MAX_CONCURRENT_REQUESTS);
    }

    #[test]
    fn malformed_urls_say_what_is_wrong_and_never_quote_the_password() {
        for (url, expected) in [
            ("redis://db", "not a etcd URL"),
            ("etcd:db", "etcd://host:port"),
            ("etcd://u:hunter2@", "names no member"),
            ("etcd://u:hunter2@db:0", "is not a port"),
            ("etcd://u:hunter2@db:+1", "is not a port"),
            ("etcd://u:hunter2@db,", "empty"),
            ("etcd://u:hunter2@[::1", "closing `]`"),
            ("etcd://u:hunter2@db/kv", "no path"),
            ("etcd://hunter2@db", "user and a password"),
            ("etcd://:hunter2@db", "user name is empty"),
            ("etcd://u:hunter2@db?colour=blue", "colour"),
            ("etcd://u:hunter2@db?max_value_bytes=10", "max_value_bytes"),
            (
                "etcd://u:hunter2@db?max_value_bytes=2000000",
                "max_value_bytes",
            ),
            (
                "etcd://u:hunter2@db?request_timeout_ms=0",
                "request_timeout",
            ),
            (
                "etcd://u:hunter2@db?max_concurrent_requests=0",
                "max_concurrent_requests",
            ),
            (
                "etcd://u:hunter2@db?request_timeout_ms=-1",
                "request_timeout",
            ),
            (
                "etcd://u:hunter2@db?namespace=a&namespace=b",
                "more than once",
            ),
        ] {
            let message = error(url);
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }

    #[test]
    fn tls_options_set_the_tls_settings() {
        let b = parse(
            "etcd://db?ca_file=%2Fetc%2Fetcd%2Fca.pem&cert_file=%2Fc.pem&key_file=%2Fk.pem\
             &tls_server_name=etcd.internal",
        );
        assert_eq!(
            b.tls,
            TlsSettings {
                enabled: true,
                ca_file: Some("/etc/etcd/ca.pem".into()),
                client_identity: Some(("/c.pem".into(), "/k.pem".into())),
                server_name: Some("etcd.internal".into()),
            }
        );
        assert!(parse("etcd://db?tls=true").tls.enabled);
        assert!(!parse("etcd://db?tls=false").tls.enabled);
        assert_eq!(parse("etcd://db").tls, TlsSettings::default());
    }

    #[test]
    fn contradictory_tls_options_are_refused() {
        for (url, expected) in [
            (
                "etcd://db?cert_file=%2Fc.pem",
                "both `cert_file` and `key_file`",
            ),
            (
                "etcd://db?key_file=%2Fk.pem",
                "both `cert_file` and `key_file`",
            ),
            ("etcd://db?tls=false&ca_file=%2Fca.pem", "TLS is off"),
            ("etcd://db?tls=maybe", "tls"),
        ] {
            let message = error(url);
            assert!(message.contains(expected), "{url}: {message}");
        }
        let builder = parse("etcd://db?ca_file=%2Fca.pem").tls(false);
        assert!(builder.check().is_err());
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_without_the_feature_says_which_feature() {
        assert!(error("etcd://db?tls=true").contains("`tls` feature"));
    }

    #[test]
    fn debug_shows_no_password() {
        let b = parse("etcd://u:hunter2@db");
        let debug = format!("{b:?}");
        assert!(debug.contains("etcd://u:***@db:2379"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
