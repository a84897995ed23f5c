//! `kvkit check [URL]`: the conformance suite against a store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kv_conformance::{Profile, Progress, Report, Suite, CHECKS};
use kv_trait::KvBackend;
use kvkit::Target;
use serde_json::json;

use super::{EXIT_ERROR, EXIT_FAILED, EXIT_PASSED};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The store to check, e.g. sqlite:///tmp/kv.db or memory://. Without one, an SQLite
    /// file in a new temporary directory.
    url: Option<String>,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Random operation sequences for the state-machine check (default 64, or
    /// KV_CONFORMANCE_CASES).
    #[arg(long, value_name = "N")]
    cases: Option<u32>,
    /// Seed for the state-machine check, to replay a failure (default random, or
    /// KV_CONFORMANCE_SEED).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Print the checks and the rule each covers, and exit.
    #[arg(long)]
    list: bool,
    /// Run only these checks (repeatable).
    #[arg(long = "only", value_name = "CHECK")]
    only: Vec<String>,
    /// Run the fault checks instead of the suite: a fault proxy in front of the store's
    /// host:port (redis://, rediss://, postgres://, etcd://: the first address), the URL
    /// rewritten to the proxy, and every fault in turn during a concurrent workload. Give the
    /// URL short timeouts (e.g. ?connect_timeout_ms=500&request_timeout_ms=500) and their sum
    /// as --call-timeout-ms.
    #[arg(long)]
    faults: bool,
    /// With --faults: the longest a call of the store may take, connecting included.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    call_timeout_ms: u64,
}

pub(crate) async fn run(args: CheckArgs) -> u8 {
    if args.list {
        print_checks();
        return EXIT_PASSED;
    }
    if args.faults {
        return run_faults(
            args.url.as_deref(),
            Duration::from_millis(args.call_timeout_ms),
            args.json,
        )
        .await;
    }
    // Keeps the default store's directory alive until the run ends, then removes it.
    let mut scratch = None;
    let target = match resolve_target(args.url.as_deref(), &mut scratch) {
        Ok(target) => target,
        Err(err) => return error(&err),
    };
    if let Some(unknown) = args
        .only
        .iter()
        .find(|name| !CHECKS.iter().any(|c| c.name == name.as_str()))
    {
        eprintln!("kvkit: no check is called `{unknown}` (see kvkit check --list)");
        return EXIT_ERROR;
    }
    // One open before the run: an unreachable store is one clear error, not one failure per check.
    let backend = match target.open().await {
        Ok(backend) => backend,
        Err(err) => return error(&format!("cannot open {target}: {err}")),
    };
    let profile = profile_for(&target, backend.as_ref(), &args);
    let report = run_suite(&target, profile, &args).await;
    if args.json {
        println!("{}", report_json(&target, &report));
    } else {
        println!("kvkit check {target}\n\n{report}");
    }
    if report.passed() {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    }
}

/// `kvkit check --faults URL` (`--json`: the report as JSON, `FaultReport::to_json`).
async fn run_faults(url: Option<&str>, call_timeout: Duration, as_json: bool) -> u8 {
    let Some(url) = url else {
        return error(&"--faults needs the URL of a networked store");
    };
    let address = match tcp_address(url) {
        Ok(address) => address,
        Err(err) => return error(&err),
    };
    let upstream = address.upstream();
    let report =
        kv_conformance::faults::FaultChecks::new(upstream.as_str(), call_timeout, |proxy| {
            let through_proxy = address.through(proxy);
            async move { kvkit::open(&through_proxy).await }
        })
        .run()
        .await;
    let shown = kv_trait::url_config::redact(url);
    if as_json {
        let mut report_json = report.to_json();
        report_json["target"] = shown.into();
        println!("{report_json}");
    } else {
        println!("kvkit check --faults {shown}\n\n{report}");
    }
    if report.passed() {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    }
}

/// Where a networked store's URL names its (first) server, and how to name another instead.
#[derive(Debug)]
struct TcpAddress {
    /// The URL up to the address (scheme, `//`, user information and `@`).
    before: String,
    /// `host:port` (`[v6]:port`), the port made explicit.
    host: String,
    port: u16,
    /// The rest after the whole address list (path and query).
    after: String,
}

impl TcpAddress {
    fn upstream(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL with its address list replaced by `proxy` alone.
    fn through(&self, proxy: std::net::SocketAddr) -> String {
        format!("{}{proxy}{}", self.before, self.after)
    }
}

/// The server address of a URL of a TCP store, found with kv-trait's rules
/// (`split_userinfo`, `parse_host_port`); a usage error for a store with no TCP host.
fn tcp_address(url: &str) -> Result<TcpAddress, String> {
    use kv_trait::url_config::{parse_host_port, redact, split_userinfo};
    let shown = redact(url);
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{shown}` is not a URL"))?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "redis" | "rediss" => 6379,
        "postgres" | "postgresql" => 5432,
        "etcd" => 2379,
        other => {
            return Err(format!(
                "--faults needs a store reached over TCP at a host:port in its URL \
                 (redis://, rediss://, postgres://, etcd://); `{other}:` has none \
                 (for dynamodb://, the endpoint option is not rewritten yet)"
            ))
        }
    };
    let location_end = rest.find('?').unwrap_or(rest.len());
    let (userinfo, addresses) = split_userinfo(&rest[..location_end]);
    let list_end = addresses.find('/').unwrap_or(addresses.len());
    let first = addresses[..list_end].split(',').next().unwrap_or_default();
    let (host, port) = parse_host_port(first, default_port).map_err(|err| err.to_string())?;
    let before = match userinfo {
        Some(userinfo) => format!("{scheme}://{userinfo}@"),
        None => format!("{scheme}://"),
    };
    let after = format!("{}{}", &addresses[list_end..], &rest[location_end..]);
    Ok(TcpAddress {
        before,
        host,
        port,
        after,
    })
}

fn error(err: &dyn std::fmt::Display) -> u8 {
    eprintln!("kvkit: {err}");
    EXIT_ERROR
}

/// The URL given, or an SQLite file in a fresh temporary directory.
pub(super) fn resolve_target(
    url: Option<&str>,
    scratch: &mut Option<tempfile::TempDir>,
) -> Result<Target, String> {
    if let Some(url) = url {
        return Target::parse(url).map_err(|err| err.to_string());
    }
    let dir =
        tempfile::tempdir().map_err(|err| format!("cannot make a temporary directory: {err}"))?;
    let url = default_url(dir.path());
    *scratch = Some(dir);
    Target::parse(&url).map_err(|err| err.to_string())
}

#[cfg(feature = "sqlite")]
fn default_url(dir: &std::path::Path) -> String {
    let path = dir.join("kvkit-check.db");
    format!("sqlite://{}", path.display())
}

#[cfg(not(feature = "sqlite"))]
fn default_url(_: &std::path::Path) -> String {
    "memory://".to_owned()
}

/// The profile the store declares (its capabilities), with the URL's secrets and the
/// command's options.
fn profile_for(target: &Target, backend: &dyn KvBackend, args: &CheckArgs) -> Profile {
    let mut profile = Profile::for_backend(backend);
    for secret in target.secrets() {
        profile = profile.with_secret(secret.clone());
    }
    if let Some(cases) = args.cases {
        profile = profile.with_cases(cases);
    }
    if let Some(seed) = args.seed {
        profile = profile.with_seed(seed);
    }
    profile
}

/// Runs the suite with each check's backends in a fresh namespace under the target's own, so a
/// shared store is left as it was found: the suite deletes every key it wrote.
async fn run_suite(target: &Target, profile: Profile, args: &CheckArgs) -> Report {
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let base = match target.namespace() {
        "" => format!("kvkit-check-{run_id}"),
        given => format!("{given}:kvkit-check-{run_id}"),
    };
    let next_case = Arc::new(AtomicU64::new(0));
    let target = target.clone();
    let factory = move || {
        let case = next_case.fetch_add(1, Ordering::Relaxed);
        let target = target.clone().with_namespace(format!("{base}-{case}"));
        async move { target.open().await }
    };
    let mut suite = Suite::new(factory).with_profile(profile);
    let mut total = CHECKS.len();
    if !args.only.is_empty() {
        suite = suite.only(args.only.clone());
        total = args.only.len();
    }
    let bar = progress_bar(total);
    let shown = bar.clone();
    let report = suite
        .on_progress(move |event| match event {
            Progress::Started { name } => shown.set_message(name),
            Progress::Finished { done, .. } => shown.set_position(done as u64),
            _ => {}
        })
        .run()
        .await;
    bar.finish_and_clear();
    report
}

/// A bar on stderr (hidden when stderr is not a terminal) naming the check that last started.
fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} checks  {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn print_checks() {
    let width = CHECKS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in CHECKS {
        println!(
            "{:<width$}  {:<12} {}",
            check.name, check.section, check.rule
        );
    }
}

fn report_json(target: &Target, report: &Report) -> serde_json::Value {
    let checks: Vec<serde_json::Value> = report
        .outcomes
        .iter()
        .map(|outcome| {
            let failure = outcome.failure.as_ref().map(|f| {
                json!({
                    "message": f.message,
                    "expected": f.expected,
                    "got": f.got,
                    "operations": f.operations,
                })
            });
            json!({
                "name": outcome.name,
                "rule": outcome.rule,
                "passed": outcome.passed(),
                "elapsed_ms": outcome.elapsed.as_secs_f64() * 1000.0,
                "failure": failure,
            })
        })
        .collect();
    json!({
        "target": target.to_string(),
        "passed": report.passed(),
        "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
        "checks": checks,
    })
}
