//! Figures for a reliability report: the fault, restart, failover, crash and load tests of an
//! adapter record what they measured, and a script turns the records into a table.
//!
//! A test calls [`record`] with the store it ran on, the name of what it checked and its
//! figures as JSON. Nothing happens unless [`DIR_ENV`] names a directory: then each record
//! becomes one file there, so that test binaries running in parallel never write to the same
//! file. kvkit's `ci/reliability` sets it, runs the tests in a release build, and writes
//! `RELIABILITY.md` from the files; `ci/test` leaves it unset.
//!
//! The same tests run short under `ci/test` and longer in the report's run: a test asks
//! [`scaled`] for its number of rounds, which is the long figure when [`FULL_ENV`] is set.
//!
//! ```
//! use kv_conformance::reliability;
//!
//! let rounds = reliability::scaled(12, 100); // 12 under `cargo test`, 100 in the full run
//! // ... run `rounds` crash rounds ...
//! reliability::record(
//!     "sqlite",
//!     "crash",
//!     reliability::json!({ "rounds": rounds, "acknowledged_writes": 4_200, "lost_writes": 0 }),
//! );
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// For figures written in a test: `reliability::json!({ "rounds": 12 })`.
pub use serde_json::{json, Value};

/// The environment variable naming the directory that [`record`] writes to.
pub const DIR_ENV: &str = "KVKIT_RELIABILITY_DIR";

/// The environment variable that asks for the long version of each test ([`scaled`]): set
/// to anything but empty or `0`.
pub const FULL_ENV: &str = "KVKIT_RELIABILITY_FULL";

/// True when [`FULL_ENV`] asks for the long version of each test.
pub fn full_run() -> bool {
    std::env::var(FULL_ENV).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// `full` in the long run ([`full_run`]), `short` otherwise: rounds, kills, repetitions.
pub fn scaled<T>(short: T, full: T) -> T {
    if full_run() {
        full
    } else {
        short
    }
}

/// Writes one record, `{"store": store, "check": check, "figures": figures}`, as a file of
/// its own in the directory that [`DIR_ENV`] names; does nothing when it is unset.
///
/// `store` names the store as the report's tables do (`sqlite`, `redis`, `redis-cluster`,
/// `etcd-cluster`, ...), `check` what was measured (`faults`, `crash`, `load`, ...).
///
/// # Panics
///
/// When the directory is set but the record cannot be written there: a report run that
/// silently lost its figures would print a table with holes.
pub fn record(store: &str, check: &str, figures: Value) {
    let Some(dir) = std::env::var_os(DIR_ENV).map(PathBuf::from) else {
        return;
    };
    if let Err(err) = write_record(&dir, store, check, figures) {
        panic!(
            "cannot write a reliability record in {}: {err}",
            dir.display()
        );
    }
}

/// [`record`] into `dir`: a new file named after the store, the check, this process and a
/// sequence number, so that parallel tests and binaries never share one.
fn write_record(
    dir: &Path,
    store: &str,
    check: &str,
    figures: serde_json::Value,
) -> std::io::Result<PathBuf> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let file = dir.join(format!(
        "{}--{}--{}-{}.json",
        file_safe(store),
        file_safe(check),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let body = serde_json::json!({ "store": store, "check": check, "figures": figures });
    std::fs::create_dir_all(dir)?;
    std::fs::write(&file, format!("{body:#}\n"))?;
    Ok(file)
}

/// Milliseconds of a duration, as a JSON number with nanosecond precision (an in-memory
/// call takes well under a microsecond).
pub fn millis(duration: std::time::Duration) -> f64 {
    duration.as_nanos() as f64 / 1_000_000.0
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_safe("redis-cluster"), "redis-cluster");
        assert_eq!(file_safe("../etc/x y"), "___etc_x_y");
    }

    #[test]
    fn each_record_is_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let figures = serde_json::json!({ "rounds": 3 });
        let first = write_record(dir.path(), "sqlite", "crash", figures.clone()).unwrap();
        let second = write_record(dir.path(), "sqlite", "crash", figures).unwrap();
        assert_ne!(first, second);
        let read: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
        assert_eq!(
            read,
            serde_json::json!({ "store": "sqlite", "check": "crash", "figures": { "rounds": 3 } })
        );
    }

    #[test]
    fn millis_keep_nanoseconds() {
        assert_eq!(
            millis(std::time::Duration::from_micros(1_234_567)),
            1234.567
        );
        assert_eq!(millis(std::time::Duration::from_nanos(250)), 0.00025);
        assert_eq!(millis(std::time::Duration::ZERO), 0.0);
    }
}
