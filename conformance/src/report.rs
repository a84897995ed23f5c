//! [`Report`]: what a suite run found, as a table and as failure details.

use std::fmt;
use std::time::Duration;

/// Why a check failed: what was expected, what happened, and the operations that led there.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    /// One line saying which rule broke.
    pub message: String,
    /// What the contract requires, when there is one answer.
    pub expected: Option<String>,
    /// What the backend did.
    pub got: Option<String>,
    /// The operations before the failure, oldest first, each with its outcome.
    pub operations: Vec<String>,
}

impl Failure {
    /// A failure with just a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// A failure that compares what was expected with what came back.
    pub fn mismatch(
        message: impl Into<String>,
        expected: impl fmt::Display,
        got: impl fmt::Display,
    ) -> Self {
        Self {
            message: message.into(),
            expected: Some(expected.to_string()),
            got: Some(got.to_string()),
            operations: Vec::new(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  {}", self.message)?;
        if let Some(expected) = &self.expected {
            writeln!(f, "    expected: {expected}")?;
        }
        if let Some(got) = &self.got {
            writeln!(f, "    got:      {got}")?;
        }
        if !self.operations.is_empty() {
            writeln!(f, "    operations (oldest first):")?;
            for op in &self.operations {
                writeln!(f, "      {op}")?;
            }
        }
        Ok(())
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The check's name (as in [`crate::CHECKS`] and the generated test names).
    pub name: &'static str,
    /// The contract rule it covers.
    pub rule: &'static str,
    /// How long it took, including making and cleaning its backends.
    pub elapsed: Duration,
    /// `None` when it passed.
    pub failure: Option<Failure>,
}

impl CheckOutcome {
    /// True when the check passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Everything a [`Suite`](crate::Suite) run found. `Display` prints a table of checks and then
/// each failure in detail.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every check that ran, in the suite's order.
    pub outcomes: Vec<CheckOutcome>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// True when every check passed (and at least one ran).
    pub fn passed(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(CheckOutcome::passed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.outcomes.iter().filter(|outcome| !outcome.passed())
    }

    /// The outcome of the check called `name`, if it ran.
    pub fn outcome(&self, name: &str) -> Option<&CheckOutcome> {
        self.outcomes.iter().find(|outcome| outcome.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .outcomes
            .iter()
            .map(|o| o.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(f, "{:<width$}  {:<6}  {:>9}", "check", "result", "time")?;
        writeln!(f, "{:-<width$}  {:-<6}  {:->9}", "", "", "")?;
        for outcome in &self.outcomes {
            let result = if outcome.passed() { "pass" } else { "FAIL" };
            let ms = outcome.elapsed.as_secs_f64() * 1000.0;
            writeln!(f, "{:<width$}  {result:<6}  {ms:>7.0}ms", outcome.name)?;
        }
        let failed = self.failures().count();
        writeln!(
            f,
            "{} checks: {} passed, {failed} failed in {:.1}s",
            self.outcomes.len(),
            self.outcomes.len() - failed,
            self.elapsed.as_secs_f64()
        )?;
        for outcome in self.failures() {
            writeln!(f, "\nFAIL {} ({})", outcome.name, outcome.rule)?;
            if let Some(failure) = &outcome.failure {
                write!(f, "{failure}")?;
            }
        }
        Ok(())
    }
}
