//! The `kvkit` command line: check any store kvkit can open against the contract.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The process's rustls crypto provider is the application's choice (kv-redis never makes
    // it); this program takes ring, which the TLS build already links.
    #[cfg(feature = "redis-tls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::Cli::parse().run()
}
