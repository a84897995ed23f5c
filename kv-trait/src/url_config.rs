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
            .ok_or_else(|| invalid(format!("`{url}` is not a {scheme} URL")))?;
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
        let malformed_escape = encoded.split('%').skip(1).any(|after| {
            after.len() < 2 || !after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit)
        });
        if malformed_escape {
            return Err(invalid(format!(
                "the {scheme} URL path `{encoded}` has a `%` not followed by two hex digits"
            )));
        }
        let decoded = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| {
                invalid(format!(
                    "the {scheme} URL path `{encoded}` does not decode to UTF-8"
                ))
            })?;
        Ok(PathBuf::from(decoded.as_ref()))
    }

    /// Removes and returns option `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let index = self.options.iter().position(|(option, _)| option == name)?;
        Some(self.options.remove(index).1)
    }

    /// Removes option `name` and parses it as a non-negative whole number (digits only: no
    /// sign, no spaces).
    pub fn take_number<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, KvError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        let number = digits_only.then(|| value.parse().ok()).flatten();
        number.map(Some).ok_or_else(|| {
            invalid(format!(
                "URL option `{name}={value}`: expected a non-negative whole number"
            ))
        })
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
    fn wrong_schemes_repeats_and_fragments_are_refused() {
        assert!(StoreUrl::parse("sqlite:///kv", "rocksdb").is_err());
        assert!(StoreUrl::parse("rocksdb:///kv?a=1&a=2", "rocksdb").is_err());
        assert!(StoreUrl::parse("rocksdb:///kv#x", "rocksdb").is_err());
    }
}
