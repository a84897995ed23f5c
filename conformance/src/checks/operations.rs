//! Checks for the eight operations' plain semantics (no expiry, no concurrency).

use kv_trait::MAX_KEY_BYTES;

use crate::model::{ErrorKind, Op, Outcome};
use crate::probe::{CheckResult, Probe};

/// `get` of a key never written is `None`; `set` overwrites, last writer wins.
pub(crate) async fn get_and_set(t: Probe) -> CheckResult {
    t.expect_value("never-written", None).await?;
    t.put("k", "first").await?;
    t.put("k", "second").await?;
    t.expect_value("k", Some(b"second")).await?;
    t.put("k", "").await?;
    t.expect_value("k", Some(b"")).await?;
    t.expect_value("never-written", None).await
}

/// `delete` is `true` only when it removed a live key, and touches no other key.
pub(crate) async fn delete_reports_removal(t: Probe) -> CheckResult {
    t.expect(Op::delete("absent"), Outcome::Bool(false)).await?;
    for key in ["a", "ab", "a%"] {
        t.put(key, key).await?;
    }
    t.expect(Op::delete("a"), Outcome::Bool(true)).await?;
    t.expect(Op::delete("a"), Outcome::Bool(false)).await?;
    t.expect_value("a", None).await?;
    t.expect_keys("", &["a%", "ab"]).await
}

/// `exists` is `true` exactly while the key is live, also for an empty value.
pub(crate) async fn exists_tracks_liveness(t: Probe) -> CheckResult {
    t.expect(Op::exists("k"), Outcome::Bool(false)).await?;
    t.put("k", "").await?;
    t.expect(Op::exists("k"), Outcome::Bool(true)).await?;
    t.expect(Op::exists("K"), Outcome::Bool(false)).await?;
    t.expect(Op::delete("k"), Outcome::Bool(true)).await?;
    t.expect(Op::exists("k"), Outcome::Bool(false)).await
}

/// `list_keys` matches a byte prefix: no wildcards (`%`, `_`, `*`, `?`, `[`, `\`), no case folding.
pub(crate) async fn list_prefix_is_literal(t: Probe) -> CheckResult {
    let keys = [
        "A", "a", "a%b", "a*", "a?", "a[b]", "a\\b", "a_b", "aXb", "ab", "axb", "b",
    ];
    for key in keys {
        t.put(key, "v").await?;
    }
    t.expect_keys("a%", &["a%b"]).await?;
    t.expect_keys("a_", &["a_b"]).await?;
    t.expect_keys("a*", &["a*"]).await?;
    t.expect_keys("a?", &["a?"]).await?;
    t.expect_keys("a[", &["a[b]"]).await?;
    t.expect_keys("a\\", &["a\\b"]).await?;
    t.expect_keys("A", &["A"]).await?;
    t.expect_keys("ax", &["axb"]).await?;
    t.expect_keys("c", &[]).await?;
    let mut sorted = keys;
    sorted.sort_unstable();
    t.expect_keys("", &sorted).await
}

/// `list_keys` sorts by bytes (code points, not UTF-16 units, not a collation) and lists each
/// key once however often it was written.
pub(crate) async fn list_sorted_and_unique(t: Probe) -> CheckResult {
    let keys = [
        "\u{10000}",
        "\u{ffff}",
        "\u{e9}",
        "z",
        "Z",
        "a\0",
        "a",
        "\0",
        "\u{1}",
        "a b",
        "ab",
    ];
    for key in keys {
        t.put(key, "1").await?;
        t.put(key, "2").await?;
    }
    t.expect(Op::increment("ab", 1), Outcome::Int(3)).await?;
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    t.expect_keys("", &sorted).await
}

/// The prefix is not a key: `""` lists everything, a prefix longer than any key lists nothing,
/// and a prefix equal to a whole key includes that key.
pub(crate) async fn list_prefix_not_validated(t: Probe) -> CheckResult {
    let longest = "p".repeat(t.profile.max_key_bytes);
    t.put(&longest, "v").await?;
    t.put("p", "v").await?;
    t.expect_keys(&longest, &[&longest]).await?;
    t.expect_keys(&"p".repeat(MAX_KEY_BYTES + 1), &[]).await?;
    t.expect_keys(&"p".repeat(4 * MAX_KEY_BYTES), &[]).await?;
    t.expect_keys("", &["p", &longest]).await
}

/// `increment` on an absent key stores `delta` and returns it, in canonical decimal form.
pub(crate) async fn increment_absent_starts_at_delta(t: Probe) -> CheckResult {
    for (key, delta) in [
        ("a", 5),
        ("b", -3),
        ("c", 0),
        ("d", i64::MIN),
        ("e", i64::MAX),
    ] {
        t.expect(Op::increment(key, delta), Outcome::Int(delta))
            .await?;
        t.expect_value(key, Some(delta.to_string().as_bytes()))
            .await?;
    }
    Ok(())
}

/// `increment` adds to a live counter, whoever wrote it, and stores canonical decimal bytes.
pub(crate) async fn increment_counter_arithmetic(t: Probe) -> CheckResult {
    t.put("n", "40").await?;
    t.expect(Op::increment("n", 2), Outcome::Int(42)).await?;
    t.expect_value("n", Some(b"42")).await?;
    t.expect(Op::increment("n", -50), Outcome::Int(-8)).await?;
    t.expect_value("n", Some(b"-8")).await?;
    t.expect(Op::increment("n", 8), Outcome::Int(0)).await?;
    t.expect_value("n", Some(b"0")).await?;
    t.expect(Op::increment("n", 0), Outcome::Int(0)).await?;
    t.put("big", i64::MAX.to_string()).await?;
    t.expect(Op::increment("big", 0), Outcome::Int(i64::MAX))
        .await?;
    t.put("small", i64::MIN.to_string()).await?;
    t.expect(Op::increment("small", 1), Outcome::Int(i64::MIN + 1))
        .await
}

/// Only the canonical decimal form of an `i64` is a counter; anything else fails with
/// `NotAnInteger` and is left as it was.
pub(crate) async fn increment_rejects_non_counters(t: Probe) -> CheckResult {
    let not_counters: [&[u8]; 17] = [
        b"+1",
        b"01",
        b"-0",
        b" 1",
        b"1 ",
        b"1.0",
        b"",
        b"abc",
        b"1e3",
        b"0x1",
        b"--1",
        b"-",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"\xff",
        b"1\0",
        b"\xd9\xa1",
    ];
    for (i, value) in not_counters.iter().enumerate() {
        let key = format!("v{i}");
        t.put(&key, *value).await?;
        t.expect_error(Op::increment(&key, 1), ErrorKind::NotAnInteger)
            .await?;
        t.expect_value(&key, Some(value)).await?;
    }
    Ok(())
}

/// A result outside `i64` fails with `IntegerOverflow` and changes nothing.
pub(crate) async fn increment_overflow_rejected(t: Probe) -> CheckResult {
    t.put("max", i64::MAX.to_string()).await?;
    t.expect_error(Op::increment("max", 1), ErrorKind::IntegerOverflow)
        .await?;
    t.expect_value("max", Some(i64::MAX.to_string().as_bytes()))
        .await?;
    t.put("min", i64::MIN.to_string()).await?;
    t.expect_error(Op::increment("min", -1), ErrorKind::IntegerOverflow)
        .await?;
    t.expect_error(Op::increment("min", i64::MIN), ErrorKind::IntegerOverflow)
        .await?;
    t.expect_value("min", Some(i64::MIN.to_string().as_bytes()))
        .await?;
    t.expect(Op::increment("n", i64::MAX), Outcome::Int(i64::MAX))
        .await?;
    t.expect_error(Op::increment("n", i64::MAX), ErrorKind::IntegerOverflow)
        .await?;
    t.expect_value("n", Some(i64::MAX.to_string().as_bytes()))
        .await
}

/// CAS with `expected = None` succeeds only on an absent key.
pub(crate) async fn cas_expecting_absent(t: Probe) -> CheckResult {
    t.expect(Op::cas("k", None, "first"), Outcome::Bool(true))
        .await?;
    t.expect_value("k", Some(b"first")).await?;
    t.expect(Op::cas("k", None, "second"), Outcome::Bool(false))
        .await?;
    t.expect_value("k", Some(b"first")).await
}

/// CAS with `Some(e)` succeeds only when the live value is `e` byte for byte.
pub(crate) async fn cas_expecting_value(t: Probe) -> CheckResult {
    t.expect(Op::cas("absent", Some(b"x"), "y"), Outcome::Bool(false))
        .await?;
    t.expect_value("absent", None).await?;
    t.put("k", "abc").await?;
    for wrong in [&b"ABC"[..], b"abc\0", b"ab", b""] {
        t.expect(Op::cas("k", Some(wrong), "no"), Outcome::Bool(false))
            .await?;
    }
    t.expect_value("k", Some(b"abc")).await?;
    t.expect(Op::cas("k", Some(b"abc"), "def"), Outcome::Bool(true))
        .await?;
    t.expect_value("k", Some(b"def")).await?;
    t.expect(Op::cas("k", Some(b"abc"), "ghi"), Outcome::Bool(false))
        .await?;
    t.expect_value("k", Some(b"def")).await
}

/// `Some(b"")` and `None` are different expectations.
pub(crate) async fn cas_empty_is_not_absent(t: Probe) -> CheckResult {
    t.expect(Op::cas("k", Some(b""), "x"), Outcome::Bool(false))
        .await?;
    t.expect_value("k", None).await?;
    t.put("k", "").await?;
    t.expect(Op::cas("k", None, "x"), Outcome::Bool(false))
        .await?;
    t.expect(Op::cas("k", Some(b""), "y"), Outcome::Bool(true))
        .await?;
    t.expect_value("k", Some(b"y")).await
}

/// CAS validates key and new value before looking at the store, whatever the outcome would be.
pub(crate) async fn cas_validates_first(t: Probe) -> CheckResult {
    let max = t.profile.max_value_bytes;
    let too_big = vec![0u8; max + 1];
    t.put("k", "v").await?;
    for expected in [None, Some(&b"v"[..]), Some(&b"other"[..])] {
        t.expect_error(Op::cas("", expected, "n"), ErrorKind::InvalidKey)
            .await?;
        t.expect_error(
            Op::cas("k", expected, too_big.clone()),
            ErrorKind::ValueTooLarge { size: max + 1, max },
        )
        .await?;
    }
    t.expect_value("k", Some(b"v")).await?;
    t.expect_keys("", &["k"]).await
}
