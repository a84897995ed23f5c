//! The Lua scripts: `compare_and_swap` with an expected value, `increment` on servers whose
//! integer parsing is not the contract's (see `server.rs`), and, with `watch=true`, every
//! write, so that it can announce its change (see `watch.rs`).
//!
//! A script runs atomically on the server that owns its key, in one round trip. They read the
//! key's live value (Redis treats an expired key as absent inside scripts too) and write only
//! through ordinary Redis commands: the scripts decide, Redis does the writing, so expiry,
//! replication and keyspace notifications are exactly those of the plain commands. Keys and
//! values reach the scripts as `KEYS`/`ARGV` arguments, never as script text.
//!
//! **Announcing.** `ARGV[1]` of every script is the watch channel, or `""` when the backend
//! was not opened with `watch=true`. A script that changed its key `PUBLISH`es the change
//! there before it returns ([`announcement`] says how the message reads), so the message
//! leaves in the same atomic step as the write, and each key's messages in the order of its
//! writes. A script that changed nothing announces nothing.
//!
//! The client calls them with `EVALSHA`; a server that has not seen a script yet answers
//! `NOSCRIPT`, and the client then sends the whole script with `EVAL`, which also caches it on
//! that server: one extra round trip, once per server and script (until the server's script
//! cache is flushed or the server restarts).

use std::sync::LazyLock;

use redis::Cmd;

/// A Lua script that takes one key, and how to call it.
pub(crate) struct LuaScript {
    source: String,
    sha1: String,
}

/// Defines `announce(kind, value)` for the script body that follows: `PUBLISH` on the channel
/// `ARGV[1]` (unless it is empty) the message `kind`, the key's length in decimal, `:`, the
/// key, then `value`. The length makes any key and value bytes unambiguous.
const ANNOUNCE: &str = r"
local function announce(kind, value)
  if ARGV[1] ~= '' then
    redis.call('PUBLISH', ARGV[1], kind .. #KEYS[1] .. ':' .. KEYS[1] .. value)
  end
end
";

impl LuaScript {
    /// `body`, after the definition of `announce`.
    fn new(body: &str) -> Self {
        let source = format!("{ANNOUNCE}{body}");
        Self {
            sha1: redis::Script::new(&source).get_hash().to_owned(),
            source,
        }
    }

    /// `EVALSHA sha1 1 key args...`
    pub(crate) fn evalsha(&self, key: &[u8], args: &[&[u8]]) -> Cmd {
        Self::call("EVALSHA", &self.sha1, key, args)
    }

    /// `EVAL source 1 key args...`
    pub(crate) fn eval(&self, key: &[u8], args: &[&[u8]]) -> Cmd {
        Self::call("EVAL", &self.source, key, args)
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

/// `increment` on servers other than Redis and Valkey 6+, and on every server with
/// `watch=true`: `KEYS[1]` the key, `ARGV[1]` the watch channel, `ARGV[2]` the delta, and
/// `ARGV[3]` present (`check`) to check the counter's form first.
///
/// Redis's own integer parsing (`string2ll`) accepts exactly the canonical form on Redis 7
/// (the crate's tests pin this), but servers that speak the protocol differ; the check makes
/// the contract's rule hold whatever the server's parser. The pattern accepts `0` or an
/// optional `-` then a non-zero digit then digits; it compares bytes, so a NUL or any other
/// byte fails it. Too many digits for an `i64` pass the pattern and are refused by `INCRBY`
/// itself, with the same error. The arithmetic, and its overflow check, is Redis's `INCRBY`:
/// Lua numbers are doubles and never touch the counter. That includes the result: the integer
/// `INCRBY` replies would become a double in Lua and lose precision beyond 2^53, so the script
/// returns (and announces) the stored string (`GET`) instead, which is exact. `INCRBY` keeps
/// the key's TTL and creates a missing key without one, as the contract asks.
pub(crate) static INCREMENT: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
if ARGV[3] then
  local current = redis.call('GET', KEYS[1])
  if current and current ~= '0' and not string.find(current, '^%-?[1-9][0-9]*$') then
    return redis.error_reply('ERR value is not an integer or out of range')
  end
end
redis.call('INCRBY', KEYS[1], ARGV[2])
local counter = redis.call('GET', KEYS[1])
announce('s', counter)
return counter
",
    )
});

/// `compare_and_swap` with `expected = Some(_)`: `KEYS[1]` the key, `ARGV[1]` the watch
/// channel, `ARGV[2]` the expected value, `ARGV[3]` the new one. Returns 1 when it wrote, 0
/// otherwise.
///
/// `GET` of an absent or expired key is `false` in Lua, never equal to a string, so an absent
/// key never matches (`Some(b"")` is not `None`). `SET` without options clears any TTL.
pub(crate) static COMPARE_AND_SWAP: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3])
  announce('s', ARGV[3])
  return 1
end
return 0
",
    )
});

/// `set` and `set_with_ttl` with `watch=true`: `KEYS[1]` the key, `ARGV[1]` the watch channel,
/// `ARGV[2]` the value, `ARGV[3]` (if present) the `PX` milliseconds.
pub(crate) static SET: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
if ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
announce('s', ARGV[2])
",
    )
});

/// `compare_and_swap` with `expected = None` and `watch=true`: `SET NX`. `KEYS[1]` the key,
/// `ARGV[1]` the watch channel, `ARGV[2]` the value. Returns 1 when it wrote, 0 otherwise.
pub(crate) static CREATE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
if redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  announce('s', ARGV[2])
  return 1
end
return 0
",
    )
});

/// `delete` with `watch=true`: `KEYS[1]` the key, `ARGV[1]` the watch channel. Returns how
/// many keys `DEL` removed (0 or 1); only a removal is announced.
pub(crate) static DELETE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
local removed = redis.call('DEL', KEYS[1])
if removed > 0 then
  announce('d', '')
end
return removed
",
    )
});

/// What a script announces, read back: the change's kind (`b's'` set, `b'd'` deleted), the
/// Redis key and the new value (empty for a deletion). `None` for a message no script of this
/// crate wrote.
pub(crate) fn announcement(message: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&kind, rest) = message.split_first()?;
    let colon = rest.iter().position(|&byte| byte == b':')?;
    let length: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let rest = &rest[colon + 1..];
    (length <= rest.len()).then(|| {
        let (key, value) = rest.split_at(length);
        (kind, key, value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_any_key_and_value_bytes() {
        assert_eq!(
            announcement(b"s5:ns:k1value"),
            Some((b's', &b"ns:k1"[..], &b"value"[..]))
        );
        // A colon or digits in the key or value change nothing: the length decides.
        assert_eq!(
            announcement(b"s4:a:12:3:"),
            Some((b's', &b"a:12"[..], &b":3:"[..]))
        );
        assert_eq!(
            announcement(b"d3:k\x00z"),
            Some((b'd', &b"k\x00z"[..], &b""[..]))
        );
        assert_eq!(announcement(b""), None);
        assert_eq!(announcement(b"s"), None);
        assert_eq!(announcement(b"sx:k"), None);
        assert_eq!(announcement(b"s9:short"), None);
    }
}
