//! The `kvkit` command line: check any store kvkit can open against the contract.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::Cli::parse().run()
}
