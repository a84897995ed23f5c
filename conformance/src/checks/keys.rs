//! Checks for the key rules: non-empty, at most 1024 bytes, any Unicode, stored exactly.

use kv_trait::MAX_KEY_BYTES;

use crate::model::{ErrorKind, Op, Outcome};
use crate::probe::{CheckResult, Probe};

/// Keys that stores commonly mangle: wildcards of every query language, escapes, control
/// characters, non-BMP text, look-alikes that differ only by normalization or whitespace.
pub(crate) fn hostile_keys() -> Vec<String> {
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
    keys.push("k".repeat(MAX_KEY_BYTES));
    keys.push("\u{e9}".repeat(MAX_KEY_BYTES / 2));
    keys.push("😀".repeat(MAX_KEY_BYTES / 4));
    keys
}

/// Every operation rejects the empty key with `InvalidKey`, and writes nothing.
pub(crate) async fn empty_key_rejected(t: Probe) -> CheckResult {
    for op in Op::all_with_key("") {
        t.expect_error(op, ErrorKind::InvalidKey).await?;
    }
    t.expect_keys("", &[]).await
}

/// Every operation rejects keys over 1024 bytes (counted in bytes, not characters).
pub(crate) async fn long_key_rejected(t: Probe) -> CheckResult {
    let ascii = "k".repeat(MAX_KEY_BYTES + 1);
    let multibyte = "\u{e9}".repeat(MAX_KEY_BYTES / 2 - 1) + "\u{20ac}"; // 1022 + 3 bytes, 512 chars
    for key in [ascii, multibyte] {
        for op in Op::all_with_key(&key) {
            t.expect_error(op, ErrorKind::InvalidKey).await?;
        }
    }
    t.expect_keys("", &[]).await
}

/// Keys of exactly 1024 bytes work with every operation.
pub(crate) async fn max_length_key_accepted(t: Probe) -> CheckResult {
    for key in [
        "k".repeat(MAX_KEY_BYTES),
        "\u{e9}".repeat(MAX_KEY_BYTES / 2),
        "😀".repeat(MAX_KEY_BYTES / 4),
    ] {
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
    let keys = hostile_keys();
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
