//! Checks for the key rules: non-empty, at most 1024 bytes (or the backend's declared
//! maximum), any Unicode, stored exactly.

use crate::model::{ErrorKind, Op, Outcome};
use crate::probe::{CheckResult, Probe};

/// Keys that stores commonly mangle: wildcards of every query language, escapes, control
/// characters, non-BMP text, look-alikes that differ only by normalization or whitespace.
pub(crate) fn hostile_keys(max_key_bytes: usize) -> Vec<String> {
    let mut keys: Vec<String> = [
        "*",
        "?",
        "[",
        "]",
        "[a-z]",
        "%",
        "_",
        "a%b",
        "a_b",
        "\\",
        "\\*",
        "/",
        "a/b",
        ":",
        "a:b",
        " ",
        " a",
        "a ",
        "\0",
        "a\0b",
        "\u{1}",
        "\t",
        "\n",
        "\r\n",
        "\u{7f}",
        "'",
        "\"",
        "';--",
        "$1",
        "{}",
        "\u{e9}",
        "e\u{301}",
        "\u{fffd}",
        "\u{feff}",
        "\u{ffff}",
        "\u{10000}",
        "\u{10ffff}",
        "😀",
        "ß",
        "SS",
        "İ",
        "i",
        "key",
        "Key",
        "KEY",
    ]
    .iter()
    .map(|k| (*k).to_owned())
    .collect();
    keys.extend(longest_keys(max_key_bytes));
    keys
}

/// Keys of exactly `max_key_bytes` bytes: one-byte, two-byte and four-byte characters (each as
/// long as whole characters allow, padded with `k`).
fn longest_keys(max_key_bytes: usize) -> [String; 3] {
    let padded = |c: &str| {
        let whole = c.repeat(max_key_bytes / c.len());
        let pad = "k".repeat(max_key_bytes - whole.len());
        whole + &pad
    };
    ["k".repeat(max_key_bytes), padded("\u{e9}"), padded("😀")]
}

/// Every operation rejects the empty key with `InvalidKey`, and writes nothing.
pub(crate) async fn empty_key_rejected(t: Probe) -> CheckResult {
    for op in Op::all_with_key("") {
        t.expect_error(op, ErrorKind::InvalidKey).await?;
    }
    t.expect_keys("", &[]).await
}

/// Every operation rejects keys over 1024 bytes, or the declared maximum (counted in bytes,
/// not characters).
pub(crate) async fn long_key_rejected(t: Probe) -> CheckResult {
    let max = t.profile.max_key_bytes;
    let ascii = "k".repeat(max + 1);
    // Two bytes short of the maximum, then a three-byte character: 1025 bytes, 512 chars.
    let multibyte = "\u{e9}".repeat((max - 2) / 2) + &"k".repeat(max % 2) + "\u{20ac}";
    for key in [ascii, multibyte] {
        for op in Op::all_with_key(&key) {
            t.expect_error(op, ErrorKind::InvalidKey).await?;
        }
    }
    t.expect_keys("", &[]).await
}

/// Keys of exactly 1024 bytes (or the declared maximum) work with every operation.
pub(crate) async fn max_length_key_accepted(t: Probe) -> CheckResult {
    for key in longest_keys(t.profile.max_key_bytes) {
        t.expect(Op::cas(&key, None, "1"), Outcome::Bool(true))
            .await?;
        t.expect(Op::increment(&key, 1), Outcome::Int(2)).await?;
        t.expect_value(&key, Some(b"2")).await?;
        t.expect(Op::exists(&key), Outcome::Bool(true)).await?;
        t.expect_keys(&key, &[&key]).await?;
        t.expect(Op::delete(&key), Outcome::Bool(true)).await?;
    }
    Ok(())
}

/// Hostile keys are each stored under their own identity and listed back byte for byte.
pub(crate) async fn keys_stored_exactly(t: Probe) -> CheckResult {
    let keys = hostile_keys(t.profile.max_key_bytes);
    for (i, key) in keys.iter().enumerate() {
        t.put(key, i.to_string()).await?;
    }
    for (i, key) in keys.iter().enumerate() {
        t.expect_value(key, Some(i.to_string().as_bytes())).await?;
        t.expect(Op::exists(key), Outcome::Bool(true)).await?;
    }
    let mut sorted = keys.clone();
    sorted.sort();
    t.expect(Op::list_keys(""), Outcome::Keys(sorted)).await
}

/// Case is significant: `key`, `Key` and `KEY` are three keys.
pub(crate) async fn keys_case_sensitive(t: Probe) -> CheckResult {
    t.put("key", "lower").await?;
    t.expect_value("Key", None).await?;
    t.put("KEY", "upper").await?;
    t.expect_value("key", Some(b"lower")).await?;
    t.expect(Op::delete("Key"), Outcome::Bool(false)).await?;
    t.expect_keys("", &["KEY", "key"]).await
}
