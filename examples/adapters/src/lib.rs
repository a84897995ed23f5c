//! Runnable examples of every kvkit adapter, one program each under `examples/`:
//!
//! ```sh
//! cargo run -p kvkit-examples --example memory
//! cargo run -p kvkit-examples --example sqlite  [PATH]            # default: a file in the temp dir
//! cargo run -p kvkit-examples --features rocksdb --example rocksdb [PATH]  # needs libclang
//! cargo run -p kvkit-examples --example redis   [URL]             # or KV_REDIS_URL
//! cargo run -p kvkit-examples --example redis_cluster [URL]       # or KV_REDIS_CLUSTER_URL
//! cargo run -p kvkit-examples --example dynamodb [ENDPOINT]       # or KV_DYNAMODB_ENDPOINT
//! cargo run -p kvkit-examples --example layers  [URL]             # Redis with timeout, retry, metrics
//! cargo run -p kvkit-examples --example watch_latency [URL] [N]   # how soon a watcher hears a write
//! ```
//!
//! Each opens its store with the adapter's own constructor, runs the same few operations
//! (`set`, `get`, `set_with_ttl`, `increment`, `compare_and_swap`, `list_keys`) in the
//! namespace `kvkit-example`, and prints what they did. Run one twice: the counter goes on
//! where a durable store left it, and the second `compare_and_swap` of an absent key loses.
//! An unreachable server ends the program with a message saying how to get one (exit code 2).
//!
//! This library holds what the examples share: the operations ([`tour`]) and two helpers.

use std::process::ExitCode;

use kv_trait::{KvBackend, KvError};

/// The same few operations on any store, printing what they did: what every example runs
/// once it has opened its store.
pub async fn tour(store: &dyn KvBackend) -> Result<(), KvError> {
    store.set("greeting", b"hello").await?;
    let greeting = store.get("greeting").await?;
    store
        .set_with_ttl("session:42", b"token", 30_000_000_000)
        .await?; // 30 s
    let visits = store.increment("visits", 1).await?;
    let leader = store.compare_and_swap("leader", None, b"node-a").await?;
    let keys = store.list_keys("").await?;
    println!(
        "get(greeting)       = {:?}",
        greeting.as_deref().map(String::from_utf8_lossy)
    );
    println!("increment(visits)   = {visits} (a durable store counts on when run again)");
    println!("became the leader   = {leader}");
    println!("list_keys(\"\")       = {keys:?}");
    Ok(())
}

/// The store's address: the first command-line argument, else the environment variable
/// `variable`, else `default`.
pub fn address(variable: &str, default: &str) -> String {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var(variable).ok())
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The exit code of an example: success, or (after a message on standard error) 2 when the
/// store could not be reached, with `hint` saying how to get one, and 1 for any other error.
pub fn finish(result: Result<(), KvError>, store: &str, hint: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ KvError::Unavailable(_)) => {
            eprintln!("cannot reach {store}: {err}\n{hint}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("{store} failed: {err}");
            ExitCode::FAILURE
        }
    }
}
