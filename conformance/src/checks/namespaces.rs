//! Checks that backends from the factory (separate namespaces) never see each other's keys.

use crate::model::{Op, Outcome};
use crate::probe::{CheckResult, Probe};

/// Keys written through one backend are invisible to every operation of another namespace,
/// and each lists only its own keys, without any namespace part.
pub(crate) async fn namespaces_isolated(t: Probe) -> CheckResult {
    let other = t.another_backend().await?;
    for key in ["shared", "mine", "counter"] {
        t.put(key, "1").await?;
    }
    t.expect_on(&other, Op::get("shared"), Outcome::Value(None))
        .await?;
    t.expect_on(&other, Op::exists("mine"), Outcome::Bool(false))
        .await?;
    t.expect_on(&other, Op::list_keys(""), Outcome::Keys(vec![]))
        .await?;
    t.expect_on(&other, Op::delete("mine"), Outcome::Bool(false))
        .await?;
    t.expect_on(&other, Op::increment("counter", 10), Outcome::Int(10))
        .await?;
    t.expect_on(&other, Op::cas("shared", None, "2"), Outcome::Bool(true))
        .await?;
    t.expect_on(
        &other,
        Op::cas("mine", Some(b"1"), "2"),
        Outcome::Bool(false),
    )
    .await?;
    t.expect_on(&other, Op::set("theirs", "3"), Outcome::Done)
        .await?;
    t.expect_value("shared", Some(b"1")).await?;
    t.expect_value("counter", Some(b"1")).await?;
    t.expect_value("theirs", None).await?;
    t.expect_keys("", &["counter", "mine", "shared"]).await?;
    let theirs = ["counter", "shared", "theirs"].map(String::from).to_vec();
    t.expect_on(&other, Op::list_keys(""), Outcome::Keys(theirs))
        .await
}
