//! The state-machine check: random operation sequences over hostile keys, run against the
//! backend and the [`Model`] side by side, shrunk to a minimal failing sequence.
//!
//! Cases and seed come from the [`Profile`](crate::Profile), else from the environment
//! variables `KV_CONFORMANCE_CASES` and `KV_CONFORMANCE_SEED`. A failure names its seed, so
//! `KV_CONFORMANCE_SEED=<seed> cargo test model_state_machine` replays it.
//!
//! The sequences use TTLs of an hour or more, so no key expires during a case and the model
//! can run on a frozen clock; expiry timing has its own checks.

use kv_trait::{KvBackend, MAX_KEY_BYTES};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::model::{Model, Op, Outcome};
use crate::probe::{CheckResult, Probe};
use crate::report::Failure;

/// Longest generated sequence.
const MAX_OPS: usize = 30;
/// Sequences tried while shrinking a failure, at most.
const SHRINK_BUDGET: usize = 300;

/// A small, colliding key space: prefixes of each other, wildcards, NUL, non-BMP, maximal
/// keys, and two invalid keys so error paths are exercised too.
fn keys(max_key_bytes: usize) -> Vec<String> {
    let mut keys: Vec<String> = [
        "a", "ab", "a%", "a_", "A", "*", "[a]", "\\", "\0", "\u{e9}", "😀",
    ]
    .map(String::from)
    .to_vec();
    keys.push("k".repeat(max_key_bytes));
    keys.push(String::new());
    keys.push("k".repeat(max_key_bytes + 1));
    keys
}

fn prefixes() -> Vec<String> {
    let mut prefixes: Vec<String> = ["", "a", "A", "%", "_", "a%", "\\", "[", "\u{e9}", "😀", "k"]
        .map(String::from)
        .to_vec();
    prefixes.push("k".repeat(MAX_KEY_BYTES));
    prefixes.push("k".repeat(2 * MAX_KEY_BYTES));
    prefixes
}

fn values(max_value_bytes: usize) -> Vec<Vec<u8>> {
    let mut values: Vec<Vec<u8>> = [
        &b""[..],
        b"0",
        b"1",
        b"-1",
        b"01",
        b"+1",
        b"9223372036854775807",
        b"-9223372036854775808",
        b"\xff\x00",
        b"abc",
    ]
    .map(<[u8]>::to_vec)
    .to_vec();
    values.push(vec![b'v'; max_value_bytes + 1]);
    values
}

fn op_strategy(max_value_bytes: usize, max_key_bytes: usize) -> impl Strategy<Value = Op> {
    let key = select(keys(max_key_bytes));
    let value = select(values(max_value_bytes));
    let prefix = select(prefixes());
    let delta = select(vec![0, 1, -1, 7, i64::MAX, i64::MIN]);
    let ttl = select(vec![0, 3_600_000_000_000, 1 << 63, u64::MAX]);
    let expected = proptest::option::of(value.clone());
    prop_oneof![
        3 => key.clone().prop_map(|key| Op::Get { key }),
        3 => (key.clone(), value.clone()).prop_map(|(key, value)| Op::Set { key, value }),
        2 => (key.clone(), value.clone(), ttl)
            .prop_map(|(key, value, ttl_ns)| Op::SetWithTtl { key, value, ttl_ns }),
        2 => key.clone().prop_map(|key| Op::Delete { key }),
        2 => key.clone().prop_map(|key| Op::Exists { key }),
        2 => prefix.prop_map(|prefix| Op::ListKeys { prefix }),
        3 => (key.clone(), delta).prop_map(|(key, delta)| Op::Increment { key, delta }),
        3 => (key, expected, value)
            .prop_map(|(key, expected, new)| Op::CompareAndSwap { key, expected, new }),
    ]
}

/// Where a run first disagreed with the model.
struct Divergence {
    /// Each operation up to and including the divergent one, with what the backend returned.
    trace: Vec<String>,
    expected: Outcome,
    got: Outcome,
}

/// Random sequences of all eight operations agree with the model, op by op.
///
/// Proptest's runner and value trees are not `Send`, so the generate-and-shrink loop runs on a
/// blocking thread and drives each async run through the runtime's handle.
pub(crate) async fn model_state_machine(t: Probe) -> CheckResult {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || explore(&t, &runtime))
        .await
        .map_err(|err| Failure::new(format!("the state-machine thread failed: {err}")))?
}

fn explore(t: &Probe, runtime: &tokio::runtime::Handle) -> CheckResult {
    let cases = t.profile.resolved_cases();
    let seed = t.profile.resolved_seed();
    let mut seed_bytes = [0u8; 32];
    for chunk in seed_bytes.chunks_mut(8) {
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = proptest::collection::vec(
        op_strategy(t.profile.max_value_bytes, t.profile.max_key_bytes),
        1..=MAX_OPS,
    );
    for case in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|reason| Failure::new(format!("could not generate a case: {reason}")))?;
        let Some(divergence) = runtime.block_on(run_sequence(t, &tree.current()))? else {
            continue;
        };
        let (minimal, divergence) = shrink(t, runtime, &mut tree, divergence)?;
        return Err(Failure {
            message: format!(
                "case {case} of {cases} (seed {seed}) disagreed with the model; shrunk to {} operations \
                 (replay: KV_CONFORMANCE_SEED={seed})",
                minimal.len()
            ),
            expected: Some(divergence.expected.to_string()),
            got: Some(divergence.got.to_string()),
            operations: divergence.trace,
        });
    }
    t.note(format!("{cases} random sequences of up to {MAX_OPS} operations agreed with the model (seed {seed})"));
    Ok(())
}

/// Runs `ops` on a fresh backend and the model; the first disagreement, if any.
async fn run_sequence(t: &Probe, ops: &[Op]) -> Result<Option<Divergence>, Failure> {
    let backend = t.another_backend().await?;
    let mut model =
        Model::new(t.profile.max_value_bytes).with_max_key_bytes(t.profile.max_key_bytes);
    let mut trace = Vec::with_capacity(ops.len());
    for op in ops {
        let got = op.apply(backend.as_ref() as &dyn KvBackend).await;
        let expected = model.apply(op, 0);
        trace.push(format!("{op} -> {got}"));
        if got != expected {
            return Ok(Some(Divergence {
                trace,
                expected,
                got,
            }));
        }
    }
    Ok(None)
}

/// Proptest's shrinking loop, driven by async runs: simplify while the case still fails,
/// step back when it passes.
fn shrink<T>(
    t: &Probe,
    runtime: &tokio::runtime::Handle,
    tree: &mut T,
    first: Divergence,
) -> Result<(Vec<Op>, Divergence), Failure>
where
    T: ValueTree<Value = Vec<Op>>,
{
    let mut best = (tree.current(), first);
    if !tree.simplify() {
        return Ok(best);
    }
    for _ in 0..SHRINK_BUDGET {
        let candidate = tree.current();
        let still_fails = runtime.block_on(run_sequence(t, &candidate))?;
        let moved = match still_fails {
            Some(divergence) => {
                best = (candidate, divergence);
                tree.simplify()
            }
            None => tree.complicate(),
        };
        if !moved {
            break;
        }
    }
    Ok(best)
}
