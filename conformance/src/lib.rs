//! `kv-conformance`: prove that a [`KvBackend`](kv_trait::KvBackend) keeps the kvkit contract.
//!
//! Point the suite at a factory of fresh, empty, isolated backends (on a shared server: one
//! new namespace per call) and it runs every check below against them:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let report = kv_conformance::Suite::new(|| async { Ok(kv_memory::MemoryBackend::new()) })
//!     .with_profile(kv_conformance::Profile::default()) // optional
//!     .run()
//!     .await;
//! assert!(report.passed(), "{report}");
//! # });
//! ```
//!
//! Or generate one test per check, so `cargo test` lists them and filters by name:
//!
//! ```no_run
//! // tests/conformance.rs of your crate
//! kv_conformance::conformance_tests!(|| async { Ok(kv_memory::MemoryBackend::new()) });
//!
//! // With a profile, for a store with smaller values:
//! mod small_values {
//!     kv_conformance::conformance_tests!(
//!         || async { kv_memory::MemoryBackend::builder().max_value_bytes(400_000).build() },
//!         kv_conformance::Profile::default().with_max_value_bytes(400_000)
//!     );
//! }
//! # fn main() {}
//! ```
//!
//! The generated tests are plain `#[test]` functions that each build a two-worker
//! multi-threaded tokio runtime of their own, so they need no tokio features of the calling
//! crate, and the concurrency checks really run in parallel.
//!
//! # What is checked
//!
//! The kit contains a pure reference [`Model`] of the contract, named checks, a proptest
//! state machine compared with the model op by op, concurrency checks, and timing checks for
//! expiry that never guess (see below). Each check covers these rules:
//!
//! | check | rule |
//! | --- | --- |
//! | `keys_empty_rejected` | the empty key fails with `InvalidKey` in every operation and writes nothing |
//! | `keys_too_long_rejected` | keys over 1024 bytes (counted in bytes) fail with `InvalidKey` and write nothing |
//! | `keys_max_length_accepted` | keys of exactly 1024 bytes work with every operation |
//! | `keys_stored_exactly` | any Unicode key (NUL, wildcards, controls, non-BMP, look-alikes) is stored and listed exactly |
//! | `keys_case_sensitive` | case is significant |
//! | `values_empty_value_is_some` | `get` of a key set to `b""` is `Some(vec![])`, never `None` |
//! | `values_binary_exact` | any byte string, including NUL and invalid UTF-8, comes back exactly |
//! | `values_max_size_accepted` | a value of exactly the declared maximum is accepted |
//! | `values_oversize_rejected` | a longer value fails with `ValueTooLarge { size, max }`; the previous value is untouched |
//! | `get_absent_and_set_overwrites` | `get` of an absent key is `None`; `set` writes unconditionally, last writer wins |
//! | `delete_reports_removal` | `delete` returns true iff a live key was removed |
//! | `exists_tracks_liveness` | `exists` is true iff the key is live |
//! | `list_prefix_is_literal` | `list_keys` matches a byte prefix: no wildcards, no case folding |
//! | `list_sorted_and_unique` | `list_keys` returns each key once, sorted ascending by bytes |
//! | `list_prefix_not_validated` | the prefix is not validated as a key: `""` lists all, long prefixes are fine |
//! | `increment_absent_starts_at_delta` | `increment` of an absent key stores `delta` and returns it |
//! | `increment_counter_arithmetic` | `increment` of a live counter stores and returns `n + delta` as canonical decimal bytes |
//! | `increment_rejects_non_counters` | only the canonical `i64` form is a counter; others fail with `NotAnInteger`, unchanged |
//! | `increment_overflow_rejected` | a result outside `i64` fails with `IntegerOverflow` and changes nothing |
//! | `cas_expecting_absent` | CAS with `expected = None` succeeds iff the key is absent |
//! | `cas_expecting_value` | CAS with `Some(e)` succeeds iff the live value equals `e` byte for byte |
//! | `cas_empty_is_not_absent` | CAS distinguishes `Some(b"")` from `None` |
//! | `cas_validates_first` | CAS validates key and new value first, whatever the outcome would be |
//! | `ttl_zero_rejected` | `ttl_ns == 0` fails with `InvalidTtl(0)` and changes nothing |
//! | `ttl_huge_saturates` | any TTL up to `u64::MAX` is accepted and saturates: no overflow, no error, no immediate expiry |
//! | `ttl_never_early` | a read that ends before `call_start + ttl` sees the key (TTLs round up, never down) |
//! | `ttl_never_much_late` | a read that starts after `call_end + ttl + granularity` does not see the key |
//! | `ttl_expired_absent_everywhere` | an expired key is absent for `get`, `exists`, `delete`, `list_keys`, `increment` and CAS |
//! | `ttl_cleared_by_set` | `set` removes any TTL the key had |
//! | `ttl_replaced_by_set_with_ttl` | `set_with_ttl` on a key replaces its TTL, shorter or longer |
//! | `ttl_cleared_by_cas` | a successful `compare_and_swap` writes the new value with no TTL |
//! | `ttl_kept_by_increment` | `increment` on a live key keeps that key's TTL unchanged |
//! | `ttl_not_set_by_creating_increment` | `increment` that creates a key (absent or expired) creates it without TTL |
//! | `concurrent_increments_exact` | concurrent increments never lose an update and each returns a distinct result |
//! | `concurrent_cas_single_winner` | of concurrent CAS calls with the same expected value, exactly one succeeds |
//! | `concurrent_cas_absent_single_winner` | of concurrent CAS calls expecting an absent key, exactly one succeeds |
//! | `concurrent_cas_loop_counter_exact` | a get + CAS retry-loop counter in many tasks ends exact |
//! | `concurrent_deletes_single_true` | of concurrent deletes of one live key, exactly one returns true |
//! | `concurrent_writes_are_whole` | readers racing writers see only whole values that were written |
//! | `concurrent_writes_visible` | a completed write is visible to every read that starts after it |
//! | `concurrent_list_during_writes` | `list_keys` includes keys live for the whole call, excludes keys absent for the whole call |
//! | `concurrent_history_linearizable` | a contended history over hot keys, with TTLs expiring during it, is linearizable ([`Checker`]) |
//! | `concurrent_cancellation_linearizable` | calls dropped at random await points (as a timeout or `select!` drops them) leave a linearizable history and a backend that still answers |
//! | `batch_get_many_in_order` | `get_many` answers in the order asked: repeated keys twice, absent keys `None` |
//! | `batch_set_many_in_order` | `set_many` writes every entry in order; of a key given twice the last value stays |
//! | `batch_set_many_ttl` | `set_many` with a TTL expires every key; without one it clears a TTL |
//! | `batch_delete_many_counts` | `delete_many` removes every key and counts the live ones removed, a repeated key once |
//! | `batch_invalid_input_changes_nothing` | a batch with one invalid key, value or TTL fails with its error and changes nothing |
//! | `batch_large_split` | batches of 1200 keys, beyond every store's own limit, are split, never refused |
//! | `batch_hostile_keys` | hostile keys survive `get_many`, `set_many`, `delete_many` and paging exactly |
//! | `pages_each_key_once` | `list_keys_page` lists every key once, in order, for every page size |
//! | `pages_during_writes` | pages list every key live for the whole listing exactly once while other keys change |
//! | `capabilities_are_true` | the declared [`Capabilities`](kv_trait::Capabilities) are those checked; declared atomic batches are atomic |
//! | `namespaces_isolated` | backends with different namespaces never see each other's keys |
//! | `watch_delivers_every_change` | `watch` delivers every change under its prefix once, in each key's order, from subscription on, nothing from outside its prefix or namespace; a backend that declares no watch says `Unsupported` |
//! | `debug_hides_secrets` | `Debug` output never contains a declared secret ([`Profile::with_secret`]) |
//! | `model_state_machine` | random sequences of all eight operations over hostile keys agree with the [`Model`] |
//!
//! Every check also enforces two rules implicitly: an operation must not panic (a panic fails
//! the check that caused it) and must not hang (a check fails after
//! [`Profile::check_timeout`]).
//!
//! Consistency across several handles on one store (two backends on one file, two connections
//! to one server) needs handles the factory does not make: [`shared_store`] has those checks,
//! for an adapter's own tests to call ([`shared_store::history_across`] runs the
//! linearizability workload across handles). Not checkable from outside a backend, and so left to each
//! adapter's own tests: that keys and values reach the store as data, that blocking work stays
//! off the executor, that requests time out and reconnect.
//!
//! # Histories and linearizability
//!
//! [`Recorder`] wraps any backend and logs every call made through it (who, what, invoke and
//! return instants on the monotonic clock, result) into a [`History`]; [`Workload`] runs a
//! contended history over a few hot keys from many tasks; [`Checker`] decides, key by key,
//! whether a history is linearizable against the [`Model`], treating `Unavailable` calls as
//! maybe-applied at any time after their invocation, and shows a violation as a small
//! sub-history. The [`linearizability`] module documents the search, the treatment of expiry
//! and the bounds. The suite runs all three as `concurrent_history_linearizable`; to check
//! several handles on one store, pass them to [`Workload::run_on`]:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use kv_conformance::{Checker, Workload};
//! use kv_trait::KvBackend;
//!
//! let store = kv_memory::MemoryBackend::new();
//! let handles: Vec<Arc<dyn KvBackend>> = vec![Arc::new(store.clone()), Arc::new(store)];
//! let history = Workload::new().tasks(8).steps_per_task(40).run_on(handles).await;
//! let result = Checker::new().check(&history);
//! assert!(result.is_linearizable(), "{result}");
//! # });
//! ```
//!
//! # Load
//!
//! [`load::run_load`] starts 10,000 tasks at once on one handle (four calls each on shared
//! keys and contended counters) and reports the latency percentiles, failed calls, counters
//! that are not exact, and the peak of open file descriptors and resident memory;
//! [`load::LoadReport::check`] holds them to [`load::LoadOptions`]: with a backend's default
//! settings nothing may fail, and descriptors must stay within what its pool allows. Not in
//! the suite (one burst takes seconds on a networked store); each adapter's `tests/load.rs`
//! runs it.
//!
//! # Reliability figures
//!
//! The fault checks ([`faults`]), crash rounds ([`crash`]) and the load burst ([`load`]) report
//! what they measured; [`reliability::record`] writes such figures as JSON files into the
//! directory `KVKIT_RELIABILITY_DIR` names (and does nothing without it), so that a script can
//! gather every adapter's figures into one report, and [`reliability::scaled`] lengthens a
//! test when `KVKIT_RELIABILITY_FULL` asks for the long version.
//!
//! # Timing
//!
//! Expiry checks measure the time around every call and judge only what the contract decides:
//! a read that *ended* before `call_start + ttl` must see the key, a read that *started* after
//! `call_end + ttl + granularity` must not. An attempt that a loaded machine leaves undecided is
//! retried with a doubled TTL (150 ms, 300 ms, 600 ms, 1.2 s); never counted as a pass.
//!
//! # The state machine
//!
//! `model_state_machine` runs random sequences of up to 30 operations over a small colliding
//! key space (prefixes of each other, `%`, `_`, `*`, `[`, `\`, NUL, non-BMP text, 1024-byte
//! keys and two invalid keys) against a fresh backend and the model. A failure is shrunk to a
//! minimal sequence, shown with each operation's result. Set the number of sequences with
//! `KV_CONFORMANCE_CASES` (default 64) and replay one with `KV_CONFORMANCE_SEED=<seed>` (the
//! failure message gives it), or with [`Profile::with_cases`] and [`Profile::with_seed`].

mod cancellation;
mod checks;
mod concurrency;
pub mod crash;
mod each_call;
pub mod faults;
mod history;
pub mod linearizability;
pub mod load;
mod model;
mod probe;
mod profile;
mod props;
pub mod reliability;
mod report;
pub mod shared_store;
mod suite;

pub use checks::{Check, CHECKS};
pub use history::{Call, History, Recorder, Workload};
pub use linearizability::{Checker, KeyResult, Linearizability, Settled, Verdict, Violation};
pub use model::{ErrorKind, Model, Op, Outcome};
pub use profile::{Profile, CASES_ENV, DEFAULT_CASES, SEED_ENV};
pub use report::{CheckOutcome, Failure, Report};
#[doc(hidden)]
pub use suite::__run_check_test;
pub use suite::{Progress, Suite};

/// Hostile keys for a backend's own tests: NUL, wildcards of every query language, controls,
/// non-BMP text, Unicode look-alikes, keys of exactly 1024 bytes.
pub fn hostile_keys() -> Vec<String> {
    checks::keys::hostile_keys(kv_trait::MAX_KEY_BYTES)
}

/// Expands to one test per check of the suite, named after the check.
///
/// `conformance_tests!(factory)` or `conformance_tests!(factory, profile)`, where `factory` is
/// an expression of a closure type `Fn() -> impl Future<Output = Result<B, KvError>>` as for
/// [`Suite::new`], and `profile` a [`Profile`] or an `Option<Profile>`. Both expressions are
/// evaluated once per test. A `None` profile says the store is not available here (a server
/// that could not be found, say): every test then returns at once, so make sure whatever
/// decided that has announced the skip, or failed, as
/// `kv_test_services::unavailable` does. Use the macro
/// at the top level of an integration test file or inside a module.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!($factory, $crate::Profile::default());
    };
    ($factory:expr, $profile:expr $(,)?) => {
        $crate::__each_check! { @tests ($factory) ($profile) }
    };
}

/// The names of all checks, once; [`conformance_tests!`] uses it. A unit test keeps it equal
/// to [`CHECKS`].
#[doc(hidden)]
#[macro_export]
macro_rules! __each_check {
    (@tests ($factory:expr) ($profile:expr)) => {
        $crate::__each_check! { @list tests ($factory) ($profile) }
    };
    (@names) => {
        $crate::__each_check!(@list names () ())
    };
    (@list $mode:ident $args:tt $profile:tt) => {
        $crate::__each_check! { @emit $mode $args $profile
            keys_empty_rejected keys_too_long_rejected keys_max_length_accepted
            keys_stored_exactly keys_case_sensitive
            values_empty_value_is_some values_binary_exact values_max_size_accepted
            values_oversize_rejected
            get_absent_and_set_overwrites delete_reports_removal exists_tracks_liveness
            list_prefix_is_literal list_sorted_and_unique list_prefix_not_validated
            increment_absent_starts_at_delta increment_counter_arithmetic
            increment_rejects_non_counters increment_overflow_rejected
            cas_expecting_absent cas_expecting_value cas_empty_is_not_absent cas_validates_first
            ttl_zero_rejected ttl_huge_saturates ttl_never_early ttl_never_much_late
            ttl_expired_absent_everywhere ttl_cleared_by_set ttl_replaced_by_set_with_ttl
            ttl_cleared_by_cas ttl_kept_by_increment ttl_not_set_by_creating_increment
            concurrent_increments_exact concurrent_cas_single_winner
            concurrent_cas_absent_single_winner concurrent_cas_loop_counter_exact
            concurrent_deletes_single_true concurrent_writes_are_whole concurrent_writes_visible
            concurrent_list_during_writes concurrent_history_linearizable
            concurrent_cancellation_linearizable
            batch_get_many_in_order batch_set_many_in_order batch_set_many_ttl
            batch_delete_many_counts batch_invalid_input_changes_nothing batch_large_split
            batch_hostile_keys pages_each_key_once pages_during_writes capabilities_are_true
            namespaces_isolated watch_delivers_every_change debug_hides_secrets model_state_machine
        }
    };
    (@emit tests ($factory:expr) ($profile:expr) $($name:ident)+) => {
        $(
            #[test]
            fn $name() {
                $crate::__run_check_test(stringify!($name), $factory, $profile);
            }
        )+
    };
    (@emit names () () $($name:ident)+) => {
        [$(stringify!($name)),+]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_macro_names_every_check_in_order() {
        let registry: Vec<&str> = CHECKS.iter().map(|check| check.name).collect();
        assert_eq!(registry, __each_check!(@names).to_vec());
    }

    #[test]
    fn the_crate_docs_list_every_check() {
        let docs = include_str!("lib.rs");
        for check in CHECKS {
            assert!(
                docs.contains(&format!("//! | `{}` |", check.name)),
                "{} is not in the docs table",
                check.name
            );
        }
    }

    #[test]
    fn check_names_are_unique() {
        let mut names: Vec<&str> = CHECKS.iter().map(|check| check.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
    }
}
