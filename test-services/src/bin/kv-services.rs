//! `kv-services`: starts the test services once, for every test binary of a run to share.
//!
//! `kv-services redis redis-cluster dynamodb moto postgres etcd etcd-cluster` finds or starts
//! each service exactly as the tests would (see `kv_test_services`): from the environment,
//! else (built with the `containers` feature, when a Docker engine answers) a container of
//! `KV_REDIS_IMAGE`, `KV_REDIS_CLUSTER_IMAGE`, `KV_DYNAMODB_IMAGE` or `KV_POSTGRES_IMAGE`, else
//! from a local binary (etcd: always a local binary). It prints which on standard error, then
//! `export NAME=VALUE` lines that point the tests at them (`KV_REDIS_URL`,
//! `KV_REDIS_CLUSTER_URL`, `KV_DYNAMODB_ENDPOINT` for the default emulator,
//! `KV_DYNAMODB_MOTO_ENDPOINT` for `moto`, always a local moto behind its relay,
//! `KV_POSTGRES_URL`, `KV_ETCD_URL`, `KV_ETCD_CLUSTER_URL`), then a line `ready`, and keeps
//! them running until it is killed
//! (Ctrl-C, or `kill PID`); servers it started stop with it, and containers it started are
//! removed by their reapers once it is gone.
//! `ci/test` (through `ci/lib.sh`) runs it in the background and stops it by PID.

use std::process::ExitCode;

use kv_test_services::{dynamodb, etcd, postgres, redis};

fn main() -> ExitCode {
    // Services started for this process alone (not shared through a static), kept alive
    // until it ends.
    let mut private = Vec::new();
    for service in std::env::args().skip(1) {
        let export = match service.as_str() {
            "redis" => redis::standalone().map(|s| (redis::URL_ENV, s.url.clone())),
            "redis-cluster" => redis::cluster().map(|s| (redis::CLUSTER_URL_ENV, s.url.clone())),
            "dynamodb" => {
                dynamodb::endpoint().map(|s| (dynamodb::ENDPOINT_ENV, s.endpoint.clone()))
            }
            // moto behind its relay, beside the default emulator (dynalite): for a second run
            // of the DynamoDB tests (ci/test-workspace).
            "moto" => dynamodb::start(dynamodb::Emulator::Moto).map(|s| {
                eprintln!("kv-services: moto at {} from {}", s.endpoint, s.provider);
                let export = (dynamodb::MOTO_ENDPOINT_ENV, s.endpoint.clone());
                private.push(s);
                export
            }),
            "postgres" => postgres::server().map(|s| (postgres::URL_ENV, s.url.clone())),
            "etcd" => etcd::single().map(|s| (etcd::URL_ENV, s.url.clone())),
            "etcd-cluster" => etcd::cluster().map(|s| (etcd::CLUSTER_URL_ENV, s.url.clone())),
            other => {
                eprintln!(
                    "kv-services: unknown service `{other}` (redis, redis-cluster, dynamodb, \
                     moto, postgres, etcd, etcd-cluster)"
                );
                return ExitCode::from(2);
            }
        };
        match export {
            // Single quotes: the shell takes the URL as it is.
            Some((name, value)) => println!("export {name}='{value}'"),
            None => {
                eprintln!("kv-services: {service} is not available");
                return ExitCode::from(1);
            }
        }
    }
    println!("ready");
    // Serve until a signal ends the process (whose watchdogs then stop the servers).
    loop {
        std::thread::park();
    }
}
