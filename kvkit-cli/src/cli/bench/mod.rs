//! `kvkit bench [URL]`: a workload against a store, optionally alternating with the store's
//! raw client doing the same work, with throughput and latency percentiles per operation.

mod driver;
mod plot;
mod raw;
mod report;
mod requests;
mod runner;
mod stats;
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kv_trait::{KvBackend, KvError};
use kvkit::Target;

use super::{EXIT_ERROR, EXIT_PASSED};
use driver::{AdapterDriver, Driver};
use raw::RawDriver;
use report::{Measured, Settings};
use requests::RequestCounts;
use runner::{Length, Plan, Progress};
use stats::Side;
use workload::{Keyspace, Workload};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The store to load, e.g. redis://127.0.0.1:6379 or sqlite:///tmp/kv.db. Without one, an
    /// SQLite file in a new temporary directory.
    url: Option<String>,
    /// What to run.
    #[arg(long, value_enum, default_value = "read-heavy")]
    workload: Workload,
    /// Tasks issuing operations at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: usize,
    /// Seconds each round lasts.
    #[arg(long, value_name = "S", default_value_t = 5.0, conflicts_with = "ops")]
    duration: f64,
    /// Operations each round runs (all tasks together), instead of a duration.
    #[arg(long, value_name = "N")]
    ops: Option<u64>,
    /// Data keys, written before timing starts.
    #[arg(long, value_name = "K", default_value_t = 1000)]
    keys: usize,
    /// Bytes in every value written.
    #[arg(long, value_name = "B", default_value_t = 100)]
    value_size: usize,
    /// Seed for the operation sequence (default: from the clock, and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Timed rounds per side (default 1, or 3 with --raw).
    #[arg(long, value_name = "R")]
    rounds: Option<usize>,
    /// Also run the same workload through the store's own client, alternating rounds with
    /// the adapter, and print the adapter/raw throughput ratio per operation.
    #[arg(long)]
    raw: bool,
    /// Print the results as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// Draw the latency distributions to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

pub(crate) async fn run(args: BenchArgs) -> u8 {
    match bench(args).await {
        Ok(()) => EXIT_PASSED,
        Err(message) => {
            eprintln!("kvkit: {message}");
            EXIT_ERROR
        }
    }
}

async fn bench(args: BenchArgs) -> Result<(), String> {
    validate(&args)?;
    let mut scratch = None;
    let target = super::check::resolve_target(args.url.as_deref(), &mut scratch)?;
    let settings = settings(&args);
    let run_id = run_id();
    let adapter_requests = RequestCounts::default();
    let adapter = open_adapter(&target, &run_id, &adapter_requests, &settings).await?;
    let raw_requests = RequestCounts::default();
    let raw = match args.raw {
        false => None,
        true => Some(open_raw(&target, &run_id, &raw_requests).await?),
    };
    let plan = Arc::new(Plan {
        workload: args.workload,
        concurrency: args.concurrency,
        length: settings.length,
        keys: Keyspace::new(args.keys, args.value_size, settings.seed),
        seed: settings.seed,
    });
    let outcome = measure(&adapter, raw.as_ref(), &plan, &settings).await;
    // Clean up even after a failed run: the store is left as it was found.
    let keys: Vec<String> = plan.keys.all_keys().map(str::to_owned).collect();
    let cleaned = clean_up(&adapter, raw.as_ref(), keys).await;
    let (adapter_side, raw_side) = outcome.map_err(|err| format!("{target}: {err}"))?;
    cleaned.map_err(|err| format!("cleaning up after the run on {target}: {err}"))?;
    let measured = Measured {
        target: target.to_string(),
        settings,
        adapter: adapter_side,
        raw: raw_side,
        adapter_requests: adapter_requests.any().then_some(adapter_requests),
        raw_requests: raw_requests.any().then_some(raw_requests),
    };
    if args.json {
        println!("{}", report::json(&measured));
    } else {
        print!("{}", report::tables(&measured));
    }
    if let Some(path) = &args.plot {
        plot::draw(&measured, path)
            .map_err(|err| format!("cannot draw {}: {err}", path.display()))?;
        if !args.json {
            println!("\nlatency chart: {}", path.display());
        }
    }
    Ok(())
}

fn validate(args: &BenchArgs) -> Result<(), String> {
    if args.concurrency == 0 || args.keys == 0 {
        return Err("--concurrency and --keys must be at least 1".into());
    }
    if args.ops == Some(0) || args.rounds == Some(0) {
        return Err("--ops and --rounds must be at least 1".into());
    }
    if args.ops.is_none() && !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(format!(
            "--duration must be a positive number of seconds, not {}",
            args.duration
        ));
    }
    if args.raw && args.workload == Workload::Mixed {
        return Err(
            "--raw compares get, set, increment, compare_and_swap, get_many and set_many: use \
             it with any workload but mixed"
                .into(),
        );
    }
    Ok(())
}

fn settings(args: &BenchArgs) -> Settings {
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos()
            .into()
    });
    Settings {
        workload: args.workload,
        concurrency: args.concurrency,
        length: match args.ops {
            Some(ops) => Length::Ops(ops),
            None => Length::Duration(Duration::from_secs_f64(args.duration)),
        },
        rounds: args.rounds.unwrap_or(if args.raw { 3 } else { 1 }),
        keys: args.keys,
        value_size: args.value_size,
        seed,
    }
}

/// A name no other run uses, for the run's namespace and the raw side's keys.
fn run_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("kvkit-bench-{millis}-{}", std::process::id())
}

/// The adapter, in a namespace of the run's own under the URL's (so that cleaning up deletes
/// exactly what the run wrote). DynamoDB's requests are counted.
async fn open_adapter(
    target: &Target,
    run_id: &str,
    requests: &RequestCounts,
    settings: &Settings,
) -> Result<Arc<AdapterDriver>, String> {
    let namespace = match target.namespace() {
        "" => run_id.to_owned(),
        given => format!("{given}:{run_id}"),
    };
    let target = target.clone().with_namespace(namespace);
    let store = target
        .open()
        .await
        .map_err(|err| format!("cannot open {target}: {err}"))?;
    let max_value_bytes = store.capabilities().max_value_bytes;
    if settings.value_size > max_value_bytes {
        return Err(format!(
            "--value-size {} is over {target}'s maximum of {max_value_bytes} bytes",
            settings.value_size
        ));
    }
    let store = counted(&target, store, requests).await?;
    Ok(Arc::new(AdapterDriver(store)))
}

/// The store again, with its requests counted, where kvkit can count them (DynamoDB).
async fn counted(
    target: &Target,
    store: Arc<dyn KvBackend>,
    requests: &RequestCounts,
) -> Result<Arc<dyn KvBackend>, String> {
    #[cfg(feature = "dynamodb")]
    if target.scheme() == "dynamodb" {
        let counted = raw::dynamodb::counted_adapter(target.url(), target.namespace(), requests)
            .await
            .map_err(|err| format!("cannot open {target}: {err}"))?;
        return Ok(Arc::new(counted));
    }
    let _ = (target, requests);
    Ok(store)
}

async fn open_raw(
    target: &Target,
    run_id: &str,
    requests: &RequestCounts,
) -> Result<Arc<RawDriver>, String> {
    match RawDriver::open(target.scheme(), target.url(), run_id, requests).await {
        Ok(Some(raw)) => Ok(Arc::new(raw)),
        Ok(None) => Err(format!(
            "--raw: kvkit has no raw client for {}:// URLs (it has one for {})",
            target.scheme(),
            raw::SCHEMES
        )),
        Err(err) => Err(format!("--raw: cannot open {target}'s raw client: {err}")),
    }
}

/// Pre-loads both sides, then runs the rounds: the adapter's alone, or adapter and raw
/// alternating (adapter first in even pairs, raw first in odd ones) so that drift of the
/// machine's speed during the run falls on both alike.
async fn measure(
    adapter: &Arc<AdapterDriver>,
    raw: Option<&Arc<RawDriver>>,
    plan: &Arc<Plan>,
    settings: &Settings,
) -> Result<(Side, Option<Side>), KvError> {
    runner::preload(adapter, plan).await?;
    if let Some(raw) = raw {
        runner::preload(raw, plan).await?;
    }
    let sides = if raw.is_some() { 2 } else { 1 };
    let progress = Progress::default();
    let bar = progress_bar(settings, sides, &progress);
    let (mut adapter_side, mut raw_side) = (Side::default(), Side::default());
    for round in 0..settings.rounds as u64 {
        let raw_first = round % 2 == 1;
        if let (Some(raw), true) = (raw, raw_first) {
            raw_side
                .rounds
                .push(runner::run_round(raw, plan, round, &progress).await?);
        }
        adapter_side
            .rounds
            .push(runner::run_round(adapter, plan, round, &progress).await?);
        if let (Some(raw), false) = (raw, raw_first) {
            raw_side
                .rounds
                .push(runner::run_round(raw, plan, round, &progress).await?);
        }
    }
    bar.finish_and_clear();
    Ok((adapter_side, raw.map(|_| raw_side)))
}

async fn clean_up(
    adapter: &Arc<AdapterDriver>,
    raw: Option<&Arc<RawDriver>>,
    keys: Vec<String>,
) -> Result<(), KvError> {
    if let Some(raw) = raw {
        raw.clean_up(keys.clone()).await?;
    }
    adapter.clean_up(keys).await
}

/// A bar on stderr (hidden when stderr is not a terminal) that follows operations done, or
/// time spent, against everything the run will do.
fn progress_bar(settings: &Settings, sides: usize, progress: &Progress) -> ProgressBar {
    let rounds = (settings.rounds * sides) as u64;
    let (total, unit) = match settings.length {
        Length::Ops(ops) => (ops * rounds, "ops"),
        Length::Duration(duration) => (duration.as_millis() as u64 * rounds, "ms"),
    };
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{spinner}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{wide_msg}}"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    let (shown, progress, length) = (bar.clone(), Arc::clone(progress), settings.length);
    let started = Instant::now();
    tokio::spawn(async move {
        while !shown.is_finished() {
            let done = progress.load(std::sync::atomic::Ordering::Relaxed);
            shown.set_message(format!("{done} operations"));
            if let Length::Ops(_) = length {
                shown.set_position(done);
            } else {
                shown.set_position(started.elapsed().as_millis() as u64);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    bar
}
