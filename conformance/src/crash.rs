//! Crash rounds for stores in files: a child process writes through the backend and prints
//! each acknowledged operation, the parent kills it with `SIGKILL` at a moment of its
//! choosing, reopens the store and checks that it opens cleanly and holds every acknowledged
//! write. (A kill loses what the process had not handed to the operating system; a store that
//! acknowledged a write before doing so fails here. Power loss is another matter, which each
//! store's durability settings decide; see the adapters' READMEs.)
//!
//! The child runs [`crash_workload`], which never returns; the parent runs
//! [`crash_rounds`], which starts the child, kills it with [`kill_after`] once it has
//! acknowledged a given number of operations, reopens the store and checks it with
//! [`Acknowledged::check`], round after round.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use kv_conformance::crash::Acknowledged;
//!
//! // What a killed child printed: two writes and one increment acknowledged, the last line
//! // cut short by the kill.
//! let printed = "ack set crash/w0-1 1\nack set crash/w0-2 2\nack inc\nack se";
//! let acknowledged = Acknowledged::parse(printed);
//! assert_eq!((acknowledged.sets.len(), acknowledged.increments), (2, 1));
//!
//! let store = kv_memory::MemoryBackend::new();
//! use kv_trait::KvBackend;
//! store.set("crash/w0-1", b"1").await.unwrap();
//! store.set("crash/w0-2", b"2").await.unwrap();
//! store.increment("crash/counter", 1).await.unwrap();
//! acknowledged.check(&store, 1).await.unwrap();
//! # });
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use kv_trait::KvBackend;

use crate::report::Failure;

/// The counter every crash workload task increments.
pub const COUNTER: &str = "crash/counter";

/// Writes forever from `tasks` tasks: each sets unique keys `crash/w{task}-{n}` to `n` and
/// increments [`COUNTER`], printing `ack set KEY VALUE` or `ack inc` on standard output, and
/// flushing it, as soon as each call returns `Ok`. Starts from `start` (the keys of earlier
/// rounds stay, so each round adds to the same file). Meant for a child process that its
/// parent kills.
pub async fn crash_workload(backend: Arc<dyn KvBackend>, tasks: usize, start: u64) -> ! {
    for task in 0..tasks {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            let mut n = start;
            loop {
                n += 1;
                let key = format!("crash/w{task}-{n}");
                let value = n.to_string();
                if backend.set(&key, value.as_bytes()).await.is_ok() {
                    print_ack(&format!("ack set {key} {value}"));
                }
                if backend.increment(COUNTER, 1).await.is_ok() {
                    print_ack("ack inc");
                }
            }
        });
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

fn print_ack(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line, flushed: what the parent reads is exactly what was acknowledged
    // before the kill (a line cut by the kill is ignored).
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Starts `child` (a process that runs [`crash_workload`]) with its standard output piped,
/// kills it with `SIGKILL` once it has acknowledged `before_kill` operations (so that a slow
/// start on a loaded machine moves the kill, not the work done before it), and returns what
/// it acknowledged in all, the lines printed between the count and the kill included.
pub fn kill_after(mut child: Command, before_kill: usize) -> std::io::Result<Acknowledged> {
    let mut child = child.stdout(Stdio::piped()).spawn()?;
    let mut stdout = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("the child's stdout is not piped"))?,
    );
    let mut printed = String::new();
    let mut acks = 0;
    while acks < before_kill {
        let mut line = String::new();
        if stdout.read_line(&mut line)? == 0 {
            break; // the child ended early: its acknowledgements say how far it got
        }
        acks += usize::from(line.starts_with("ack "));
        printed.push_str(&line);
    }
    child.kill()?;
    stdout.read_to_string(&mut printed)?;
    child.wait()?;
    Ok(Acknowledged::parse(&printed))
}

/// Runs `rounds` crash rounds on one store: in round `r`, starts `child(r)` (a process
/// running [`crash_workload`] with `tasks` tasks from `r * 1_000_000`, so that rounds write
/// different keys), kills it after 20 to 420 acknowledgements (a different count each round,
/// while its tasks have more writes in flight), then reopens the store with `reopen`, which
/// must succeed, writes through it, and checks every acknowledgement so far. Returns all of
/// them; the first round that fails is the error, naming the round.
pub async fn crash_rounds<B, F, Fut>(
    rounds: u64,
    tasks: usize,
    child: impl Fn(u64) -> Command,
    reopen: F,
) -> Result<Acknowledged, Failure>
where
    B: KvBackend,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<B, kv_trait::KvError>>,
{
    let mut all = Acknowledged::default();
    for round in 0..rounds {
        let before_kill = 20 + usize::try_from(round).unwrap_or(0).wrapping_mul(137) % 400;
        let acknowledged = kill_after(child(round), before_kill)
            .map_err(|err| Failure::new(format!("round {round}: running the child: {err}")))?;
        if acknowledged.count() < before_kill {
            return Err(Failure::new(format!(
                "round {round}: the child ended after {} of {before_kill} acknowledgements",
                acknowledged.count()
            )));
        }
        all.merge(acknowledged);
        // Opens cleanly and writes: whatever the killed process held (locks) died with it.
        let store = reopen()
            .await
            .map_err(|err| Failure::new(format!("round {round}: reopening failed: {err}")))?;
        store
            .set("crash/after", round.to_string().as_bytes())
            .await
            .map_err(|err| {
                Failure::new(format!("round {round}: a write after reopening: {err}"))
            })?;
        let in_flight = (round + 1) * u64::try_from(tasks).unwrap_or(u64::MAX);
        all.check(&store, in_flight)
            .await
            .map_err(|failure| Failure::new(format!("round {round}: {failure}")))?;
    }
    Ok(all)
}

/// Records the outcome of [`crash_rounds`] on `store` for the reliability report
/// ([`crate::reliability::record`], as the check `crash`): the rounds, what was acknowledged
/// in all, or the failure that ended the run.
pub fn record(store: &str, rounds: u64, outcome: &Result<Acknowledged, Failure>) {
    let figures = match outcome {
        Ok(all) => serde_json::json!({
            "rounds": rounds,
            "passed": true,
            "acknowledged_writes": all.sets.len(),
            "acknowledged_increments": all.increments,
            "lost_writes": 0,
        }),
        Err(failure) => serde_json::json!({
            "rounds": rounds,
            "passed": false,
            "failure": failure.to_string(),
        }),
    };
    crate::reliability::record(store, "crash", figures);
}

/// What a killed child acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acknowledged {
    /// Keys set, with their values.
    pub sets: Vec<(String, String)>,
    /// Increments of [`COUNTER`].
    pub increments: u64,
}

impl Acknowledged {
    /// How many operations were acknowledged.
    pub fn count(&self) -> usize {
        self.sets.len() + usize::try_from(self.increments).unwrap_or(usize::MAX)
    }

    /// Parses a child's standard output; a last line cut short by the kill is ignored.
    pub fn parse(stdout: &str) -> Self {
        let mut acknowledged = Self::default();
        let complete = match stdout.rfind('\n') {
            Some(end) => &stdout[..end],
            None => "",
        };
        for line in complete.lines() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("ack"), Some("inc"), None, None) => acknowledged.increments += 1,
                (Some("ack"), Some("set"), Some(key), Some(value)) => {
                    acknowledged.sets.push((key.to_owned(), value.to_owned()));
                }
                _ => {}
            }
        }
        acknowledged
    }

    /// The rounds' acknowledgements together.
    pub fn merge(&mut self, other: Acknowledged) {
        self.sets.extend(other.sets);
        self.increments += other.increments;
    }

    /// Checks a store reopened after the kills: every acknowledged key holds its value, and
    /// [`COUNTER`] is at least the acknowledged increments and at most `max_unacknowledged`
    /// more (the increments sent but not yet acknowledged when the kills came: one per task
    /// per round).
    pub async fn check(
        &self,
        store: &dyn KvBackend,
        max_unacknowledged: u64,
    ) -> Result<(), Failure> {
        let keys: Vec<&str> = self.sets.iter().map(|(key, _)| key.as_str()).collect();
        let mut lost = Vec::new();
        for chunk in keys.chunks(500) {
            let values = store
                .get_many(chunk)
                .await
                .map_err(|err| Failure::new(format!("get_many after the crash: {err}")))?;
            for (key, value) in chunk.iter().zip(values) {
                let want = self
                    .sets
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_bytes());
                if value.as_deref() != want {
                    lost.push((*key).to_owned());
                }
            }
        }
        if !lost.is_empty() {
            return Err(Failure::new(format!(
                "{} of {} acknowledged writes are gone after the crash, the first: {:?}",
                lost.len(),
                self.sets.len(),
                &lost[..lost.len().min(10)]
            )));
        }
        let counter = store
            .get(COUNTER)
            .await
            .map_err(|err| Failure::new(format!("get after the crash: {err}")))?
            .and_then(|bytes| kv_trait::parse_counter(&bytes))
            .unwrap_or(0);
        let counter = u64::try_from(counter).unwrap_or(0);
        let most = self.increments + max_unacknowledged;
        if !(self.increments..=most).contains(&counter) {
            return Err(Failure::new(format!(
                "the counter is {counter} after the crash: {} increments were acknowledged, and \
                 at most {max_unacknowledged} more can have been in flight",
                self.increments
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lost_write_and_a_counter_out_of_range_fail_the_check() {
        let acknowledged = Acknowledged::parse("ack set crash/a 1\nack set crash/b 2\nack inc\n");
        let store = kv_memory::MemoryBackend::new();
        store.set("crash/a", b"1").await.unwrap();
        store.increment(COUNTER, 1).await.unwrap();
        let lost = acknowledged.check(&store, 0).await.unwrap_err();
        assert!(
            lost.to_string().contains("1 of 2 acknowledged writes"),
            "{lost}"
        );

        store.set("crash/b", b"2").await.unwrap();
        acknowledged.check(&store, 0).await.unwrap();
        store.increment(COUNTER, 2).await.unwrap();
        let twice = acknowledged.check(&store, 1).await.unwrap_err();
        assert!(twice.to_string().contains("the counter is 3"), "{twice}");
        acknowledged.check(&store, 2).await.unwrap();
    }

    #[test]
    fn a_line_cut_by_the_kill_is_not_an_acknowledgement() {
        assert_eq!(Acknowledged::parse("ack inc\nack in").increments, 1);
        assert_eq!(Acknowledged::parse("ack inc").increments, 0);
        assert_eq!(Acknowledged::parse("").count(), 0);
    }
}
