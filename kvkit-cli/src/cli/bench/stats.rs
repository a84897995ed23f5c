//! What a run measured: per-operation counts and latency histograms, per round, and the
//! medians and percentiles reported from them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::workload::Op;

/// Latencies are recorded in nanoseconds with three significant figures (0.1% resolution);
/// the histogram grows to fit the slowest operation seen.
const SIGNIFICANT_FIGURES: u8 = 3;

/// One operation's measurements.
#[derive(Debug, Clone)]
pub(crate) struct OpStats {
    /// Operations completed.
    pub(crate) count: u64,
    /// Compare-and-swap attempts lost to another writer (and retried).
    pub(crate) retries: u64,
    /// Latency of each operation, in nanoseconds.
    pub(crate) latency: Histogram<u64>,
}

impl OpStats {
    fn new() -> Self {
        Self {
            count: 0,
            retries: 0,
            latency: Histogram::new(SIGNIFICANT_FIGURES)
                .expect("3 significant figures is within hdrhistogram's range of 0 to 5"),
        }
    }

    fn merge(&mut self, other: &OpStats) {
        self.count += other.count;
        self.retries += other.retries;
        // Both histograms grow on demand, so adding one to the other cannot run out of range.
        let _ = self.latency.add(&other.latency);
    }

    /// The latency at `quantile` (0.5 for the median).
    pub(crate) fn at(&self, quantile: f64) -> Duration {
        Duration::from_nanos(self.latency.value_at_quantile(quantile))
    }

    /// The slowest operation.
    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.latency.max())
    }
}

/// What one task measured.
#[derive(Debug, Default)]
pub(crate) struct TaskStats {
    ops: BTreeMap<Op, OpStats>,
}

impl TaskStats {
    pub(crate) fn record(&mut self, op: Op, elapsed: Duration, retries: u64) {
        let stats = self.ops.entry(op).or_insert_with(OpStats::new);
        stats.count += 1;
        stats.retries += retries;
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        // `record` grows the histogram to fit (`saturating_record` would clamp instead).
        if stats.latency.record(nanos).is_err() {
            stats.latency.saturating_record(nanos);
        }
    }
}

/// What one round measured: every task's operations, and the round's wall time.
#[derive(Debug, Default, Clone)]
pub(crate) struct RoundStats {
    pub(crate) ops: BTreeMap<Op, OpStats>,
    pub(crate) elapsed: Duration,
}

impl RoundStats {
    pub(crate) fn add(&mut self, task: TaskStats) {
        for (op, stats) in task.ops {
            self.ops
                .entry(op)
                .or_insert_with(OpStats::new)
                .merge(&stats);
        }
    }

    /// Operations of kind `op` per second of the round (all operations for `None`).
    pub(crate) fn rate(&self, op: Option<Op>) -> f64 {
        let count: u64 = match op {
            Some(op) => self.ops.get(&op).map_or(0, |stats| stats.count),
            None => self.ops.values().map(|stats| stats.count).sum(),
        };
        count as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Keys that operations of kind `op` (all operations for `None`) read or wrote per
    /// second of the round, in a run of `keys` data keys: each operation counts its
    /// [`Op::keys_per_op`], so a batch's keys per second compare with single gets or sets
    /// per second.
    pub(crate) fn key_rate(&self, op: Option<Op>, keys: usize) -> f64 {
        let key_count: u64 = self
            .ops
            .iter()
            .filter(|&(&measured, _)| op.is_none_or(|op| op == measured))
            .map(|(&measured, stats)| stats.count * measured.keys_per_op(keys) as u64)
            .sum();
        key_count as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Every round one side (the adapter, or the raw client) ran.
#[derive(Debug, Default, Clone)]
pub(crate) struct Side {
    pub(crate) rounds: Vec<RoundStats>,
}

impl Side {
    /// The median over rounds of `op`'s throughput (of all operations for `None`).
    pub(crate) fn median_rate(&self, op: Option<Op>) -> f64 {
        median(self.rounds.iter().map(|round| round.rate(op)).collect())
    }

    /// Each round's throughput of `op`.
    pub(crate) fn rates(&self, op: Option<Op>) -> Vec<f64> {
        self.rounds.iter().map(|round| round.rate(op)).collect()
    }

    /// The median over rounds of the keys per second of `op` (of all operations for `None`),
    /// in a run of `keys` data keys (see [`RoundStats::key_rate`]).
    pub(crate) fn median_key_rate(&self, op: Option<Op>, keys: usize) -> f64 {
        median(self.key_rates(op, keys))
    }

    /// Each round's keys per second of `op`, in a run of `keys` data keys.
    pub(crate) fn key_rates(&self, op: Option<Op>, keys: usize) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|round| round.key_rate(op, keys))
            .collect()
    }

    /// `op`'s measurements over all rounds together.
    pub(crate) fn merged(&self, op: Op) -> Option<OpStats> {
        let mut rounds = self.rounds.iter().filter_map(|round| round.ops.get(&op));
        let mut merged = rounds.next()?.clone();
        for stats in rounds {
            merged.merge(stats);
        }
        Some(merged)
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn rounds_merge_tasks_and_rates_use_the_round_time() {
        let mut task = TaskStats::default();
        for micros in 1..=100 {
            task.record(Op::Get, Duration::from_micros(micros), 0);
        }
        task.record(Op::CompareAndSwap, Duration::from_micros(5), 2);
        let mut round = RoundStats::default();
        round.add(task);
        round.elapsed = Duration::from_secs(2);
        assert_eq!(round.rate(Some(Op::Get)), 50.0);
        assert_eq!(round.rate(None), 50.5);
        let side = Side {
            rounds: vec![round.clone(), round],
        };
        let gets = side.merged(Op::Get).unwrap();
        assert_eq!(gets.count, 200);
        let p50 = gets.at(0.5).as_nanos();
        assert!((49_900..=50_100).contains(&p50), "{p50}");
        let max = gets.max().as_nanos();
        assert!((99_900..=100_100).contains(&max), "{max}");
        assert_eq!(side.merged(Op::CompareAndSwap).unwrap().retries, 4);
        assert!(side.merged(Op::Set).is_none());
    }

    #[test]
    fn batches_count_their_keys_and_single_operations_one() {
        let mut task = TaskStats::default();
        for _ in 0..30 {
            task.record(Op::GetMany, Duration::from_micros(100), 0);
        }
        for _ in 0..10 {
            task.record(Op::Get, Duration::from_micros(10), 0);
        }
        let mut round = RoundStats::default();
        round.add(task);
        round.elapsed = Duration::from_secs(10);
        assert_eq!(round.rate(Some(Op::GetMany)), 3.0);
        // 1000 data keys: batches of 100.
        assert_eq!(round.key_rate(Some(Op::GetMany), 1000), 300.0);
        assert_eq!(round.key_rate(Some(Op::Get), 1000), 1.0);
        assert_eq!(round.key_rate(None, 1000), 301.0);
        assert_eq!(round.key_rate(Some(Op::Set), 1000), 0.0);
        // 40 data keys: batches of all 40.
        assert_eq!(round.key_rate(Some(Op::GetMany), 40), 120.0);
        let mut slower = round.clone();
        slower.elapsed = Duration::from_secs(20);
        let side = Side {
            rounds: vec![round.clone(), slower, round],
        };
        assert_eq!(
            side.key_rates(Some(Op::GetMany), 1000),
            [300.0, 150.0, 300.0]
        );
        assert_eq!(side.median_key_rate(Some(Op::GetMany), 1000), 300.0);
    }
}
