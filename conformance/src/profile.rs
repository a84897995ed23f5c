//! [`Profile`]: what a backend declares about itself, and how hard the suite pushes it.

use std::time::Duration;

use kv_trait::DEFAULT_MAX_VALUE_BYTES;

/// Environment variable: how many random operation sequences the state-machine check runs.
pub const CASES_ENV: &str = "KV_CONFORMANCE_CASES";
/// Environment variable: the seed of the state-machine check (a `u64`), to replay a failure.
pub const SEED_ENV: &str = "KV_CONFORMANCE_SEED";

/// Sequences the state-machine check runs when neither the profile nor the environment says.
pub const DEFAULT_CASES: u32 = 64;

/// What the backend under test declares, and knobs for the run.
///
/// ```
/// use std::time::Duration;
/// let profile = kv_conformance::Profile::default()
///     .with_max_value_bytes(400_000)
///     .with_ttl_granularity(Duration::from_millis(1))
///     .with_secret("hunter2");
/// assert_eq!(profile.max_value_bytes, 400_000);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Profile {
    /// The backend's maximum value length in bytes (default 1 MiB).
    pub max_value_bytes: usize,
    /// The backend's maximum key length in bytes (default, and at most, 1024).
    pub max_key_bytes: usize,
    /// The backend's TTL rounding: how much later than `ttl_ns` a key may still be visible
    /// (default 1 ms).
    pub ttl_granularity: Duration,
    /// Strings that must never appear in the backend's `Debug` output (passwords, tokens).
    pub secrets: Vec<String>,
    /// Random sequences for the state-machine check; `None`: `KV_CONFORMANCE_CASES`, else
    /// [`DEFAULT_CASES`].
    pub cases: Option<u32>,
    /// Seed for the state-machine check; `None`: `KV_CONFORMANCE_SEED`, else random.
    pub seed: Option<u64>,
    /// Concurrent tasks in the concurrency checks (default 8).
    pub tasks: usize,
    /// How many checks run at the same time (default 4).
    pub parallel_checks: usize,
    /// A check that has not finished after this long fails (default 120 s).
    pub check_timeout: Duration,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_key_bytes: kv_trait::MAX_KEY_BYTES,
            ttl_granularity: Duration::from_millis(1),
            secrets: Vec::new(),
            cases: None,
            seed: None,
            tasks: 8,
            parallel_checks: 4,
            check_timeout: Duration::from_secs(120),
        }
    }
}

impl Profile {
    /// The profile a backend declares: [`Profile::max_value_bytes`],
    /// [`Profile::max_key_bytes`] and [`Profile::ttl_granularity`] from its [`capabilities`](kv_trait::KvBackend::capabilities),
    /// the rest at the defaults. The suite then checks what the backend claims (and the
    /// `capabilities_are_true` check fails a profile that differs from the declaration).
    ///
    /// ```
    /// use kv_conformance::Profile;
    /// use kv_memory::MemoryBackend;
    ///
    /// let profile = Profile::for_backend(&MemoryBackend::new());
    /// assert_eq!(profile.max_value_bytes, kv_trait::DEFAULT_MAX_VALUE_BYTES);
    /// ```
    pub fn for_backend(backend: &dyn kv_trait::KvBackend) -> Self {
        let declared = backend.capabilities();
        Self::default()
            .with_max_value_bytes(declared.max_value_bytes)
            .with_max_key_bytes(declared.max_key_bytes)
            .with_ttl_granularity(declared.ttl_granularity)
    }

    /// Sets [`Profile::max_key_bytes`] (at most 1024).
    pub fn with_max_key_bytes(mut self, max: usize) -> Self {
        self.max_key_bytes = max.min(kv_trait::MAX_KEY_BYTES);
        self
    }

    /// Sets [`Profile::max_value_bytes`].
    pub fn with_max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// Sets [`Profile::ttl_granularity`].
    pub fn with_ttl_granularity(mut self, granularity: Duration) -> Self {
        self.ttl_granularity = granularity;
        self
    }

    /// Adds a string that the backend's `Debug` output must not contain.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Sets [`Profile::cases`].
    pub fn with_cases(mut self, cases: u32) -> Self {
        self.cases = Some(cases);
        self
    }

    /// Sets [`Profile::seed`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets [`Profile::tasks`] (at least 2).
    pub fn with_tasks(mut self, tasks: usize) -> Self {
        self.tasks = tasks.max(2);
        self
    }

    /// Sets [`Profile::parallel_checks`] (at least 1).
    pub fn with_parallel_checks(mut self, checks: usize) -> Self {
        self.parallel_checks = checks.max(1);
        self
    }

    /// Sets [`Profile::check_timeout`].
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// The number of state-machine cases: profile, then environment, then the default.
    pub(crate) fn resolved_cases(&self) -> u32 {
        self.cases
            .or_else(|| std::env::var(CASES_ENV).ok()?.trim().parse().ok())
            .unwrap_or(DEFAULT_CASES)
    }

    /// The state-machine seed: profile, then environment, then fresh randomness.
    pub(crate) fn resolved_seed(&self) -> u64 {
        self.seed
            .or_else(|| std::env::var(SEED_ENV).ok()?.trim().parse().ok())
            .unwrap_or_else(random_seed)
    }
}

/// A seed that differs between runs, from the standard library's randomly keyed hasher.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
