//! Leases that reclaim expired keys, shared by the keys whose deadlines fall in the same
//! ten seconds.
//!
//! Expiry itself is decided by the deadline in the value (see [`encoding`](crate::encoding)),
//! to the millisecond. A lease only makes etcd delete the key some time after that deadline,
//! so that expired keys do not pile up. A lease of whole seconds, rounded up, never ends before
//! the deadline it covers: a lease granted at `t` with TTL `n` seconds lives at least until
//! `t + n` on the server (a leader change only extends it), and `n` is counted from a clock
//! reading taken before the grant was sent.
//!
//! One lease per ten-second bucket of deadlines, kept per backend: most `set_with_ttl` calls
//! then need no grant, only their put. A key is deleted at most about 12 s after its deadline.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Deadlines within this many milliseconds share a lease.
pub(crate) const BUCKET_MS: u64 = 10_000;

/// Seconds a lease outlives the end of its bucket: the rounding of the clock reading to whole
/// seconds, and a margin.
const MARGIN_S: u64 = 2;

/// etcd's longest lease (`MaxLeaseTTL`, 9e9 s, about 285 years). A deadline further away
/// than that is "effectively never": such a key is stored without a deadline or lease.
pub(crate) const MAX_LEASE_TTL_S: u64 = 9_000_000_000;

/// The leases this backend granted, by the end of their bucket (Unix seconds).
#[derive(Debug, Default)]
pub(crate) struct Leases {
    by_bucket_end: Mutex<BTreeMap<u64, i64>>,
}

/// What a deadline needs: an existing lease, or a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Attach the key to this lease.
    Have(i64),
    /// Grant a lease of `ttl_s` seconds for the bucket ending at `bucket_end_s`, then
    /// [`Leases::remember`] it.
    Grant {
        /// The bucket's end, Unix seconds.
        bucket_end_s: u64,
        /// The lease's TTL.
        ttl_s: u64,
    },
    /// The deadline is beyond any lease: store the key without one, and without a deadline.
    Never,
}

impl Leases {
    /// What a key with deadline `deadline_ms` needs, judged with clock reading `now_ms`.
    pub(crate) fn need(&self, deadline_ms: u64, now_ms: u64) -> Need {
        let bucket_end_s = deadline_ms
            .div_ceil(BUCKET_MS)
            .saturating_mul(BUCKET_MS / 1000);
        let ttl_s = bucket_end_s
            .saturating_sub(now_ms / 1000)
            .saturating_add(MARGIN_S);
        if ttl_s > MAX_LEASE_TTL_S {
            return Need::Never;
        }
        let mut leases = self.lock();
        // Buckets that ended are of no more use to any deadline.
        let now_s = now_ms / 1000;
        while leases
            .first_key_value()
            .is_some_and(|(&end, _)| end < now_s)
        {
            leases.pop_first();
        }
        match leases.get(&bucket_end_s) {
            Some(&lease) => Need::Have(lease),
            None => Need::Grant {
                bucket_end_s,
                ttl_s,
            },
        }
    }

    /// Keeps `lease`, granted for the bucket ending at `bucket_end_s`.
    pub(crate) fn remember(&self, bucket_end_s: u64, lease: i64) {
        self.lock().insert(bucket_end_s, lease);
    }

    /// Forgets `lease` (etcd said it is gone).
    pub(crate) fn forget(&self, lease: i64) {
        self.lock().retain(|_, kept| *kept != lease);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, i64>> {
        self.by_bucket_end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_outlives_every_deadline_of_its_bucket() {
        let leases = Leases::default();
        let now_ms = 1_700_000_000_999;
        for deadline_ms in [now_ms + 1, now_ms + 9_000, now_ms + 86_400_000] {
            let Need::Grant {
                bucket_end_s,
                ttl_s,
            } = leases.need(deadline_ms, now_ms)
            else {
                panic!("a first deadline needs a grant");
            };
            // Granted no earlier than `now_ms / 1000` (rounded down), it ends after the
            // bucket, which ends at or after the deadline.
            assert!((now_ms / 1000 + ttl_s) * 1000 > deadline_ms);
            assert!(bucket_end_s * 1000 >= deadline_ms);
            assert!(bucket_end_s * 1000 < deadline_ms + BUCKET_MS);
            leases.remember(bucket_end_s, 7);
            assert_eq!(leases.need(deadline_ms, now_ms), Need::Have(7));
            leases.forget(7);
        }
    }

    #[test]
    fn deadlines_share_a_bucket_and_old_buckets_go() {
        let leases = Leases::default();
        leases.remember(1_000, 1); // bucket (990 s, 1000 s]
        assert_eq!(leases.need(995_000, 990_000), Need::Have(1));
        assert_eq!(leases.need(1_000_000, 990_000), Need::Have(1));
        assert!(matches!(
            leases.need(1_000_001, 990_000),
            Need::Grant {
                bucket_end_s: 1_010,
                ..
            }
        ));
        // Once the bucket ended, it is dropped.
        assert!(matches!(
            leases.need(1_005_000_000, 1_001_000),
            Need::Grant { .. }
        ));
        assert!(leases.lock().is_empty());
        assert_eq!(leases.need(u64::MAX, 0), Need::Never);
        assert_eq!(
            leases.need(kv_trait::NEVER_UNIX_MS, 1_700_000_000_000),
            Need::Never
        );
    }
}
