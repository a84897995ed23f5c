//! [`DynamoDbBackendBuilder`]: where the SDK client comes from, the table and namespace,
//! timeouts and retries, and `dynamodb://` URL parsing. `Debug` never shows credentials.

use std::fmt;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::ConnectorBuilder;
use kv_trait::url_config::{self, parse_whole_number, percent_decode, split_userinfo, StoreUrl};
use kv_trait::KvError;
use url::Url;

use crate::backend::DynamoDbBackend;
use crate::encoding::{AWS_MAX_VALUE_BYTES, MAX_NAMESPACE_BYTES};

/// The longest value accepted unless configured otherwise: 400,000 bytes.
///
/// An item holding a value this long, under a 1024-byte key, a 1024-byte namespace and a TTL,
/// stays more than 7 KB below DynamoDB's 400 KB (409,600-byte) item limit (the largest value
/// that fits by AWS's size formula is [`AWS_MAX_VALUE_BYTES`], 407,518 bytes), and also fits
/// the moto emulator, which refuses items above 405,000 bytes. See the crate README.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 400_000;

/// How long establishing a TCP (and TLS) connection may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one HTTP attempt may take by default, from sending to the whole response.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one operation may take by default, all retries and backoff included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How many requests one backend has in flight at once by default (each holds an HTTP
/// connection): AWS's SDKs for Java and .NET default to 50 connections per client.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;

/// The most requests a backend may be allowed in flight at once.
const LARGEST_MAX_CONCURRENT_REQUESTS: usize = 4096;

/// How long a pooled HTTP connection may sit idle before the client closes it. Shorter than
/// the shortest keep-alive of common servers (Node's 5 s, which dynalite has; nginx 75 s, AWS
/// load balancers 60 s), so that the client, not the server, closes an idle connection: a
/// request sent on a connection the server is closing at that moment is reset, and a write
/// cannot be resent after that (it may have arrived). The SDK's default (90 s) let one
/// increment in 40,000 of a 10,000-task burst against dynalite fail so. The cost: a new
/// connection for a request after 4 s without one.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// The URL scheme [`DynamoDbBackendBuilder::from_url`] accepts.
pub const URL_SCHEME: &str = "dynamodb";

/// The options a `dynamodb://` URL takes (see [`DynamoDbBackendBuilder::from_url`]).
const URL_OPTIONS: &[&str] = &[
    "namespace",
    "region",
    "endpoint",
    "profile",
    "max_attempts",
    "connect_timeout_ms",
    "attempt_timeout_ms",
    "operation_timeout_ms",
    "max_value_bytes",
    "max_concurrent_requests",
    "create_table",
    "manage_ttl",
    "verify_table",
];

/// The options of [`URL_OPTIONS`] that take `true` or `false`.
const BOOLEAN_OPTIONS: &[&str] = &["create_table", "manage_ttl", "verify_table"];

/// Where the SDK configuration comes from.
#[derive(Clone)]
enum Source {
    /// The standard AWS chain (environment, profile files, SSO, web identity, ECS, IMDS).
    Chain,
    /// A loaded `SdkConfig` (e.g. from `aws_config::load_defaults`).
    Shared(Box<SdkConfig>),
    /// A ready client: its configuration is kept, except for what the builder overrides.
    Client(Box<Client>),
}

/// Settings for a [`DynamoDbBackend`]; finish with [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use kv_dynamodb::DynamoDbBackendBuilder;
///
/// let builder = DynamoDbBackendBuilder::new("app-kv")
///     .namespace("sessions")
///     .region("eu-west-1")
///     .operation_timeout(Duration::from_secs(5))
///     .max_attempts(5);
/// // let store = builder.build().await?;
/// # let _ = builder;
/// ```
#[derive(Clone)]
pub struct DynamoDbBackendBuilder {
    pub(crate) table: String,
    pub(crate) namespace: String,
    source: Source,
    profile: Option<String>,
    credentials: Option<Credentials>,
    region: Option<String>,
    pub(crate) endpoint: Option<String>,
    retry: Option<RetryConfig>,
    max_attempts: Option<u32>,
    connect_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_concurrent_requests: usize,
    pub(crate) create_table: bool,
    pub(crate) manage_ttl: bool,
    pub(crate) verify_table: bool,
}

impl DynamoDbBackendBuilder {
    /// Settings for table `table` with the defaults: the empty namespace, region and
    /// credentials from the standard AWS chain, AWS's endpoint, the SDK's standard retries (3
    /// attempts), a 3 s connect timeout, a 10 s attempt timeout, a 30 s operation timeout,
    /// 400,000-byte values, 64 requests in flight at once; opening checks that the table exists and changes no table
    /// setting.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            namespace: String::new(),
            source: Source::Chain,
            profile: None,
            credentials: None,
            region: None,
            endpoint: None,
            retry: None,
            max_attempts: None,
            connect_timeout: None,
            attempt_timeout: None,
            operation_timeout: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            create_table: false,
            manage_ttl: false,
            verify_table: true,
        }
    }

    /// Parses a `dynamodb://` URL:
    ///
    /// `dynamodb://[ACCESS_KEY_ID:SECRET_ACCESS_KEY@]TABLE[?option=value&...]`
    ///
    /// | option | builder method |
    /// | --- | --- |
    /// | `namespace=NAME` | [`namespace`](Self::namespace) |
    /// | `region=REGION` | [`region`](Self::region) |
    /// | `endpoint=URL` | [`endpoint`](Self::endpoint) |
    /// | `profile=NAME` | [`profile`](Self::profile) |
    /// | `max_attempts=N` | [`max_attempts`](Self::max_attempts) |
    /// | `connect_timeout_ms=N` | [`connect_timeout`](Self::connect_timeout) |
    /// | `attempt_timeout_ms=N` | [`attempt_timeout`](Self::attempt_timeout) |
    /// | `operation_timeout_ms=N` | [`operation_timeout`](Self::operation_timeout) |
    /// | `max_value_bytes=N` | [`max_value_bytes`](Self::max_value_bytes) |
    /// | `max_concurrent_requests=N` | [`max_concurrent_requests`](Self::max_concurrent_requests) |
    /// | `create_table=true\|false` | [`create_table`](Self::create_table) |
    /// | `manage_ttl=true\|false` | [`manage_ttl`](Self::manage_ttl) |
    /// | `verify_table=true\|false` | [`verify_table`](Self::verify_table) |
    ///
    /// Credentials in the URL (percent-encoded) are static credentials, meant for emulators;
    /// without them the standard AWS chain applies. Values are percent-decoded. Another scheme,
    /// a port, a path, a fragment, an unknown or repeated option or a malformed value is
    /// [`KvError::InvalidConfig`].
    ///
    /// ```
    /// use kv_dynamodb::DynamoDbBackendBuilder;
    ///
    /// let url = "dynamodb://kvs?region=us-east-1&endpoint=http://127.0.0.1:8000&namespace=app";
    /// let builder = DynamoDbBackendBuilder::from_url(url)?;
    /// assert!(DynamoDbBackendBuilder::from_url("dynamodb://kvs?colour=blue").is_err());
    /// # Ok::<(), kv_trait::KvError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, KvError> {
        let mut parsed = StoreUrl::parse(url, URL_SCHEME)?;
        let location = parsed.location();
        if !location.starts_with("//") {
            return Err(invalid("expected dynamodb://TABLE?options"));
        }
        // The last `@` ends the credentials, so a secret key is never read as a table name,
        // a port or a path (and never quoted in an error).
        let (userinfo, rest) = split_userinfo(location);
        let table = rest.strip_suffix('/').unwrap_or(rest);
        if table.contains('/') {
            return Err(invalid(
                "a dynamodb:// URL has no path: write dynamodb://TABLE?options",
            ));
        }
        if table.contains(':') {
            return Err(invalid(
                "a dynamodb:// URL names a table: it has no port (use ?endpoint=)",
            ));
        }
        let mut builder = Self::new(percent_decode(table, "the table name")?);
        if let Some(userinfo) = userinfo {
            let (key_id, secret) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let key_id = percent_decode(key_id, "the access key id")?;
            let secret = percent_decode(secret, "the secret key")?;
            if key_id.is_empty() || secret.is_empty() {
                return Err(invalid(
                    "credentials in the URL need both parts: ACCESS_KEY_ID:SECRET_ACCESS_KEY@",
                ));
            }
            builder = builder.credentials(key_id, secret);
        }
        for name in BOOLEAN_OPTIONS {
            if let Some(value) = parsed.take_bool(name)? {
                builder = builder.apply_switch(name, value);
            }
        }
        for name in URL_OPTIONS {
            if let Some(value) = parsed.take(name) {
                builder = builder.apply_option(name, &value)?;
            }
        }
        parsed.finish(URL_OPTIONS)?;
        Ok(builder)
    }

    fn apply_option(self, name: &str, value: &str) -> Result<Self, KvError> {
        Ok(match name {
            "namespace" => self.namespace(value),
            "region" => self.region(non_empty(name, value)?),
            "endpoint" => self.endpoint(non_empty(name, value)?),
            "profile" => self.profile(non_empty(name, value)?),
            "max_attempts" => self.max_attempts(parse_whole_number(name, value)?),
            "connect_timeout_ms" => self.connect_timeout(millis(name, value)?),
            "attempt_timeout_ms" => self.attempt_timeout(millis(name, value)?),
            "operation_timeout_ms" => self.operation_timeout(millis(name, value)?),
            "max_value_bytes" => self.max_value_bytes(parse_whole_number(name, value)?),
            "max_concurrent_requests" => {
                self.max_concurrent_requests(parse_whole_number(name, value)?)
            }
            // `from_url` only passes the names of URL_OPTIONS.
            _ => self,
        })
    }

    fn apply_switch(self, name: &str, on: bool) -> Self {
        match name {
            "create_table" => self.create_table(on),
            "manage_ttl" => self.manage_ttl(on),
            "verify_table" => self.verify_table(on),
            // `from_url` only passes the names of BOOLEAN_OPTIONS.
            _ => self,
        }
    }

    /// Keys live in this namespace (default `""`): any UTF-8 text of at most
    /// [`MAX_NAMESPACE_BYTES`] (1024) bytes. A namespace is one DynamoDB partition key value.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The AWS region (default: from the standard chain: `AWS_REGION`, the profile, IMDS).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends requests to this endpoint instead of AWS's, e.g. `http://127.0.0.1:8000` for an
    /// emulator (moto, DynamoDB Local).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Uses this named profile of `~/.aws/config` and `~/.aws/credentials` (default:
    /// `AWS_PROFILE`, else `default`). Only when loading the standard chain, not with
    /// [`sdk_config`](Self::sdk_config) or [`client`](Self::client).
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Static credentials instead of the chain's, the config's or the client's (for emulators
    /// and tests; on AWS prefer the chain). Never shown by `Debug`.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "kv-dynamodb static",
        ));
        self
    }

    /// Starts from a loaded AWS configuration (region, credentials, endpoint, retries,
    /// timeouts, interceptors...) instead of loading the standard chain. Settings of this
    /// builder override it.
    pub fn sdk_config(mut self, config: &SdkConfig) -> Self {
        self.source = Source::Shared(Box::new(config.clone()));
        self
    }

    /// Starts from a ready DynamoDB client: its configuration is kept (credentials,
    /// interceptors, HTTP client, retries), except for what this builder sets explicitly.
    /// Timeouts it leaves unset get this crate's defaults, so no request can hang.
    pub fn client(mut self, client: Client) -> Self {
        self.source = Source::Client(Box::new(client));
        self
    }

    /// The SDK's retry settings: mode, attempts, backoff (default: the standard mode, 3
    /// attempts). Writes whose effect is not idempotent are retried only after errors that
    /// prove they were not applied; see the crate docs.
    pub fn retry_config(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Attempts per request, the first included (1 disables retries). Applied on top of
    /// [`retry_config`](Self::retry_config).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// How long connecting may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long one attempt may take, sending to full response (default 10 s).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// How long one operation may take, retries included (default 30 s). An operation that
    /// needs several requests (see the crate docs) applies it to each; a batch applies it to
    /// each chunk, with the resends of what DynamoDB left unprocessed.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// The longest value accepted, from 64 KiB to [`AWS_MAX_VALUE_BYTES`] (default
    /// [`DEFAULT_MAX_VALUE_BYTES`]). Longer values fail with `ValueTooLarge` before any
    /// request. Above 402,903 bytes, moto refuses the largest items (see the README).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// How many requests the backend has in flight at once, over all its clones (default
    /// [`DEFAULT_MAX_CONCURRENT_REQUESTS`], 1 to 4096). Each request in flight holds an HTTP
    /// connection, and the SDK's connection pool has no limit of its own: 10,000 callers at
    /// once would open 10,000 connections (and file descriptors). A caller beyond the limit
    /// waits for a place before its request starts, so the SDK's attempt and operation
    /// timeouts measure the request, not the wait; the wait itself lasts as long as the
    /// requests ahead take, each bounded by those timeouts.
    pub fn max_concurrent_requests(mut self, requests: usize) -> Self {
        self.max_concurrent_requests = requests;
        self
    }

    /// Whether [`build`](Self::build) creates the table when it is missing (default false);
    /// see [`DynamoDbBackend::create_table_if_missing`]. Needs `dynamodb:DescribeTable` and
    /// `dynamodb:CreateTable`.
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// Whether [`build`](Self::build) turns on DynamoDB's TTL deletion on the `ttl` attribute
    /// (default false); see [`DynamoDbBackend::enable_ttl_deletion`]. Needs
    /// `dynamodb:DescribeTimeToLive` and `dynamodb:UpdateTimeToLive`. Without it the backend
    /// works all the same (it never returns an expired key); expired items are then deleted
    /// only if the table's TTL is on by other means, else they stay until overwritten or
    /// deleted.
    pub fn manage_ttl(mut self, manage: bool) -> Self {
        self.manage_ttl = manage;
        self
    }

    /// Whether [`build`](Self::build) checks that the table exists with kv-dynamodb's key
    /// schema (default true), with one `GetItem`, the permission every read needs anyway; see
    /// [`DynamoDbBackend::verify_table`]. Off, opening sends no request (for a process that
    /// must start before the network is up, or to save the round trip at a cold start), and a
    /// missing table shows only at the first operation, as a `Backend` error. With
    /// [`create_table`](Self::create_table) the table is checked while it is created.
    pub fn verify_table(mut self, verify: bool) -> Self {
        self.verify_table = verify;
        self
    }

    /// Loads the AWS configuration if needed, builds the client, and prepares the table: with
    /// [`create_table`](Self::create_table) creates it when missing, else (unless
    /// [`verify_table`](Self::verify_table) is off) checks that it exists and is keyed as
    /// this crate writes items; with [`manage_ttl`](Self::manage_ttl) turns DynamoDB's TTL
    /// deletion on.
    ///
    /// Fails with `InvalidConfig` for a bad table name, namespace, limit or timeout, when no
    /// region is configured anywhere, and when the table is missing (without `create_table`)
    /// or has another key schema; with `Unavailable` when DynamoDB cannot be reached; with
    /// `Backend` when a request is refused (e.g. `AccessDeniedException`: the error names the
    /// operation, whose IAM action the role lacks).
    pub async fn build(self) -> Result<DynamoDbBackend, KvError> {
        self.validate()?;
        let config = match &self.source {
            Source::Chain => {
                // What is given here is not looked up: no IMDS round trip for a known region.
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(region) = &self.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(profile) = &self.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(credentials) = &self.credentials {
                    loader = loader.credentials_provider(credentials.clone());
                }
                loader = loader.http_client(https_client());
                aws_sdk_dynamodb::config::Builder::from(&loader.load().await)
            }
            Source::Shared(config) => {
                let mut builder = aws_sdk_dynamodb::config::Builder::from(&**config);
                if config.behavior_version().is_none() {
                    // `Client::from_conf` would panic without one.
                    builder.set_behavior_version(Some(BehaviorVersion::latest()));
                }
                builder
            }
            Source::Client(client) => client.config().to_builder(),
        };
        let backend = DynamoDbBackend::from_parts(self.finish_config(config)?, &self)?;
        if self.create_table {
            backend.create_table_if_missing().await?;
        } else if self.verify_table {
            backend.verify_table().await?;
        }
        if self.manage_ttl {
            backend.enable_ttl_deletion().await?;
        }
        Ok(backend)
    }

    /// The synchronous part of [`DynamoDbBackend::from_client`].
    pub(crate) fn build_from_client(self) -> Result<DynamoDbBackend, KvError> {
        self.validate()?;
        let Source::Client(client) = &self.source else {
            return Err(invalid("internal: build_from_client without a client"));
        };
        let config = self.finish_config(client.config().to_builder())?;
        DynamoDbBackend::from_parts(config, &self)
    }

    fn validate(&self) -> Result<(), KvError> {
        validate_table_name(&self.table)?;
        if self.namespace.len() > MAX_NAMESPACE_BYTES {
            return Err(invalid(format!(
                "the namespace is {} bytes long; the maximum is {MAX_NAMESPACE_BYTES}",
                self.namespace.len()
            )));
        }
        // AWS_MAX_VALUE_BYTES: the most that fits DynamoDB's 400 KB item limit.
        kv_trait::check_max_value_bytes(self.max_value_bytes, AWS_MAX_VALUE_BYTES)?;
        if self.max_attempts == Some(0) {
            return Err(invalid("max_attempts must be at least 1"));
        }
        kv_trait::check_max_concurrent_requests(
            self.max_concurrent_requests,
            LARGEST_MAX_CONCURRENT_REQUESTS,
        )?;
        kv_trait::check_timeouts(
            [
                ("connect_timeout", self.connect_timeout),
                ("attempt_timeout", self.attempt_timeout),
                ("operation_timeout", self.operation_timeout),
            ]
            .into_iter()
            .filter_map(|(name, timeout)| Some((name, timeout?))),
        )?;
        if let Some(endpoint) = &self.endpoint {
            let parsed = Url::parse(endpoint)
                // Not echoed: an unparsable URL cannot be stripped of a password it may hold.
                .map_err(|err| invalid(format!("the endpoint is not a URL ({err})")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid(format!(
                    "endpoint {:?}: expected an http:// or https:// URL",
                    redact_url(endpoint)
                )));
            }
        }
        Ok(())
    }

    /// Applies this builder's overrides (and the default timeouts) to an SDK config.
    fn finish_config(
        &self,
        mut config: aws_sdk_dynamodb::config::Builder,
    ) -> Result<aws_sdk_dynamodb::Config, KvError> {
        if let Some(region) = &self.region {
            config = config.region(Region::new(region.clone()));
        }
        if let Some(credentials) = &self.credentials {
            config = config.credentials_provider(credentials.clone());
        }
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        // The builder has no getters: build once to read what the base configured.
        let base = config.build();
        let retry = self
            .retry
            .clone()
            .or_else(|| base.retry_config().cloned())
            .unwrap_or_else(RetryConfig::standard);
        let retry = match self.max_attempts {
            Some(attempts) => retry.with_max_attempts(attempts),
            None => retry,
        };
        let timeouts = self.timeouts(base.timeout_config());
        let config = base
            .to_builder()
            .retry_config(retry)
            .timeout_config(timeouts);
        let config = config.build();
        if config.region().is_none() {
            return Err(invalid(
                "no AWS region: pass ?region= (or .region()), or set AWS_REGION or a profile's region",
            ));
        }
        Ok(config)
    }

    /// Explicit timeouts, then the base config's, then this crate's defaults.
    fn timeouts(&self, base: Option<&TimeoutConfig>) -> TimeoutConfig {
        // (`set_*(None)` would disable a timeout, not leave it unset.)
        let mut explicit = TimeoutConfig::builder();
        if let Some(timeout) = self.connect_timeout {
            explicit = explicit.connect_timeout(timeout);
        }
        if let Some(timeout) = self.attempt_timeout {
            explicit = explicit.operation_attempt_timeout(timeout);
        }
        if let Some(timeout) = self.operation_timeout {
            explicit = explicit.operation_timeout(timeout);
        }
        let defaults = TimeoutConfig::builder()
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .operation_attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT)
            .operation_timeout(DEFAULT_OPERATION_TIMEOUT);
        let inherited = base.map(TimeoutConfig::to_builder).unwrap_or_default();
        explicit
            .take_unset_from(inherited)
            .take_unset_from(defaults)
            .build()
    }

    /// For `Debug` of the backend: where credentials come from, never the credentials.
    pub(crate) fn credentials_summary(&self) -> &'static str {
        match (&self.credentials, &self.source) {
            (Some(_), _) => "static (redacted)",
            (None, Source::Chain) => "standard AWS chain",
            (None, Source::Shared(_)) => "from the given SdkConfig",
            (None, Source::Client(_)) => "from the given client",
        }
    }
}

impl fmt::Debug for DynamoDbBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbBackendBuilder")
            .field("table", &self.table)
            .field("namespace", &self.namespace)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_deref().map(redact_url))
            .field("profile", &self.profile)
            .field("credentials", &self.credentials_summary())
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("create_table", &self.create_table)
            .field("manage_ttl", &self.manage_ttl)
            .field("verify_table", &self.verify_table)
            .finish_non_exhaustive()
    }
}

/// DynamoDB's table name rules: 3 to 255 characters of `a-z A-Z 0-9 _ - .`.
fn validate_table_name(table: &str) -> Result<(), KvError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (3..=255).contains(&table.len()) && table.chars().all(allowed) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{table:?} is not a DynamoDB table name (3 to 255 characters of a-z, A-Z, 0-9, _, - and .)"
        )))
    }
}

/// An endpoint as it may be shown: without user name, password, query or fragment.
pub(crate) fn redact_url(endpoint: &str) -> String {
    // The shared redactor first: it finds a password that holds a `/`, which `Url` would
    // read as a path and show.
    match Url::parse(&url_config::redact(endpoint)) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(unparsable endpoint)".into(),
    }
}

/// The HTTPS client the SDK would build by default (hyper 1, rustls on aws-lc, the proxy
/// from the environment), with pooled connections closed after [`POOL_IDLE_TIMEOUT`].
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

fn invalid(message: impl Into<String>) -> KvError {
    KvError::InvalidConfig(message.into())
}

fn non_empty<'a>(name: &str, value: &'a str) -> Result<&'a str, KvError> {
    if value.is_empty() {
        return Err(invalid(format!("option {name} is empty")));
    }
    Ok(value)
}

fn millis(name: &str, value: &str) -> Result<Duration, KvError> {
    parse_whole_number::<u64>(name, value).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> DynamoDbBackendBuilder {
        DynamoDbBackendBuilder::from_url(url).unwrap_or_else(|err| panic!("{url}: {err}"))
    }

    fn refused(url: &str) -> String {
        match DynamoDbBackendBuilder::from_url(url).and_then(|b| b.validate().map(|()| b)) {
            Err(KvError::InvalidConfig(message)) => message,
            other => panic!("{url}: expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn every_option_is_read() {
        let builder = parse(
            "dynamodb://My_Table-1.0?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A8000\
             &namespace=a%2Fb%20c&profile=dev&max_attempts=5&connect_timeout_ms=100\
             &attempt_timeout_ms=200&operation_timeout_ms=300&max_value_bytes=100000\
             &max_concurrent_requests=8&create_table=true&manage_ttl=true&verify_table=false",
        );
        assert_eq!(builder.table, "My_Table-1.0", "case is kept");
        assert_eq!(builder.namespace, "a/b c");
        assert_eq!(builder.region.as_deref(), Some("eu-west-1"));
        assert_eq!(builder.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(builder.profile.as_deref(), Some("dev"));
        assert!(builder.credentials.is_none());
        assert_eq!(builder.max_attempts, Some(5));
        assert_eq!(builder.connect_timeout, Some(Duration::from_millis(100)));
        assert_eq!(builder.attempt_timeout, Some(Duration::from_millis(200)));
        assert_eq!(builder.operation_timeout, Some(Duration::from_millis(300)));
        assert_eq!(builder.max_value_bytes, 100_000);
        assert_eq!(builder.max_concurrent_requests, 8);
        assert!(builder.create_table);
        assert!(builder.manage_ttl);
        assert!(!builder.verify_table);
        builder.validate().unwrap();
    }

    #[test]
    fn an_unencoded_endpoint_in_the_query_works_too() {
        let builder = parse("dynamodb://kvs?endpoint=http://localhost:4566/&region=us-east-1");
        assert_eq!(builder.endpoint.as_deref(), Some("http://localhost:4566/"));
    }

    #[test]
    fn defaults_without_options() {
        let builder = parse("dynamodb://kvs");
        assert_eq!(builder.table, "kvs");
        assert_eq!(builder.namespace, "");
        assert_eq!(builder.max_value_bytes, DEFAULT_MAX_VALUE_BYTES);
        assert!(
            !builder.create_table,
            "least privilege: no table administration"
        );
        assert!(
            !builder.manage_ttl,
            "least privilege: no table administration"
        );
        assert!(builder.verify_table);
        assert!(matches!(builder.source, Source::Chain));
        assert!(builder.profile.is_none() && builder.credentials.is_none());
        parse("dynamodb://kvs/");
        parse("dynamodb://kvs?");
    }

    #[test]
    fn credentials_in_the_url_are_static_and_percent_decoded() {
        let builder = parse("dynamodb://AKIDEXAMPLE:se%2Fcr%40et@kvs?region=us-east-1");
        let credentials = builder.credentials.as_ref().expect("static credentials");
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "se/cr@et");
        assert!(refused("dynamodb://AKID@kvs").contains("both parts"));
        assert!(refused("dynamodb://:secret@kvs").contains("both parts"));
    }

    #[test]
    fn malformed_urls_and_options_are_invalid_config() {
        for (url, says) in [
            ("redis://kv", "scheme"),
            ("dynamodb://kvs:8000", "port"),
            ("dynamodb://kvs/extra", "path"),
            ("dynamodb://kvs#frag", "fragment"),
            ("dynamodb://kvs?colour=blue", "unknown URL option `colour`"),
            ("dynamodb://kvs?region=a&region=b", "more than once"),
            ("dynamodb://kvs?region=", "empty"),
            ("dynamodb://kvs?max_attempts=x", "non-negative whole number"),
            (
                "dynamodb://kvs?max_attempts=%2B5",
                "non-negative whole number",
            ),
            (
                "dynamodb://kvs?max_value_bytes=+100000",
                "non-negative whole number",
            ),
            ("dynamodb://kvs?max_attempts=0", "at least 1"),
            (
                "dynamodb://kvs?attempt_timeout_ms=-1",
                "non-negative whole number",
            ),
            ("dynamodb://kvs?operation_timeout_ms=0", "longer than zero"),
            ("dynamodb://kvs?create_table=yes", "true or false"),
            ("dynamodb://kvs?manage_ttl=1", "true or false"),
            ("dynamodb://kvs?verify_table=", "true or false"),
            (
                "dynamodb://kvs?manage_ttl=true&manage_ttl=true",
                "more than once",
            ),
            ("dynamodb://kvs?max_value_bytes=1000", "between"),
            (
                "dynamodb://kvs?max_concurrent_requests=0",
                "between 1 and 4096",
            ),
            (
                "dynamodb://kvs?max_concurrent_requests=5000",
                "between 1 and 4096",
            ),
            ("dynamodb://kvs?max_value_bytes=407519", "between"),
            ("dynamodb://kvs?endpoint=ftp://x", "http"),
            ("dynamodb://kvs?endpoint=nonsense", "not a URL"),
            ("dynamodb://ab", "table name"),
            ("dynamodb://", "table name"),
            ("dynamodb://bad%20name", "table name"),
            ("not a url", "not a dynamodb URL"),
            ("dynamodb:kvs", "expected dynamodb://TABLE"),
        ] {
            let message = refused(url);
            assert!(message.contains(says), "{url}: {message:?} lacks {says:?}");
        }
    }

    #[test]
    fn namespaces_are_limited_to_1024_bytes() {
        let ok = DynamoDbBackendBuilder::new("kvs").namespace("n".repeat(MAX_NAMESPACE_BYTES));
        ok.validate().unwrap();
        let long = DynamoDbBackendBuilder::new("kvs").namespace("é".repeat(513));
        assert!(matches!(long.validate(), Err(KvError::InvalidConfig(m)) if m.contains("1026")));
    }

    #[test]
    fn the_largest_limit_is_accepted() {
        DynamoDbBackendBuilder::new("kvs")
            .max_value_bytes(AWS_MAX_VALUE_BYTES)
            .validate()
            .unwrap();
    }

    #[test]
    fn debug_shows_no_credentials() {
        let builder = parse(
            "dynamodb://AKIDSECRETID:wJalrXUtnFEMI%2FK7MDENG@kvs?region=us-east-1\
             &endpoint=http://user:endpointpass@127.0.0.1:8000/?token=qwerty",
        );
        let shown = format!("{builder:?}");
        for secret in [
            "AKIDSECRETID",
            "wJalrXUtnFEMI",
            "endpointpass",
            "qwerty",
            "user",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("static (redacted)"), "{shown}");
        assert!(shown.contains("127.0.0.1:8000"), "{shown}");
    }

    fn client(region: Option<&str>) -> Client {
        let mut config =
            aws_sdk_dynamodb::Config::builder().behavior_version(BehaviorVersion::latest());
        if let Some(region) = region {
            config = config.region(Region::new(region.to_owned()));
        }
        Client::from_conf(config.build())
    }

    #[test]
    fn a_client_keeps_its_settings_unless_overridden() {
        let builder = DynamoDbBackendBuilder::new("kvs")
            .client(client(Some("eu-north-1")))
            .credentials("AKIDOVERRIDE", "override-secret");
        assert!(
            matches!(builder.source, Source::Client(_)),
            "still the client"
        );
        let backend = builder.build_from_client().unwrap();
        let shown = format!("{backend:?}");
        assert!(
            shown.contains("eu-north-1") && shown.contains("static (redacted)"),
            "{shown}"
        );
        assert!(!shown.contains("override-secret") && !shown.contains("AKIDOVERRIDE"));
    }

    #[test]
    fn a_client_without_a_region_is_invalid_config() {
        let err = crate::DynamoDbBackend::from_client(client(None), "kvs").unwrap_err();
        assert!(
            matches!(&err, KvError::InvalidConfig(m) if m.contains("region")),
            "{err}"
        );
        let err = crate::DynamoDbBackend::from_client(client(Some("us-east-1")), "x").unwrap_err();
        assert!(
            matches!(&err, KvError::InvalidConfig(m) if m.contains("table name")),
            "{err}"
        );
    }

    #[test]
    fn timeouts_take_explicit_then_inherited_then_defaults() {
        let inherited = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(7))
            .connect_timeout(Duration::from_secs(1))
            .build();
        let builder = DynamoDbBackendBuilder::new("kvs").connect_timeout(Duration::from_millis(5));
        let timeouts = builder.timeouts(Some(&inherited));
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_millis(5)));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(DEFAULT_ATTEMPT_TIMEOUT)
        );
        let none = DynamoDbBackendBuilder::new("kvs").timeouts(None);
        assert_eq!(none.operation_timeout(), Some(DEFAULT_OPERATION_TIMEOUT));
        assert_eq!(none.connect_timeout(), Some(DEFAULT_CONNECT_TIMEOUT));
    }
}
