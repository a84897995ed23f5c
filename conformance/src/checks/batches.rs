//! Checks for the batch operations (`get_many`, `set_many`, `delete_many`), paged listing
//! (`list_keys_page`) and the backend's declared [`Capabilities`](kv_trait::Capabilities).

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_trait::{KeyPage, KvBackend, KvError};

use crate::checks::keys::hostile_keys;
use crate::model::{ErrorKind, Op, Outcome};
use crate::probe::{ensure, CheckResult, Probe};
use crate::report::Failure;

/// Keys in the batch that must be split by every store with a batch limit (DynamoDB's are
/// 100 reads and 25 writes; Redis Cluster's are one slot per command).
const LARGE_BATCH: usize = 1_200;

fn limit(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// Runs one batch call on `backend`, logs it, and turns an error into its kind.
async fn logged<T: std::fmt::Debug>(
    t: &Probe,
    shown: String,
    call: impl std::future::Future<Output = Result<T, KvError>>,
) -> Result<T, ErrorKind> {
    let outcome = call.await.map_err(|err| ErrorKind::of(&err));
    let summary = match &outcome {
        Ok(value) => {
            let text = format!("{value:?}");
            match text.chars().count() > 120 {
                true => format!("{}…", text.chars().take(120).collect::<String>()),
                false => text,
            }
        }
        Err(kind) => format!("{kind:?}"),
    };
    t.note(format!("{shown} -> {summary}"));
    outcome
}

/// A batch call that must succeed.
async fn must<T: std::fmt::Debug>(
    t: &Probe,
    shown: String,
    call: impl std::future::Future<Output = Result<T, KvError>>,
) -> Result<T, Failure> {
    logged(t, shown.clone(), call).await.map_err(|kind| {
        Failure::mismatch(format!("{shown} failed"), "success", format!("{kind:?}"))
    })
}

async fn get_many(t: &Probe, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Failure> {
    must(
        t,
        format!("get_many({} keys)", keys.len()),
        t.backend.get_many(keys),
    )
    .await
}

async fn set_many(t: &Probe, entries: &[(&str, &[u8])], ttl_ns: Option<u64>) -> CheckResult {
    for (key, _) in entries {
        t.remember_written(key);
    }
    let shown = format!("set_many({} entries, ttl {ttl_ns:?})", entries.len());
    must(t, shown, t.backend.set_many(entries, ttl_ns)).await
}

async fn delete_many(t: &Probe, keys: &[&str]) -> Result<u64, Failure> {
    must(
        t,
        format!("delete_many({} keys)", keys.len()),
        t.backend.delete_many(keys),
    )
    .await
}

async fn page(
    t: &Probe,
    prefix: &str,
    start_after: Option<&str>,
    size: usize,
) -> Result<KeyPage, Failure> {
    let shown = format!("list_keys_page({prefix:?}, {start_after:?}, {size})");
    must(
        t,
        shown,
        t.backend.list_keys_page(prefix, start_after, limit(size)),
    )
    .await
}

/// Every key of a listing by pages of `size`, checking each page on the way: at most `size`
/// keys, ascending, after the previous page, with a `next` that moves forward.
async fn walk(t: &Probe, prefix: &str, size: usize) -> Result<Vec<String>, Failure> {
    let mut keys: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    // A listing of n keys takes at most n / size + 1 full pages; short pages are allowed, so
    // leave room, but never loop forever on a pager that does not move.
    for _ in 0..100_000 {
        let this = page(t, prefix, after.as_deref(), size).await?;
        ensure(this.keys.len() <= size, || {
            format!("a page of limit {size} held {} keys", this.keys.len())
        })?;
        ensure(this.keys.windows(2).all(|w| w[0] < w[1]), || {
            format!("a page was not strictly ascending: {:?}", this.keys)
        })?;
        if let (Some(after), Some(first)) = (&after, this.keys.first()) {
            ensure(first > after, || {
                format!("the page after {after:?} started at {first:?}, not after it")
            })?;
        }
        ensure(this.keys.iter().all(|key| key.starts_with(prefix)), || {
            format!("a page of prefix {prefix:?} held {:?}", this.keys)
        })?;
        keys.extend(this.keys);
        match this.next {
            None => return Ok(keys),
            Some(next) => {
                if let Some(after) = &after {
                    ensure(next > *after, || {
                        format!("next went from {after:?} to {next:?}: the listing would not end")
                    })?;
                }
                after = Some(next);
            }
        }
    }
    Err(Failure::new(format!(
        "the listing of {prefix:?} by pages of {size} did not end"
    )))
}

/// `get_many` answers in the order asked, a repeated key twice, an absent key `None`, an
/// empty value `Some(b"")`; an empty batch is empty.
pub(crate) async fn get_many_in_order(t: Probe) -> CheckResult {
    t.put("a", "1").await?;
    t.put("b", "").await?;
    let got = get_many(&t, &["b", "missing", "a", "b"]).await?;
    let want = vec![
        Some(b"".to_vec()),
        None,
        Some(b"1".to_vec()),
        Some(b"".to_vec()),
    ];
    ensure(got == want, || {
        format!("get_many answered {got:?}, not {want:?}")
    })?;
    let none = get_many(&t, &[]).await?;
    ensure(none.is_empty(), || {
        format!("get_many of no keys answered {none:?}")
    })
}

/// `set_many` writes every entry, in order: of a key given twice the last value stays.
pub(crate) async fn set_many_writes_in_order(t: Probe) -> CheckResult {
    t.put("old", "before").await?;
    set_many(
        &t,
        &[("a", b"1"), ("old", b"after"), ("b", b""), ("a", b"3")],
        None,
    )
    .await?;
    t.expect_value("a", Some(b"3")).await?;
    t.expect_value("b", Some(b"")).await?;
    t.expect_value("old", Some(b"after")).await?;
    set_many(&t, &[], None).await?;
    t.expect_keys("", &["a", "b", "old"]).await
}

/// `set_many` with a TTL: every key lives until then and is gone after it plus the
/// granularity; without one (`None`) it clears a TTL, as `set` does.
pub(crate) async fn set_many_ttl(t: Probe) -> CheckResult {
    let ttl = Duration::from_millis(400);
    let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    t.expect(Op::set_with_ttl("cleared", "v", ttl_ns), Outcome::Done)
        .await?;
    let started = Instant::now();
    set_many(&t, &[("x", b"1"), ("y", b"2")], Some(ttl_ns)).await?;
    set_many(&t, &[("cleared", b"kept")], None).await?;
    let got = get_many(&t, &["x", "y"]).await?;
    if started.elapsed() < ttl {
        ensure(got.iter().all(Option::is_some), || {
            format!("keys set with a {ttl:?} TTL were gone before it: {got:?}")
        })?;
    }
    let ended = Instant::now();
    let margin = Duration::from_millis(100);
    tokio::time::sleep_until((ended + ttl + t.profile.ttl_granularity + margin).into()).await;
    let got = get_many(&t, &["x", "y", "cleared"]).await?;
    let want = vec![None, None, Some(b"kept".to_vec())];
    ensure(got == want, || {
        format!(
            "after the TTL of set_many ({ttl:?}) and the granularity, get_many answered {got:?}, \
             not {want:?} (set_many without a TTL must clear one)"
        )
    })?;
    t.expect_keys("", &["cleared"]).await
}

/// `delete_many` removes every key given and counts the live ones it removed, a repeated key
/// once.
pub(crate) async fn delete_many_counts(t: Probe) -> CheckResult {
    for key in ["a", "b", "c"] {
        t.put(key, key).await?;
    }
    let removed = delete_many(&t, &["a", "missing", "a", "b"]).await?;
    ensure(removed == 2, || {
        format!("delete_many of a, missing, a, b (a and b live) counted {removed}, not 2")
    })?;
    t.expect_keys("", &["c"]).await?;
    let removed = delete_many(&t, &[]).await?;
    ensure(removed == 0, || {
        format!("delete_many of no keys counted {removed}")
    })?;
    let removed = delete_many(&t, &["a", "b"]).await?;
    ensure(removed == 0, || {
        format!("delete_many of keys already removed counted {removed}")
    })
}

/// A batch with one invalid key, value or TTL fails with its error and changes nothing.
pub(crate) async fn batch_invalid_input_changes_nothing(t: Probe) -> CheckResult {
    t.put("kept", "before").await?;
    let long_key = "k".repeat(t.profile.max_key_bytes + 1);
    let too_big = vec![b'x'; t.profile.max_value_bytes + 1];
    let cases: Vec<(String, Result<(), ErrorKind>, ErrorKind)> = vec![
        (
            "get_many with an empty key".into(),
            logged(
                &t,
                "get_many([kept, \"\"])".into(),
                t.backend.get_many(&["kept", ""]),
            )
            .await
            .map(drop),
            ErrorKind::InvalidKey,
        ),
        (
            "set_many with an empty key".into(),
            logged(
                &t,
                "set_many([(new, v), (\"\", v)])".into(),
                t.backend
                    .set_many(&[("new", b"v"), ("kept", b"after"), ("", b"v")], None),
            )
            .await,
            ErrorKind::InvalidKey,
        ),
        (
            "set_many with a key over 1024 bytes".into(),
            logged(
                &t,
                "set_many([(new, v), (LONG, v)])".into(),
                t.backend
                    .set_many(&[("new", b"v"), (&long_key, b"v")], None),
            )
            .await,
            ErrorKind::InvalidKey,
        ),
        (
            "set_many with an oversize value".into(),
            logged(
                &t,
                "set_many([(new, v), (kept, TOO BIG)])".into(),
                t.backend
                    .set_many(&[("new", b"v"), ("kept", &too_big)], None),
            )
            .await,
            ErrorKind::ValueTooLarge {
                size: too_big.len(),
                max: t.profile.max_value_bytes,
            },
        ),
        (
            "set_many with a zero TTL".into(),
            logged(
                &t,
                "set_many([(new, v), (kept, after)], ttl 0)".into(),
                t.backend
                    .set_many(&[("new", b"v"), ("kept", b"after")], Some(0)),
            )
            .await,
            ErrorKind::InvalidTtl(0),
        ),
        (
            "delete_many with an empty key".into(),
            logged(
                &t,
                "delete_many([kept, \"\"])".into(),
                t.backend.delete_many(&["kept", ""]),
            )
            .await
            .map(drop),
            ErrorKind::InvalidKey,
        ),
    ];
    for (what, got, want) in cases {
        ensure(got == Err(want.clone()), || {
            format!("{what} returned {got:?}, not {want:?}")
        })?;
    }
    t.expect_value("kept", Some(b"before")).await?;
    t.expect_value("new", None).await?;
    t.expect_keys("", &["kept"]).await
}

/// Batches far over any store's own limit are split, never refused or cut short.
pub(crate) async fn large_batches_split(t: Probe) -> CheckResult {
    let keys: Vec<String> = (0..LARGE_BATCH).map(|i| format!("big/{i:05}")).collect();
    let values: Vec<Vec<u8>> = keys.iter().map(|key| key.as_bytes().to_vec()).collect();
    let entries: Vec<(&str, &[u8])> = keys
        .iter()
        .zip(&values)
        .map(|(key, value)| (key.as_str(), value.as_slice()))
        .collect();
    set_many(&t, &entries, None).await?;
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = get_many(&t, &names).await?;
    let wrong = got
        .iter()
        .zip(&values)
        .position(|(got, want)| got.as_deref() != Some(want.as_slice()));
    ensure(got.len() == LARGE_BATCH && wrong.is_none(), || {
        format!(
            "get_many of {LARGE_BATCH} keys just written answered {} values, the first wrong at {wrong:?}",
            got.len()
        )
    })?;
    let listed = walk(&t, "big/", 500).await?;
    ensure(listed == keys, || {
        format!(
            "pages of 500 over {LARGE_BATCH} keys listed {} of them (first difference at {:?})",
            listed.len(),
            listed.iter().zip(&keys).position(|(a, b)| a != b)
        )
    })?;
    let removed = delete_many(&t, &names).await?;
    ensure(removed == LARGE_BATCH as u64, || {
        format!("delete_many of {LARGE_BATCH} live keys counted {removed}")
    })?;
    t.expect_keys("", &[]).await
}

/// Hostile keys (NUL, wildcards, controls, non-BMP) survive every batch operation and
/// paging exactly.
pub(crate) async fn batches_keep_hostile_keys(t: Probe) -> CheckResult {
    let hostile = hostile_keys(t.profile.max_key_bytes);
    let entries: Vec<(&str, &[u8])> = hostile
        .iter()
        .map(|key| (key.as_str(), key.as_bytes()))
        .collect();
    set_many(&t, &entries, None).await?;
    let names: Vec<&str> = hostile.iter().map(String::as_str).collect();
    let got = get_many(&t, &names).await?;
    for (key, value) in hostile.iter().zip(&got) {
        ensure(value.as_deref() == Some(key.as_bytes()), || {
            format!("get_many of hostile key {key:?} answered {value:?}")
        })?;
    }
    let mut sorted: Vec<String> = hostile.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let listed = walk(&t, "", 3).await?;
    ensure(listed == sorted, || {
        format!("pages of 3 listed {listed:?}, not {sorted:?}")
    })?;
    let removed = delete_many(&t, &names).await?;
    ensure(removed == sorted.len() as u64, || {
        format!(
            "delete_many of {} live hostile keys counted {removed}",
            sorted.len()
        )
    })?;
    t.expect_keys("", &[]).await
}

/// Pages of every size list every key once, in order, and only keys with the prefix;
/// `start_after` need not be a key; past the end is an empty last page.
pub(crate) async fn pages_list_each_key_once(t: Probe) -> CheckResult {
    let keys = [
        "a",
        "a\0",
        "a/1",
        "a/2",
        "a/3",
        "ab",
        "b",
        "b/1",
        "\u{e9}",
        "\u{10000}",
    ];
    for key in keys {
        t.put(key, "v").await?;
    }
    let mut all: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    all.sort_unstable();
    for size in [1, 2, 3, 7, 10, 11, 1000] {
        let listed = walk(&t, "", size).await?;
        ensure(listed == all, || {
            format!("pages of {size} listed {listed:?}, not {all:?}")
        })?;
    }
    let a_keys: Vec<String> = all.iter().filter(|k| k.starts_with('a')).cloned().collect();
    let listed = walk(&t, "a", 2).await?;
    ensure(listed == a_keys, || {
        format!("pages of prefix \"a\" listed {listed:?}")
    })?;
    let listed = walk(&t, "a/", 1).await?;
    ensure(listed == ["a/1", "a/2", "a/3"], || {
        format!("pages of prefix \"a/\" listed {listed:?}")
    })?;
    // `start_after` between keys, and past the end.
    let after = page(&t, "", Some("a/15"), 2).await?;
    ensure(after.keys == ["a/2", "a/3"], || {
        format!(
            "the page after \"a/15\" held {:?}, not [a/2, a/3]",
            after.keys
        )
    })?;
    let past = page(&t, "", Some("\u{10ffff}"), 5).await?;
    ensure(past == KeyPage::default(), || {
        format!("the page past the last key was {past:?}, not empty and last")
    })?;
    let nothing = page(&t, "zz", None, 5).await?;
    ensure(nothing == KeyPage::default(), || {
        format!("a page of a prefix that matches nothing was {nothing:?}")
    })?;
    // Expired and deleted keys are not listed.
    t.expect(Op::delete("ab"), Outcome::Bool(true)).await?;
    let listed = walk(&t, "a", 3).await?;
    ensure(!listed.iter().any(|key| key == "ab"), || {
        format!("a deleted key was listed: {listed:?}")
    })
}

/// While other keys are written and removed, a listing by pages lists every key live for the
/// whole listing exactly once and never a key that was never written.
pub(crate) async fn pages_during_writes(t: Probe) -> CheckResult {
    let stable: Vec<String> = (0..60).map(|i| format!("s{i:03}")).collect();
    for key in &stable {
        t.put(key, "v").await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let backend: Arc<dyn KvBackend> = t.backend.clone();
        let stop = Arc::clone(&stop);
        let churn: Vec<String> = (0..60).map(|i| format!("s{i:03}-churn")).collect();
        for key in &churn {
            t.remember_written(key);
        }
        tokio::spawn(async move {
            let mut round = 0_usize;
            while !stop.load(Ordering::Relaxed) {
                let key = &churn[round % churn.len()];
                if round.is_multiple_of(2) {
                    let _ = backend.set(key, b"c").await;
                } else {
                    let _ = backend.delete(key).await;
                }
                round += 1;
            }
        })
    };
    let mut outcome = Ok(());
    for size in [4, 7] {
        let listed = match walk(&t, "s", size).await {
            Ok(listed) => listed,
            Err(failure) => {
                outcome = Err(failure);
                break;
            }
        };
        let seen: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        let check = ensure(seen.len() == listed.len(), || {
            format!("pages of {size} listed a key twice: {listed:?}")
        })
        .and_then(|()| {
            let missing: Vec<&String> = stable
                .iter()
                .filter(|k| !seen.contains(k.as_str()))
                .collect();
            ensure(missing.is_empty(), || {
                format!("pages of {size} missed keys live for the whole listing: {missing:?}")
            })
        })
        .and_then(|()| {
            let strangers: Vec<&&str> = seen
                .iter()
                .filter(|k| !k.ends_with("-churn") && !stable.iter().any(|s| s == *k))
                .collect();
            ensure(strangers.is_empty(), || {
                format!("pages of {size} listed keys never written: {strangers:?}")
            })
        });
        if check.is_err() {
            outcome = check;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer
        .await
        .map_err(|err| Failure::new(format!("the writer task failed: {err}")))?;
    outcome
}

/// The declared capabilities are those the suite checks (the profile's value maximum and TTL
/// granularity), and a backend that declares atomic batches keeps them: no `get_many` sees
/// half of a `set_many`.
pub(crate) async fn capabilities_are_true(t: Probe) -> CheckResult {
    let declared = t.backend.capabilities();
    t.note(format!("capabilities() -> {declared:?}"));
    ensure(
        declared.max_value_bytes == t.profile.max_value_bytes,
        || {
            format!(
                "capabilities() declares max_value_bytes {}, but the suite's profile checks {}: \
             one of them is wrong (Profile::for_backend takes the declaration)",
                declared.max_value_bytes, t.profile.max_value_bytes
            )
        },
    )?;
    ensure(declared.max_key_bytes == t.profile.max_key_bytes, || {
        format!(
            "capabilities() declares max_key_bytes {}, but the suite's profile checks {}: one of \
             them is wrong (Profile::for_backend takes the declaration)",
            declared.max_key_bytes, t.profile.max_key_bytes
        )
    })?;
    ensure(
        declared.ttl_granularity == t.profile.ttl_granularity,
        || {
            format!(
            "capabilities() declares a TTL granularity of {:?}, but the suite's profile checks \
             {:?}: one of them is wrong (Profile::for_backend takes the declaration)",
            declared.ttl_granularity, t.profile.ttl_granularity
        )
        },
    )?;
    if !declared.atomic_batches {
        return Ok(());
    }
    // Writers replace both keys with one generation per batch; readers must never see two.
    set_many(&t, &[("x", b"0"), ("y", b"0")], None).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let backend: Arc<dyn KvBackend> = t.backend.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut generation = 0_u64;
            while !stop.load(Ordering::Relaxed) && generation < 400 {
                generation += 1;
                let value = generation.to_string();
                backend
                    .set_many(&[("x", value.as_bytes()), ("y", value.as_bytes())], None)
                    .await?;
                tokio::task::yield_now().await;
            }
            Ok::<u64, KvError>(generation)
        })
    };
    let mut reads = 0;
    let mut outcome = Ok(());
    while !writer.is_finished() && reads < 2_000 {
        // Yield between reads, so that on a one-thread runtime the writer runs between them.
        tokio::task::yield_now().await;
        match t.backend.get_many(&["x", "y"]).await {
            Ok(values) if values[0] == values[1] => reads += 1,
            Ok(values) => {
                outcome = Err(Failure::new(format!(
                    "capabilities() declares atomic batches, but get_many saw x = {:?} and y = \
                     {:?} while set_many wrote both together",
                    values[0].as_deref().map(String::from_utf8_lossy),
                    values[1].as_deref().map(String::from_utf8_lossy)
                )));
                break;
            }
            Err(err) => {
                outcome = Err(Failure::new(format!("get_many failed: {err}")));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let generations = writer
        .await
        .map_err(|err| Failure::new(format!("the writer task failed: {err}")))?
        .map_err(|err| Failure::new(format!("set_many failed: {err}")))?;
    t.note(format!(
        "{reads} get_many reads during {generations} set_many batches"
    ));
    outcome
}
