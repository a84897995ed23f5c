//! Which server answers, read once from `INFO server` when the backend connects, and what
//! follows from it: whether `increment` may be a bare `INCRBY`.
//!
//! The contract's counters are the canonical decimal form of an `i64` (what `i64::to_string`
//! writes) and nothing else: `+1`, `01`, `-0` or ` 1` are not counters. Redis parses an
//! `INCRBY` operand with `string2ll`, which accepts exactly that form (a lone `0`, or an
//! optional `-`, a digit from 1 to 9 and at most 18 more digits, within the `i64` range), and
//! Valkey kept that parser. On those servers a bare `INCRBY` refuses exactly the values the
//! contract refuses, in one round trip, with no script. Other servers that speak the protocol
//! parse differently (Dragonfly, for one, reads integers with another library), and servers
//! older than the ones the tests pin are not assumed: they keep the increment script, which
//! checks the form before `INCRBY` (see `scripts.rs`).
//!
//! The tests pin the equivalence on every server they run against
//! (`redis_integers_are_exactly_the_canonical_counters`, over 24 hostile forms).

/// How `increment` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Increments {
    /// A bare `INCRBY`: the server's own parsing is the contract's.
    Native,
    /// The increment script: the contract's form checked in Lua, then `INCRBY`.
    Scripted,
}

/// The oldest Redis (or Valkey-reported Redis) major version given a bare `INCRBY`: the
/// oldest the tests run against is 6.2.
const OLDEST_NATIVE_MAJOR: u32 = 6;

impl Increments {
    /// What the `INFO server` text of one server allows. A server is taken for Redis or Valkey
    /// only when every `*_version` field it reports is one of theirs: another server that
    /// also reports a `redis_version` (for compatibility) names itself in a field of its own.
    pub(crate) fn for_server(info: &str) -> Self {
        let fields = || {
            info.lines()
                .filter_map(|line| line.trim_end_matches('\r').split_once(':'))
        };
        let known_version_field =
            |name: &str| matches!(name, "redis_version" | "valkey_version" | "gcc_version");
        if fields().any(|(name, _)| name.ends_with("_version") && !known_version_field(name)) {
            return Self::Scripted;
        }
        if fields().any(|(name, value)| name == "server_name" && value != "valkey") {
            return Self::Scripted;
        }
        let major = fields()
            .find(|(name, _)| *name == "redis_version")
            .and_then(|(_, version)| version.split('.').next()?.parse::<u32>().ok());
        match major {
            Some(major) if major >= OLDEST_NATIVE_MAJOR => Self::Native,
            _ => Self::Scripted,
        }
    }

    /// For several servers (the primaries of a cluster): native only if every one is.
    pub(crate) fn for_servers<'a>(infos: impl IntoIterator<Item = &'a str>) -> Self {
        let mut any = false;
        for info in infos {
            any = true;
            if Self::for_server(info) == Self::Scripted {
                return Self::Scripted;
            }
        }
        if any {
            Self::Native
        } else {
            Self::Scripted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIS_7: &str = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n\
        redis_mode:standalone\r\nos:Linux 6.1.0 x86_64\r\ngcc_version:12.2.0\r\n\
        process_id:1\r\n";
    const REDIS_6: &str = "# Server\r\nredis_version:6.2.14\r\nredis_mode:cluster\r\n";
    const VALKEY_8: &str = "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\n\
        valkey_version:8.0.1\r\nvalkey_release_stage:ga\r\ngcc_version:12.2.0\r\n";
    const DRAGONFLY: &str = "# Server\r\nredis_version:7.4.0\r\n\
        dragonfly_version:df-v1.25.0\r\nredis_mode:standalone\r\n";
    const REDIS_5: &str = "# Server\r\nredis_version:5.0.14\r\n";

    #[test]
    fn redis_and_valkey_from_6_increment_natively() {
        assert_eq!(Increments::for_server(REDIS_7), Increments::Native);
        assert_eq!(Increments::for_server(REDIS_6), Increments::Native);
        assert_eq!(Increments::for_server(VALKEY_8), Increments::Native);
    }

    #[test]
    fn other_older_and_unknown_servers_keep_the_script() {
        assert_eq!(Increments::for_server(DRAGONFLY), Increments::Scripted);
        assert_eq!(Increments::for_server(REDIS_5), Increments::Scripted);
        assert_eq!(Increments::for_server(""), Increments::Scripted);
        assert_eq!(
            Increments::for_server("redis_version:7.0.0\r\nserver_name:other\r\n"),
            Increments::Scripted
        );
        assert_eq!(
            Increments::for_server("redis_version:seven\r\n"),
            Increments::Scripted
        );
    }

    #[test]
    fn a_cluster_increments_natively_only_if_every_primary_can() {
        assert_eq!(
            Increments::for_servers([REDIS_7, VALKEY_8]),
            Increments::Native
        );
        assert_eq!(
            Increments::for_servers([REDIS_7, REDIS_5]),
            Increments::Scripted
        );
        assert_eq!(Increments::for_servers([]), Increments::Scripted);
    }
}
