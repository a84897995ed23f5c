//! Checks for the hygiene rules that can be seen from outside the backend.

use crate::probe::{ensure, CheckResult, Probe};

/// `Debug` output works and contains none of the profile's declared secrets.
pub(crate) async fn debug_hides_secrets(t: Probe) -> CheckResult {
    let shown = format!("{:?} {:#?}", t.backend, t.backend);
    ensure(!shown.trim().is_empty(), || "Debug output is empty".into())?;
    for secret in &t.profile.secrets {
        ensure(!shown.contains(secret.as_str()), || {
            format!("Debug output contains the secret {secret:?}: {shown}")
        })?;
    }
    Ok(())
}
