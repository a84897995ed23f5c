//! What a benchmark does: the workloads, their operation mixes, and the keys they touch.

use std::fmt;

use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// A workload: which operations, in what proportions, on which keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// 95% `get`, 5% `set`, on keys chosen uniformly.
    ReadHeavy,
    /// 5% `get`, 95% `set`, on keys chosen uniformly.
    WriteHeavy,
    /// Every task increments a few shared counters.
    Counter,
    /// Every task runs compare-and-swap loops (read, swap, retry on conflict) on a few shared
    /// keys.
    Cas,
    /// All eight operations.
    Mixed,
    /// Only `get`: what `redis-benchmark -t get` runs.
    GetOnly,
    /// Only `set`: what `redis-benchmark -t set` runs.
    SetOnly,
    /// Only `get_many`, each of 100 consecutive data keys from a random start (wrapping):
    /// its keys per second compare with get-only's gets per second.
    GetMany,
    /// Only `set_many` (no TTL), each of 100 consecutive data keys from a random start
    /// (wrapping): its keys per second compare with set-only's sets per second.
    SetMany,
}

/// The operations a workload runs, named as in the trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Op {
    Get,
    Set,
    SetWithTtl,
    Delete,
    Exists,
    ListKeys,
    Increment,
    CompareAndSwap,
    GetMany,
    SetMany,
}

impl Op {
    /// Every operation a workload may run: the single-key ones, then the batches.
    pub(crate) const ALL: [Op; 10] = [
        Op::Get,
        Op::Set,
        Op::SetWithTtl,
        Op::Delete,
        Op::Exists,
        Op::ListKeys,
        Op::Increment,
        Op::CompareAndSwap,
        Op::GetMany,
        Op::SetMany,
    ];

    /// The trait method's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::SetWithTtl => "set_with_ttl",
            Op::Delete => "delete",
            Op::Exists => "exists",
            Op::ListKeys => "list_keys",
            Op::Increment => "increment",
            Op::CompareAndSwap => "compare_and_swap",
            Op::GetMany => "get_many",
            Op::SetMany => "set_many",
        }
    }

    /// Whether one operation is one call over a batch of keys.
    pub(crate) fn is_batch(self) -> bool {
        matches!(self, Op::GetMany | Op::SetMany)
    }

    /// The keys one operation reads or writes, in a run of `keys` data keys: a batch's
    /// length for a batch operation, else 1. Keys per second are operations per second
    /// times this.
    pub(crate) fn keys_per_op(self, keys: usize) -> usize {
        match self.is_batch() {
            true => batch_len(keys),
            false => 1,
        }
    }

    /// A dense index, for per-operation arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many shared keys the counter and CAS workloads fight over: few enough that tasks
/// really contend.
pub(crate) const HOT_KEYS: usize = 4;

/// Keys per `list_keys` prefix in the mixed workload: a prefix is a data key without its
/// last two digits.
pub(crate) const LIST_BLOCK: usize = 100;

/// Keys per batch of the get-many and set-many workloads: a batch size applications use (one
/// page of a listing, one `BatchGetItem`), large enough that the per-call cost shows against
/// 100 single calls.
pub(crate) const BATCH_KEYS: usize = 100;

/// The length of every batch in a run of `keys` data keys: [`BATCH_KEYS`], or all the keys
/// when there are fewer (a batch's keys are distinct).
pub(crate) fn batch_len(keys: usize) -> usize {
    BATCH_KEYS.min(keys)
}

impl Workload {
    /// The operations and their weights (out of 100).
    pub(crate) fn mix(self) -> &'static [(Op, u32)] {
        match self {
            Workload::ReadHeavy => &[(Op::Get, 95), (Op::Set, 5)],
            Workload::WriteHeavy => &[(Op::Get, 5), (Op::Set, 95)],
            Workload::Counter => &[(Op::Increment, 100)],
            Workload::Cas => &[(Op::CompareAndSwap, 100)],
            Workload::Mixed => &[
                (Op::Get, 35),
                (Op::Set, 15),
                (Op::SetWithTtl, 5),
                (Op::Delete, 5),
                (Op::Exists, 10),
                (Op::ListKeys, 2),
                (Op::Increment, 15),
                (Op::CompareAndSwap, 13),
            ],
            Workload::GetOnly => &[(Op::Get, 100)],
            Workload::SetOnly => &[(Op::Set, 100)],
            Workload::GetMany => &[(Op::GetMany, 100)],
            Workload::SetMany => &[(Op::SetMany, 100)],
        }
    }

    /// The operations this workload runs, in the trait's order.
    pub(crate) fn ops(self) -> Vec<Op> {
        let mut ops: Vec<Op> = self.mix().iter().map(|&(op, _)| op).collect();
        ops.sort();
        ops
    }

    /// Whether this workload uses the shared counter keys.
    pub(crate) fn uses_hot_keys(self) -> bool {
        self.ops()
            .iter()
            .any(|op| matches!(op, Op::Increment | Op::CompareAndSwap))
    }

    /// The name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::ReadHeavy => "read-heavy",
            Workload::WriteHeavy => "write-heavy",
            Workload::Counter => "counter",
            Workload::Cas => "cas",
            Workload::Mixed => "mixed",
            Workload::GetOnly => "get-only",
            Workload::SetOnly => "set-only",
            Workload::GetMany => "get-many",
            Workload::SetMany => "set-many",
        }
    }
}

/// The keys and value of one benchmark, built before timing starts so that no key is
/// formatted inside the timed loop.
#[derive(Debug)]
pub(crate) struct Keyspace {
    /// The data keys, `key/00000000` onwards: `get`, `set` and friends pick from these.
    pub(crate) data: Vec<String>,
    /// The counters that `increment` and `compare_and_swap` share.
    pub(crate) hot: Vec<String>,
    /// `list_keys` prefixes, each matching a block of [`LIST_BLOCK`] data keys.
    pub(crate) prefixes: Vec<String>,
    /// The value every write stores.
    pub(crate) value: Vec<u8>,
}

impl Keyspace {
    /// `keys` data keys and a value of `value_size` bytes (random, from `seed`).
    pub(crate) fn new(keys: usize, value_size: usize, seed: u64) -> Self {
        let data = (0..keys).map(|i| format!("key/{i:08}")).collect();
        let hot = (0..HOT_KEYS).map(|i| format!("counter/{i}")).collect();
        let blocks = keys.div_ceil(LIST_BLOCK);
        let prefixes = (0..blocks).map(|block| format!("key/{block:06}")).collect();
        let mut rng = SmallRng::seed_from_u64(seed);
        let value = (0..value_size).map(|_| rng.random()).collect();
        Self {
            data,
            hot,
            prefixes,
            value,
        }
    }

    /// The keys of one batch: [`batch_len`] consecutive data keys from the one at `start`,
    /// wrapping round to the first after the last, so that every start gives a full batch of
    /// distinct keys. Consecutive keys are neighbours in a sorted store (a B-tree page, an
    /// SST block) as the keys of an application's batch often are; in a hashed store
    /// (Redis Cluster slots, DynamoDB partitions) they spread as any keys do.
    pub(crate) fn batch(&self, start: usize) -> impl Iterator<Item = &str> {
        let len = self.data.len();
        (0..batch_len(len)).map(move |i| self.data[(start + i) % len].as_str())
    }

    /// Every key a run may have written, for cleaning up.
    pub(crate) fn all_keys(&self) -> impl Iterator<Item = &str> {
        self.data.iter().chain(&self.hot).map(String::as_str)
    }
}

/// Draws operations from a workload's mix.
#[derive(Debug, Clone)]
pub(crate) struct Picker {
    /// Cumulative weights: operation `i` is drawn when the roll is below `cumulative[i].1`.
    cumulative: Vec<(Op, u32)>,
    total: u32,
}

impl Picker {
    pub(crate) fn new(workload: Workload) -> Self {
        let mut total = 0;
        let cumulative = workload
            .mix()
            .iter()
            .map(|&(op, weight)| {
                total += weight;
                (op, total)
            })
            .collect();
        Self { cumulative, total }
    }

    pub(crate) fn pick(&self, rng: &mut SmallRng) -> Op {
        let roll = rng.random_range(0..self.total);
        self.cumulative
            .iter()
            .find(|&&(_, upto)| roll < upto)
            .map_or(Op::Get, |&(op, _)| op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_add_up_to_one_hundred_and_mixed_uses_every_operation() {
        for workload in Workload::value_variants() {
            let total: u32 = workload.mix().iter().map(|&(_, weight)| weight).sum();
            assert_eq!(total, 100, "{workload:?}");
        }
        let single_key: Vec<Op> = Op::ALL.into_iter().filter(|op| !op.is_batch()).collect();
        assert_eq!(Workload::Mixed.ops(), single_key);
        assert_eq!(single_key.len(), 8);
        // Every operation once in ALL, and `index` fits the arrays sized by it.
        for (i, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i, "{op}");
        }
    }

    #[test]
    fn batch_workloads_run_one_batch_operation_only() {
        for (workload, op, name) in [
            (Workload::GetMany, Op::GetMany, "get-many"),
            (Workload::SetMany, Op::SetMany, "set-many"),
        ] {
            assert_eq!(workload.ops(), [op]);
            assert_eq!(workload.name(), name);
            assert_eq!(
                Workload::from_str(name, false).ok(),
                Some(workload),
                "the command line's name"
            );
            assert!(!workload.uses_hot_keys());
            let picker = Picker::new(workload);
            let mut rng = SmallRng::seed_from_u64(3);
            assert!((0..1000).all(|_| picker.pick(&mut rng) == op));
            assert!(op.is_batch());
        }
        assert_eq!(Op::GetMany.name(), "get_many");
        assert_eq!(Op::SetMany.name(), "set_many");
    }

    #[test]
    fn keys_per_operation_are_a_batch_for_batches_and_one_otherwise() {
        assert_eq!(Op::GetMany.keys_per_op(1000), BATCH_KEYS);
        assert_eq!(Op::SetMany.keys_per_op(100), 100);
        // Fewer data keys than a batch: the batch is all of them.
        assert_eq!(Op::SetMany.keys_per_op(40), 40);
        assert_eq!(Op::Get.keys_per_op(1000), 1);
        assert_eq!(Op::CompareAndSwap.keys_per_op(5), 1);
    }

    #[test]
    fn batches_are_consecutive_distinct_keys_wrapping_round() {
        let keys = Keyspace::new(250, 8, 1);
        let first: Vec<&str> = keys.batch(0).collect();
        assert_eq!(first.len(), BATCH_KEYS);
        assert_eq!(first[0], "key/00000000");
        assert_eq!(first[99], "key/00000099");
        // From near the end, the batch goes on from the first key.
        let wrapped: Vec<&str> = keys.batch(200).collect();
        assert_eq!(wrapped.len(), BATCH_KEYS);
        assert_eq!(wrapped[49], "key/00000249");
        assert_eq!(wrapped[50], "key/00000000");
        assert_eq!(wrapped[99], "key/00000049");
        for start in [0, 1, 150, 249] {
            let batch: std::collections::HashSet<&str> = keys.batch(start).collect();
            assert_eq!(batch.len(), BATCH_KEYS, "distinct keys from {start}");
        }
        // Fewer keys than a batch: every key once, from the start.
        let few = Keyspace::new(7, 8, 1);
        let all: Vec<&str> = few.batch(5).collect();
        assert_eq!(
            all,
            [
                "key/00000005",
                "key/00000006",
                "key/00000000",
                "key/00000001",
                "key/00000002",
                "key/00000003",
                "key/00000004"
            ]
        );
    }

    #[test]
    fn picks_follow_the_weights() {
        let picker = Picker::new(Workload::ReadHeavy);
        let mut rng = SmallRng::seed_from_u64(7);
        let gets = (0..20_000)
            .filter(|_| picker.pick(&mut rng) == Op::Get)
            .count();
        // 95% of 20,000 is 19,000; the binomial deviation is about 31.
        assert!((18_800..19_200).contains(&gets), "{gets} gets");
    }

    #[test]
    fn prefixes_cover_blocks_of_data_keys() {
        let keys = Keyspace::new(250, 16, 1);
        assert_eq!(keys.prefixes, ["key/000000", "key/000001", "key/000002"]);
        let matching = |prefix: &str| keys.data.iter().filter(|k| k.starts_with(prefix)).count();
        assert_eq!(matching(&keys.prefixes[0]), LIST_BLOCK);
        assert_eq!(matching(&keys.prefixes[2]), 50);
        assert_eq!(keys.value.len(), 16);
        assert_eq!(keys.data[249], "key/00000249");
    }
}
