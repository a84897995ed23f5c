//! URL parsing shared by every adapter's `from_url`: the scheme check, file paths, and
//! `?name=value` options with precise errors.
//!
//! ```
//! use kv_trait::url_config::StoreUrl;
//!
//! let mut url = StoreUrl::parse("rocksdb:///var/lib/kv%20data?namespace=jobs&sync=true", "rocksdb")?;
//! assert_eq!(url.file_path()?, std::path::PathBuf::from("/var/lib/kv data"));
//! assert_eq!(url.take("namespace").as_deref(), Some("jobs"));
//! assert_eq!(url.take_bool("sync")?, Some(true));
//! url.finish(&["namespace", "sync"])?; // nothing unknown left
//! # Ok::<(), kv_trait::KvError>(())
//! ```

use std::path::PathBuf;
use std::str::FromStr;

use crate::KvError;

/// A store URL split into what follows the scheme and its options, which the adapter takes
/// one by one; [`StoreUrl::finish`] then rejects anything left over.
#[derive(Debug, Clone)]
pub struct StoreUrl {
    scheme: String,
    location: String,
    options: Vec<(String, String)>,
}

fn invalid(message: String) -> KvError {
    KvError::InvalidConfig(message)
}

impl StoreUrl {
    /// Splits `url`, which must use `scheme` (compared without case). Fragments are refused,
    /// and so is an option given twice.
    pub fn parse(url: &str, scheme: &str) -> Result<Self, KvError> {
        let rest = url
            .split_once(':')
            .filter(|(given, _)| given.eq_ignore_ascii_case(scheme))
            .map(|(_, rest)| rest)
            .ok_or_else(|| {
                invalid(format!(
                    "`{}` is not a {scheme} URL: the scheme must be `{scheme}`",
                    redact(url)
                ))
            })?;
        if rest.contains('#') {
            return Err(invalid(format!(
                "a {scheme}: URL has no fragment; write `#` as %23"
            )));
        }
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut options: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if options.iter().any(|(seen, _)| *seen == name) {
                return Err(invalid(format!(
                    "URL option `{name}` is given more than once"
                )));
            }
            options.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            location: location.to_owned(),
            options,
        })
    }

    /// What follows `scheme:` and precedes `?`, as written (e.g. `//host:6379/0`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The location as a file path: `scheme:///abs/path` is absolute, `scheme://rel/path`
    /// relative to the working directory; `%XX` escapes are decoded.
    pub fn file_path(&self) -> Result<PathBuf, KvError> {
        let scheme = &self.scheme;
        let encoded = self.location.strip_prefix("//").ok_or_else(|| {
            invalid(format!(
                "expected {scheme}://PATH ({scheme}:///absolute/path or {scheme}://relative/path)"
            ))
        })?;
        if encoded.is_empty() {
            return Err(invalid(format!("the {scheme} URL has an empty path")));
        }
        // Quoted as `redact` shows it: a path has no password, but a URL pasted into the wrong
        // adapter might.
        let quoted = redact(&format!("{scheme}://{encoded}"));
        let decoded = percent_decode(encoded, &format!("the path of `{quoted}`"))?;
        Ok(PathBuf::from(decoded))
    }

    /// Removes and returns option `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let index = self.options.iter().position(|(option, _)| option == name)?;
        Some(self.options.remove(index).1)
    }

    /// Removes option `name` and parses it as a non-negative whole number (digits only: no
    /// sign, no spaces).
    pub fn take_number<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, KvError> {
        match self.take(name) {
            None => Ok(None),
            Some(value) => parse_whole_number(name, &value).map(Some),
        }
    }

    /// Removes option `name` and parses it as `true` or `false`.
    pub fn take_bool(&mut self, name: &str) -> Result<Option<bool>, KvError> {
        match self.take(name).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(invalid(format!(
                "URL option `{name}={other}`: expected true or false"
            ))),
        }
    }

    /// Fails with `InvalidConfig` naming the first option nobody took, and listing `known`.
    pub fn finish(self, known: &[&str]) -> Result<(), KvError> {
        match self.options.first() {
            None => Ok(()),
            Some((name, _)) => Err(invalid(format!(
                "unknown URL option `{name}` for a {} URL; the options are {}",
                self.scheme,
                known.join(", ")
            ))),
        }
    }
}

/// Splits a network URL's location (what follows `scheme:`, without the query, e.g.
/// `//user:pass@host:6379/0`) into its user information and the rest (`host:6379/0`).
///
/// The user information ends at the **last** `@` of the location, so a password keeps an
/// unencoded `@`, `/` or `:` and is never read as a host, a port or a path (which would put
/// it into an error message). The leading `//` is optional.
///
/// ```
/// use kv_trait::url_config::split_userinfo;
///
/// assert_eq!(split_userinfo("//u:p/w@host:1/0"), (Some("u:p/w"), "host:1/0"));
/// assert_eq!(split_userinfo("//host"), (None, "host"));
/// ```
pub fn split_userinfo(location: &str) -> (Option<&str>, &str) {
    let rest = location.strip_prefix("//").unwrap_or(location);
    match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    }
}

/// The two spellings of a URL inside text: plain, and percent-encoded as an option value
/// (`endpoint=http%3A%2F%2Fuser%3Apass%40host`). Each is (separator, `@`, `:`), lowercase.
const SPELLINGS: [(&str, &str, &str); 2] = [("://", "@", ":"), ("%3a%2f%2f", "%40", "%3a")];

/// Where each URL's password is in `text`: for every `://` (or its percent-encoded form), the
/// user information runs to the last `@` before the URL ends (at `?`, `#`, `&`, whitespace or
/// a quote), and the password is what follows its first `:`.
fn password_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let lower = text.to_ascii_lowercase(); // same byte offsets as `text`
    let mut spans = Vec::new();
    for (separator, at, colon) in SPELLINGS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(separator) {
            let start = from + found + separator.len();
            let end = lower[start..]
                .find(|c: char| {
                    matches!(c, '?' | '#' | '&' | '`' | '\'' | '"' | '<' | '>') || c.is_whitespace()
                })
                .map_or(lower.len(), |offset| start + offset);
            if let Some(at_offset) = lower[start..end].rfind(at) {
                let userinfo = start..start + at_offset;
                if let Some(colon_offset) = lower[userinfo.clone()].find(colon) {
                    let password = userinfo.start + colon_offset + colon.len()..userinfo.end;
                    if !password.is_empty() {
                        spans.push(password);
                    }
                }
            }
            from = start;
        }
    }
    spans.sort_by_key(|span| span.start);
    spans
}

/// `text` (a URL, or a message quoting URLs) with the password of every URL in it replaced by
/// `***`, plain or percent-encoded inside another URL's options. User names stay.
///
/// ```
/// use kv_trait::url_config::redact;
///
/// assert_eq!(redact("redis://app:s3cret@db:6379/0"), "redis://app:***@db:6379/0");
/// assert_eq!(
///     redact("dynamodb://t?endpoint=http://u:pw@h:8000&region=x"),
///     "dynamodb://t?endpoint=http://u:***@h:8000&region=x"
/// );
/// ```
pub fn redact(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    let mut copied = 0;
    for span in password_spans(text) {
        if span.start < copied {
            continue; // inside a password already hidden
        }
        shown.push_str(&text[copied..span.start]);
        shown.push_str(REDACTED);
        copied = span.end;
    }
    shown.push_str(&text[copied..]);
    shown
}

/// Every password in `url` (of the URL itself and of URLs in its options), as written and
/// percent-decoded: the strings that no message, `Display` or `Debug` may contain.
pub fn passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    for span in password_spans(url) {
        let raw = &url[span];
        let mut forms = vec![raw.to_owned()];
        // Decoded once (a password in the URL) and twice (one in an encoded option value).
        let once = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        let twice = percent_encoding::percent_decode_str(&once)
            .decode_utf8_lossy()
            .into_owned();
        // An option value is form-decoded: `+` is a space there.
        let spaced = once.replace('+', " ");
        forms.extend([once, twice, spaced]);
        for form in forms {
            if !form.is_empty() && !found.contains(&form) {
                found.push(form);
            }
        }
    }
    found
}

/// `err` with every string of `secrets` in its message (and the messages of its sources)
/// replaced by `***`, as the same variant, so `Unavailable` stays retryable. For errors that
/// may quote what a URL held: a safety net under parsers that never quote a password.
pub fn redact_error(err: KvError, secrets: &[String]) -> KvError {
    let hide = |text: String| {
        secrets
            .iter()
            .filter(|secret| !secret.is_empty())
            .fold(text, |text, secret| text.replace(secret.as_str(), REDACTED))
    };
    let leaks = |text: &str| {
        secrets
            .iter()
            .any(|secret| !secret.is_empty() && text.contains(secret.as_str()))
    };
    match err {
        KvError::InvalidConfig(message) => KvError::InvalidConfig(hide(message)),
        KvError::QuotaExceeded(message) => KvError::QuotaExceeded(hide(message)),
        KvError::Unavailable(source) => match error_chain(&*source) {
            text if leaks(&text) && source.is::<crate::NotSent>() => KvError::not_sent(hide(text)),
            text if leaks(&text) => KvError::unavailable(hide(text)),
            _ => KvError::Unavailable(source),
        },
        KvError::Backend(source) => match error_chain(&*source) {
            text if leaks(&text) => KvError::backend(hide(text)),
            _ => KvError::Backend(source),
        },
        other => other,
    }
}

/// Parses a server address of a network URL: `host`, `host:port`, `[v6]` or `[v6]:port`,
/// with `default_port` when none is given. The host must be a valid domain or IP address
/// (an IPv6 address in brackets); the port is digits only, 1 to 65535. Errors are
/// `InvalidConfig` quoting the address (which never holds the URL's password).
///
/// ```
/// use kv_trait::url_config::parse_host_port;
///
/// assert_eq!(parse_host_port("db:6543", 5432)?, ("db".to_owned(), 6543));
/// assert_eq!(parse_host_port("[::1]", 5432)?, ("::1".to_owned(), 5432));
/// assert!(parse_host_port("db:+1", 5432).is_err());
/// assert!(parse_host_port("::1", 5432).is_err()); // IPv6 needs brackets
/// # Ok::<(), kv_trait::KvError>(())
/// ```
pub fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), KvError> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid(format!("`{text}`: an IPv6 address needs a closing `]`")))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                invalid(format!("`{text}`: expected `:port` after the IPv6 address"))
            })?),
        };
        (host, port)
    } else {
        match text.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(invalid(format!(
                    "`{text}`: write an IPv6 address in brackets, as in `[::1]:6379`"
                )))
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(invalid(if text.is_empty() {
            "a server address is empty".to_owned()
        } else {
            format!("`{text}` has no host")
        }));
    }
    let checked = if text.starts_with('[') {
        url::Host::parse(&format!("[{host}]"))
    } else {
        url::Host::parse(host)
    };
    checked.map_err(|err| invalid(format!("`{host}` is not a valid host: {err}")))?;
    let port = match port {
        None => default_port,
        Some(port) => match parse_whole_number::<u16>("port", port) {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(invalid(format!(
                    "`{port}` is not a port number (1 to 65535) in `{text}`"
                )))
            }
        },
    };
    Ok((host.to_owned(), port))
}

/// Percent-encodes what would break a URL's user information or path (`@ : / ? # %`, spaces
/// and control characters): for the redacted endpoints adapters show.
pub fn encode_component(text: &str) -> String {
    const SPECIAL: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b'@')
        .add(b':')
        .add(b'/')
        .add(b'?')
        .add(b'#')
        .add(b'%')
        .add(b' ');
    percent_encoding::utf8_percent_encode(text, SPECIAL).to_string()
}

/// What every message, `Display` and `Debug` shows instead of a secret.
pub const REDACTED: &str = "***";

/// A password or other secret from a URL or a builder: kept for the handshake, shown as
/// [`REDACTED`] by `Debug`, so a configuration struct can derive or print its fields freely.
///
/// ```
/// use kv_trait::url_config::Secret;
///
/// let password = Secret::new("s3cret");
/// assert_eq!(password.expose(), "s3cret");
/// assert_eq!(format!("{password:?}"), "***");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Keeps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that sends it (an `AUTH`, a password message).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// An error's message followed by those of its sources, as `a: b: c`: for adapters that add
/// context (which server) to a failure and keep its whole story in one message.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

/// Takes the options named in `names` out of `url`'s query: returns the URL without them (the
/// other options kept as written, in their order) and the taken ones, decoded, in the order
/// written. For options that wrap the store rather than configure it (kvkit's layers), read
/// before the adapter sees the rest. A URL without such options comes back unchanged.
///
/// ```
/// use kv_trait::url_config::split_options;
///
/// let (url, taken) = split_options("redis://h:6379/0?timeout=2s&namespace=a&retries=3", &["timeout", "retries"]);
/// assert_eq!(url, "redis://h:6379/0?namespace=a");
/// assert_eq!(taken, [("timeout".to_owned(), "2s".to_owned()), ("retries".to_owned(), "3".to_owned())]);
/// ```
pub fn split_options(url: &str, names: &[&str]) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    for part in query.split('&') {
        let decoded = url::form_urlencoded::parse(part.as_bytes()).next();
        match decoded {
            Some((name, value)) if names.contains(&name.as_ref()) => {
                taken.push((name.into_owned(), value.into_owned()));
            }
            _ => kept.push(part),
        }
    }
    let mut rest = base.to_owned();
    let kept: Vec<&str> = kept.into_iter().filter(|part| !part.is_empty()).collect();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        rest.push('#');
        rest.push_str(fragment);
    }
    (rest, taken)
}

/// Parses the value of URL option `name` as a duration with its unit: `250ms`, `2s`,
/// `1m 30s` (humantime's forms). A bare number is refused, since its unit would be a guess.
///
/// ```
/// use std::time::Duration;
/// use kv_trait::url_config::parse_duration;
///
/// assert_eq!(parse_duration("timeout", "250ms")?, Duration::from_millis(250));
/// assert!(parse_duration("timeout", "250").is_err());
/// # Ok::<(), kv_trait::KvError>(())
/// ```
pub fn parse_duration(name: &str, value: &str) -> Result<std::time::Duration, KvError> {
    humantime::parse_duration(value).map_err(|err| {
        invalid(format!(
            "URL option `{name}={value}`: expected a duration with its unit, such as 250ms or 2s ({err})"
        ))
    })
}

/// Parses the value of URL option `name` as a rate: a decimal number from 0 to 1 (`0.05` is
/// one call in twenty).
///
/// ```
/// use kv_trait::url_config::parse_rate;
/// assert_eq!(parse_rate("r", "0.05")?, 0.05);
/// assert!(parse_rate("r", "5%").is_err() && parse_rate("r", "1.5").is_err());
/// # Ok::<(), kv_trait::KvError>(())
/// ```
pub fn parse_rate(name: &str, value: &str) -> Result<f64, KvError> {
    let decimal = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match decimal.then(|| value.parse::<f64>().ok()).flatten() {
        Some(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(invalid(format!(
            "URL option `{name}={value}`: expected a rate from 0 to 1, such as 0.05"
        ))),
    }
}

/// Parses the value of URL option `name` as a non-negative whole number of type `T`: ASCII
/// digits only (no sign, no spaces, no empty value), in `T`'s range. Every adapter's numeric
/// options go through here, so all of them accept exactly the same forms.
pub fn parse_whole_number<T: FromStr>(name: &str, value: &str) -> Result<T, KvError> {
    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let number = digits_only.then(|| value.parse().ok()).flatten();
    number.ok_or_else(|| {
        invalid(format!(
            "URL option `{name}={value}`: expected a non-negative whole number"
        ))
    })
}

/// Percent-decodes a URL component that must be UTF-8 once decoded. `what` names the
/// component in the error; the component itself is never quoted, since it may be a secret
/// (a password, an access key). A `%` not followed by two hex digits is an error, not a
/// literal `%`.
pub fn percent_decode(component: &str, what: &str) -> Result<String, KvError> {
    let malformed_escape = component
        .split('%')
        .skip(1)
        .any(|after| after.len() < 2 || !after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if malformed_escape {
        return Err(invalid(format!(
            "{what} has a `%` not followed by two hex digits"
        )));
    }
    percent_encoding::percent_decode_str(component)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| invalid(format!("{what} does not decode to UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> StoreUrl {
        StoreUrl::parse(url, "rocksdb").unwrap()
    }

    #[test]
    fn paths_are_absolute_with_three_slashes_and_decoded() {
        assert_eq!(
            parse("rocksdb:///srv/kv").file_path().unwrap(),
            PathBuf::from("/srv/kv")
        );
        assert_eq!(
            parse("ROCKSDB://data/kv").file_path().unwrap(),
            PathBuf::from("data/kv")
        );
        assert_eq!(
            parse("rocksdb:///a%3Fb%25").file_path().unwrap(),
            PathBuf::from("/a?b%")
        );
        assert!(parse("rocksdb://").file_path().is_err());
        assert!(parse("rocksdb:kv").file_path().is_err());
        assert!(parse("rocksdb:///%ff").file_path().is_err());
        assert!(parse("rocksdb:///a%2.b").file_path().is_err());
        assert!(parse("rocksdb:///a%").file_path().is_err());
    }

    #[test]
    fn options_are_taken_once_and_leftovers_rejected() {
        let mut url = parse("rocksdb:///kv?namespace=a%2Fb&cache_mb=64&sync=yes");
        assert_eq!(url.take("namespace").as_deref(), Some("a/b"));
        assert_eq!(url.take_number::<u64>("cache_mb").unwrap(), Some(64));
        assert!(url.take_bool("sync").is_err());
        assert!(url.clone().finish(&["namespace"]).is_ok());
        let mut url = parse("rocksdb:///kv?n=+1&colour=blue");
        assert!(url.take_number::<u64>("n").is_err());
        let err = url.finish(&["namespace", "n"]).unwrap_err().to_string();
        assert!(
            err.contains("`colour`") && err.contains("namespace, n"),
            "{err}"
        );
    }

    #[test]
    fn numbers_are_digits_only_and_decoding_never_quotes_the_component() {
        assert_eq!(parse_whole_number::<u32>("n", "42").unwrap(), 42);
        for bad in ["+5", "-1", " 5", "5 ", "", "0x10", "1e3", "99999999999"] {
            assert!(parse_whole_number::<u32>("n", bad).is_err(), "{bad:?}");
        }
        assert_eq!(percent_decode("a%2Fb%20c", "x").unwrap(), "a/b c");
        for bad in ["s3cr%et", "s3cr%e", "s3cr%ff"] {
            let err = percent_decode(bad, "the password").unwrap_err().to_string();
            assert!(
                err.contains("the password") && !err.contains("s3cr"),
                "{err}"
            );
        }
    }

    #[test]
    fn passwords_are_found_and_hidden_wherever_a_url_puts_them() {
        let cases = [
            ("redis://u:SECRET@h:1/0", "redis://u:***@h:1/0"),
            // An unencoded `/`, `:` or `@` in the password: the last `@` ends it.
            ("redis://u:SE/CR:E@T@h", "redis://u:***@h"),
            (
                "redis+cluster://:SECRET@a:1,b:2",
                "redis+cluster://:***@a:1,b:2",
            ),
            ("rediss://user@h", "rediss://user@h"),
            (
                "kvkit: cannot open dynamodb://t?endpoint=http://u:SECRET/x@h&region=r",
                "kvkit: cannot open dynamodb://t?endpoint=http://u:***@h&region=r",
            ),
            (
                "dynamodb://t?endpoint=http%3A%2F%2Fu%3ASECRET%40h",
                "dynamodb://t?endpoint=http%3A%2F%2Fu%3A***%40h",
            ),
            ("`AKID:SECRET@t` failed", "`AKID:SECRET@t` failed"),
        ];
        for (text, shown) in cases {
            assert_eq!(redact(text), shown, "{text}");
        }
        assert_eq!(passwords("redis://u:S%2FE@h"), ["S%2FE", "S/E"]);
        assert_eq!(
            passwords("dynamodb://A:B@t?endpoint=http%3A%2F%2Fu%3AS%2525%40h"),
            ["B", "S%2525", "S%25", "S%"]
        );
        assert!(passwords("sqlite:///tmp/a@b.db").is_empty());
        assert_eq!(split_userinfo("//a:b@c@d/0"), (Some("a:b@c"), "d/0"));
    }

    #[test]
    fn redacted_errors_keep_their_variant() {
        let secrets = ["SECRET".to_owned()];
        let err = redact_error(KvError::unavailable("dial u:SECRET@h"), &secrets);
        assert!(
            err.is_retryable() && !err.to_string().contains("SECRET"),
            "{err}"
        );
        let err = redact_error(KvError::InvalidConfig("SECRET".into()), &secrets);
        assert!(
            matches!(&err, KvError::InvalidConfig(m) if m == "***"),
            "{err:?}"
        );
        let err = redact_error(KvError::backend("fine"), &secrets);
        assert_eq!(err.to_string(), "backend error: fine");
    }

    #[test]
    fn options_are_split_out_and_the_rest_kept_as_written() {
        let names = ["timeout", "retries"];
        assert_eq!(
            split_options("memory://", &names),
            ("memory://".to_owned(), vec![])
        );
        let (rest, taken) = split_options("sqlite:///a%3Fb?timeout=1s", &names);
        assert_eq!(rest, "sqlite:///a%3Fb");
        assert_eq!(taken, [("timeout".to_owned(), "1s".to_owned())]);
        let (rest, taken) = split_options("redis://u:p%26@h?namespace=a%26b&retries=2&x", &names);
        assert_eq!(rest, "redis://u:p%26@h?namespace=a%26b&x");
        assert_eq!(taken, [("retries".to_owned(), "2".to_owned())]);
        let (rest, _) = split_options("redis://h?timeout=1s#frag", &names);
        assert_eq!(rest, "redis://h#frag");
        assert_eq!(
            parse_duration("t", "1m 30s").unwrap(),
            std::time::Duration::from_secs(90)
        );
        for bad in ["", "5", "-1s", "1 parsec"] {
            let err = parse_duration("t", bad).unwrap_err().to_string();
            assert!(err.contains("`t="), "{err}");
        }
    }

    #[test]
    fn wrong_schemes_repeats_and_fragments_are_refused() {
        assert!(StoreUrl::parse("sqlite:///kv", "rocksdb").is_err());
        assert!(StoreUrl::parse("rocksdb:///kv?a=1&a=2", "rocksdb").is_err());
        assert!(StoreUrl::parse("rocksdb:///kv#x", "rocksdb").is_err());
    }
}
