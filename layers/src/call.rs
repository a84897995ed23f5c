//! [`Call`]: one operation of a [`KvBackend`](kv_trait::KvBackend) with its inputs, as a
//! layer sees it, and what may be done with it when it fails.

use std::num::NonZeroUsize;

use kv_trait::{check_value_size, validate_key, validate_ttl, KvError};

/// The operations of [`KvBackend`](kv_trait::KvBackend), for naming (metrics labels, events,
/// per-operation timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// `get`
    Get,
    /// `set`
    Set,
    /// `set_with_ttl`
    SetWithTtl,
    /// `delete`
    Delete,
    /// `exists`
    Exists,
    /// `list_keys`
    ListKeys,
    /// `increment`
    Increment,
    /// `compare_and_swap`
    CompareAndSwap,
    /// `get_many`
    GetMany,
    /// `set_many`
    SetMany,
    /// `delete_many`
    DeleteMany,
    /// `list_keys_page`
    ListKeysPage,
}

impl Operation {
    /// Every operation, in the trait's order.
    pub const ALL: [Operation; 12] = [
        Operation::Get,
        Operation::Set,
        Operation::SetWithTtl,
        Operation::Delete,
        Operation::Exists,
        Operation::ListKeys,
        Operation::Increment,
        Operation::CompareAndSwap,
        Operation::GetMany,
        Operation::SetMany,
        Operation::DeleteMany,
        Operation::ListKeysPage,
    ];

    /// The method's name: `"get"`, `"compare_and_swap"`... (as kv-trait's trace spans name it).
    pub fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::SetWithTtl => "set_with_ttl",
            Operation::Delete => "delete",
            Operation::Exists => "exists",
            Operation::ListKeys => "list_keys",
            Operation::Increment => "increment",
            Operation::CompareAndSwap => "compare_and_swap",
            Operation::GetMany => "get_many",
            Operation::SetMany => "set_many",
            Operation::DeleteMany => "delete_many",
            Operation::ListKeysPage => "list_keys_page",
        }
    }

    /// Whether the operation may change the store.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Set
                | Operation::SetWithTtl
                | Operation::Delete
                | Operation::Increment
                | Operation::CompareAndSwap
                | Operation::SetMany
                | Operation::DeleteMany
        )
    }

    /// When a failed call of this operation may be sent again; see [`Resend`].
    pub fn resend(self) -> Resend {
        match self.is_write() {
            true => Resend::IfNotSent,
            false => Resend::Always,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// When a call that failed with `Unavailable` may be sent again.
///
/// The contract's lost-reply rule: a write whose reply was lost is never resent in a way that
/// could apply it twice (`increment`, `delete`'s answer) or after a later write by someone
/// else (`set`: a resent value would overwrite the newer one). So a write is resent only when
/// its error says the store never saw it ([`KvError::is_not_sent`]); a read, which changes
/// nothing, always may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A read: resending changes nothing.
    Always,
    /// A write: only if the failed attempt never reached the store.
    IfNotSent,
}

impl Resend {
    /// Whether a call that failed with `err` may be sent again.
    pub fn allows(self, err: &KvError) -> bool {
        err.is_retryable() && (self == Resend::Always || err.is_not_sent())
    }
}

/// One call of a [`KvBackend`](kv_trait::KvBackend) operation with its inputs, as a layer's
/// [`Around::around`](crate::Around::around) is given it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Call<'a> {
    /// `get(key)`
    Get(&'a str),
    /// `set(key, value)`
    Set(&'a str, &'a [u8]),
    /// `set_with_ttl(key, value, ttl_ns)`
    SetWithTtl(&'a str, &'a [u8], u64),
    /// `delete(key)`
    Delete(&'a str),
    /// `exists(key)`
    Exists(&'a str),
    /// `list_keys(prefix)`
    ListKeys(&'a str),
    /// `increment(key, delta)`
    Increment(&'a str, i64),
    /// `compare_and_swap(key, expected, new)`
    CompareAndSwap(&'a str, Option<&'a [u8]>, &'a [u8]),
    /// `get_many(keys)`
    GetMany(&'a [&'a str]),
    /// `set_many(entries, ttl_ns)`
    SetMany(&'a [(&'a str, &'a [u8])], Option<u64>),
    /// `delete_many(keys)`
    DeleteMany(&'a [&'a str]),
    /// `list_keys_page(prefix, start_after, limit)`
    ListKeysPage(&'a str, Option<&'a str>, NonZeroUsize),
}

impl Call<'_> {
    /// Which operation this is.
    pub fn operation(&self) -> Operation {
        match self {
            Call::Get(..) => Operation::Get,
            Call::Set(..) => Operation::Set,
            Call::SetWithTtl(..) => Operation::SetWithTtl,
            Call::Delete(..) => Operation::Delete,
            Call::Exists(..) => Operation::Exists,
            Call::ListKeys(..) => Operation::ListKeys,
            Call::Increment(..) => Operation::Increment,
            Call::CompareAndSwap(..) => Operation::CompareAndSwap,
            Call::GetMany(..) => Operation::GetMany,
            Call::SetMany(..) => Operation::SetMany,
            Call::DeleteMany(..) => Operation::DeleteMany,
            Call::ListKeysPage(..) => Operation::ListKeysPage,
        }
    }

    /// The contract's checks of this call's inputs, in its order (keys, then values, then
    /// the TTL), with the backend's `max_value_bytes`: the error the store would return, so
    /// that a layer which acts before the store (a fault injected, a call refused) never
    /// answers invalid input with anything else.
    pub fn check(&self, max_value_bytes: usize) -> Result<(), KvError> {
        match *self {
            Call::Get(key) | Call::Delete(key) | Call::Exists(key) | Call::Increment(key, _) => {
                validate_key(key)
            }
            Call::Set(key, value) => {
                validate_key(key)?;
                check_value_size(value, max_value_bytes)
            }
            Call::SetWithTtl(key, value, ttl_ns) => {
                validate_key(key)?;
                check_value_size(value, max_value_bytes)?;
                validate_ttl(ttl_ns)
            }
            Call::CompareAndSwap(key, _, new) => {
                validate_key(key)?;
                check_value_size(new, max_value_bytes)
            }
            Call::GetMany(keys) | Call::DeleteMany(keys) => {
                keys.iter().try_for_each(|key| validate_key(key))
            }
            Call::SetMany(entries, ttl_ns) => {
                for (key, value) in entries {
                    validate_key(key)?;
                    check_value_size(value, max_value_bytes)?;
                }
                ttl_ns.map_or(Ok(()), validate_ttl)
            }
            Call::ListKeys(_) | Call::ListKeysPage(..) => Ok(()),
        }
    }

    /// Whether the call would reach the store at all: an empty batch succeeds without it.
    pub fn is_empty_batch(&self) -> bool {
        match self {
            Call::GetMany(keys) | Call::DeleteMany(keys) => keys.is_empty(),
            Call::SetMany(entries, _) => entries.is_empty(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_resent_after_a_reply_that_may_be_lost() {
        let lost = KvError::unavailable("reply lost");
        let refused = KvError::not_sent("connection refused");
        for operation in Operation::ALL {
            let resend = operation.resend();
            assert_eq!(resend.allows(&lost), !operation.is_write(), "{operation}");
            assert!(resend.allows(&refused), "{operation}");
            assert!(!resend.allows(&KvError::NotAnInteger), "{operation}");
        }
    }

    #[test]
    fn inputs_are_checked_in_the_contracts_order() {
        let long = "k".repeat(kv_trait::MAX_KEY_BYTES + 1);
        let checks = [
            (Call::Get(""), "invalid key"),
            (Call::SetWithTtl("", b"toolong", 0), "invalid key"),
            (Call::SetWithTtl("k", b"toolong", 0), "larger"),
            (Call::SetWithTtl("k", b"v", 0), "TTL"),
            (Call::CompareAndSwap(&long, None, b"v"), "invalid key"),
            (
                Call::SetMany(&[("k", b"v"), ("k", b"toolong")], Some(0)),
                "larger",
            ),
            (Call::DeleteMany(&["k", ""]), "invalid key"),
        ];
        for (call, error) in checks {
            let err = call.check(4).unwrap_err().to_string();
            assert!(err.contains(error), "{call:?}: {err}");
        }
        assert!(Call::ListKeys(&long).check(4).is_ok());
        assert!(Call::SetMany(&[], None).is_empty_batch());
        assert_eq!(Call::Increment("k", 1).operation().name(), "increment");
    }
}
