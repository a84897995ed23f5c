//! The linearizability checker: does some order of a history's calls, each placed at one
//! instant between its invocation and its return, agree with the reference [`Model`]?
//!
//! # The search
//!
//! Per key (the contract promises linearizability of single-key operations, and a history
//! of independent keys is linearizable iff each key's sub-history is), the checker runs the
//! Wing–Gong search as Lowe improved it, the algorithm Knossos and Porcupine use: take the
//! calls in invocation order; a call may be linearized next if it was invoked before every
//! call not yet linearized returned; apply it to the model and compare the model's answer with
//! the recorded one; on a mismatch, or when nothing can go next, backtrack. States already
//! explored (the set of linearized calls as a bitset, with the model's state) are remembered
//! and never explored twice, which turns the exponential search into one over distinct
//! states.
//!
//! # What each outcome means to the checker
//!
//! - `Err(Unavailable)` (and a call whose future was dropped): the call may have taken effect
//!   at any instant after its invocation, with no end (its return is +∞), or never. A read
//!   that returned `Unavailable` observed nothing and is left out.
//! - An `Unavailable` that says it was never sent ([`KvError::is_not_sent`](kv_trait::KvError::is_not_sent)):
//!   the call took no effect and observed nothing, so it is left out; a write that happened
//!   although its error said "not sent" then shows as a value nobody wrote.
//! - Errors the model decides (`InvalidKey`, `ValueTooLarge`, `InvalidTtl`, `NotAnInteger`,
//!   `IntegerOverflow`) are compared with the model like any result: `NotAnInteger` is a read
//!   of a non-counter value, and so it is checked.
//! - `QuotaExceeded` and `Backend` errors changed nothing (the contract says so) and observed
//!   nothing, so they are left out.
//! - `list_keys` spans keys and is not a snapshot; the contract promises less for it than
//!   linearizability, so it is left out (the suite's `concurrent_list_during_writes` checks what
//!   the contract does promise). [`Linearizability::unchecked`] counts the calls left out.
//!
//! # Expiry
//!
//! The model's clock is the history's. A `set_with_ttl` that takes effect at instant `w` makes
//! its key expire at some `D` with `w + ttl <= D <= w + ttl + granularity`; the checker does
//! not pick `w`, it uses the contract's own bounds: `D` is at least `invoked + ttl - slack`
//! ("never early", from the call's start) and at most `returned + ttl + granularity + slack`
//! ("never much late"; +∞ for an `Unavailable` write), where `granularity` and `slack` are
//! [`Checker::with_ttl_granularity`] and [`Checker::with_ttl_slack`] (the slack covers a store
//! that decides expiry on another clock than the recorder's). A call linearized at an instant
//! `p` between its earliest and latest possible instant (the latest invocation among the calls
//! linearized so far, itself included, and the earliest return among the calls not linearized
//! yet) sees the key live if `p < D` is possible, expired if `D <= p` is possible, and the
//! search tries both when both are; seeing it live raises the lower bound of `D`. `increment`
//! on a live key keeps the bounds; `set`, a successful CAS, `delete` and an `increment` that
//! creates the key clear them. This is sound (a linearizable history with expiry is never
//! reported as a violation) but not complete: a history that needs two calls to be at
//! instants no single choice allows may pass.
//!
//! # Bounds
//!
//! The search is exponential in the worst case, so it is bounded: at most
//! [`Checker::with_max_calls_per_key`] checked calls per key (default 2,000), at most
//! [`Checker::with_max_states`] distinct states per key (default 1,000,000), and at most
//! [`Checker::with_time_limit`] for the whole history (default 10 s). A key over a bound is
//! [`Verdict::Inconclusive`], never a pass. Contended histories of a few hundred calls per key
//! with unique written values, like [`Workload`](crate::Workload)'s, take milliseconds; the
//! largest one the kit's tests check (16 tasks on a store that lags up to 2 ms before and after
//! every call, about 2,700 calls, up to about 1,100 on one key, TTLs of 5 ms expiring
//! throughout) meets 15,000 to 50,000 states and takes 0.5 to 3 s in a debug build.
//!
//! # The report of a violation
//!
//! When a key's history is not linearizable the checker shrinks it to a smaller one that still
//! is not, and shows that: it finds the earliest instant `T` such that the calls invoked by `T`
//! already cannot be linearized (calls still running at `T` count as maybe-applied writes;
//! reads still running are dropped), then drops, one by one, every read-only call (a read, a
//! failed CAS, a `delete` that found nothing, an error) whose removal leaves the history still
//! not linearizable. Both steps only make a history easier to linearize, so the shrunken
//! history's violation is one of the original's. Between the two, the calls before the latest
//! quiet instant (every earlier call returned before any later one was invoked) after which
//! the key can be in one state only are replaced by that state ("after 19 earlier calls ... the
//! key can only be holding "106""): exact, since the rest fails from that state iff the whole
//! fails. Shrinking has its own budget: a quarter of the time limit per violating key.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use kv_trait::{monotonic_now, DEFAULT_MAX_VALUE_BYTES};

use crate::history::{Call, History, Millis};
use crate::model::{ErrorKind, Model, Op, Outcome, Shown};
use crate::Profile;

/// Decides whether a [`History`] is linearizable, key by key, against the reference
/// [`Model`]. See the [module docs](self) for the search, the bounds and the treatment of
/// `Unavailable` and expiry.
///
/// ```
/// use kv_conformance::{Call, Checker, History, Op, Outcome, Verdict};
///
/// // Two clients bump one counter at the same time and both get 1: a lost update.
/// let history: History = vec![
///     Call::new("alice", Op::increment("n", 1), 0, 1_000, Outcome::Int(1)),
///     Call::new("bob", Op::increment("n", 1), 500, 1_500, Outcome::Int(1)),
/// ]
/// .into();
/// let result = Checker::new().check(&history);
/// assert!(!result.is_linearizable());
/// let violation = result.violation().unwrap();
/// assert_eq!(violation.key, "n");
/// assert_eq!(violation.calls.len(), 2);
/// println!("{result}"); // who called what, when, and what came back
///
/// // Had bob got 2, some order explains it.
/// let history: History = vec![
///     Call::new("alice", Op::increment("n", 1), 0, 1_000, Outcome::Int(1)),
///     Call::new("bob", Op::increment("n", 1), 500, 1_500, Outcome::Int(2)),
/// ]
/// .into();
/// assert!(matches!(Checker::new().check(&history).keys[0].verdict, Verdict::Linearizable));
/// ```
#[derive(Clone, Debug)]
pub struct Checker {
    max_value_bytes: usize,
    ttl_granularity: Duration,
    ttl_slack: Duration,
    max_calls_per_key: usize,
    max_states: usize,
    time_limit: Duration,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker {
    /// The default bounds (see the [module docs](self)), values of at most 1 MiB, TTL
    /// granularity 1 ms and slack 2 ms.
    pub fn new() -> Self {
        Self {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            ttl_granularity: Duration::from_millis(1),
            ttl_slack: Duration::from_millis(2),
            max_calls_per_key: 2_000,
            max_states: 1_000_000,
            time_limit: Duration::from_secs(10),
        }
    }

    /// A checker for the backend a [`Profile`] describes: its maximum value length and TTL
    /// granularity.
    pub fn for_profile(profile: &Profile) -> Self {
        Self::new()
            .with_max_value_bytes(profile.max_value_bytes)
            .with_ttl_granularity(profile.ttl_granularity)
    }

    /// The backend's maximum value length (the model answers `ValueTooLarge` above it).
    pub fn with_max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// How late past `ttl` the backend may expire a key (its declared rounding).
    pub fn with_ttl_granularity(mut self, granularity: Duration) -> Self {
        self.ttl_granularity = granularity;
        self
    }

    /// Extra room on both sides of every deadline, for a store that decides expiry on a clock
    /// other than the recorder's monotonic clock (a server's, the wall clock).
    pub fn with_ttl_slack(mut self, slack: Duration) -> Self {
        self.ttl_slack = slack;
        self
    }

    /// A key with more checked calls than this is [`Verdict::Inconclusive`] (not searched).
    pub fn with_max_calls_per_key(mut self, max: usize) -> Self {
        self.max_calls_per_key = max;
        self
    }

    /// A key whose search meets more distinct states than this is [`Verdict::Inconclusive`].
    pub fn with_max_states(mut self, max: usize) -> Self {
        self.max_states = max.max(1);
        self
    }

    /// Keys not decided within this time of the start of [`Checker::check`] are
    /// [`Verdict::Inconclusive`].
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// Checks `history`, key by key.
    pub fn check(&self, history: &History) -> Linearizability {
        let started = monotonic_now();
        let deadline = started.checked_add(self.time_limit);
        let mut by_key: Vec<(String, Vec<&Call>)> = Vec::new();
        let mut unchecked = 0;
        for call in history.calls() {
            match call.op.key() {
                Some(key) => match by_key.iter_mut().find(|(k, _)| k == key) {
                    Some((_, calls)) => calls.push(call),
                    None => by_key.push((key.to_owned(), vec![call])),
                },
                None => unchecked += 1,
            }
        }
        by_key.sort_by(|a, b| a.0.cmp(&b.0));
        let keys = by_key
            .into_iter()
            .map(|(key, calls)| self.check_key(key, &calls, deadline))
            .collect();
        Linearizability {
            keys,
            unchecked,
            elapsed: monotonic_now().saturating_duration_since(started),
        }
    }

    fn check_key(&self, key: String, calls: &[&Call], deadline: Option<Instant>) -> KeyResult {
        let prepared = self.prepare(calls);
        let checked = prepared.len();
        if checked > self.max_calls_per_key {
            return KeyResult {
                key,
                calls: checked,
                states: 0,
                verdict: Verdict::Inconclusive(format!(
                    "{checked} checked calls on this key, more than the bound of {}",
                    self.max_calls_per_key
                )),
            };
        }
        let search = Search::new(self, &prepared);
        let (found, states) = search.run(self.max_states, deadline);
        let verdict = match found {
            Found::Linearizable => Verdict::Linearizable,
            Found::Stopped(why) => Verdict::Inconclusive(why),
            Found::NotLinearizable => {
                let shrink_deadline = monotonic_now().checked_add(self.time_limit / 4);
                Verdict::Violation(self.shrink(&key, &prepared, shrink_deadline))
            }
        };
        KeyResult {
            key,
            calls: checked,
            states,
            verdict,
        }
    }

    /// The calls of one key the search looks at, in invocation order.
    fn prepare(&self, calls: &[&Call]) -> Vec<Prepared> {
        let mut prepared: Vec<Prepared> = calls
            .iter()
            .filter_map(|call| {
                let reads_only = matches!(call.op, Op::Get { .. } | Op::Exists { .. });
                let expected = match &call.outcome {
                    Outcome::Error(ErrorKind::Unavailable(_)) if reads_only => return None,
                    // Never reached the store: no effect, and nothing to check.
                    Outcome::Error(ErrorKind::NotSent(_)) => return None,
                    Outcome::Error(ErrorKind::Unavailable(_)) => None,
                    Outcome::Error(ErrorKind::QuotaExceeded(_) | ErrorKind::Other(_)) => {
                        return None
                    }
                    outcome => Some(outcome.clone()),
                };
                let returned = if expected.is_some() {
                    call.returned_ns.max(call.invoked_ns)
                } else {
                    u64::MAX
                };
                Some(Prepared {
                    invoked: call.invoked_ns,
                    returned,
                    expected,
                    source: (*call).clone(),
                    cut: false,
                })
            })
            .collect();
        prepared.sort_by_key(|p| (p.invoked, p.returned));
        prepared
    }

    /// A smaller sub-history of a non-linearizable `calls` that is still not linearizable.
    fn shrink(&self, key: &str, calls: &[Prepared], deadline: Option<Instant>) -> Violation {
        let fails = |candidate: &[Prepared], from: &KeyState, earliest: u64| {
            let search = Search::new(self, candidate);
            let found = search.explore(from.clone(), earliest, self.max_states, deadline, false);
            matches!(found.0, Found::NotLinearizable)
        };
        let empty = Search::new(self, calls).empty_state();
        // 1. The earliest cut: every call invoked by `t`, the ones still running then made
        // maybe-applied (writes) or dropped (reads). Monotone in `t`, so a binary search.
        let mut cuts: Vec<u64> = calls
            .iter()
            .filter(|c| c.expected.is_some())
            .map(|c| c.returned)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut best: Vec<Prepared> = calls.to_vec();
        let mut cut_at = None;
        let (mut lo, mut hi) = (0, cuts.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let candidate = cut(calls, cuts[mid]);
            if fails(&candidate, &empty, 0) {
                best = candidate;
                cut_at = Some(cuts[mid]);
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        // 2. Replace the calls before the latest quiet instant after which the key can be in
        // one state only by that state: exact, the rest fails from it iff the whole fails.
        let (mut from, mut earliest, mut settled) = (empty, 0, None);
        let prefix = self.settled_prefix(&best, deadline);
        if prefix.calls > 0 && fails(&best[prefix.calls..], &prefix.state, prefix.earliest) {
            settled = Some(Settled {
                calls: prefix.calls,
                by_ns: prefix.by_ns,
                state: describe(&prefix.state),
            });
            best.drain(..prefix.calls);
            from = prefix.state;
            earliest = prefix.earliest;
        }
        // 3. Drop read-only calls that the violation does not need.
        let mut i = 0;
        while i < best.len() {
            if best[i].read_only() {
                let mut candidate = best.clone();
                candidate.remove(i);
                if fails(&candidate, &from, earliest) {
                    best = candidate;
                    continue;
                }
            }
            i += 1;
        }
        Violation {
            key: key.to_owned(),
            calls: best.iter().map(|p| p.source.clone()).collect(),
            running: best.iter().map(|p| p.cut).collect(),
            cut_at_ns: cut_at.filter(|_| best.iter().any(|p| p.cut)),
            settled,
            key_calls: calls.len(),
        }
    }

    /// The longest prefix of `calls` that ends at a quiet instant (every call of it returned
    /// before any later one was invoked) and leaves the key in exactly one possible state.
    fn settled_prefix(&self, calls: &[Prepared], deadline: Option<Instant>) -> Prefix {
        /// Beyond this many possible states at a quiet instant, stop looking further.
        const MAX_STATES_AT_A_QUIET_INSTANT: usize = 16;
        let empty = Search::new(self, calls).empty_state();
        let mut best = Prefix {
            calls: 0,
            state: empty.clone(),
            earliest: 0,
            by_ns: 0,
        };
        let mut states = vec![empty];
        let (mut segment_start, mut earliest) = (0, 0);
        let (mut last_return, mut last_invocation) = (0, 0);
        for i in 0..calls.len().saturating_sub(1) {
            last_return = last_return.max(calls[i].returned);
            last_invocation = last_invocation.max(calls[i].invoked);
            if last_return == u64::MAX {
                break;
            }
            if calls[i + 1].invoked <= last_return {
                continue;
            }
            let search = Search::new(self, &calls[segment_start..=i]);
            let mut next: Vec<KeyState> = Vec::new();
            for state in &states {
                let (found, _, ends) =
                    search.explore(state.clone(), earliest, self.max_states, deadline, true);
                if matches!(found, Found::Stopped(_)) {
                    return best;
                }
                for end in ends {
                    if !next.contains(&end) {
                        next.push(end);
                    }
                }
            }
            if next.is_empty() || next.len() > MAX_STATES_AT_A_QUIET_INSTANT {
                return best;
            }
            states = next;
            segment_start = i + 1;
            earliest = last_invocation;
            if let [state] = states.as_slice() {
                best = Prefix {
                    calls: i + 1,
                    state: state.clone(),
                    earliest,
                    by_ns: last_return,
                };
            }
        }
        best
    }
}

/// A prefix of a key's calls summarized by the one state it leaves.
struct Prefix {
    calls: usize,
    state: KeyState,
    earliest: u64,
    by_ns: u64,
}

/// The key's state in words: absent, or its value and when it may expire.
fn describe(state: &KeyState) -> String {
    let Some(key) = state.model.keys().next().map(str::to_owned) else {
        return "absent".into();
    };
    let value = match state.model.clone().apply(&Op::get(key), 0) {
        Outcome::Value(Some(value)) => Shown(&value).to_string(),
        other => other.to_string(),
    };
    match state.deadline {
        None => format!("holding {value} with no TTL"),
        Some((lo, u64::MAX)) => format!(
            "holding {value}, expiring at {} or later",
            Millis(lo).to_string().trim_start()
        ),
        Some((lo, hi)) => format!(
            "holding {value}, expiring between {} and {}",
            Millis(lo).to_string().trim_start(),
            Millis(hi).to_string().trim_start()
        ),
    }
}

/// The calls invoked by `t`: those still running at `t` become maybe-applied writes, or are
/// dropped if they only read.
fn cut(calls: &[Prepared], t: u64) -> Vec<Prepared> {
    calls
        .iter()
        .filter(|c| c.invoked <= t)
        .filter_map(|c| {
            if c.returned <= t {
                return Some(c.clone());
            }
            if matches!(c.source.op, Op::Get { .. } | Op::Exists { .. }) {
                return None;
            }
            Some(Prepared {
                returned: u64::MAX,
                expected: None,
                cut: c.expected.is_some() || c.cut,
                ..c.clone()
            })
        })
        .collect()
}

/// One call as the search sees it.
#[derive(Clone, Debug)]
struct Prepared {
    invoked: u64,
    /// `u64::MAX` for a call that may take effect at any time (or never).
    returned: u64,
    /// `None`: indeterminate (it may or may not have taken effect; its result is unknown).
    expected: Option<Outcome>,
    source: Call,
    /// Made indeterminate by a cut (shown as still running).
    cut: bool,
}

impl Prepared {
    /// Whether removing the call can only make the history easier to linearize: it has a
    /// known result and changes nothing.
    fn read_only(&self) -> bool {
        match (&self.source.op, &self.expected) {
            (_, None) => false,
            (Op::Get { .. } | Op::Exists { .. }, _) => true,
            (_, Some(Outcome::Error(_))) => true,
            (Op::Delete { .. } | Op::CompareAndSwap { .. }, Some(Outcome::Bool(false))) => true,
            _ => false,
        }
    }
}

/// The search's state of one key: the model, and the bounds of the key's deadline when it has
/// a TTL (earliest and latest possible instant of expiry; `u64::MAX`: never).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KeyState {
    model: Model,
    deadline: Option<(u64, u64)>,
}

/// A set of calls, one bit each.
type Bits = Vec<u64>;

fn has(bits: &Bits, i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn with(bits: &Bits, i: usize) -> Bits {
    let mut bits = bits.clone();
    bits[i / 64] |= 1 << (i % 64);
    bits
}

enum Found {
    Linearizable,
    NotLinearizable,
    Stopped(String),
}

struct Search<'a> {
    checker: &'a Checker,
    calls: &'a [Prepared],
    /// The bits of every call with a known result: all of them must be linearized.
    required: Bits,
}

/// A node of the depth-first search: linearized calls, the state after them, and the latest
/// invocation among them (the earliest instant the next call can take effect).
struct Node {
    done: Bits,
    state: KeyState,
    earliest: u64,
}

impl<'a> Search<'a> {
    fn new(checker: &'a Checker, calls: &'a [Prepared]) -> Self {
        let mut required = vec![0; calls.len().div_ceil(64).max(1)];
        for (i, call) in calls.iter().enumerate() {
            if call.expected.is_some() {
                required[i / 64] |= 1 << (i % 64);
            }
        }
        Self {
            checker,
            calls,
            required,
        }
    }

    /// The state of a key nobody wrote.
    fn empty_state(&self) -> KeyState {
        KeyState {
            model: Model::new(self.checker.max_value_bytes),
            deadline: None,
        }
    }

    /// Runs the search from an empty key; returns what it found and how many distinct states
    /// it met.
    fn run(&self, max_states: usize, deadline: Option<Instant>) -> (Found, usize) {
        let (found, states, _) = self.explore(self.empty_state(), 0, max_states, deadline, false);
        (found, states)
    }

    /// The search from `from` (the next call takes effect no earlier than `earliest`). With
    /// `every_end`, it does not stop at the first linearization but returns every state the
    /// calls can end in.
    fn explore(
        &self,
        from: KeyState,
        earliest: u64,
        max_states: usize,
        deadline: Option<Instant>,
        every_end: bool,
    ) -> (Found, usize, Vec<KeyState>) {
        let start = Node {
            done: vec![0; self.required.len()],
            state: from,
            earliest,
        };
        let mut seen: HashSet<(Bits, KeyState)> = HashSet::new();
        seen.insert((start.done.clone(), start.state.clone()));
        let mut stack = vec![start];
        let mut ends: Vec<KeyState> = Vec::new();
        let mut steps: u64 = 0;
        while let Some(node) = stack.pop() {
            if node
                .done
                .iter()
                .zip(&self.required)
                .all(|(done, required)| done & required == *required)
            {
                if !every_end {
                    return (Found::Linearizable, seen.len(), vec![node.state]);
                }
                if !ends.contains(&node.state) {
                    ends.push(node.state.clone());
                }
            }
            steps += 1;
            if steps.is_multiple_of(512) && deadline.is_some_and(|d| monotonic_now() >= d) {
                return (
                    Found::Stopped("the time limit ran out during the search".into()),
                    seen.len(),
                    ends,
                );
            }
            let before = stack.len();
            for (next, state) in self.successors(&node) {
                let done = with(&node.done, next);
                if seen.len() >= max_states {
                    return (
                        Found::Stopped(format!(
                            "the search met more than {max_states} distinct states"
                        )),
                        seen.len(),
                        ends,
                    );
                }
                if seen.insert((done.clone(), state.clone())) {
                    stack.push(Node {
                        done,
                        state,
                        earliest: node.earliest.max(self.calls[next].invoked),
                    });
                }
            }
            // Explore the earliest-invoked candidate first.
            stack[before..].reverse();
        }
        let found = if ends.is_empty() {
            Found::NotLinearizable
        } else {
            Found::Linearizable
        };
        (found, seen.len(), ends)
    }

    /// Every call that can be linearized next from `node`, with each state it can lead to.
    fn successors(&self, node: &Node) -> Vec<(usize, KeyState)> {
        // Calls are sorted by invocation, and each returns no earlier than it was invoked: once
        // a call was invoked after the earliest pending return, no later call can lower it.
        let mut earliest_return = u64::MAX;
        let mut candidates = Vec::new();
        for (i, call) in self.calls.iter().enumerate() {
            if has(&node.done, i) {
                continue;
            }
            if call.invoked > earliest_return {
                break;
            }
            earliest_return = earliest_return.min(call.returned);
            candidates.push(i);
        }
        let mut out = Vec::new();
        for i in candidates {
            let call = &self.calls[i];
            if call.invoked > earliest_return {
                continue;
            }
            let earliest = node.earliest.max(call.invoked);
            for state in self.liveness_branches(&node.state, earliest, earliest_return) {
                if let Some(next) = self.apply(call, state) {
                    out.push((i, next));
                }
            }
        }
        out
    }

    /// The states the key may be in for a call taking effect between `earliest` and `latest`:
    /// live, expired, or either (two branches) when its deadline may fall in between.
    fn liveness_branches(&self, state: &KeyState, earliest: u64, latest: u64) -> Vec<KeyState> {
        let Some((lo, hi)) = state.deadline else {
            return vec![state.clone()];
        };
        let mut branches = Vec::with_capacity(2);
        if earliest < hi {
            // Live at p >= earliest means D > earliest.
            branches.push(KeyState {
                model: state.model.clone(),
                deadline: Some((lo.max(earliest.saturating_add(1)), hi)),
            });
        }
        if latest >= lo {
            let mut model = state.model.clone();
            let key = model.keys().next().map(str::to_owned);
            if let Some(key) = key {
                model.apply(&Op::delete(key), 0);
            }
            branches.push(KeyState {
                model,
                deadline: None,
            });
        }
        branches
    }

    /// `call` applied to `state`; `None` when the model's answer is not the recorded one.
    fn apply(&self, call: &Prepared, mut state: KeyState) -> Option<KeyState> {
        let was_live = state.model.keys().next().is_some();
        let outcome = state.model.apply(&call.source.op, 0);
        state.model.forget_deadlines();
        if call.expected.as_ref().is_some_and(|e| *e != outcome) {
            return None;
        }
        let live = state.model.keys().next().is_some();
        state.deadline = match (&call.source.op, &outcome) {
            _ if !live => None,
            (Op::SetWithTtl { ttl_ns, .. }, Outcome::Done) => {
                let slack = nanos(self.checker.ttl_slack);
                let late = nanos(self.checker.ttl_granularity).saturating_add(slack);
                let lo = call
                    .source
                    .invoked_ns
                    .saturating_add(*ttl_ns)
                    .saturating_sub(slack);
                let hi = call.returned.saturating_add(*ttl_ns).saturating_add(late);
                Some((lo, hi))
            }
            (Op::Set { .. }, Outcome::Done) | (Op::CompareAndSwap { .. }, Outcome::Bool(true)) => {
                None
            }
            (Op::Increment { .. }, Outcome::Int(_)) if !was_live => None,
            _ => state.deadline,
        };
        Some(state)
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// What the checker decided for one key.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Some order of the key's calls agrees with the model.
    Linearizable,
    /// No order does; the smallest failing sub-history found.
    Violation(Violation),
    /// A bound stopped the search (the reason says which): neither a pass nor a failure.
    Inconclusive(String),
}

/// The result of checking one key.
#[derive(Clone, Debug)]
pub struct KeyResult {
    /// The key.
    pub key: String,
    /// Calls of this key the search looked at (after leaving out the ones that observed and
    /// changed nothing).
    pub calls: usize,
    /// Distinct states the search met.
    pub states: usize,
    /// What it decided.
    pub verdict: Verdict,
}

/// A sub-history of one key that no order explains, shrunk from the recorded one.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// The calls, in invocation order, as recorded.
    pub calls: Vec<Call>,
    /// For each of `calls`: whether it was still running at the cut ([`Violation::cut_at_ns`])
    /// and so counted as a write that may or may not have taken effect.
    pub running: Vec<bool>,
    /// The instant the history was cut at, when a call shown was still running then.
    pub cut_at_ns: Option<u64>,
    /// The calls before the shown ones, when they were summarized by the one state they
    /// leave the key in.
    pub settled: Option<Settled>,
    /// Checked calls of this key in the whole history.
    pub key_calls: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?}: no order of these {} (of {} on this key) agrees with the model:",
            self.key,
            plural(self.calls.len(), "call"),
            self.key_calls
        )?;
        if let Some(settled) = &self.settled {
            writeln!(
                f,
                "    after {} that all returned by {}, the key can only be {}; then:",
                plural(settled.calls, "earlier call"),
                Millis(settled.by_ns).to_string().trim_start(),
                settled.state
            )?;
        }
        writeln!(
            f,
            "    {:<8} {:>13} .. {:>13}  call -> result",
            "client", "invoked", "returned"
        )?;
        for (call, running) in self.calls.iter().zip(&self.running) {
            let mark = if *running { "  *" } else { "" };
            writeln!(f, "    {call}{mark}")?;
        }
        if let Some(t) = self.cut_at_ns {
            writeln!(
                f,
                "    * still running at {}: counted as may-or-may-not-have-taken-effect",
                Millis(t).to_string().trim_start()
            )?;
        }
        writeln!(
            f,
            "    (times since the history began; an Unavailable call may take effect at any time \
             after it was invoked, or never)"
        )
    }
}

/// Calls before a [`Violation`]'s shown ones, summarized: they all returned before any shown
/// call was invoked, agree with the model, and leave the key in one possible state only.
#[derive(Clone, Debug)]
pub struct Settled {
    /// How many calls.
    pub calls: usize,
    /// When the last of them returned, in nanoseconds since the history began.
    pub by_ns: u64,
    /// The state they leave, in words (`absent`, `holding "v" with no TTL`...).
    pub state: String,
}

/// What [`Checker::check`] found.
#[derive(Clone, Debug)]
pub struct Linearizability {
    /// One result per key, sorted by key.
    pub keys: Vec<KeyResult>,
    /// Calls left out because they span keys (`list_keys`).
    pub unchecked: usize,
    /// How long the check took, shrinking included.
    pub elapsed: Duration,
}

impl Linearizability {
    /// True when every key was decided linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.keys
            .iter()
            .all(|k| matches!(k.verdict, Verdict::Linearizable))
    }

    /// The first key's violation, if any key has one.
    pub fn violation(&self) -> Option<&Violation> {
        self.keys.iter().find_map(|k| match &k.verdict {
            Verdict::Violation(v) => Some(v),
            _ => None,
        })
    }

    /// The keys a bound left undecided, with the reason.
    pub fn inconclusive(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys.iter().filter_map(|k| match &k.verdict {
            Verdict::Inconclusive(why) => Some((k.key.as_str(), why.as_str())),
            _ => None,
        })
    }

    /// The largest number of checked calls on one key.
    pub fn max_calls_per_key(&self) -> usize {
        self.keys.iter().map(|k| k.calls).max().unwrap_or(0)
    }
}

impl fmt::Display for Linearizability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let violations = self
            .keys
            .iter()
            .filter(|k| matches!(k.verdict, Verdict::Violation(_)))
            .count();
        let inconclusive = self.inconclusive().count();
        let calls: usize = self.keys.iter().map(|k| k.calls).sum();
        let states: usize = self.keys.iter().map(|k| k.states).sum();
        writeln!(
            f,
            "{} keys, {calls} checked calls ({} list_keys left out), {states} states in {:.1} ms: \
             {} linearizable, {violations} not, {inconclusive} inconclusive",
            self.keys.len(),
            self.unchecked,
            self.elapsed.as_secs_f64() * 1000.0,
            self.keys.len() - violations - inconclusive
        )?;
        for key in &self.keys {
            match &key.verdict {
                Verdict::Linearizable => {}
                Verdict::Violation(v) => write!(f, "{v}")?,
                Verdict::Inconclusive(why) => {
                    writeln!(f, "key {:?}: inconclusive: {why}", key.key)?;
                }
            }
        }
        Ok(())
    }
}
