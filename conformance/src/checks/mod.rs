//! The registry of named checks: every rule of the contract and the check that covers it.

mod batches;
mod expiry;
mod hygiene;
pub(crate) mod keys;
mod namespaces;
mod operations;
mod values;
mod watch;

use futures::future::BoxFuture;

use crate::probe::{CheckResult, Probe};
use crate::props;
use crate::{cancellation, concurrency};

/// One named check of the suite.
#[derive(Debug)]
pub struct Check {
    /// Unique name; also the name of the test [`conformance_tests!`](crate::conformance_tests)
    /// generates for it.
    pub name: &'static str,
    /// The contract section it belongs to.
    pub section: &'static str,
    /// The rule it covers, in a sentence.
    pub rule: &'static str,
    /// Whether it measures time (these run last, together, since they mostly wait).
    pub(crate) timing: bool,
    pub(crate) run: fn(Probe) -> BoxFuture<'static, CheckResult>,
}

macro_rules! checks {
    ($( $section:literal { $( $name:ident $(($timing:ident))? = $function:path : $rule:literal ),+ $(,)? } )+) => {
        /// Every check of the suite, in report order.
        pub static CHECKS: &[Check] = &[ $( $( Check {
            name: stringify!($name),
            section: $section,
            rule: $rule,
            timing: checks!(@timing $($timing)?),
            run: |probe| Box::pin($function(probe)),
        }, )+ )+ ];
    };
    (@timing timing) => { true };
    (@timing) => { false };
}

checks! {
    "Keys" {
        keys_empty_rejected = keys::empty_key_rejected:
            "the empty key fails with InvalidKey in every operation and writes nothing",
        keys_too_long_rejected = keys::long_key_rejected:
            "keys over 1024 bytes (counted in bytes) fail with InvalidKey and write nothing",
        keys_max_length_accepted = keys::max_length_key_accepted:
            "keys of exactly 1024 bytes work with every operation",
        keys_stored_exactly = keys::keys_stored_exactly:
            "any Unicode key (NUL, wildcards, controls, non-BMP, look-alikes) is stored and listed exactly",
        keys_case_sensitive = keys::keys_case_sensitive:
            "case is significant",
    }
    "Values" {
        values_empty_value_is_some = values::empty_value_is_some:
            "get of a key set to b\"\" is Some(vec![]), never None",
        values_binary_exact = values::binary_values_exact:
            "any byte string, including NUL and invalid UTF-8, comes back exactly",
        values_max_size_accepted = values::max_size_value_accepted:
            "a value of exactly the declared maximum is accepted",
        values_oversize_rejected = values::oversize_value_rejected:
            "a longer value fails with ValueTooLarge { size, max } and the previous value is untouched",
    }
    "Operations" {
        get_absent_and_set_overwrites = operations::get_and_set:
            "get of an absent key is None; set writes unconditionally, last writer wins",
        delete_reports_removal = operations::delete_reports_removal:
            "delete returns true iff a live key was removed",
        exists_tracks_liveness = operations::exists_tracks_liveness:
            "exists is true iff the key is live",
        list_prefix_is_literal = operations::list_prefix_is_literal:
            "list_keys matches a byte prefix: no wildcards, no case folding",
        list_sorted_and_unique = operations::list_sorted_and_unique:
            "list_keys returns each key once, sorted ascending by bytes",
        list_prefix_not_validated = operations::list_prefix_not_validated:
            "the prefix is not validated as a key: \"\" lists all, long prefixes are fine",
        increment_absent_starts_at_delta = operations::increment_absent_starts_at_delta:
            "increment of an absent key stores delta and returns it",
        increment_counter_arithmetic = operations::increment_counter_arithmetic:
            "increment of a live counter stores and returns n + delta as canonical decimal bytes",
        increment_rejects_non_counters = operations::increment_rejects_non_counters:
            "only the canonical i64 form is a counter; others fail with NotAnInteger and stay unchanged",
        increment_overflow_rejected = operations::increment_overflow_rejected:
            "a result outside i64 fails with IntegerOverflow and changes nothing",
        cas_expecting_absent = operations::cas_expecting_absent:
            "CAS with expected = None succeeds iff the key is absent",
        cas_expecting_value = operations::cas_expecting_value:
            "CAS with Some(e) succeeds iff the live value equals e byte for byte",
        cas_empty_is_not_absent = operations::cas_empty_is_not_absent:
            "CAS distinguishes Some(b\"\") from None",
        cas_validates_first = operations::cas_validates_first:
            "CAS validates key and new value first, whatever the outcome would be",
    }
    "Expiry" {
        ttl_zero_rejected = expiry::zero_ttl_rejected:
            "ttl_ns == 0 fails with InvalidTtl(0) and changes nothing",
        ttl_huge_saturates = expiry::huge_ttl_saturates:
            "any TTL up to u64::MAX is accepted and saturates: no overflow, no error, no immediate expiry",
        ttl_never_early (timing) = expiry::never_early:
            "a read that ends before call_start + ttl sees the key (TTLs round up, never down)",
        ttl_never_much_late (timing) = expiry::never_much_late:
            "a read that starts after call_end + ttl + granularity does not see the key",
        ttl_expired_absent_everywhere (timing) = expiry::expired_key_absent_everywhere:
            "an expired key is absent for get, exists, delete, list_keys, increment and CAS",
        ttl_cleared_by_set (timing) = expiry::set_clears_ttl:
            "set removes any TTL the key had",
        ttl_replaced_by_set_with_ttl (timing) = expiry::set_with_ttl_replaces_ttl:
            "set_with_ttl on a key replaces its TTL, shorter or longer",
        ttl_cleared_by_cas (timing) = expiry::cas_clears_ttl:
            "a successful compare_and_swap writes the new value with no TTL",
        ttl_kept_by_increment (timing) = expiry::increment_keeps_ttl:
            "increment on a live key keeps that key's TTL unchanged",
        ttl_not_set_by_creating_increment (timing) = expiry::increment_creates_without_ttl:
            "increment that creates a key (absent or expired) creates it without TTL",
    }
    "Consistency" {
        concurrent_increments_exact = concurrency::increments_never_lost:
            "concurrent increments never lose an update and each returns a distinct result",
        concurrent_cas_single_winner = concurrency::cas_single_winner:
            "of concurrent CAS calls with the same expected value, exactly one succeeds",
        concurrent_cas_absent_single_winner = concurrency::cas_absent_single_winner:
            "of concurrent CAS calls expecting an absent key, exactly one succeeds",
        concurrent_cas_loop_counter_exact = concurrency::cas_loop_counter_exact:
            "a get + CAS retry-loop counter in many tasks ends exact",
        concurrent_deletes_single_true = concurrency::deletes_single_true:
            "of concurrent deletes of one live key, exactly one returns true",
        concurrent_writes_are_whole = concurrency::racing_writes_are_whole:
            "readers racing writers see only whole values that were written",
        concurrent_writes_visible = concurrency::writes_visible_to_later_reads:
            "a completed write is visible to every read that starts after it",
        concurrent_list_during_writes = concurrency::list_during_writes:
            "list_keys includes keys live for the whole call and excludes keys absent for the whole call",
        concurrent_history_linearizable = concurrency::history_linearizable:
            "a contended history over hot keys, with TTLs expiring during it, is linearizable",
        concurrent_cancellation_linearizable = cancellation::history_with_dropped_calls:
            "calls dropped at random await points leave a linearizable history and a backend that still answers",
    }
    "Batches and pages" {
        batch_get_many_in_order = batches::get_many_in_order:
            "get_many answers in the order asked: repeated keys twice, absent keys None",
        batch_set_many_in_order = batches::set_many_writes_in_order:
            "set_many writes every entry in order; of a key given twice the last value stays",
        batch_set_many_ttl (timing) = batches::set_many_ttl:
            "set_many with a TTL expires every key; without one it clears a TTL, as set does",
        batch_delete_many_counts = batches::delete_many_counts:
            "delete_many removes every key and counts the live ones removed, a repeated key once",
        batch_invalid_input_changes_nothing = batches::batch_invalid_input_changes_nothing:
            "a batch with one invalid key, value or TTL fails with its error and changes nothing",
        batch_large_split = batches::large_batches_split:
            "batches of 1200 keys, beyond every store's own limit, are split, never refused",
        batch_hostile_keys = batches::batches_keep_hostile_keys:
            "hostile keys survive get_many, set_many, delete_many and paging exactly",
        pages_each_key_once = batches::pages_list_each_key_once:
            "list_keys_page lists every key once, in order, for every page size; start_after need not be a key",
        pages_during_writes = batches::pages_during_writes:
            "pages list every key live for the whole listing exactly once while other keys change",
        capabilities_are_true = batches::capabilities_are_true:
            "the declared capabilities are those checked, and declared atomic batches are atomic",
    }
    "Namespaces" {
        namespaces_isolated = namespaces::namespaces_isolated:
            "backends with different namespaces never see each other's keys",
    }
    "Watch" {
        watch_delivers_every_change = watch::watch_delivers_every_change:
            "watch delivers every change under its prefix once, in each key's order, from subscription on; nothing from outside its prefix or namespace",
    }
    "Hygiene" {
        debug_hides_secrets = hygiene::debug_hides_secrets:
            "Debug output never contains a password, token or secret key",
    }
    "Model" {
        model_state_machine = props::model_state_machine:
            "random sequences of all eight operations over hostile keys agree with the reference model",
    }
}
