//! The `kvkit` command line: check any store kvkit can open against the contract.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The process's rustls crypto provider is the application's choice (kv-redis and
    // kv-postgres never make it); this program takes ring, which the TLS builds already link.
    #[cfg(any(feature = "redis-tls", feature = "postgres-tls"))]
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::Cli::parse().run()
}
