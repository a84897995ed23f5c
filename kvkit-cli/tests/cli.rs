//! The `kvkit` binary, run as a user runs it.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn kvkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvkit"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that `kvkit` exited 0 (showing its output if not) and returns its report.
fn passed(output: &Output) -> String {
    let text = stdout(output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[test]
fn check_without_a_url_passes_on_a_temporary_sqlite_file() {
    let output = kvkit(&["check"]);
    let text = passed(&output);
    assert!(text.contains("kvkit check sqlite://"), "{text}");
    let total = kv_conformance::CHECKS.len();
    assert!(
        text.contains(&format!("{total} checks: {total} passed, 0 failed")),
        "{text}"
    );
}

#[test]
fn check_leaves_nothing_behind_in_a_shared_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let url = format!("sqlite://{}?namespace=app", path.display());
    let output = kvkit(&["check", &url, "--cases", "8"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let db = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM kv_entries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0, "kvkit check left rows behind");
}

#[test]
fn json_output_is_machine_readable() {
    let output = kvkit(&[
        "check",
        "memory://",
        "--json",
        "--only",
        "keys_case_sensitive",
        "--only",
        "cas_expecting_value",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["passed"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keys_case_sensitive", "cas_expecting_value"]);
}

#[test]
fn list_prints_every_check_with_its_rule() {
    let output = kvkit(&["check", "--list"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), kv_conformance::CHECKS.len());
    for check in kv_conformance::CHECKS {
        assert!(
            text.contains(check.name) && text.contains(check.rule),
            "{} missing",
            check.name
        );
    }
}

#[test]
fn errors_are_one_line_with_status_2() {
    for args in [
        &["check", "bogus://x"][..],
        &["check", "sqlite:///nonexistent-dir/sub/kv.db"],
        &["check", "memory://", "--only", "no_such_check"],
    ] {
        let output = kvkit(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("kvkit: "), "{stderr}");
    }
}

/// `kvkit check` against the Redis server and cluster the tests share, and what it leaves.
#[test]
fn check_passes_on_redis_and_leaves_no_keys() {
    use kv_test_services::redis;
    for service in [redis::standalone(), redis::cluster()] {
        let Some(service) = service else {
            return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
        };
        let namespace = format!("kvkit-cli-{}", std::process::id());
        let url = service.url_with(&format!("namespace={namespace}"));
        let output = kvkit(&["check", &url, "--cases", "16"]);
        let text = passed(&output);
        if let Some(password) = &service.password {
            assert!(
                !text.contains(password.as_str()),
                "the report shows the password"
            );
        }
        let left = service
            .keys_matching(&format!("{namespace}*"))
            .expect("scan the nodes");
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// `kvkit check` against the DynamoDB emulator opens the table as `kvkit::open` does: a
/// missing table is one clear error (nothing created), and `create_table=true` creates it.
#[test]
fn check_on_dynamodb_creates_the_table_only_when_the_url_says_so() {
    use kv_test_services::dynamodb;
    let Some(service) = dynamodb::endpoint() else {
        return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
    };
    let table = format!("kvkit-cli-{}", std::process::id());
    let url = service.url(&table, "cli");
    let output = kvkit(&["check", &url, "--cases", "8"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not exist") && stderr.contains("create_table=true"),
        "{stderr}"
    );
    let output = kvkit(&["check", &format!("{url}&create_table=true"), "--cases", "8"]);
    passed(&output);
    // Now that it exists, the least-privilege URL opens it.
    let output = kvkit(&[
        "check",
        &url,
        "--cases",
        "8",
        "--only",
        "keys_case_sensitive",
    ]);
    passed(&output);
}

/// `kvkit check` against the PostgreSQL server the tests share, in a table of its own, and
/// the rows it leaves: none.
#[test]
fn check_passes_on_postgres_and_leaves_no_rows() {
    use kv_test_services::postgres;
    let Some(service) = postgres::server() else {
        return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
    };
    let table = format!("kvkit_cli_{}", std::process::id());
    let url = service.url_with(&format!("table={table}&namespace=cli"));
    let output = kvkit(&["check", &url, "--cases", "16"]);
    let text = passed(&output);
    if let Some(password) = &service.password {
        assert!(
            !text.contains(password.as_str()),
            "the report shows the password"
        );
    }
    let mut psql = service.psql().expect("psql is installed beside the server");
    let counted = psql
        .args(["-At", "-c", &format!("SELECT count(*) FROM {table}")])
        .output()
        .expect("run psql");
    assert_eq!(
        String::from_utf8_lossy(&counted.stdout).trim(),
        "0",
        "rows left behind; psql said: {}",
        String::from_utf8_lossy(&counted.stderr)
    );
}

/// `kvkit check` against the three-member etcd cluster the tests share, and the keys it
/// leaves: none, once the leases of its expired keys have run out (within about 12 s).
#[cfg(feature = "etcd")] // off by default (its build needs protoc); on under --all-features
#[test]
fn check_passes_on_an_etcd_cluster_and_leaves_no_keys() {
    use kv_test_services::etcd;
    let Some(service) = etcd::cluster() else {
        return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
    };
    let namespace = format!("kvkit-cli-{}", std::process::id());
    let url = service.url_with(&format!("namespace={namespace}"));
    let output = kvkit(&["check", &url, "--cases", "16"]);
    passed(&output);
    let endpoints = service.members.join(",");
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let listed = Command::new("etcdctl")
            .args(["--endpoints", &endpoints, "get", "--prefix", "--keys-only"])
            .arg(format!("kvkit/{namespace}"))
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl is installed beside etcd (Debian's etcd-client)");
        assert!(listed.status.success(), "{listed:?}");
        let keys = String::from_utf8_lossy(&listed.stdout).trim().to_owned();
        if keys.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "keys left behind after 30 s:\n{keys}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `kvkit check rocksdb://PATH`: every check opens the same path again, in its own namespace.
#[cfg(feature = "rocksdb")] // off by default; on under ci/test's --all-features
#[test]
fn check_passes_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "rocksdb://{}?namespace=app",
        dir.path().join("db").display()
    );
    let output = kvkit(&["check", &url, "--cases", "16"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

/// `kvkit check --faults` puts the fault proxy in front of the Redis server, rewrites the URL
/// and runs every fault check; the report shows each fault and no password.
#[test]
fn check_faults_passes_on_redis_behind_the_proxy() {
    use kv_test_services::redis;
    let Some(service) = redis::standalone() else {
        return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
    };
    let url = service.url_with(&format!(
        "namespace=kvkit-cli-faults-{}.&connect_timeout_ms=400&request_timeout_ms=400",
        std::process::id()
    ));
    let output = kvkit(&["check", "--faults", &url, "--call-timeout-ms", "800"]);
    let text = passed(&output);
    for fault in [
        "latency",
        "cut-mid-reply",
        "reset-all",
        "black-hole",
        "server-down",
    ] {
        assert!(
            text.contains(fault),
            "{fault} is not in the report:\n{text}"
        );
    }
    assert!(text.contains("passed: largest call"), "{text}");
    if let Some(password) = &service.password {
        assert!(
            !text.contains(password.as_str()),
            "the report shows the password"
        );
    }
}

/// `kvkit check --faults --json`: the same checks, the report as JSON with each fault's
/// figures (what `ci/reliability` and other machines read), and no password in it.
#[test]
fn check_faults_json_gives_each_fault_figures() {
    use kv_test_services::redis;
    let Some(service) = redis::standalone() else {
        return; // announced (or failed, under KVKIT_REQUIRE_SERVICES) by `services`
    };
    let url = service.url_with(&format!(
        "namespace=kvkit-cli-faults-json-{}.&connect_timeout_ms=400&request_timeout_ms=400",
        std::process::id()
    ));
    let output = kvkit(&[
        "check",
        "--faults",
        &url,
        "--call-timeout-ms",
        "800",
        "--json",
    ]);
    let text = passed(&output);
    let report: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(report["passed"], true, "{text}");
    let faults = report["faults"].as_array().expect("a list of faults");
    let names: Vec<&str> = faults.iter().filter_map(|f| f["fault"].as_str()).collect();
    assert_eq!(
        names,
        [
            "latency",
            "cut-mid-reply",
            "reset-all",
            "black-hole",
            "server-down"
        ]
    );
    for fault in faults {
        assert!(fault["calls"].as_u64().unwrap() > 0, "{fault}");
        assert_eq!(fault["lost_writes"], 0, "{fault}");
        assert_eq!(fault["applied_twice"], 0, "{fault}");
        assert!(fault["recovery_ms"].is_number(), "{fault}");
    }
    let largest = report["largest_call_ms"].as_f64().unwrap();
    let bound = report["call_timeout_ms"].as_f64().unwrap() + report["margin_ms"].as_f64().unwrap();
    assert!(
        largest > 0.0 && largest <= bound,
        "{largest} ms, bound {bound} ms"
    );
    if let Some(password) = &service.password {
        assert!(
            !text.contains(password.as_str()),
            "the report shows the password"
        );
    }
}

/// A store with no TCP host is a usage error (exit 2), said in one line.
#[test]
fn check_faults_needs_a_tcp_store() {
    for url in ["memory://", "sqlite:///tmp/x.db"] {
        let output = kvkit(&["check", "--faults", url]);
        assert_eq!(output.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.contains("--faults needs a store reached over TCP"),
            "{err}"
        );
    }
}
