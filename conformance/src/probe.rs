//! [`Probe`]: a check's handle on the backend under test, recording every operation so a
//! failure can show what led to it.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::{Arc, Mutex, PoisonError};

use kv_trait::KvBackend;

use crate::model::{ErrorKind, Op, Outcome};
use crate::report::Failure;
use crate::suite::Factory;
use crate::Profile;

/// Operations kept for a failure report; older ones are dropped (the count is kept).
const KEPT_OPERATIONS: usize = 40;

/// What a check returns.
pub(crate) type CheckResult = Result<(), Failure>;

#[derive(Debug, Default)]
struct Log {
    lines: Vec<String>,
    dropped: usize,
}

/// A check's context: the backend, the profile, the factory for more isolated backends, and
/// the operation log shared by everything the check spawns.
#[derive(Clone)]
pub(crate) struct Probe {
    pub(crate) backend: Arc<dyn KvBackend>,
    pub(crate) profile: Arc<Profile>,
    factory: Factory,
    log: Arc<Mutex<Log>>,
    /// Backends made during the check (besides `backend`), so the suite can clean them too.
    extra_backends: Arc<Mutex<Vec<Arc<dyn KvBackend>>>>,
    /// Every key a recorded operation wrote. Cleaning deletes these as well as the listed
    /// keys, since an expired key is not listed but may still occupy the store.
    written: Arc<Mutex<BTreeSet<String>>>,
}

impl Probe {
    pub(crate) fn new(
        backend: Arc<dyn KvBackend>,
        profile: Arc<Profile>,
        factory: Factory,
    ) -> Self {
        Self {
            backend,
            profile,
            factory,
            log: Arc::default(),
            extra_backends: Arc::default(),
            written: Arc::default(),
        }
    }

    /// Runs `op` on the backend under test and records it.
    pub(crate) async fn run(&self, op: Op) -> Outcome {
        self.run_on(&self.backend, op).await
    }

    /// Runs `op` on another backend (a second namespace) and records it, tagged.
    pub(crate) async fn run_on(&self, backend: &Arc<dyn KvBackend>, op: Op) -> Outcome {
        if let (Some(key), true) = (op.key(), op.writes()) {
            self.remember_written(key);
        }
        let outcome = op.apply(backend.as_ref()).await;
        let tag = if Arc::ptr_eq(backend, &self.backend) {
            ""
        } else {
            "[other] "
        };
        self.note(format!("{tag}{op} -> {outcome}"));
        outcome
    }

    /// Runs `op` and fails unless it returns `want`.
    pub(crate) async fn expect(&self, op: Op, want: Outcome) -> CheckResult {
        self.expect_on(&self.backend.clone(), op, want).await
    }

    /// [`Probe::expect`] on another backend.
    pub(crate) async fn expect_on(
        &self,
        backend: &Arc<dyn KvBackend>,
        op: Op,
        want: Outcome,
    ) -> CheckResult {
        let shown = op.to_string();
        let got = self.run_on(backend, op).await;
        if got == want {
            return Ok(());
        }
        Err(Failure::mismatch(
            format!("{shown} returned the wrong result"),
            want,
            got,
        ))
    }

    /// Runs `op` and fails unless it returns the error `kind`.
    pub(crate) async fn expect_error(&self, op: Op, kind: ErrorKind) -> CheckResult {
        self.expect(op, Outcome::Error(kind)).await
    }

    /// Runs `op` and fails if it returns any error; the outcome otherwise.
    pub(crate) async fn ok(&self, op: Op) -> Result<Outcome, Failure> {
        let shown = op.to_string();
        let outcome = self.run(op).await;
        match &outcome {
            Outcome::Error(kind) => Err(Failure::mismatch(
                format!("{shown} failed"),
                "success",
                format!("{kind:?}"),
            )),
            _ => Ok(outcome),
        }
    }

    /// Writes `value` at `key`, failing the check if that errors.
    pub(crate) async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> CheckResult {
        self.expect(Op::set(key, value), Outcome::Done).await
    }

    /// Fails unless `key` holds `value` (`None`: absent).
    pub(crate) async fn expect_value(&self, key: &str, value: Option<&[u8]>) -> CheckResult {
        self.expect(Op::get(key), Outcome::Value(value.map(<[u8]>::to_vec)))
            .await
    }

    /// Fails unless `list_keys(prefix)` returns exactly `keys`.
    pub(crate) async fn expect_keys(&self, prefix: &str, keys: &[&str]) -> CheckResult {
        let want = keys.iter().map(|k| (*k).to_owned()).collect();
        self.expect(Op::list_keys(prefix), Outcome::Keys(want))
            .await
    }

    /// A fresh, empty, isolated backend from the suite's factory.
    pub(crate) async fn another_backend(&self) -> Result<Arc<dyn KvBackend>, Failure> {
        let backend = (self.factory)().await.map_err(|err| {
            Failure::new(format!(
                "the factory failed to make a second backend: {err}"
            ))
        })?;
        let backend: Arc<dyn KvBackend> = Arc::from(backend);
        self.extra_backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(backend.clone());
        Ok(backend)
    }

    /// Adds a free-form line to the log (for summaries of bulk or concurrent work).
    pub(crate) fn note(&self, line: impl Display) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.lines.len() == KEPT_OPERATIONS {
            log.lines.remove(0);
            log.dropped += 1;
        }
        log.lines.push(line.to_string());
    }

    /// The recorded operations, oldest first.
    pub(crate) fn operations(&self) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines = Vec::with_capacity(log.lines.len() + 1);
        if log.dropped > 0 {
            lines.push(format!("({} earlier operations not shown)", log.dropped));
        }
        lines.extend(log.lines.iter().cloned());
        lines
    }

    /// Records that `key` may have been written, so the suite cleans it up.
    pub(crate) fn remember_written(&self, key: &str) {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned());
    }

    /// Every key a recorded operation may have written, in any of the check's backends.
    pub(crate) fn written_keys(&self) -> Vec<String> {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Every backend this check used.
    pub(crate) fn all_backends(&self) -> Vec<Arc<dyn KvBackend>> {
        let extra = self
            .extra_backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::iter::once(self.backend.clone())
            .chain(extra.iter().cloned())
            .collect()
    }
}

/// Fails with `message` unless `condition` holds.
pub(crate) fn ensure(condition: bool, message: impl FnOnce() -> String) -> CheckResult {
    if condition {
        Ok(())
    } else {
        Err(Failure::new(message()))
    }
}
