//! Failures, against a small fake DynamoDB endpoint on loopback (no emulator needed): a
//! refused connection and a server that never answers are `Unavailable` within the
//! configured timeouts, at open as at every call; 5xx and throttling are `Unavailable` after
//! the SDK's retries; and writes are never retried after a failure that may have applied them.

#![allow(
    clippy::disallowed_methods,
    reason = "the tests time themselves; no store decision reads this clock"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kv_dynamodb::{DynamoDbBackend, RetryConfig};
use kv_trait::{KvBackend, KvError};

/// What the fake endpoint does with each request it reads.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers with this status and DynamoDB error type.
    Fail(u16, &'static str),
    /// Closes the connection without answering.
    Hangup,
    /// Keeps the connection open and never answers.
    Silent,
}

/// A loopback HTTP server answering every request the same way, counting them.
struct FakeDynamoDb {
    address: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl FakeDynamoDb {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let held = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (counted, held) = (Arc::clone(&counted), Arc::clone(&held));
                std::thread::spawn(move || serve(stream, behaviour, &counted, &held));
            }
        });
        Self { address, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Requests received since the last call.
    fn take(&self) -> usize {
        self.requests.swap(0, Ordering::SeqCst)
    }
}

fn serve(
    stream: TcpStream,
    behaviour: Behaviour,
    counted: &AtomicUsize,
    held: &Mutex<Vec<TcpStream>>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        counted.fetch_add(1, Ordering::SeqCst);
        match behaviour {
            Behaviour::Fail(status, kind) => {
                let body = format!(
                    "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{kind}\",\"message\":\"fake\"}}"
                );
                let response = format!(
                    "HTTP/1.1 {status} Fake\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     content-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if reader.get_mut().write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
            Behaviour::Hangup => return,
            Behaviour::Silent => {
                held.lock().expect("held lock").push(reader.into_inner());
                return;
            }
        }
    }
}

/// A backend on the fake endpoint, opened without the table check (each test counts the
/// requests of the operations it makes; `opening_*` tests check the open itself).
async fn backend(
    endpoint: &str,
    configure: impl FnOnce(kv_dynamodb::DynamoDbBackendBuilder) -> kv_dynamodb::DynamoDbBackendBuilder,
) -> DynamoDbBackend {
    configure(builder(endpoint).verify_table(false))
        .build()
        .await
        .expect("backend")
}

fn builder(endpoint: &str) -> kv_dynamodb::DynamoDbBackendBuilder {
    DynamoDbBackend::builder("fake-table")
        .endpoint(endpoint)
        .region("us-east-1")
        .credentials("fake", "fake")
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5)),
        )
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, KvError>, what: &str) {
    match result {
        Err(err @ KvError::Unavailable(_)) => assert!(err.is_retryable()),
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn server_errors_retry_reads_but_no_write() {
    let fake = FakeDynamoDb::start(Behaviour::Fail(500, "InternalServerError"));
    let store = backend(&fake.endpoint(), |b| b).await;

    assert_unavailable(store.get("k").await, "get");
    assert_eq!(fake.take(), 3, "get: retried");
    assert_unavailable(store.list_keys("").await, "list_keys");
    assert_eq!(fake.take(), 3, "list_keys: retried");

    // The first attempt may have been applied: a retry could count twice or answer false, and
    // a put resent after another client's write would undo that write.
    assert_unavailable(store.set("k", b"v").await, "set");
    assert_eq!(fake.take(), 1, "set: not retried");
    assert_unavailable(
        store.set_with_ttl("k", b"v", 1_000_000_000).await,
        "set_with_ttl",
    );
    assert_eq!(fake.take(), 1, "set_with_ttl: not retried");
    assert_unavailable(store.increment("k", 1).await, "increment");
    assert_eq!(fake.take(), 1, "increment: not retried");
    assert_unavailable(store.compare_and_swap("k", None, b"v").await, "CAS");
    assert_eq!(fake.take(), 1, "CAS: not retried");
    assert_unavailable(store.delete("k").await, "delete");
    assert_eq!(fake.take(), 1, "delete: not retried");

    // Batches: the read is retried, the write (which may have been applied) is not.
    assert_unavailable(store.get_many(&["a", "b"]).await, "get_many");
    assert_eq!(fake.take(), 3, "get_many: retried");
    assert_unavailable(
        store.set_many(&[("a", b"1"), ("b", b"2")], None).await,
        "set_many",
    );
    assert_eq!(fake.take(), 1, "set_many: not retried");
    assert_unavailable(store.delete_many(&["a"]).await, "delete_many");
    assert_eq!(fake.take(), 1, "delete_many: not retried");
}

#[tokio::test]
async fn throttled_writes_were_not_applied_so_they_are_retried() {
    let fake = FakeDynamoDb::start(Behaviour::Fail(
        400,
        "ProvisionedThroughputExceededException",
    ));
    let store = backend(&fake.endpoint(), |b| b).await;
    assert_unavailable(store.increment("k", 1).await, "increment");
    assert_eq!(fake.take(), 3, "increment: retried");
    assert_unavailable(store.compare_and_swap("k", Some(b"a"), b"b").await, "CAS");
    assert_eq!(fake.take(), 3, "CAS: retried");
    assert_unavailable(store.set("k", b"v").await, "set");
    assert_eq!(fake.take(), 3, "set: retried");
    assert_unavailable(store.set_many(&[("a", b"1")], None).await, "set_many");
    assert_eq!(fake.take(), 3, "set_many: retried");
    assert_unavailable(store.get("k").await, "get");
    assert_eq!(fake.take(), 3);
}

#[tokio::test]
async fn other_client_errors_are_backend_errors_and_not_retried() {
    let fake = FakeDynamoDb::start(Behaviour::Fail(400, "AccessDeniedException"));
    let store = backend(&fake.endpoint(), |b| b).await;
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, KvError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    assert_eq!(fake.take(), 1);
}

#[tokio::test]
async fn a_connection_dropped_mid_request_is_not_retried_for_ambiguous_writes() {
    let fake = FakeDynamoDb::start(Behaviour::Hangup);
    let store = backend(&fake.endpoint(), |b| b).await;
    assert_unavailable(store.exists("k").await, "exists");
    assert_eq!(fake.take(), 3, "reads reconnect and retry");
    assert_unavailable(store.increment("k", 1).await, "increment");
    assert_eq!(
        fake.take(),
        1,
        "the request was sent: it may have been applied"
    );
    assert_unavailable(store.set("k", b"v").await, "set");
    assert_eq!(fake.take(), 1, "set: the same");
    assert_unavailable(store.set_many(&[("a", b"1")], None).await, "set_many");
    assert_eq!(fake.take(), 1, "set_many: the same");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let fake = FakeDynamoDb::start(Behaviour::Silent);
    let store = backend(&fake.endpoint(), |b| {
        b.attempt_timeout(Duration::from_millis(300))
            .operation_timeout(Duration::from_millis(2000))
    })
    .await;
    let started = Instant::now();
    assert_unavailable(store.get("k").await, "get");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_unavailable(store.increment("k", 1).await, "increment");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_quickly_and_safe_to_retry() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = backend(&format!("http://127.0.0.1:{port}"), |b| b).await;
    let started = Instant::now();
    assert_unavailable(store.get("k").await, "get");
    assert_unavailable(store.increment("k", 1).await, "increment");
    assert_unavailable(store.list_keys("").await, "list_keys");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let message = store.get("k").await.unwrap_err().to_string();
    assert!(message.contains("GetItem"), "{message}");
}

#[tokio::test]
async fn opening_checks_the_table_within_the_timeouts() {
    // Refused: Unavailable, quickly, naming the request.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = builder(&format!("http://127.0.0.1:{port}"))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("GetItem"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Never answered: Unavailable once the operation timeout is up, not a hang.
    let fake = FakeDynamoDb::start(Behaviour::Silent);
    let started = Instant::now();
    let err = builder(&fake.endpoint())
        .attempt_timeout(Duration::from_millis(300))
        .operation_timeout(Duration::from_millis(1000))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Refused by IAM: a Backend error naming the operation whose action the role lacks.
    let fake = FakeDynamoDb::start(Behaviour::Fail(400, "AccessDeniedException"));
    let err = builder(&fake.endpoint()).build().await.unwrap_err();
    assert!(matches!(err, KvError::Backend(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("GetItem") && message.contains("AccessDenied"),
        "{message}"
    );
    assert_eq!(fake.take(), 1, "one request, not retried");

    // Another key schema (DynamoDB's ValidationException for the key): InvalidConfig.
    let fake = FakeDynamoDb::start(Behaviour::Fail(400, "ValidationException"));
    let err = builder(&fake.endpoint()).build().await.unwrap_err();
    assert!(
        matches!(&err, KvError::InvalidConfig(m) if m.contains("not keyed as kv-dynamodb needs")),
        "{err:?}"
    );
}
