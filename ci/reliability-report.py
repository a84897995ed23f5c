"""Writes RELIABILITY.md (on stdout) from the records of one ci/reliability run.

Arguments: the results directory (records/*.json written by the tests through
kv_conformance::reliability, history-STORE-N.json written by `kvkit check --json`, and
tests-summary.txt), a line describing the machine, one listing the software, and the number
of histories checked per store.
"""

import glob
import json
import os
import sys
from datetime import date

results, machine, versions, histories = sys.argv[1:]

STORES = ["memory", "sqlite", "rocksdb", "redis", "redis-cluster", "dynamodb", "postgres",
          "etcd", "etcd-cluster"]

# What each store does not promise, in plain words: the limits a user must know, whatever
# the figures above them say.
NOT_PROMISED = {
    "memory": [
        "Nothing survives the process: the data lives in its memory only.",
        "One process: other processes cannot see it.",
    ],
    "sqlite": [
        "A power loss keeps every acknowledged write only with `synchronous = full` (the "
        "default); with `normal` it may take back the last commits, with `off` it may also "
        "damage the file. A killed process loses nothing under any setting (the crash rounds).",
        "Processes share a file on one host: SQLite's locks do not work over network file "
        "systems.",
        "Writers take turns on the file's one write lock: many writing processes share its "
        "throughput.",
    ],
    "rocksdb": [
        "One process at a time: RocksDB locks its directory, and a second process's open fails.",
        "A power loss keeps every acknowledged write only with `sync_writes=true`; with the "
        "default `false` it may take back writes the operating system had not yet flushed. A "
        "killed process loses nothing (the crash rounds).",
    ],
    "redis": [
        "Durability is the server's configuration, not kvkit's: the restart test runs with "
        "`appendonly yes` and `appendfsync always`. With Redis's default `everysec` a server "
        "crash may lose about the last second of acknowledged writes; with snapshots only, "
        "everything since the last one.",
        "A primary with replicas replicates asynchronously: a failover may lose writes it "
        "acknowledged, unless `wait_for_replicas` is set (see redis-cluster).",
        "Expiry runs on the server's clock.",
    ],
    "redis-cluster": [
        "Replication is asynchronous: a write the primary acknowledged before its replica "
        "copied it is lost when that replica takes over. The failover test counts such losses; "
        "how many depends on how far the replica lagged at the kill, and varies from run to "
        "run (on this machine from none to about a fifth of the writes acknowledged during "
        "the test).",
        "`wait_for_replicas(n, timeout)` makes a write succeed only once `n` replicas have it "
        "(else `Unavailable`, maybe applied); it narrows the window but is not consensus: if "
        "the connection is replaced between a write and its `WAIT`, the `WAIT` counts nothing.",
        "While a primary is down and its replica not yet promoted, calls on its slots fail "
        "`Unavailable` for seconds (the node timeout plus the election).",
        "Batches that span slots are not atomic.",
    ],
    "dynamodb": [
        "Measured against an emulator (dynalite) on loopback, not against AWS: the service's "
        "own throttling, its SDK retries over a real network and its regional failures are not "
        "measured here.",
        "Reads are strongly consistent within one region's table; global tables replicate "
        "asynchronously between regions and are not supported.",
        "Expired items are filtered by the adapter; DynamoDB's own TTL deletion runs up to days "
        "later and does not decide anything.",
    ],
    "postgres": [
        "Durability is the server's configuration: with `synchronous_commit = off`, or a "
        "standby promoted after an asynchronous replication, a crash may lose acknowledged "
        "writes. A server crash and restart is not among these tests; the fault proxy covers "
        "dropped, stalled, refused and cut connections.",
        "Expiry runs on the server's clock.",
    ],
    "etcd": [
        "One member has no redundancy: its disk is the only copy.",
        "Values are limited by the server's request size (1.5 MiB by default).",
    ],
    "etcd-cluster": [
        "Without a quorum (two of three members down) every call fails `Unavailable`, by "
        "design; the same handle recovers once a quorum is back (measured).",
        "TTLs are milliseconds on the client's deadline over etcd's 1 s leases.",
    ],
}


def load_records():
    records = {}
    for path in sorted(glob.glob(os.path.join(results, "records", "*.json"))):
        with open(path) as f:
            record = json.load(f)
        records.setdefault(record["store"], {}).setdefault(record["check"], []).append(
            record["figures"])
    return records


def load_histories():
    found = {}
    for store in STORES:
        runs = []
        # `[0-9]*`: `redis-*` would also take `redis-cluster`'s runs.
        for path in sorted(glob.glob(os.path.join(results, f"history-{store}-[0-9]*.json"))):
            try:
                with open(path) as f:
                    runs.append(json.load(f))
            except (json.JSONDecodeError, OSError):
                runs.append(None)  # the check could not run (kvkit printed no report)
        found[store] = runs
    return found


def ms(x):
    if x is None:
        return "–"
    if x == 0:
        return "< 1 µs"  # records of an earlier format kept whole microseconds
    if x < 0.001:
        return f"{x * 1_000_000:.0f} ns"
    if x < 1:
        return f"{x * 1000:.1f} µs"
    return f"{x:,.0f} ms" if x >= 100 else f"{x:.1f} ms"


def count(x):
    return f"{x:,}"


records = load_records()
history_runs = load_histories()

failed_tests = []
summary_path = os.path.join(results, "tests-summary.txt")
if os.path.exists(summary_path):
    with open(summary_path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("test ") and line.endswith("FAILED"):
                failed_tests.append(line[len("test "):-len(" ... FAILED")])

print("# Reliability\n")
print(f"Measured {date.today()} by `ci/reliability` (regenerate with `ci/reliability`; it "
      "rewrites this file).\n")
print(f"- machine: {machine}")
commit_path = os.path.join(results, "commit.txt")
commit = open(commit_path).read().strip() if os.path.exists(commit_path) else "unknown"
print(f"- software: {versions}; kvkit and the tests built with `--release` at commit {commit}")
print("- every server on 127.0.0.1, started as `ci/test` starts them; the tests' long version "
      "(`KVKIT_RELIABILITY_FULL=1`); `ci/test` runs the same tests shorter")
if failed_tests:
    print(f"- **tests that failed in this run: {', '.join(failed_tests)}**")
else:
    print("- every test of the run passed")
print()
print("""What the rows mean:

- **faults**: the kit's fault proxy (`kv_conformance::faults`) between the adapter and its
  server, during a concurrent workload on one handle: added latency, replies cut in the middle,
  every connection reset, traffic black-holed, the server down (connections refused). Each fault
  is held, then healed.
- **largest call**: the slowest call during the faults, against the bound (the adapter's
  configured timeouts plus a margin): nothing hangs.
- **recovery**: from the heal until the same handle, never rebuilt, answered a round of every
  operation.
- **acknowledged writes lost**: writes that returned `Ok` and were not there afterwards, over
  every fault, kill, restart and failover below.
- **increments applied twice**: a counter above its acknowledged increments plus those that
  returned `Unavailable` (which may or may not have happened).
- **linearizability**: histories of concurrent calls on hot keys, TTLs expiring during them,
  checked against the contract's model (`kv_conformance::Checker`), `Unavailable` calls
  indeterminate: each `kvkit check --only concurrent_history_linearizable` run, and each fault's
  whole history.
- **crash rounds**: a child process writing and incrementing, killed with `SIGKILL` at a different
  moment each round; after each kill the store reopens and must hold every acknowledged write.
- **load**: 10,000 tasks at once on one handle with default settings (`kv_conformance::load`).
""")


def history_row(store):
    runs = history_runs.get(store, [])
    if not runs:
        return None
    passed = sum(1 for r in runs if r and r.get("passed"))
    violations = []
    for r in runs:
        if r is None:
            violations.append("a run printed no report")
            continue
        for check in r.get("checks", []):
            if not check["passed"]:
                violations.append((check.get("failure") or {}).get("message", "failed"))
    text = f"{passed} of {len(runs)} histories linearizable"
    if violations:
        text += ": " + "; ".join(sorted(set(violations)))[:300]
    return text


def lost_and_twice(store_records):
    lost, twice, sources = 0, 0, []
    for check, figures_list in store_records.items():
        for figures in figures_list:
            if check == "faults":
                for fault in figures["faults"]:
                    lost += fault["lost_writes"]
                    twice += fault["applied_twice"]
                sources.append("faults")
            elif "lost_writes" in figures:
                lost += figures["lost_writes"]
                twice += figures.get("applied_twice", 0)
                sources.append(check)
    return lost, twice, sorted(set(sources))


for store in STORES:
    store_records = records.get(store, {})
    print(f"## {store}\n")
    rows = []
    for report in store_records.get("faults", []):
        faults = report["faults"]
        bound = report["call_timeout_ms"] + report["margin_ms"]
        rows.append(("faults injected", f"{len(faults)}: " + ", ".join(f["fault"] for f in faults)))
        rows.append(("calls during the faults",
                     f"{count(sum(f['calls'] for f in faults))} "
                     f"({count(sum(f['unavailable'] for f in faults))} `Unavailable`, "
                     f"{count(sum(f['other_errors'] for f in faults))} other errors)"))
        rows.append(("largest call during a fault", f"{ms(report['largest_call_ms'])} "
                     f"(bound {ms(bound)})"))
        recovery = report["longest_recovery_ms"]
        rows.append(("recovery after healing (longest)",
                     "never (a fault did not heal)" if recovery is None else ms(recovery)))
        # The fault checks fail a phase whose history is not linearizable, or whose check was
        # inconclusive, with a failure saying so.
        nonlinear = [f["fault"] for f in faults
                     if any("linearizab" in message for message in f["failures"])]
        rows.append(("fault histories linearizable",
                     f"{len(faults) - len(nonlinear)} of {len(faults)}"
                     + (f" (not: {', '.join(nonlinear)})" if nonlinear else "")))
        if not report["passed"]:
            messages = sorted({m for f in faults for m in f["failures"]})
            rows.append(("**fault checks failed**", "; ".join(messages)[:400] or report["setup"]))
    for figures in store_records.get("restart", []):
        rows.append(("server killed (`SIGKILL`) and restarted",
                     f"down {ms(figures['down_ms'])}; the handle answered "
                     f"{ms(figures['recovered_ms'])} after the restart; slowest call "
                     f"{ms(figures['slowest_call_ms'])}; {count(figures['acknowledged_writes'])} "
                     f"acknowledged writes, {figures['lost_writes']} lost"))
    for check, label in [("failover", "primary killed, no waiting for replicas"),
                         ("failover-wait", "primary killed, `wait_for_replicas(1)`")]:
        for figures in store_records.get(check, []):
            rows.append((label,
                         f"replica promoted after {ms(figures['promoted_ms'])}, the handle wrote "
                         f"to the slot after {ms(figures['recovered_ms'])}; slowest call "
                         f"{ms(figures['slowest_call_ms'])}; "
                         f"{figures['lost_writes']} of {count(figures['acknowledged_writes'])} "
                         f"acknowledged writes lost, {figures['lost_increments']} of "
                         f"{count(figures['acknowledged_increments'])} acknowledged increments "
                         "lost"))
    for figures in store_records.get("leader-killed", []):
        rows.append(("leader killed (`SIGKILL`) during the workload",
                     f"{count(figures['calls_ok'])} calls ok "
                     f"({count(figures['calls_ok_after_kill'])} after the kill), "
                     + (f"{figures['unavailable']} `Unavailable`, the last "
                        f"{ms(figures['failures_until_ms'])} after the kill; "
                        if figures["unavailable"] else "none failed; ")
                     + f"{count(figures['acknowledged_writes'])} acknowledged writes, none lost"))
    for figures in store_records.get("quorum-lost", []):
        rows.append(("two of three members killed",
                     f"every call `Unavailable` within {ms(figures['call_bound_ms'])}; the same "
                     f"handle worked {ms(figures['recovered_ms'])} after a member restarted"))
    lost, twice, sources = lost_and_twice(store_records)
    if sources:
        rows.append(("acknowledged writes lost", f"{lost} ({', '.join(sources)})"))
        rows.append(("increments applied twice", f"{twice}"))
    history = history_row(store)
    if history:
        rows.append(("linearizability (`kvkit check`)", history))
    for figures in store_records.get("crash", []):
        if figures["passed"]:
            rows.append(("crash rounds survived",
                         f"{figures['rounds']} of {figures['rounds']}: "
                         f"{count(figures['acknowledged_writes'])} acknowledged writes and "
                         f"{count(figures['acknowledged_increments'])} increments, none lost"))
        else:
            rows.append(("**crash rounds failed**", figures["failure"].strip()[:400]))
    for figures in store_records.get("load", []):
        held = "held" if figures["passed"] else "**not held**"
        descriptors = ("–" if figures["descriptors_before"] is None else
                       f"{figures['descriptors_before']} → {figures['descriptors_peak']}")
        memory = ("–" if figures["memory_before_bytes"] is None else
                  f"{figures['memory_before_bytes'] >> 20} → "
                  f"{figures['memory_peak_bytes'] >> 20} MiB")
        rows.append(("load held", f"{held}: {count(figures['tasks'])} tasks, "
                     f"{count(figures['calls'])} calls in {ms(figures['elapsed_ms'])}, "
                     f"{figures['failed']} failed; p50 {ms(figures['p50_ms'])}, p99 "
                     f"{ms(figures['p99_ms'])}, max {ms(figures['max_ms'])}; descriptors "
                     f"{descriptors}; resident memory {memory}"))
    if not rows:
        rows.append(("figures", "none recorded in this run"))
    print("| | |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print()
    for report in store_records.get("faults", []):
        print("<details><summary>each fault</summary>\n")
        print("| fault | calls | `Unavailable` | other errors | largest call | recovery | "
              "writes ok / unknown | lost | increments ok / unknown | applied twice | "
              "linearizability |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for f in report["faults"]:
            print(f"| {f['fault']} | {count(f['calls'])} | {count(f['unavailable'])} | "
                  f"{f['other_errors']} | {ms(f['largest_call_ms'])} | "
                  f"{ms(f['recovery_ms']) if f['recovery_ms'] is not None else 'never'} | "
                  f"{f['writes_acknowledged']} / {f['writes_unavailable']} | {f['lost_writes']} | "
                  f"{f['increments_acknowledged']} / {f['increments_unavailable']} | "
                  f"{f['applied_twice']} | {f['linearizability']} |")
        print("\n</details>\n")
    print("Not promised:\n")
    for line in NOT_PROMISED[store]:
        print(f"- {line}")
    print()

print("""## Hostile stored data

Every adapter's `tests/hostile.rs` (SQLite, RocksDB, Redis, DynamoDB, PostgreSQL) writes data
another program could have put in the store (a Redis hash or list, an SQLite row of the wrong
column types, a RocksDB value with a malformed header, a DynamoDB item of the wrong attribute
types, a PostgreSQL row kvkit would never write) and checks that every operation answers
`KvError::Backend` (or the contract's error where one fits), never panics, and changes nothing;
kv-etcd, kv-rocksdb and kv-dynamodb fuzz their value decoding with proptest. `ci/test` runs them,
and so does `ci/reliability`.""")
