//! Checks for expiry: never early, never much late, and which operations keep or drop a TTL.
//!
//! Timing checks never guess. Each measures the time around every call and only judges a read
//! that the contract decides: one that *ended* before `call_start + ttl` must see the key; one
//! that *started* after `call_end + ttl + granularity` must not. When a loaded machine leaves a
//! check with no decisive observation, it is retried with a longer TTL; it is never counted as
//! a pass.
//!
//! Deadlines are kept on the clock of whatever decides expiry (the contract's "granularity
//! and the clock"): the process's monotonic clock for in-process stores, the wall clock for
//! files and most servers. The kit cannot know which, and the two may run at different rates
//! (a wall clock being slewed or stepped into line runs fast or slow), so every instant is
//! read on both, and a read is judged only when both clocks agree that the contract decides
//! it: a store keeping either clock passes.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use crate::model::{ErrorKind, Op, Outcome};
use crate::probe::{CheckResult, Probe};
use crate::report::Failure;

/// The TTL of the first attempt; each retry doubles it.
const BASE_TTL: Duration = Duration::from_millis(150);
/// Attempts before a check that could not decide is reported as a failure.
const ATTEMPTS: u32 = 4;
/// How long before the deadline the never-early check starts reading as fast as it can.
const SPIN_BEFORE_DEADLINE: Duration = Duration::from_millis(3);
/// TTLs that break naive arithmetic: `as i64` casts, ns→µs multiplications, `Instant`
/// overflow, unsigned wrap-around. All must mean "lives for a long time".
const HUGE_TTLS: [u64; 6] = [
    u64::MAX,
    u64::MAX - 1,
    1 << 63,
    (1 << 63) - 1,
    1 << 62,
    1_000_000_000_000_000_000, // about 31.7 years
];

/// Whether an attempt reached a verdict.
enum Timing {
    Decided,
    Undecided(String),
}

/// A moment on both clocks a store may keep its deadlines on.
#[derive(Debug, Clone, Copy)]
struct Moment {
    monotonic: Instant,
    wall: SystemTime,
}

impl Moment {
    fn now() -> Self {
        Self {
            monotonic: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn plus(self, duration: Duration) -> Self {
        Self {
            monotonic: self.monotonic + duration,
            // A deadline past what SystemTime holds is never reached.
            wall: self.wall.checked_add(duration).unwrap_or(self.wall),
        }
    }

    /// Whether `self` is before `other` on both clocks.
    fn before(self, other: Moment) -> bool {
        self.monotonic < other.monotonic && self.wall < other.wall
    }

    /// How long until `other` on the clock that reaches it last (zero if both have).
    fn until(self, other: Moment) -> Duration {
        let monotonic = other.monotonic.saturating_duration_since(self.monotonic);
        let wall = other.wall.duration_since(self.wall).unwrap_or_default();
        monotonic.max(wall)
    }
}

/// One call with the moments around it.
struct Timed {
    outcome: Outcome,
    start: Moment,
    end: Moment,
}

async fn timed(t: &Probe, op: Op) -> Timed {
    let start = Moment::now();
    let outcome = t.run(op).await;
    Timed {
        outcome,
        start,
        end: Moment::now(),
    }
}

/// A successful `set_with_ttl` and the two moments the contract measures from.
struct Written {
    /// Reads that end before this must see the key.
    live_until: Moment,
    /// Reads that start after this must not.
    gone_after: Moment,
}

async fn write_with_ttl(
    t: &Probe,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<Written, Failure> {
    let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    let call = timed(t, Op::set_with_ttl(key, value, ttl_ns)).await;
    if call.outcome != Outcome::Done {
        return Err(Failure::mismatch(
            format!("set_with_ttl({key:?}) failed"),
            Outcome::Done,
            call.outcome,
        ));
    }
    Ok(Written {
        live_until: call.start.plus(ttl),
        gone_after: call.end.plus(ttl + t.profile.ttl_granularity),
    })
}

/// Sleeps until just after `moment`, on both clocks.
async fn sleep_past(moment: Moment) {
    loop {
        let left = Moment::now().until(moment);
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left).await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Runs `attempt` with TTLs of 150 ms, 300 ms, ... until it decides.
async fn until_decided<F, Fut>(t: &Probe, attempt: F) -> CheckResult
where
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Result<Timing, Failure>>,
{
    for n in 0..ATTEMPTS {
        match attempt(n, BASE_TTL * 2u32.pow(n)).await? {
            Timing::Decided => return Ok(()),
            Timing::Undecided(why) => t.note(format!(
                "(timing could not decide: {why}; retrying with a longer TTL)"
            )),
        }
    }
    Err(Failure::new(format!(
        "no attempt of {ATTEMPTS} could be decided: calls took longer than TTLs of up to {:?}",
        BASE_TTL * 2u32.pow(ATTEMPTS - 1)
    )))
}

/// Reads that end before `call_start + ttl` see the key, up to the last moment. The TTL has a
/// fractional millisecond, so a store that rounds it down loses the key too early.
pub(crate) async fn never_early(t: Probe) -> CheckResult {
    until_decided(&t, |n, ttl| {
        let t = t.clone();
        async move {
            let key = format!("early-{n}");
            let ttl = ttl + Duration::from_nanos(999_999);
            let written = write_with_ttl(&t, &key, b"v", ttl).await?;
            let first = timed(&t, Op::get(&key)).await;
            if !first.end.before(written.live_until) {
                return Ok(Timing::Undecided("the first read ended after the deadline".into()));
            }
            expect_live(&first, &written)?;
            sleep_until_before(written.live_until, SPIN_BEFORE_DEADLINE).await;
            let mut near_deadline = 0;
            for round in 0u64.. {
                let read = timed(&t, reading_op(&key, round)).await;
                if read.end.before(written.live_until) {
                    expect_live(&read, &written)?;
                    near_deadline += 1;
                } else if written.gone_after.before(read.start) {
                    break;
                }
                tokio::task::yield_now().await;
            }
            t.note(format!("{near_deadline} decisive reads within {SPIN_BEFORE_DEADLINE:?} of the deadline saw the key"));
            Ok(Timing::Decided)
        }
    })
    .await
}

/// Cycles through the three reading operations, so each is tested near the deadline.
fn reading_op(key: &str, round: u64) -> Op {
    match round % 3 {
        0 => Op::get(key),
        1 => Op::exists(key),
        _ => Op::list_keys(key),
    }
}

fn expect_live(read: &Timed, written: &Written) -> CheckResult {
    let live = match &read.outcome {
        Outcome::Value(value) => value.is_some(),
        Outcome::Bool(exists) => *exists,
        Outcome::Keys(keys) => !keys.is_empty(),
        other => return Err(Failure::mismatch("a read failed", "a live key", other)),
    };
    if live {
        return Ok(());
    }
    // As much as both clocks agree on.
    let early = (written
        .live_until
        .monotonic
        .saturating_duration_since(read.end.monotonic))
    .min(
        written
            .live_until
            .wall
            .duration_since(read.end.wall)
            .unwrap_or_default(),
    );
    Err(Failure::mismatch(
        format!("the key was gone {early:?} before its TTL ran out (never early)"),
        "the key, still live",
        &read.outcome,
    ))
}

/// Sleeps until `margin` before `deadline` on the clock that reaches it first.
async fn sleep_until_before(deadline: Moment, margin: Duration) {
    let now = Moment::now();
    let monotonic = deadline.monotonic.saturating_duration_since(now.monotonic);
    let wall = deadline.wall.duration_since(now.wall).unwrap_or_default();
    tokio::time::sleep(monotonic.min(wall).saturating_sub(margin)).await;
}

/// A read that starts after `call_end + ttl + granularity` does not see the key.
pub(crate) async fn never_much_late(t: Probe) -> CheckResult {
    let written = write_with_ttl(&t, "late", b"v", BASE_TTL).await?;
    sleep_past(written.gone_after).await;
    t.expect_value("late", None).await?;
    t.expect(Op::exists("late"), Outcome::Bool(false)).await?;
    t.expect_keys("", &[]).await
}

/// An expired key is absent for all eight operations.
pub(crate) async fn expired_key_absent_everywhere(t: Probe) -> CheckResult {
    let keys = [
        "x-cas-none",
        "x-cas-some",
        "x-delete",
        "x-exists",
        "x-get",
        "x-incr",
    ];
    let mut last = None;
    for key in keys {
        last = Some(write_with_ttl(&t, key, b"7", BASE_TTL).await?);
    }
    if let Some(written) = last {
        sleep_past(written.gone_after).await;
    }
    t.expect_keys("x-", &[]).await?;
    t.expect_value("x-get", None).await?;
    t.expect(Op::exists("x-exists"), Outcome::Bool(false))
        .await?;
    t.expect(Op::delete("x-delete"), Outcome::Bool(false))
        .await?;
    t.expect(Op::increment("x-incr", 5), Outcome::Int(5))
        .await?;
    t.expect(
        Op::cas("x-cas-some", Some(b"7"), "new"),
        Outcome::Bool(false),
    )
    .await?;
    t.expect_value("x-cas-some", None).await?;
    t.expect(Op::cas("x-cas-none", None, "new"), Outcome::Bool(true))
        .await?;
    t.expect_keys("x-", &["x-cas-none", "x-incr"]).await
}

/// `set_with_ttl` with a TTL of zero fails with `InvalidTtl(0)` and changes nothing.
pub(crate) async fn zero_ttl_rejected(t: Probe) -> CheckResult {
    t.expect_error(Op::set_with_ttl("absent", "v", 0), ErrorKind::InvalidTtl(0))
        .await?;
    t.put("k", "old").await?;
    t.expect_error(Op::set_with_ttl("k", "new", 0), ErrorKind::InvalidTtl(0))
        .await?;
    t.expect_value("k", Some(b"old")).await?;
    t.expect_keys("", &["k"]).await
}

/// TTLs up to `u64::MAX` are accepted and mean "lives on": no overflow, no immediate expiry.
pub(crate) async fn huge_ttl_saturates(t: Probe) -> CheckResult {
    let mut keys = Vec::new();
    for ttl in HUGE_TTLS {
        let key = format!("huge-{ttl}");
        t.expect(Op::set_with_ttl(&key, "v", ttl), Outcome::Done)
            .await?;
        keys.push(key);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for key in &keys {
        t.expect_value(key, Some(b"v")).await?;
    }
    keys.sort();
    t.expect(Op::list_keys("huge-"), Outcome::Keys(keys)).await
}

/// `set` removes a key's TTL.
pub(crate) async fn set_clears_ttl(t: Probe) -> CheckResult {
    let written = write_with_ttl(&t, "k", b"old", BASE_TTL).await?;
    t.put("k", "new").await?;
    sleep_past(written.gone_after).await;
    t.expect_value("k", Some(b"new")).await
}

/// `set_with_ttl` on a key replaces its TTL, shorter or longer.
pub(crate) async fn set_with_ttl_replaces_ttl(t: Probe) -> CheckResult {
    t.expect(
        Op::set_with_ttl("shorter", "a", 3_600_000_000_000),
        Outcome::Done,
    )
    .await?;
    let written = write_with_ttl(&t, "shorter", b"b", BASE_TTL).await?;
    write_with_ttl(&t, "longer", b"a", BASE_TTL).await?;
    t.expect(
        Op::set_with_ttl("longer", "b", 3_600_000_000_000),
        Outcome::Done,
    )
    .await?;
    sleep_past(written.gone_after).await;
    t.expect_value("shorter", None).await?;
    t.expect_value("longer", Some(b"b")).await
}

/// A successful compare-and-swap writes the new value with no TTL.
pub(crate) async fn cas_clears_ttl(t: Probe) -> CheckResult {
    until_decided(&t, |n, ttl| {
        let t = t.clone();
        async move {
            let key = format!("cas-{n}");
            let written = write_with_ttl(&t, &key, b"old", ttl).await?;
            let swap = timed(&t, Op::cas(&key, Some(b"old"), "new")).await;
            if swap.outcome != Outcome::Bool(true) {
                if !swap.end.before(written.live_until) {
                    return Ok(Timing::Undecided("the CAS ended after the deadline".into()));
                }
                return Err(Failure::mismatch(
                    "CAS on the live value failed",
                    Outcome::Bool(true),
                    swap.outcome,
                ));
            }
            sleep_past(written.gone_after).await;
            t.expect_value(&key, Some(b"new")).await?;
            Ok(Timing::Decided)
        }
    })
    .await
}

/// `increment` on a live key keeps its TTL as it was: it neither drops nor restarts it.
pub(crate) async fn increment_keeps_ttl(t: Probe) -> CheckResult {
    until_decided(&t, |n, ttl| {
        let t = t.clone();
        async move {
            let key = format!("n-{n}");
            let written = write_with_ttl(&t, &key, b"5", ttl).await?;
            tokio::time::sleep(ttl / 2).await;
            let bump = timed(&t, Op::increment(&key, 1)).await;
            if !bump.end.before(written.live_until) {
                return Ok(Timing::Undecided(
                    "the increment ended after the deadline".into(),
                ));
            }
            if bump.outcome != Outcome::Int(6) {
                return Err(Failure::mismatch(
                    "increment of a live counter",
                    Outcome::Int(6),
                    bump.outcome,
                ));
            }
            sleep_past(written.gone_after).await;
            t.expect_value(&key, None).await?;
            Ok(Timing::Decided)
        }
    })
    .await
}

/// `increment` that creates a key (absent or expired) creates it without TTL.
pub(crate) async fn increment_creates_without_ttl(t: Probe) -> CheckResult {
    let written = write_with_ttl(&t, "n", b"7", BASE_TTL).await?;
    sleep_past(written.gone_after).await;
    t.expect(Op::increment("n", 1), Outcome::Int(1)).await?;
    tokio::time::sleep(BASE_TTL + t.profile.ttl_granularity).await;
    t.expect_value("n", Some(b"1")).await
}
