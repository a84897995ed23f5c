//! [`Suite`]: runs the checks against backends from a factory and collects a [`Report`].

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use kv_trait::{KvBackend, KvError};

use crate::checks::{Check, CHECKS};
use crate::probe::Probe;
use crate::report::{CheckOutcome, Failure, Report};
use crate::Profile;

/// Makes a fresh, empty, isolated backend for one check.
pub(crate) type Factory =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Box<dyn KvBackend>, KvError>> + Send + Sync>;

/// How long cleaning one backend after a check may take before the suite moves on.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a progress callback hears while a suite runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A check started.
    Started {
        /// The check's name.
        name: &'static str,
    },
    /// A check finished.
    Finished {
        /// Its outcome.
        outcome: &'a CheckOutcome,
        /// Checks finished so far, this one included.
        done: usize,
        /// Checks in this run.
        total: usize,
    },
}

type ProgressFn = Arc<dyn Fn(Progress<'_>) + Send + Sync>;

/// The conformance suite: every check of the contract, run against fresh backends.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let report = kv_conformance::Suite::new(|| async { Ok(kv_memory::MemoryBackend::new()) })
///     .with_profile(kv_conformance::Profile::default())
///     .only(["values_empty_value_is_some", "increment_counter_arithmetic"])
///     .run()
///     .await;
/// assert!(report.passed(), "{report}");
/// # });
/// ```
///
/// The factory is called once per check (and again by checks that need a second namespace);
/// each call must yield an empty backend that shares no keys with any other (on a shared
/// server: a fresh namespace). After each check the suite deletes every key left in the
/// backends it made, whether the check passed or not.
#[derive(Clone)]
pub struct Suite {
    factory: Factory,
    profile: Profile,
    only: Option<Vec<String>>,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("profile", &self.profile)
            .field("only", &self.only)
            .finish_non_exhaustive()
    }
}

impl Suite {
    /// A suite over backends made by `factory`, with the default [`Profile`].
    pub fn new<F, Fut, B>(factory: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B, KvError>> + Send + 'static,
        B: KvBackend + 'static,
    {
        let factory: Factory = Arc::new(move || {
            let made = factory();
            Box::pin(async move { made.await.map(|b| Box::new(b) as Box<dyn KvBackend>) })
        });
        Self {
            factory,
            profile: Profile::default(),
            only: None,
            progress: None,
        }
    }

    /// Replaces the profile (what the backend declares, and the run's knobs).
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Runs only the named checks (see [`crate::CHECKS`]); unknown names are ignored.
    pub fn only<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Calls `callback` as checks start and finish (from several tasks; keep it quick).
    pub fn on_progress(mut self, callback: impl Fn(Progress<'_>) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(callback));
        self
    }

    /// Runs the selected checks and reports on each.
    ///
    /// Checks run concurrently ([`Profile::parallel_checks`] at a time), the timing checks
    /// last and together, since they mostly wait. Run it on a multi-threaded runtime: on a
    /// current-thread runtime the concurrency checks only interleave, they do not run in
    /// parallel.
    pub async fn run(self) -> Report {
        let started = Instant::now();
        let selected: Vec<&'static Check> = CHECKS
            .iter()
            .filter(|check| {
                self.only
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|n| n == check.name))
            })
            .collect();
        let total = selected.len();
        let profile = Arc::new(self.profile.clone());
        let done = std::sync::atomic::AtomicUsize::new(0);
        let this = &self;
        let run_group = |checks: Vec<&'static Check>, parallel: usize| {
            let (profile, done) = (&profile, &done);
            stream::iter(checks)
                .map(move |check| async move {
                    let outcome = this.run_one(check, profile.clone()).await;
                    if let Some(progress) = &this.progress {
                        let done = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        progress(Progress::Finished {
                            outcome: &outcome,
                            done,
                            total,
                        });
                    }
                    outcome
                })
                .buffer_unordered(parallel.max(1))
                .collect::<Vec<_>>()
        };
        let (timing, others): (Vec<_>, Vec<_>) =
            selected.into_iter().partition(|check| check.timing);
        let timing_count = timing.len();
        let mut outcomes = run_group(others, profile.parallel_checks).await;
        outcomes.extend(run_group(timing, timing_count).await);
        outcomes.sort_by_key(|outcome| CHECKS.iter().position(|check| check.name == outcome.name));
        Report {
            outcomes,
            elapsed: started.elapsed(),
        }
    }

    /// Runs the one check called `name`; `None` when there is no such check.
    pub async fn run_check(&self, name: &str) -> Option<CheckOutcome> {
        let check = CHECKS.iter().find(|check| check.name == name)?;
        Some(self.run_one(check, Arc::new(self.profile.clone())).await)
    }

    async fn run_one(&self, check: &'static Check, profile: Arc<Profile>) -> CheckOutcome {
        if let Some(progress) = &self.progress {
            progress(Progress::Started { name: check.name });
        }
        let started = Instant::now();
        let failure = match self.make_backend(&profile).await {
            Ok(backend) => {
                let probe = Probe::new(backend, profile.clone(), self.factory.clone());
                let failure = run_guarded(check, probe.clone(), profile.check_timeout)
                    .await
                    .err();
                let failure = failure.map(|mut f| {
                    if f.operations.is_empty() {
                        f.operations = probe.operations();
                    }
                    f
                });
                clean(probe.all_backends(), probe.written_keys()).await;
                failure
            }
            Err(failure) => Some(failure),
        };
        CheckOutcome {
            name: check.name,
            rule: check.rule,
            elapsed: started.elapsed(),
            failure,
        }
    }

    async fn make_backend(&self, profile: &Profile) -> Result<Arc<dyn KvBackend>, Failure> {
        match tokio::time::timeout(profile.check_timeout, (self.factory)()).await {
            Ok(Ok(backend)) => Ok(Arc::from(backend)),
            Ok(Err(err)) => Err(Failure::new(format!(
                "the factory failed to make a backend: {err}"
            ))),
            Err(_) => Err(Failure::new("the factory did not return a backend in time")),
        }
    }
}

/// Runs a check in its own task, so that a panic or a hang becomes a failure of that check.
async fn run_guarded(check: &'static Check, probe: Probe, limit: Duration) -> Result<(), Failure> {
    let task = tokio::spawn((check.run)(probe));
    let abort = task.abort_handle();
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) if join_error.is_panic() => Err(Failure::new(format!(
            "panicked: {}",
            panic_message(join_error.into_panic())
        ))),
        Ok(Err(join_error)) => Err(Failure::new(format!(
            "the check's task ended: {join_error}"
        ))),
        Err(_) => {
            abort.abort();
            Err(Failure::new(format!(
                "did not finish within {limit:?} (an operation hangs?)"
            )))
        }
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-string panic payload)".into())
}

/// Deletes every key left in `backends`, listed or known to have been written (an expired key
/// is not listed but may still take space until deleted). Best effort, in a task of its own: a
/// broken backend that errs, hangs or panics here must not stop the run.
async fn clean(backends: Vec<Arc<dyn KvBackend>>, written: Vec<String>) {
    let sweep = tokio::spawn(async move {
        for backend in backends {
            let listed = backend.list_keys("").await.unwrap_or_default();
            for key in listed.iter().chain(&written) {
                let _ = backend.delete(key).await;
            }
        }
    });
    let abort = sweep.abort_handle();
    if tokio::time::timeout(CLEANUP_TIMEOUT, sweep).await.is_err() {
        abort.abort();
    }
}

/// Entry point of the tests that [`conformance_tests!`](crate::conformance_tests) generates:
/// runs one check on a fresh multi-threaded runtime and panics with the report if it fails.
/// A `None` profile means the store is not available here: the test returns without running
/// (whoever decided that has already said so, or failed the test).
#[doc(hidden)]
pub fn __run_check_test<F, Fut, B>(name: &str, factory: F, profile: impl Into<Option<Profile>>)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<B, KvError>> + Send + 'static,
    B: KvBackend + 'static,
{
    let Some(profile) = profile.into() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("cannot start a tokio runtime for the check: {err}"));
    let suite = Suite::new(factory).with_profile(profile);
    let outcome = runtime
        .block_on(suite.run_check(name))
        .unwrap_or_else(|| panic!("kv-conformance has no check called {name:?}"));
    let report = Report {
        elapsed: outcome.elapsed,
        outcomes: vec![outcome],
    };
    assert!(report.passed(), "{report}");
}
