//! A run's results as tables for people and JSON for machines.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::requests::RequestCounts;
use super::runner::Length;
use super::stats::Side;
use super::workload::{batch_len, Op, Workload};

/// How the run was set up.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) workload: Workload,
    pub(crate) concurrency: usize,
    pub(crate) length: Length,
    pub(crate) rounds: usize,
    pub(crate) keys: usize,
    pub(crate) value_size: usize,
    pub(crate) seed: u64,
}

/// Everything a run measured.
#[derive(Debug)]
pub(crate) struct Measured {
    /// The store, as shown (no password).
    pub(crate) target: String,
    pub(crate) settings: Settings,
    pub(crate) adapter: Side,
    pub(crate) raw: Option<Side>,
    /// Requests per operation, where they were counted.
    pub(crate) adapter_requests: Option<RequestCounts>,
    pub(crate) raw_requests: Option<RequestCounts>,
}

impl Measured {
    /// The operations the workload ran.
    pub(crate) fn ops(&self) -> Vec<Op> {
        self.settings.workload.ops()
    }

    /// Adapter throughput over raw throughput for `op` (all operations for `None`), medians
    /// of the rounds.
    pub(crate) fn ratio(&self, op: Option<Op>) -> Option<f64> {
        let raw = self.raw.as_ref()?.median_rate(op);
        (raw > 0.0).then(|| self.adapter.median_rate(op) / raw)
    }
}

/// The human-readable report.
pub(crate) fn tables(measured: &Measured) -> String {
    let settings = &measured.settings;
    let mut out = format!("kvkit bench {}\n{}\n", measured.target, describe(settings));
    let sides = [
        (
            "adapter",
            Some(&measured.adapter),
            &measured.adapter_requests,
        ),
        ("raw client", measured.raw.as_ref(), &measured.raw_requests),
    ];
    for (name, side, requests) in sides {
        if let Some(side) = side {
            out.push('\n');
            side_table(
                &mut out,
                name,
                side,
                &measured.ops(),
                requests.as_ref(),
                settings.keys,
            );
        }
    }
    if measured.raw.is_some() {
        let _ = writeln!(
            out,
            "\nadapter / raw throughput (median of {} alternating rounds each)",
            settings.rounds
        );
        for op in measured.ops().into_iter().map(Some).chain([None]) {
            if let Some(ratio) = measured.ratio(op) {
                let _ = writeln!(out, "  {:<18} {ratio:.3}", op_label(op));
            }
        }
    }
    out
}

fn describe(settings: &Settings) -> String {
    let length = match settings.length {
        Length::Duration(duration) => format!("{} s", duration.as_secs_f64()),
        Length::Ops(ops) => format!("{ops} ops"),
    };
    let batches = match settings.workload.ops().iter().any(|op| op.is_batch()) {
        true => format!(", batches of {} keys", batch_len(settings.keys)),
        false => String::new(),
    };
    format!(
        "workload {}, {} tasks, {} round(s) of {length}, {} keys, {}-byte values{batches}, seed {}",
        settings.workload.name(),
        settings.concurrency,
        settings.rounds,
        settings.keys,
        settings.value_size,
        settings.seed
    )
}

/// One side's table: a row per operation, and one for all of them. A workload of batches
/// gets a keys/s column after ops/s (operations times their keys: what compares with single
/// gets and sets per second); other workloads' tables are as they were before batches.
fn side_table(
    out: &mut String,
    name: &str,
    side: &Side,
    ops: &[Op],
    requests: Option<&RequestCounts>,
    keys: usize,
) {
    let batches = ops.iter().any(|op| op.is_batch());
    let key_rate = |op: Option<Op>| match batches {
        true => format!(" {:>12}", thousands(side.median_key_rate(op, keys))),
        false => String::new(),
    };
    let _ = write!(
        out,
        "{name:<18} {:>12}{} {:>10} {:>10} {:>10} {:>10}",
        "ops/s",
        match batches {
            true => format!(" {:>12}", "keys/s"),
            false => String::new(),
        },
        "p50",
        "p99",
        "p99.9",
        "max"
    );
    out.push_str(if requests.is_some() {
        "  requests/op\n"
    } else {
        "\n"
    });
    for &op in ops {
        let Some(stats) = side.merged(op) else {
            continue;
        };
        let _ = write!(
            out,
            "  {:<16} {:>12}{} {:>10} {:>10} {:>10} {:>10}",
            op.name(),
            thousands(side.median_rate(Some(op))),
            key_rate(Some(op)),
            latency(stats.at(0.5)),
            latency(stats.at(0.99)),
            latency(stats.at(0.999)),
            latency(stats.max()),
        );
        if let Some(requests) = requests {
            let _ = write!(
                out,
                "  {:>11.2}",
                requests.of(op) as f64 / stats.count as f64
            );
        }
        if stats.retries > 0 {
            let retries = stats.retries as f64 / stats.count as f64;
            let _ = write!(out, "  ({retries:.2} retries per swap)");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "  {:<16} {:>12}{}",
        "all",
        thousands(side.median_rate(None)),
        key_rate(None)
    );
}

fn op_label(op: Option<Op>) -> &'static str {
    op.map_or("all", Op::name)
}

/// Whole operations per second with thousands separators: `12,345`.
fn thousands(rate: f64) -> String {
    let digits = format!("{:.0}", rate.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A latency with a unit that keeps three significant digits: `87.0 µs`, `1.25 ms`.
fn latency(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    match micros {
        m if m < 1.0 => format!("{} ns", duration.as_nanos()),
        m if m < 1000.0 => format!("{m:.1} µs"),
        m if m < 1_000_000.0 => format!("{:.2} ms", m / 1000.0),
        m => format!("{:.2} s", m / 1e6),
    }
}

/// The JSON report: settings, and per side and operation the median throughput, each
/// round's throughput, and latency percentiles in microseconds; for a batch operation also
/// its keys per operation and keys per second (median and each round's).
pub(crate) fn json(measured: &Measured) -> Value {
    let settings = &measured.settings;
    let (duration_s, ops) = match settings.length {
        Length::Duration(duration) => (Some(duration.as_secs_f64()), None),
        Length::Ops(ops) => (None, Some(ops)),
    };
    let ratio: Option<Map<String, Value>> = measured.raw.as_ref().map(|_| {
        measured
            .ops()
            .into_iter()
            .map(Some)
            .chain([None])
            .map(|op| (op_label(op).to_owned(), json!(measured.ratio(op))))
            .collect()
    });
    json!({
        "target": measured.target,
        "workload": settings.workload.name(),
        "concurrency": settings.concurrency,
        "rounds": settings.rounds,
        "duration_s": duration_s,
        "ops_per_round": ops,
        "keys": settings.keys,
        "value_size": settings.value_size,
        "seed": settings.seed,
        "adapter": side_json(&measured.adapter, &measured.ops(), measured.adapter_requests.as_ref(), settings.keys),
        "raw": measured.raw.as_ref().map(|raw| side_json(raw, &measured.ops(), measured.raw_requests.as_ref(), settings.keys)),
        "ratio": ratio,
    })
}

fn side_json(side: &Side, ops: &[Op], requests: Option<&RequestCounts>, keys: usize) -> Value {
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    let operations: Map<String, Value> = ops
        .iter()
        .filter_map(|&op| {
            let stats = side.merged(op)?;
            let per_op = |total: u64| total as f64 / stats.count as f64;
            let mut fields = json!({
                "count": stats.count,
                "ops_per_sec": side.median_rate(Some(op)),
                "round_ops_per_sec": side.rates(Some(op)),
                "p50_us": micros(stats.at(0.5)),
                "p99_us": micros(stats.at(0.99)),
                "p999_us": micros(stats.at(0.999)),
                "max_us": micros(stats.max()),
                "retries_per_op": per_op(stats.retries),
                "requests_per_op": requests.map(|counts| per_op(counts.of(op))),
            });
            // Only batches get the key counts: single-key operations' JSON is as before.
            if let (true, Some(fields)) = (op.is_batch(), fields.as_object_mut()) {
                fields.insert("keys_per_op".into(), json!(op.keys_per_op(keys)));
                fields.insert(
                    "keys_per_sec".into(),
                    json!(side.median_key_rate(Some(op), keys)),
                );
                fields.insert(
                    "round_keys_per_sec".into(),
                    json!(side.key_rates(Some(op), keys)),
                );
            }
            Some((op.name().to_owned(), fields))
        })
        .collect();
    json!({
        "ops_per_sec": side.median_rate(None),
        "round_ops_per_sec": side.rates(None),
        "operations": operations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_easily() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.2), "0");
        assert_eq!(latency(Duration::from_nanos(850)), "850 ns");
        assert_eq!(latency(Duration::from_nanos(87_049)), "87.0 µs");
        assert_eq!(latency(Duration::from_micros(1_250)), "1.25 ms");
        assert_eq!(latency(Duration::from_millis(2_500)), "2.50 s");
    }
}
