//! The reference model: the contract as a pure state machine, and the vocabulary ([`Op`],
//! [`Outcome`]) in which checks describe what they did and what they expected.

use std::collections::BTreeMap;
use std::fmt;

use kv_trait::{
    apply_increment, check_value_size, format_counter, validate_key_up_to, validate_ttl, KvBackend,
    KvError,
};

/// One call of a [`KvBackend`] operation, with owned arguments.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// `get(key)`
    Get {
        /// The key read.
        key: String,
    },
    /// `set(key, value)`
    Set {
        /// The key written.
        key: String,
        /// The value written.
        value: Vec<u8>,
    },
    /// `set_with_ttl(key, value, ttl_ns)`
    SetWithTtl {
        /// The key written.
        key: String,
        /// The value written.
        value: Vec<u8>,
        /// The TTL in nanoseconds.
        ttl_ns: u64,
    },
    /// `delete(key)`
    Delete {
        /// The key removed.
        key: String,
    },
    /// `exists(key)`
    Exists {
        /// The key tested.
        key: String,
    },
    /// `list_keys(prefix)`
    ListKeys {
        /// The byte prefix.
        prefix: String,
    },
    /// `increment(key, delta)`
    Increment {
        /// The counter's key.
        key: String,
        /// The amount added.
        delta: i64,
    },
    /// `compare_and_swap(key, expected, new)`
    CompareAndSwap {
        /// The key swapped.
        key: String,
        /// The value the key must hold (`None`: must be absent).
        expected: Option<Vec<u8>>,
        /// The value written on success.
        new: Vec<u8>,
    },
}

impl Op {
    /// `get(key)`
    pub fn get(key: impl Into<String>) -> Self {
        Op::Get { key: key.into() }
    }
    /// `set(key, value)`
    pub fn set(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Set {
            key: key.into(),
            value: value.into(),
        }
    }
    /// `set_with_ttl(key, value, ttl_ns)`
    pub fn set_with_ttl(key: impl Into<String>, value: impl Into<Vec<u8>>, ttl_ns: u64) -> Self {
        Op::SetWithTtl {
            key: key.into(),
            value: value.into(),
            ttl_ns,
        }
    }
    /// `delete(key)`
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }
    /// `exists(key)`
    pub fn exists(key: impl Into<String>) -> Self {
        Op::Exists { key: key.into() }
    }
    /// `list_keys(prefix)`
    pub fn list_keys(prefix: impl Into<String>) -> Self {
        Op::ListKeys {
            prefix: prefix.into(),
        }
    }
    /// `increment(key, delta)`
    pub fn increment(key: impl Into<String>, delta: i64) -> Self {
        Op::Increment {
            key: key.into(),
            delta,
        }
    }
    /// `compare_and_swap(key, expected, new)`
    pub fn cas(key: impl Into<String>, expected: Option<&[u8]>, new: impl Into<Vec<u8>>) -> Self {
        Op::CompareAndSwap {
            key: key.into(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.into(),
        }
    }

    /// Every operation of the trait with `key` and harmless other arguments: for checks that
    /// must hold for all eight (key validation, for example).
    pub fn all_with_key(key: &str) -> Vec<Op> {
        vec![
            Op::get(key),
            Op::set(key, "v"),
            Op::set_with_ttl(key, "v", 60_000_000_000),
            Op::delete(key),
            Op::exists(key),
            Op::increment(key, 1),
            Op::cas(key, None, "v"),
            Op::cas(key, Some(b"v"), "w"),
        ]
    }

    /// Runs this operation against `backend`.
    pub async fn apply(&self, backend: &dyn KvBackend) -> Outcome {
        match self {
            Op::Get { key } => backend.get(key).await.map(Outcome::Value),
            Op::Set { key, value } => backend.set(key, value).await.map(|()| Outcome::Done),
            Op::SetWithTtl { key, value, ttl_ns } => backend
                .set_with_ttl(key, value, *ttl_ns)
                .await
                .map(|()| Outcome::Done),
            Op::Delete { key } => backend.delete(key).await.map(Outcome::Bool),
            Op::Exists { key } => backend.exists(key).await.map(Outcome::Bool),
            Op::ListKeys { prefix } => backend.list_keys(prefix).await.map(Outcome::Keys),
            Op::Increment { key, delta } => backend.increment(key, *delta).await.map(Outcome::Int),
            Op::CompareAndSwap { key, expected, new } => backend
                .compare_and_swap(key, expected.as_deref(), new)
                .await
                .map(Outcome::Bool),
        }
        .unwrap_or_else(|err| Outcome::Error(ErrorKind::of(&err)))
    }

    /// Whether this operation may write (`set`, `set_with_ttl`, `increment`,
    /// `compare_and_swap`).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Set { .. }
                | Op::SetWithTtl { .. }
                | Op::Increment { .. }
                | Op::CompareAndSwap { .. }
        )
    }

    /// The key this operation touches (`None` for `list_keys`).
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Get { key }
            | Op::Set { key, .. }
            | Op::SetWithTtl { key, .. }
            | Op::Delete { key }
            | Op::Exists { key }
            | Op::Increment { key, .. }
            | Op::CompareAndSwap { key, .. } => Some(key),
            Op::ListKeys { .. } => None,
        }
    }
}

/// What an [`Op`] returned, in a form checks can compare and print.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Ok(())` from `set` or `set_with_ttl`.
    Done,
    /// `Ok(value)` from `get`.
    Value(Option<Vec<u8>>),
    /// `Ok(bool)` from `delete`, `exists` or `compare_and_swap`.
    Bool(bool),
    /// `Ok(keys)` from `list_keys`.
    Keys(Vec<String>),
    /// `Ok(n)` from `increment`.
    Int(i64),
    /// Any `Err`.
    Error(ErrorKind),
}

impl Outcome {
    /// True for [`Outcome::Error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }
}

/// The comparable part of a [`KvError`]: its variant, and the payload where the contract fixes
/// it (`ValueTooLarge`'s sizes, `InvalidTtl`'s value). Messages are not compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `KvError::InvalidKey(_)`
    InvalidKey,
    /// `KvError::ValueTooLarge { size, max }`
    ValueTooLarge {
        /// The rejected value's length.
        size: usize,
        /// The backend's maximum.
        max: usize,
    },
    /// `KvError::InvalidTtl(ttl)`
    InvalidTtl(u64),
    /// `KvError::NotAnInteger`
    NotAnInteger,
    /// `KvError::IntegerOverflow`
    IntegerOverflow,
    /// `KvError::QuotaExceeded(_)`, with the message.
    QuotaExceeded(String),
    /// `KvError::Unavailable(_)`, with the message: the call may or may not have taken effect.
    Unavailable(String),
    /// An `Unavailable` that says the request never reached the store
    /// ([`KvError::is_not_sent`]), with the message: the call took no effect, and a history
    /// in which it did is not linearizable.
    NotSent(String),
    /// `KvError::Backend(_)` or any other variant, with the message.
    Other(String),
}

impl ErrorKind {
    /// Classifies `err`.
    pub fn of(err: &KvError) -> Self {
        match err {
            KvError::InvalidKey(_) => ErrorKind::InvalidKey,
            KvError::ValueTooLarge { size, max } => ErrorKind::ValueTooLarge {
                size: *size,
                max: *max,
            },
            KvError::InvalidTtl(ttl) => ErrorKind::InvalidTtl(*ttl),
            KvError::NotAnInteger => ErrorKind::NotAnInteger,
            KvError::IntegerOverflow => ErrorKind::IntegerOverflow,
            KvError::QuotaExceeded(why) => ErrorKind::QuotaExceeded(why.clone()),
            KvError::Unavailable(_) if err.is_not_sent() => ErrorKind::NotSent(err.to_string()),
            KvError::Unavailable(_) => ErrorKind::Unavailable(err.to_string()),
            _ => ErrorKind::Other(err.to_string()),
        }
    }
}

/// One key's state in the [`Model`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ModelEntry {
    value: Vec<u8>,
    /// Nanoseconds on the model's clock at which the key expires; `None`: never.
    deadline: Option<u128>,
}

/// The contract as a pure state machine over a virtual clock.
///
/// [`Model::apply`] returns exactly the [`Outcome`] a conforming backend returns for the same
/// operation at the same virtual time (for `list_keys` and errors, the only answer the
/// contract allows; where the contract allows several errors, the one the adapters here pick:
/// key, then value, then TTL).
///
/// ```
/// use kv_conformance::{Model, Op, Outcome};
/// let mut model = Model::new(1024 * 1024);
/// assert_eq!(model.apply(&Op::increment("n", 2), 0), Outcome::Int(2));
/// assert_eq!(model.apply(&Op::get("n"), 0), Outcome::Value(Some(b"2".to_vec())));
/// model.apply(&Op::set_with_ttl("t", "x", 10), 0);
/// assert_eq!(model.apply(&Op::exists("t"), 9), Outcome::Bool(true));
/// assert_eq!(model.apply(&Op::exists("t"), 10), Outcome::Bool(false));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Model {
    entries: BTreeMap<String, ModelEntry>,
    max_value_bytes: usize,
    max_key_bytes: usize,
}

impl Default for Model {
    /// An empty store of the contract's default limits.
    fn default() -> Self {
        Self::new(kv_trait::DEFAULT_MAX_VALUE_BYTES)
    }
}

impl Model {
    /// An empty store whose values may be at most `max_value_bytes` long (keys: the
    /// contract's 1024 bytes).
    pub fn new(max_value_bytes: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            max_value_bytes,
            max_key_bytes: kv_trait::MAX_KEY_BYTES,
        }
    }

    /// The same store, with keys of at most `max_key_bytes` (a backend that declares a
    /// smaller [`Capabilities::max_key_bytes`](kv_trait::Capabilities::max_key_bytes)).
    pub fn with_max_key_bytes(mut self, max_key_bytes: usize) -> Self {
        self.max_key_bytes = max_key_bytes;
        self
    }

    /// Applies `op` at virtual time `now_ns` and returns what the contract says it returns.
    pub fn apply(&mut self, op: &Op, now_ns: u128) -> Outcome {
        self.entries
            .retain(|_, entry| entry.deadline.is_none_or(|d| now_ns < d));
        self.apply_live(op, now_ns)
            .unwrap_or_else(|err| Outcome::Error(ErrorKind::of(&err)))
    }

    /// Removes every deadline: the linearizability checker applies writes at virtual time 0
    /// and tracks each key's deadline itself, as an interval of possible instants.
    pub(crate) fn forget_deadlines(&mut self) {
        for entry in self.entries.values_mut() {
            entry.deadline = None;
        }
    }

    /// The live keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    fn apply_live(&mut self, op: &Op, now_ns: u128) -> Result<Outcome, KvError> {
        if let Some(key) = op.key() {
            validate_key_up_to(key, self.max_key_bytes)?;
        }
        Ok(match op {
            Op::Get { key } => Outcome::Value(self.value(key).map(<[u8]>::to_vec)),
            Op::Set { key, value } => {
                check_value_size(value, self.max_value_bytes)?;
                self.put(key, value.clone(), None);
                Outcome::Done
            }
            Op::SetWithTtl { key, value, ttl_ns } => {
                check_value_size(value, self.max_value_bytes)?;
                validate_ttl(*ttl_ns)?;
                self.put(key, value.clone(), Some(now_ns + u128::from(*ttl_ns)));
                Outcome::Done
            }
            Op::Delete { key } => Outcome::Bool(self.entries.remove(key).is_some()),
            Op::Exists { key } => Outcome::Bool(self.entries.contains_key(key)),
            Op::ListKeys { prefix } => Outcome::Keys(
                self.keys()
                    .filter(|k| k.starts_with(prefix.as_str()))
                    .map(str::to_owned)
                    .collect(),
            ),
            Op::Increment { key, delta } => {
                let next = apply_increment(self.value(key), *delta)?;
                let deadline = self.entries.get(key).and_then(|e| e.deadline);
                self.put(key, format_counter(next), deadline);
                Outcome::Int(next)
            }
            Op::CompareAndSwap { key, expected, new } => {
                check_value_size(new, self.max_value_bytes)?;
                let swapped = self.value(key) == expected.as_deref();
                if swapped {
                    self.put(key, new.clone(), None);
                }
                Outcome::Bool(swapped)
            }
        })
    }

    fn value(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(|entry| entry.value.as_slice())
    }

    fn put(&mut self, key: &str, value: Vec<u8>, deadline: Option<u128>) {
        self.entries
            .insert(key.to_owned(), ModelEntry { value, deadline });
    }
}

/// Longest rendering of one key or value in reports; longer ones are shortened.
const SHOWN_BYTES: usize = 48;

/// Formats bytes for a report: as an escaped string when UTF-8, else as escaped bytes, and
/// shortened with the full length when long.
pub(crate) struct Shown<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        let head = &bytes[..bytes.len().min(SHOWN_BYTES)];
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                let head: String = text.chars().take(SHOWN_BYTES).collect();
                write!(f, "{head:?}")?;
            }
            Err(_) => write!(f, "b\"{}\"", head.escape_ascii())?,
        }
        if bytes.len() > SHOWN_BYTES {
            write!(f, "…({} bytes)", bytes.len())?;
        }
        Ok(())
    }
}

fn shown_opt(value: &Option<Vec<u8>>) -> String {
    match value {
        Some(v) => format!("Some({})", Shown(v)),
        None => "None".into(),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = |k: &str| Shown(k.as_bytes()).to_string();
        match self {
            Op::Get { key: k } => write!(f, "get({})", key(k)),
            Op::Set { key: k, value } => write!(f, "set({}, {})", key(k), Shown(value)),
            Op::SetWithTtl {
                key: k,
                value,
                ttl_ns,
            } => {
                write!(f, "set_with_ttl({}, {}, {ttl_ns} ns)", key(k), Shown(value))
            }
            Op::Delete { key: k } => write!(f, "delete({})", key(k)),
            Op::Exists { key: k } => write!(f, "exists({})", key(k)),
            Op::ListKeys { prefix } => write!(f, "list_keys({})", key(prefix)),
            Op::Increment { key: k, delta } => write!(f, "increment({}, {delta})", key(k)),
            Op::CompareAndSwap {
                key: k,
                expected,
                new,
            } => {
                write!(
                    f,
                    "compare_and_swap({}, {}, {})",
                    key(k),
                    shown_opt(expected),
                    Shown(new)
                )
            }
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done => write!(f, "Ok(())"),
            Outcome::Value(value) => write!(f, "Ok({})", shown_opt(value)),
            Outcome::Bool(b) => write!(f, "Ok({b})"),
            Outcome::Int(n) => write!(f, "Ok({n})"),
            Outcome::Keys(keys) => {
                let shown: Vec<String> = keys
                    .iter()
                    .map(|k| Shown(k.as_bytes()).to_string())
                    .collect();
                write!(f, "Ok([{}])", shown.join(", "))
            }
            Outcome::Error(kind) => write!(f, "Err({kind:?})"),
        }
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increment_keeps_the_deadline_and_cas_drops_it() {
        let mut model = Model::new(100);
        model.apply(&Op::set_with_ttl("n", "1", 10), 0);
        assert_eq!(model.apply(&Op::increment("n", 1), 5), Outcome::Int(2));
        assert_eq!(model.apply(&Op::get("n"), 10), Outcome::Value(None));
        model.apply(&Op::set_with_ttl("c", "a", 10), 0);
        assert_eq!(
            model.apply(&Op::cas("c", Some(b"a"), "b"), 1),
            Outcome::Bool(true)
        );
        assert_eq!(model.apply(&Op::exists("c"), 1_000), Outcome::Bool(true));
    }

    #[test]
    fn invalid_inputs_change_nothing() {
        let mut model = Model::new(4);
        model.apply(&Op::set("k", "old"), 0);
        let too_big = Op::set("k", "12345");
        assert_eq!(
            model.apply(&too_big, 0),
            Outcome::Error(ErrorKind::ValueTooLarge { size: 5, max: 4 })
        );
        assert_eq!(
            model.apply(&Op::set_with_ttl("k", "x", 0), 0),
            Outcome::Error(ErrorKind::InvalidTtl(0))
        );
        assert_eq!(
            model.apply(&Op::get("k"), 0),
            Outcome::Value(Some(b"old".to_vec()))
        );
    }

    #[test]
    fn long_values_are_shortened_in_reports() {
        let shown = Shown(&[b'x'; 100]).to_string();
        assert!(shown.ends_with("…(100 bytes)"), "{shown}");
        assert_eq!(Shown(b"\xff\x00").to_string(), "b\"\\xff\\x00\"");
    }
}
