//! `kvkit bench`, run as a user runs it: short runs (a few hundred operations) that check
//! what it reports and what it leaves behind, on every store. How fast anything is, is not
//! tested here: BENCHMARKS.md has the measured figures.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::Value;

fn kvkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvkit"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `kvkit bench ARGS --json`, requires success, and returns the report.
fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let output = kvkit(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The operations of one side of a report, by name.
fn operations<'a>(report: &'a Value, side: &str) -> &'a serde_json::Map<String, Value> {
    report[side]["operations"].as_object().unwrap()
}

/// Checks one side's numbers hang together: counts add up to `ops` per round, latencies are
/// ordered, throughput is positive.
fn assert_consistent(report: &Value, side: &str, ops_per_round: u64) {
    let rounds = report["rounds"].as_u64().unwrap();
    let mut total = 0;
    for (name, op) in operations(report, side) {
        let count = op["count"].as_u64().unwrap();
        total += count;
        let (p50, p99, p999, max) = (
            op["p50_us"].as_f64().unwrap(),
            op["p99_us"].as_f64().unwrap(),
            op["p999_us"].as_f64().unwrap(),
            op["max_us"].as_f64().unwrap(),
        );
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max * 1.001,
            "{side} {name}: {op}"
        );
        assert!(op["ops_per_sec"].as_f64().unwrap() > 0.0, "{side} {name}");
        assert_eq!(
            op["round_ops_per_sec"].as_array().unwrap().len() as u64,
            rounds
        );
    }
    assert_eq!(total, ops_per_round * rounds, "{side}: {report}");
}

#[test]
fn mixed_runs_all_eight_operations_and_counts_every_one() {
    let report = bench_json(&[
        "memory://",
        "--workload",
        "mixed",
        "--ops",
        "3000",
        "--concurrency",
        "4",
        "--keys",
        "300",
        "--seed",
        "5",
    ]);
    let names: Vec<&str> = operations(&report, "adapter")
        .keys()
        .map(String::as_str)
        .collect();
    for op in [
        "get",
        "set",
        "set_with_ttl",
        "delete",
        "exists",
        "list_keys",
        "increment",
        "compare_and_swap",
    ] {
        assert!(names.contains(&op), "{op} missing from {names:?}");
    }
    assert_consistent(&report, "adapter", 3000);
    assert_eq!(report["seed"], 5);
    assert!(report["raw"].is_null() && report["ratio"].is_null());
}

#[test]
fn sqlite_against_raw_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let url = format!("sqlite://{}?namespace=app", path.display());
    for workload in ["read-heavy", "counter", "cas"] {
        let report = bench_json(&[
            &url,
            "--raw",
            "--workload",
            workload,
            "--ops",
            "400",
            "--rounds",
            "2",
            "--concurrency",
            "8",
            "--keys",
            "50",
        ]);
        assert_consistent(&report, "adapter", 400);
        assert_consistent(&report, "raw", 400);
        let ratio = report["ratio"]["all"].as_f64().unwrap();
        assert!(ratio > 0.0, "{report}");
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM kv_entries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0, "the adapter's rows were left behind");
    let raw_tables: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'kvkit_bench_raw'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(raw_tables, 0, "the raw table was left behind");
}

/// The batch workloads: one `get_many` or `set_many` of 100 keys per operation, reported
/// per operation and in keys per second, on both sides, with the file left as it was.
#[test]
fn batches_report_keys_per_second_against_the_raw_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let url = format!("sqlite://{}", path.display());
    for (workload, op) in [("get-many", "get_many"), ("set-many", "set_many")] {
        let report = bench_json(&[
            &url,
            "--raw",
            "--workload",
            workload,
            "--ops",
            "120",
            "--rounds",
            "2",
            "--concurrency",
            "4",
            "--keys",
            "250",
        ]);
        assert_eq!(report["workload"], workload);
        assert_consistent(&report, "adapter", 120);
        assert_consistent(&report, "raw", 120);
        for side in ["adapter", "raw"] {
            let names: Vec<&String> = operations(&report, side).keys().collect();
            assert_eq!(names, [op], "{side}");
            let stats = &operations(&report, side)[op];
            assert_eq!(stats["keys_per_op"], 100, "{side}: {stats}");
            let (ops, keys) = (
                stats["ops_per_sec"].as_f64().unwrap(),
                stats["keys_per_sec"].as_f64().unwrap(),
            );
            assert!((keys / ops - 100.0).abs() < 1e-6, "{side}: {stats}");
            assert_eq!(stats["round_keys_per_sec"].as_array().unwrap().len(), 2);
        }
        assert!(report["ratio"][op].as_f64().unwrap() > 0.0, "{report}");
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM kv_entries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0, "the adapter's rows were left behind");
}

/// With fewer data keys than a batch, a batch is all of them; single-key workloads' JSON
/// has no key counts, and their tables no keys/s column.
#[test]
fn batches_shrink_to_the_keyspace_and_single_keys_are_unchanged() {
    let report = bench_json(&[
        "memory://",
        "--workload",
        "set-many",
        "--ops",
        "50",
        "--keys",
        "30",
    ]);
    let stats = &operations(&report, "adapter")["set_many"];
    assert_eq!(stats["keys_per_op"], 30, "{stats}");
    assert_consistent(&report, "adapter", 50);
    let single = bench_json(&["memory://", "--workload", "get-only", "--ops", "50"]);
    let get = operations(&single, "adapter")["get"].as_object().unwrap();
    assert!(!get.contains_key("keys_per_sec"), "{get:?}");
    let output = kvkit(&[
        "bench",
        "memory://",
        "--workload",
        "get-many",
        "--ops",
        "40",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for expected in [
        "workload get-many",
        "batches of 100 keys",
        "keys/s",
        "get_many",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let output = kvkit(&[
        "bench",
        "memory://",
        "--workload",
        "get-only",
        "--ops",
        "40",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("keys/s"), "{text}");
}

#[test]
fn cas_counts_every_update_loop_and_reports_its_retries() {
    let report = bench_json(&[
        "memory://",
        "--workload",
        "cas",
        "--ops",
        "2000",
        "--concurrency",
        "16",
    ]);
    let cas = &operations(&report, "adapter")["compare_and_swap"];
    assert_eq!(cas["count"], 2000);
    assert_consistent(&report, "adapter", 2000);
    // How many races are lost depends on scheduling; that the figure is reported does not.
    assert!(
        cas["retries_per_op"].as_f64().is_some_and(f64::is_finite),
        "{cas}"
    );
}

#[test]
fn tables_and_a_chart_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("latency.svg");
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let output = kvkit(&[
        "bench",
        &url,
        "--raw",
        "--ops",
        "300",
        "--rounds",
        "1",
        "--plot",
        chart.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for expected in [
        "workload read-heavy",
        "adapter",
        "raw client",
        "p99.9",
        "get",
        "adapter / raw",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for label in ["adapter get", "raw get", "p99"] {
        assert!(svg.contains(label), "{label} missing from the chart");
    }
}

#[test]
fn bad_arguments_are_one_line_with_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["memory://", "--raw"], "no raw client for memory://"),
        (
            &["sqlite::memory:", "--raw", "--workload", "mixed"],
            "--raw compares",
        ),
        (&["memory://", "--concurrency", "0"], "at least 1"),
        (&["memory://", "--duration", "0"], "--duration"),
        (&["memory://", "--value-size", "2000000"], "maximum"),
        (&["nosuch://x"], "unknown scheme"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        let output = kvkit(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// The write-heavy and cas workloads against the raw client, 300 operations each: both
/// sides' counts consistent.
fn write_heavy_and_cas_against_raw(url: &str) {
    for workload in ["write-heavy", "cas"] {
        let report = bench_json(&[
            url,
            "--raw",
            "--workload",
            workload,
            "--ops",
            "300",
            "--rounds",
            "1",
            "--keys",
            "40",
        ]);
        assert_consistent(&report, "adapter", 300);
        assert_consistent(&report, "raw", 300);
    }
}

/// Redis, standalone and cluster, against redis-rs: nothing left behind on the server.
#[test]
fn redis_against_raw_leaves_no_keys() {
    use kv_test_services::redis;
    for service in [redis::standalone(), redis::cluster()] {
        let Some(service) = service else {
            return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
        };
        let namespace = format!("kvkit-bench-test-{}", std::process::id());
        let url = service.url_with(&format!("namespace={namespace}"));
        write_heavy_and_cas_against_raw(&url);
        // The adapter's keys are under the namespace, the raw side's under `kvkit-bench-*`.
        for pattern in [format!("{namespace}*"), "kvkit-bench-*".to_owned()] {
            let left = service.keys_matching(&pattern).expect("scan the nodes");
            assert!(left.is_empty(), "left behind: {left:?}");
        }
    }
}

/// etcd, one member and three, against etcd-client by hand: nothing left behind once the
/// leases of the adapter's expired keys ran out (the raw side writes no TTL).
#[cfg(feature = "etcd")] // off by default (its build needs protoc); on under --all-features
#[test]
fn etcd_against_raw_leaves_no_keys() {
    use kv_test_services::etcd;
    for service in [etcd::single(), etcd::cluster()] {
        let Some(service) = service else {
            return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
        };
        let namespace = format!("kvkit-bench-test-{}", std::process::id());
        let url = service.url_with(&format!("namespace={namespace}"));
        write_heavy_and_cas_against_raw(&url);
        for prefix in [format!("kvkit/{namespace}"), "kvkit-bench-raw/".to_owned()] {
            let listed = Command::new("etcdctl")
                .args(["--endpoints", &service.members.join(",")])
                .args(["get", "--prefix", "--keys-only", &prefix])
                .env("ETCDCTL_API", "3")
                .output()
                .expect("etcdctl is installed beside etcd (Debian's etcd-client)");
            assert!(listed.status.success(), "{listed:?}");
            let keys = String::from_utf8_lossy(&listed.stdout).trim().to_owned();
            assert!(keys.is_empty(), "left behind under {prefix}: {keys}");
        }
    }
}

/// DynamoDB: one request per get and per set, on both sides, counted.
#[test]
fn dynamodb_counts_one_request_per_get_and_set() {
    use kv_test_services::dynamodb;
    let Some(service) = dynamodb::endpoint() else {
        return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
    };
    let table = format!("kvkit-bench-{}", std::process::id());
    let url = format!("{}&create_table=true", service.url(&table, "bench"));
    let report = bench_json(&[
        &url,
        "--raw",
        "--workload",
        "write-heavy",
        "--ops",
        "60",
        "--rounds",
        "1",
        "--concurrency",
        "2",
        "--keys",
        "10",
    ]);
    for side in ["adapter", "raw"] {
        for (name, op) in operations(&report, side) {
            assert_eq!(op["requests_per_op"], 1.0, "{side} {name}: {op}");
        }
    }
}

/// DynamoDB batches of 100, counted: one `BatchGetItem` per `get_many`, four
/// `BatchWriteItem`s of 25 per `set_many`, on both sides (an emulator processes every item).
#[test]
fn dynamodb_batches_count_their_batch_requests() {
    use kv_test_services::dynamodb;
    let Some(service) = dynamodb::endpoint() else {
        return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
    };
    let table = format!("kvkit-bench-batches-{}", std::process::id());
    let url = format!("{}&create_table=true", service.url(&table, "bench"));
    for (workload, op, requests) in [("get-many", "get_many", 1.0), ("set-many", "set_many", 4.0)] {
        let report = bench_json(&[
            &url,
            "--raw",
            "--workload",
            workload,
            "--ops",
            "6",
            "--rounds",
            "1",
            "--concurrency",
            "2",
            "--keys",
            "100",
        ]);
        for side in ["adapter", "raw"] {
            let stats = &operations(&report, side)[op];
            assert_eq!(stats["requests_per_op"], requests, "{side} {op}: {stats}");
        }
    }
}

/// RocksDB: the raw side's database directory goes when the run ends.
#[cfg(feature = "rocksdb")] // off by default; on under ci/test's --all-features
#[test]
fn rocksdb_against_raw_removes_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let url = format!("rocksdb://{}", path.display());
    let report = bench_json(&[&url, "--raw", "--workload", "counter", "--ops", "300"]);
    assert_consistent(&report, "raw", 300);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("db")]);
}
