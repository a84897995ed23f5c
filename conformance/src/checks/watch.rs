//! Checks for `watch`: every change under the prefix, once, in each key's order, from the
//! moment of subscription; nothing from outside the prefix or the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kv_trait::{KvBackend, KvError, WatchEvent, WatchScope};

use crate::probe::{ensure, CheckResult, Probe};
use crate::report::Failure;

/// Writers at once, each on keys of its own.
const WRITERS: usize = 4;
/// How long the events of the run may take to arrive.
const DELIVERY: Duration = Duration::from_secs(5);
/// How long the check goes on listening after the last expected event, for strays.
const AFTERWARDS: Duration = Duration::from_millis(200);

/// One writer's calls, on `w/{task}/a` and `w/{task}/b` (and one key outside the prefix), and
/// the events they must cause, in order per key.
async fn write(kv: Arc<dyn KvBackend>, task: usize) -> Result<Vec<WatchEvent>, KvError> {
    let (a, b) = (format!("w/{task}/a"), format!("w/{task}/b"));
    let set = |key: &str, value: &[u8]| WatchEvent::Set {
        key: key.to_owned(),
        value: value.to_vec(),
    };
    let deleted = |key: &str| WatchEvent::Deleted {
        key: key.to_owned(),
    };
    let mut expected = Vec::new();
    kv.set(&a, b"1").await?;
    expected.push(set(&a, b"1"));
    kv.increment(&b, 5).await?;
    expected.push(set(&b, b"5"));
    kv.set_with_ttl(&a, b"2", 3_600_000_000_000).await?;
    expected.push(set(&a, b"2"));
    if kv.compare_and_swap(&a, Some(b"2"), b"3").await? {
        expected.push(set(&a, b"3"));
    }
    // Neither a swap that fails nor a delete of nothing is a change.
    kv.compare_and_swap(&a, Some(b"no"), b"4").await?;
    if kv.delete(&b).await? {
        expected.push(deleted(&b));
    }
    kv.delete(&b).await?;
    kv.set_many(&[(a.as_str(), b"5"), (b.as_str(), b"6")], None)
        .await?;
    expected.push(set(&a, b"5"));
    expected.push(set(&b, b"6"));
    kv.increment(&b, 1).await?;
    expected.push(set(&b, b"7"));
    let none = format!("w/{task}/none");
    let removed = kv
        .delete_many(&[a.as_str(), b.as_str(), none.as_str()])
        .await?;
    if removed == 2 {
        expected.push(deleted(&a));
        expected.push(deleted(&b));
    }
    kv.set(&format!("x/{task}"), b"outside the prefix").await?;
    Ok(expected)
}

/// Every change under the prefix reaches a watcher subscribed before it, once and in each
/// key's order; writes before the subscription, outside the prefix or in another namespace
/// never do.
pub(crate) async fn watch_delivers_every_change(t: Probe) -> CheckResult {
    let scope = t.backend.capabilities().watch;
    if scope == WatchScope::Unsupported {
        let answer = t.backend.watch("w/").await;
        ensure(matches!(answer, Err(KvError::Unsupported(_))), || {
            "capabilities() declares no watch, but watch() did not fail with Unsupported".into()
        })?;
        t.note("no watch declared; watch() says Unsupported");
        return Ok(());
    }
    let other = t.another_backend().await?;
    for task in 0..WRITERS {
        for key in ["a", "b", "none"] {
            t.remember_written(&format!("w/{task}/{key}"));
        }
        t.remember_written(&format!("x/{task}"));
    }
    t.remember_written("w/before");
    t.put("w/before", "written before the watch").await?;
    let mut events = t
        .backend
        .watch("w/")
        .await
        .map_err(|err| Failure::new(format!("watch(\"w/\") failed: {err}")))?;
    // Same keys in another namespace: invisible to this watcher.
    other
        .set("w/0/a", b"another namespace")
        .await
        .map_err(op_failed)?;
    let writers: Vec<_> = (0..WRITERS)
        .map(|task| tokio::spawn(write(t.backend.clone(), task)))
        .collect();
    let mut expected: BTreeMap<String, Vec<WatchEvent>> = BTreeMap::new();
    for writer in writers {
        let done = writer
            .await
            .map_err(|err| Failure::new(format!("a writer panicked: {err}")))?;
        for event in done.map_err(op_failed)? {
            let key = event.key().unwrap_or_default().to_owned();
            expected.entry(key).or_default().push(event);
        }
    }
    let total: usize = expected.values().map(Vec::len).sum();

    let mut seen: BTreeMap<String, Vec<WatchEvent>> = BTreeMap::new();
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + DELIVERY;
    while count < total {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => {
                count += 1;
                record(&mut seen, event)?;
            }
            Ok(None) => return Err(Failure::new("the watch stream ended while writes went on")),
            Err(_) => break,
        }
    }
    // Anything more is a stray: a duplicate, or a key that should not be there.
    while let Ok(Some(event)) = tokio::time::timeout(AFTERWARDS, events.next()).await {
        record(&mut seen, event)?;
    }
    for (key, want) in &expected {
        let got = seen.remove(key).unwrap_or_default();
        ensure(got == *want, || {
            format!("the watcher saw {key:?} change as {got:?}; the writes made {want:?}")
        })?;
    }
    ensure(seen.is_empty(), || {
        format!("the watcher saw changes that are not its own: {seen:?}")
    })?;
    t.note(format!(
        "{total} changes by {WRITERS} writers, each seen once in order ({scope:?} scope)"
    ));
    Ok(())
}

fn record(seen: &mut BTreeMap<String, Vec<WatchEvent>>, event: WatchEvent) -> Result<(), Failure> {
    match event.key() {
        Some(key) => {
            seen.entry(key.to_owned()).or_default().push(event);
            Ok(())
        }
        None => Err(Failure::new(
            "the watcher lagged on a few dozen changes: it must keep up with that",
        )),
    }
}

fn op_failed(err: KvError) -> Failure {
    Failure::new(format!("a write failed: {err}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use kv_memory::MemoryBackend;
    use kv_trait::{async_trait, Capabilities, WatchStream};

    use super::*;
    use crate::Suite;

    /// Forwards everything to memory, but its watch loses one event in `every`, and it
    /// declares the watch scope `declared`.
    #[derive(Debug, Clone)]
    struct Forgetful {
        store: MemoryBackend,
        every: u64,
        declared: WatchScope,
    }

    #[async_trait]
    impl KvBackend for Forgetful {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
            self.store.get(key).await
        }
        async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
            self.store.set(key, value).await
        }
        async fn set_with_ttl(&self, key: &str, value: &[u8], ttl: u64) -> Result<(), KvError> {
            self.store.set_with_ttl(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<bool, KvError> {
            self.store.delete(key).await
        }
        async fn exists(&self, key: &str) -> Result<bool, KvError> {
            self.store.exists(key).await
        }
        async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
            self.store.list_keys(prefix).await
        }
        async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
            self.store.increment(key, delta).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            new: &[u8],
        ) -> Result<bool, KvError> {
            self.store.compare_and_swap(key, expected, new).await
        }
        async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
            let every = self.every;
            let n = Arc::new(AtomicU64::new(0));
            let events = self.store.watch(prefix).await?;
            Ok(Box::pin(events.filter(move |_| {
                let keep = !(n.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(every);
                std::future::ready(keep)
            })))
        }
        fn capabilities(&self) -> Capabilities {
            self.store.capabilities().with_watch(self.declared)
        }
    }

    async fn run(every: u64, declared: WatchScope) -> crate::Report {
        Suite::new(move || async move {
            Ok(Forgetful {
                store: MemoryBackend::new(),
                every,
                declared,
            })
        })
        .only(["watch_delivers_every_change"])
        .run()
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watcher_that_loses_events_is_caught() {
        let faithful = run(u64::MAX, WatchScope::Process).await;
        assert!(faithful.passed(), "{faithful}");
        let forgetful = run(10, WatchScope::Process).await;
        assert!(!forgetful.passed(), "{forgetful}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_declaration_of_no_watch_must_be_true() {
        let report = run(u64::MAX, WatchScope::Unsupported).await;
        assert!(!report.passed(), "{report}");
        assert!(report.to_string().contains("declares no watch"), "{report}");
    }
}
