//! Checks for the value rules: any bytes, empty is not absent, a declared maximum.

use crate::model::{ErrorKind, Op, Outcome};
use crate::probe::{CheckResult, Probe};

/// `b""` is a value: `get` returns `Some(vec![])`, whichever operation wrote it.
pub(crate) async fn empty_value_is_some(t: Probe) -> CheckResult {
    t.put("set", "").await?;
    t.expect_value("set", Some(b"")).await?;
    t.expect(Op::exists("set"), Outcome::Bool(true)).await?;
    t.expect(Op::set_with_ttl("ttl", "", u64::MAX), Outcome::Done)
        .await?;
    t.expect_value("ttl", Some(b"")).await?;
    t.expect(Op::cas("cas", None, ""), Outcome::Bool(true))
        .await?;
    t.expect_value("cas", Some(b"")).await?;
    t.expect_keys("", &["cas", "set", "ttl"]).await
}

/// Arbitrary bytes (NUL, invalid UTF-8, every byte value) come back exactly.
pub(crate) async fn binary_values_exact(t: Probe) -> CheckResult {
    let every_byte: Vec<u8> = (0..=255).collect();
    let values: [&[u8]; 6] = [
        &every_byte,
        b"\0",
        b"\0\0",
        b"\xff\xfe\xfd",
        b"a\0",
        b"\xc3\x28",
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("v{i}");
        t.put(&key, *value).await?;
        t.expect_value(&key, Some(value)).await?;
    }
    Ok(())
}

/// A value of exactly the declared maximum is accepted by every writing operation.
pub(crate) async fn max_size_value_accepted(t: Probe) -> CheckResult {
    let max = t.profile.max_value_bytes;
    let value: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
    t.put("set", value.clone()).await?;
    t.expect_value("set", Some(&value)).await?;
    t.expect(
        Op::set_with_ttl("ttl", value.clone(), u64::MAX),
        Outcome::Done,
    )
    .await?;
    t.expect_value("ttl", Some(&value)).await?;
    t.expect(Op::cas("cas", None, value.clone()), Outcome::Bool(true))
        .await?;
    t.expect_value("cas", Some(&value)).await
}

/// One byte over the maximum fails with `ValueTooLarge { size, max }` and writes nothing, even
/// where a compare-and-swap would not have matched.
pub(crate) async fn oversize_value_rejected(t: Probe) -> CheckResult {
    let max = t.profile.max_value_bytes;
    let too_big = vec![b'x'; max + 1];
    let error = ErrorKind::ValueTooLarge { size: max + 1, max };
    t.put("k", "old").await?;
    for key in ["k", "absent"] {
        t.expect_error(Op::set(key, too_big.clone()), error.clone())
            .await?;
        t.expect_error(
            Op::set_with_ttl(key, too_big.clone(), 60_000_000_000),
            error.clone(),
        )
        .await?;
        t.expect_error(Op::cas(key, Some(b"old"), too_big.clone()), error.clone())
            .await?;
        t.expect_error(Op::cas(key, None, too_big.clone()), error.clone())
            .await?;
        t.expect_error(
            Op::cas(key, Some(b"mismatch"), too_big.clone()),
            error.clone(),
        )
        .await?;
    }
    t.expect_value("k", Some(b"old")).await?;
    t.expect_value("absent", None).await?;
    t.expect_keys("", &["k"]).await
}
