//! The two Lua scripts: `compare_and_swap` with an expected value, and `increment` on servers
//! whose integer parsing is not the contract's (see `server.rs`).
//!
//! A script runs atomically on the server that owns its key, in one round trip. Both read the
//! key's live value (Redis treats an expired key as absent inside scripts too) and write only
//! through ordinary Redis commands: the scripts decide, Redis does the writing, so expiry,
//! replication and keyspace notifications are exactly those of the plain commands. Keys and
//! values reach the scripts as `KEYS`/`ARGV` arguments, never as script text.
//!
//! The client calls them with `EVALSHA`; a server that has not seen a script yet answers
//! `NOSCRIPT`, and the client then sends the whole script with `EVAL`, which also caches it on
//! that server: one extra round trip, once per server and script (until the server's script
//! cache is flushed or the server restarts).

use std::sync::LazyLock;

use redis::Cmd;

/// A Lua script that takes one key, and how to call it.
pub(crate) struct LuaScript {
    source: &'static str,
    sha1: String,
}

impl LuaScript {
    fn new(source: &'static str) -> Self {
        Self {
            source,
            sha1: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// `EVALSHA sha1 1 key args...`
    pub(crate) fn evalsha(&self, key: &[u8], args: &[&[u8]]) -> Cmd {
        Self::call("EVALSHA", &self.sha1, key, args)
    }

    /// `EVAL source 1 key args...`
    pub(crate) fn eval(&self, key: &[u8], args: &[&[u8]]) -> Cmd {
        Self::call("EVAL", self.source, key, args)
    }

    fn call(command: &str, script: &str, key: &[u8], args: &[&[u8]]) -> Cmd {
        let mut cmd = redis::cmd(command);
        cmd.arg(script).arg(1).arg(key);
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    }
}

/// `increment` on servers other than Redis and Valkey 6+: `KEYS[1]` the key, `ARGV[1]` the
/// delta.
///
/// Redis's own integer parsing (`string2ll`) accepts exactly the canonical form on Redis 7
/// (the crate's tests pin this), but servers that speak the protocol differ; this check makes
/// the contract's rule hold whatever the server's parser. The pattern accepts `0` or an
/// optional `-` then a non-zero digit then digits; it compares bytes, so a NUL or any other
/// byte fails it. Too many digits for an `i64` pass the pattern and are refused by `INCRBY`
/// itself, with the same error. The arithmetic, and its overflow check, is Redis's `INCRBY`:
/// Lua numbers are doubles and never touch the counter. That includes the result: the integer
/// `INCRBY` replies would become a double in Lua and lose precision beyond 2^53, so the script
/// returns the stored string (`GET`) instead, which is exact. `INCRBY` keeps the key's TTL and
/// creates a missing key without one, as the contract asks.
pub(crate) static INCREMENT: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
local current = redis.call('GET', KEYS[1])
if current and current ~= '0' and not string.find(current, '^%-?[1-9][0-9]*$') then
  return redis.error_reply('ERR value is not an integer or out of range')
end
redis.call('INCRBY', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
",
    )
});

/// `compare_and_swap` with `expected = Some(_)`: `KEYS[1]` the key, `ARGV[1]` the expected value,
/// `ARGV[2]` the new one. Returns 1 when it wrote, 0 otherwise.
///
/// `GET` of an absent or expired key is `false` in Lua, never equal to a string, so an absent
/// key never matches (`Some(b"")` is not `None`). `SET` without options clears any TTL.
pub(crate) static COMPARE_AND_SWAP: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});
