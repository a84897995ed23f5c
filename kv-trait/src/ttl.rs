//! Expiry arithmetic: TTLs in nanoseconds turned into deadlines, saturating, rounding up.
//!
//! Two rules shape everything here. *Never early*: a key is live for every read that starts
//! before `call_start + ttl_ns`, so every rounding goes up, never down. *Saturate*: a TTL too
//! large for the store's clock means "effectively never", not an overflow, an error or an
//! immediate expiry.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::KvError;

const NANOS_PER_MILLI: u64 = 1_000_000;

/// The deadline that means "effectively never", in Unix milliseconds: `i64::MAX`, so that it
/// fits every store's signed 64-bit integer column (about 292 million years from 1970).
pub const NEVER_UNIX_MS: u64 = i64::MAX as u64;

/// Rejects a zero TTL with [`KvError::InvalidTtl`]; any other value is valid.
///
/// ```
/// use kv_trait::{validate_ttl, KvError};
/// assert!(validate_ttl(1).is_ok());
/// assert!(validate_ttl(u64::MAX).is_ok());
/// assert!(matches!(validate_ttl(0), Err(KvError::InvalidTtl(0))));
/// ```
pub fn validate_ttl(ttl_ns: u64) -> Result<(), KvError> {
    if ttl_ns == 0 {
        return Err(KvError::InvalidTtl(ttl_ns));
    }
    Ok(())
}

/// `ttl_ns` in whole milliseconds, rounded up (1 ns is 1 ms, 1 ms + 1 ns is 2 ms).
///
/// ```
/// assert_eq!(kv_trait::ttl_millis_ceil(1), 1);
/// assert_eq!(kv_trait::ttl_millis_ceil(2_000_000), 2);
/// assert_eq!(kv_trait::ttl_millis_ceil(2_000_001), 3);
/// ```
pub fn ttl_millis_ceil(ttl_ns: u64) -> u64 {
    ttl_ns.div_ceil(NANOS_PER_MILLI)
}

/// `ttl_ns` rounded up to a whole multiple of `granularity`, saturating at `u64::MAX`.
/// A zero granularity means exact (nothing to round).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(kv_trait::round_up_ttl(1_500, Duration::from_micros(1)), 2_000);
/// assert_eq!(kv_trait::round_up_ttl(u64::MAX, Duration::from_millis(1)), u64::MAX);
/// ```
pub fn round_up_ttl(ttl_ns: u64, granularity: Duration) -> u64 {
    let step = granularity.as_nanos();
    if step <= 1 {
        return ttl_ns;
    }
    let rounded = u128::from(ttl_ns).div_ceil(step) * step;
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

/// The monotonic deadline of a TTL that started at `start`; `None` when it lies beyond what
/// `Instant` can represent, which means "never expires".
///
/// For in-process stores. Stores shared between processes use [`unix_deadline_ms`].
pub fn instant_deadline(start: Instant, ttl_ns: u64) -> Option<Instant> {
    start.checked_add(Duration::from_nanos(ttl_ns))
}

/// Milliseconds since the Unix epoch of `time`, rounded down (the clock reading a deadline is
/// compared with). Times before 1970 read as 0.
pub fn unix_millis(time: SystemTime) -> u64 {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(NEVER_UNIX_MS)
}

/// The current wall-clock time in Unix milliseconds, rounded down.
pub fn unix_millis_now() -> u64 {
    unix_millis(crate::store::wall_now())
}

/// The wall-clock deadline, in Unix milliseconds, of a TTL that started at `start`.
///
/// Rounded up to the next whole millisecond and saturated at [`NEVER_UNIX_MS`]. With
/// [`is_live_at`], a key stays visible for every read that starts before `start + ttl_ns` and
/// disappears at most 1 ms after it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use kv_trait::{unix_deadline_ms, NEVER_UNIX_MS};
/// let start = UNIX_EPOCH + Duration::from_nanos(1_000_000_500); // 1000.0005 ms
/// assert_eq!(unix_deadline_ms(start, 1), 1001);                  // rounded up
/// let far_future = UNIX_EPOCH + Duration::from_millis(NEVER_UNIX_MS);
/// assert_eq!(unix_deadline_ms(far_future, u64::MAX), NEVER_UNIX_MS); // saturated
/// ```
pub fn unix_deadline_ms(start: SystemTime, ttl_ns: u64) -> u64 {
    let start_ns = start
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let deadline_ms = (start_ns + u128::from(ttl_ns)).div_ceil(u128::from(NANOS_PER_MILLI));
    u64::try_from(deadline_ms).map_or(NEVER_UNIX_MS, |ms| ms.min(NEVER_UNIX_MS))
}

/// True while a key with Unix-millisecond `deadline_ms` is live at clock reading `now_ms`
/// (from [`unix_millis_now`]): the deadline itself is already expired.
///
/// ```
/// assert!(kv_trait::is_live_at(1001, 1000));
/// assert!(!kv_trait::is_live_at(1001, 1001));
/// ```
pub fn is_live_at(deadline_ms: u64, now_ms: u64) -> bool {
    now_ms < deadline_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_never_before_start_plus_ttl_nor_a_millisecond_after() {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        for ttl in [
            1,
            999_999,
            1_000_000,
            1_000_001,
            250_999_999,
            86_400_000_000_000,
        ] {
            let deadline_ns = u128::from(unix_deadline_ms(start, ttl)) * 1_000_000;
            let exact = start.duration_since(UNIX_EPOCH).unwrap().as_nanos() + u128::from(ttl);
            assert!(deadline_ns >= exact, "early for ttl {ttl}");
            assert!(deadline_ns < exact + 1_000_000, "late for ttl {ttl}");
        }
    }

    #[test]
    fn a_read_just_before_the_deadline_sees_the_key() {
        let start = UNIX_EPOCH + Duration::from_nanos(5_000_000_400_000);
        let deadline = unix_deadline_ms(start, 1_000_000); // exact expiry at ...001.4 ms
        let read_at = UNIX_EPOCH + Duration::from_nanos(5_000_001_399_999);
        assert!(is_live_at(deadline, unix_millis(read_at)));
    }

    #[test]
    fn huge_ttls_saturate() {
        let now = SystemTime::now();
        // u64::MAX ns is about 584 years: representable in Unix ms, so not clamped...
        let years_500_ms = 500 * 365 * 86_400_000;
        assert!(unix_deadline_ms(now, u64::MAX) > unix_millis(now) + years_500_ms);
        // ...but a start beyond the i64 range of milliseconds is.
        let far = UNIX_EPOCH + Duration::from_millis(NEVER_UNIX_MS);
        assert_eq!(unix_deadline_ms(far, u64::MAX), NEVER_UNIX_MS);
        assert_eq!(round_up_ttl(u64::MAX - 1, Duration::from_secs(1)), u64::MAX);
        assert_eq!(ttl_millis_ceil(u64::MAX), u64::MAX / 1_000_000 + 1);
    }
}
