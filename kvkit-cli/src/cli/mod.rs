//! Command-line arguments and dispatch.

mod bench;
mod check;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status when every check passed.
pub(crate) const EXIT_PASSED: u8 = 0;
/// Exit status when the run completed and at least one check failed.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit status when the run could not start: bad URL, unreachable store, bad arguments.
pub(crate) const EXIT_ERROR: u8 = 2;

/// What `kvkit --help` says about the stores a build can open.
const STORES_HELP: &str = "\
Stores: memory://, sqlite://, redis://, redis+cluster://, dynamodb:// and postgres:// are in
the default build; rediss:// needs the `redis-tls` feature and postgres:// with sslmode=require
the `postgres-tls` feature. rocksdb:// needs the `rocksdb` feature, whose build needs libclang (Debian: apt-get install libclang-dev):
  cargo install --path kvkit-cli --features rocksdb
etcd:// needs the `etcd` feature (TLS: `etcd-tls`), whose build needs protoc (Debian: apt-get install protobuf-compiler).";

/// kvkit: one async interface to any key-value store, and proof that each store keeps it.
#[derive(Debug, Parser)]
#[command(name = "kvkit", version, about, after_help = STORES_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the conformance suite against the store at URL and print the report.
    ///
    /// Exit status: 0 when every check passed, 1 when any failed, 2 when the run could not
    /// start (bad URL, unreachable store).
    Check(check::CheckArgs),
    /// Run a workload against the store at URL and print throughput and latency per
    /// operation; with --raw, alternate with the store's own client and print the ratio.
    ///
    /// Exit status: 0 when the run completed, 2 when it could not run (bad URL or arguments,
    /// unreachable store, an operation failed).
    Bench(bench::BenchArgs),
}

impl Cli {
    pub(crate) fn run(self) -> ExitCode {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
        };
        let status = match self.command {
            Command::Check(args) => runtime.block_on(check::run(args)),
            Command::Bench(args) => runtime.block_on(bench::run(args)),
        };
        ExitCode::from(status)
    }
}

/// Prints one clear line for an error that stops the run, and the matching status.
pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("kvkit: {message}");
    ExitCode::from(EXIT_ERROR)
}
