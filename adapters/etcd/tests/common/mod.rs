//! What the kv-etcd tests share: the services, fresh namespaces, and a plain etcd-client to
//! look at the data the way `etcdctl` would.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};

use kv_etcd::{EtcdBackend, EtcdBackendBuilder};
use kv_test_services::etcd::{self, EtcdService};

/// The single-member cluster of this test process; `None` (after a loud skip, or a panic
/// under `KVKIT_REQUIRE_SERVICES`) when there is none.
pub fn single() -> Option<&'static EtcdService> {
    etcd::single()
}

/// The three-member cluster of this test process; `None` as for [`single`].
pub fn cluster() -> Option<&'static EtcdService> {
    etcd::cluster()
}

/// A namespace no other test of this run uses.
pub fn namespace(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{}-{n}", std::process::id())
}

/// A builder on `service` in a fresh namespace.
pub fn builder(service: &EtcdService, label: &str) -> EtcdBackendBuilder {
    EtcdBackend::builder(&service.url)
        .expect("the service's URL parses")
        .namespace(namespace(label))
}

/// A backend on the single member in a fresh namespace.
pub async fn fresh(label: &str) -> Option<EtcdBackend> {
    Some(
        builder(single()?, label)
            .build()
            .await
            .expect("open the backend"),
    )
}

/// A second backend (its own connections) on `store`'s cluster and namespace.
pub async fn twin(service: &EtcdService, store: &EtcdBackend) -> EtcdBackend {
    EtcdBackend::builder(&service.url)
        .expect("the service's URL parses")
        .namespace(store.namespace())
        .build()
        .await
        .expect("open the twin")
}

/// A plain etcd client of `service`, for looking at and changing the data directly.
pub async fn raw_client(service: &EtcdService) -> etcd_client::Client {
    let endpoints: Vec<String> = service
        .members
        .iter()
        .map(|member| format!("http://{member}"))
        .collect();
    etcd_client::Client::connect(endpoints, None)
        .await
        .expect("a plain etcd client")
}

/// A TCP proxy on a free `127.0.0.1` port to one etcd member that counts the gRPC requests
/// going through it: the HTTP/2 `HEADERS` frames the client sends, one per request. kv-etcd
/// awaits each request's reply before it sends the next, so for one operation this is its
/// round trips. (A proxy that counts turns of the conversation, as `CountingProxy` does,
/// also counts HTTP/2's `WINDOW_UPDATE` and `PING` frames, which need no reply.)
pub struct GrpcRequestCounter {
    port: u16,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl GrpcRequestCounter {
    /// Starts the proxy to `upstream` (`host:port`); its threads live until the test ends.
    pub fn start(upstream: &str) -> Self {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&requests);
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut from_server, mut to_client) = (
                    server.try_clone().expect("clone a socket"),
                    client.try_clone().expect("clone a socket"),
                );
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
                let counted = Arc::clone(&counted);
                std::thread::spawn(move || {
                    let _ = forward_frames(client, server, &counted);
                });
            }
        });
        Self { port, requests }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// gRPC requests so far, over all connections.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Copies the client's HTTP/2 stream to the server frame by frame, counting `HEADERS`
/// frames (type 1) that open a stream (the client's trailers never do in gRPC).
fn forward_frames(
    mut client: std::net::TcpStream,
    mut server: std::net::TcpStream,
    requests: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    const PREFACE: usize = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    let mut preface = [0; PREFACE];
    client.read_exact(&mut preface)?;
    server.write_all(&preface)?;
    loop {
        let mut header = [0; 9];
        client.read_exact(&mut header)?;
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0; length];
        client.read_exact(&mut payload)?;
        if header[3] == 1 {
            requests.fetch_add(1, Ordering::SeqCst);
        }
        server.write_all(&header)?;
        server.write_all(&payload)?;
    }
}
