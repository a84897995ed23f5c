//! A TCP proxy that counts round trips, for tests that pin down how many a client makes per
//! operation.
//!
//! One round trip is the client sending and then waiting for the server: a client write that
//! starts while no reply is awaited is a new round trip, and the server's next bytes end the
//! wait. Commands a client pipelines before the first reply arrives are one round trip, as
//! they cost one network delay. The count is over all the proxy's connections together.
//!
//! ```no_run
//! use kv_test_services::proxy::CountingProxy;
//!
//! let proxy = CountingProxy::start("127.0.0.1:6379")?;
//! // Point the client at 127.0.0.1:{proxy.port()} instead of the server; then:
//! let before = proxy.round_trips();
//! // ... one operation ...
//! println!("{} round trips", proxy.round_trips() - before);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! It is plain threads and blocking sockets (one thread accepting, two per connection), so it
//! serves clients of any async runtime, or of none. Dropping it closes its listener and its
//! connections and ends its threads.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A TCP proxy on a free `127.0.0.1` port to one upstream server, counting round trips (see
/// the module docs).
#[derive(Debug)]
pub struct CountingProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the proxy's threads share.
#[derive(Debug, Default)]
struct Shared {
    round_trips: AtomicU64,
    /// Set when the proxy is dropped: the acceptor stops at its next connection.
    stopping: AtomicBool,
    /// The connections that may still be open, to close when the proxy is dropped.
    connections: Mutex<Vec<Connection>>,
}

/// One client connection and its connection to the upstream server.
#[derive(Debug)]
struct Connection {
    /// The client's socket and the upstream one.
    sockets: [TcpStream; 2],
    /// The threads copying requests upstream and replies back.
    pumps: [JoinHandle<()>; 2],
}

impl CountingProxy {
    /// Starts a proxy to `upstream` (`"127.0.0.1:6379"`, a `SocketAddr`, ...), resolved now.
    /// Each client connection gets its own connection upstream; a client whose upstream
    /// connection fails sees its connection closed, as after a network error.
    pub fn start(upstream: impl ToSocketAddrs) -> io::Result<Self> {
        let upstream: Vec<SocketAddr> = upstream.to_socket_addrs()?.collect();
        if upstream.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the upstream address resolves to no address",
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("counting-proxy".into())
                .spawn(move || accept(&listener, &upstream, &shared))?
        };
        Ok(Self {
            address,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Round trips so far, over all connections: read it before and after an operation.
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The acceptor is blocked in `accept`: a connection of our own wakes it to see the
        // flag. If even that fails, it is left behind rather than waited for forever.
        let woken = TcpStream::connect_timeout(&self.address, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take() {
            if woken {
                let _ = acceptor.join();
            }
        }
        // Shutting a socket down wakes the threads blocked reading or writing it.
        for connection in std::mem::take(&mut *lock(&self.shared.connections)) {
            for socket in &connection.sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
            for pump in connection.pumps {
                let _ = pump.join();
            }
        }
    }
}

/// Accepts clients until the proxy is dropped, connecting each to `upstream`.
fn accept(listener: &TcpListener, upstream: &[SocketAddr], shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else {
            continue;
        };
        let Ok(server) = TcpStream::connect(upstream) else {
            continue; // the client sees its connection closed
        };
        if let Ok(connection) = Connection::open(client, server, shared) {
            let mut connections = lock(&shared.connections);
            connections.retain(|connection| !connection.pumps.iter().all(JoinHandle::is_finished));
            connections.push(connection);
        }
    }
}

impl Connection {
    /// Starts copying between `client` and `server` both ways, counting round trips.
    fn open(client: TcpStream, server: TcpStream, shared: &Arc<Shared>) -> io::Result<Self> {
        match start_pumps(&client, &server, shared) {
            Ok(pumps) => Ok(Self {
                sockets: [client, server],
                pumps,
            }),
            Err(err) => {
                // A pump that did start ends with its sockets.
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                Err(err)
            }
        }
    }
}

/// The two pumps of a connection: requests, which count a round trip when none is awaited,
/// and replies, which end the wait.
fn start_pumps(
    client: &TcpStream,
    server: &TcpStream,
    shared: &Arc<Shared>,
) -> io::Result<[JoinHandle<()>; 2]> {
    let awaiting = Arc::new(AtomicBool::new(false));
    let (shared, waiting) = (Arc::clone(shared), Arc::clone(&awaiting));
    let requests = pump(client.try_clone()?, server.try_clone()?, move || {
        if !waiting.swap(true, Ordering::SeqCst) {
            shared.round_trips.fetch_add(1, Ordering::SeqCst);
        }
    })?;
    let replies = pump(server.try_clone()?, client.try_clone()?, move || {
        awaiting.store(false, Ordering::SeqCst);
    })?;
    Ok([requests, replies])
}

/// Copies bytes from `from` to `to` on a thread of its own, calling `on_chunk` before
/// forwarding each chunk; at the end of `from` (or an error) it shuts `to`'s writing down,
/// passing the half-close on.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    mut on_chunk: impl FnMut() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("counting-proxy-pump".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                on_chunk();
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers `ok` once it has read each `request_len` bytes, on every
    /// connection.
    fn answering_server(request_len: usize) -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                std::thread::spawn(move || {
                    let mut request = vec![0u8; request_len];
                    while stream.read_exact(&mut request).is_ok() {
                        stream.write_all(b"ok").unwrap();
                    }
                });
            }
        });
        address
    }

    fn ask(client: &mut TcpStream, parts: &[&[u8]]) {
        for part in parts {
            client.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut reply = [0u8; 2];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"ok");
    }

    #[test]
    fn a_request_and_its_reply_are_one_round_trip() {
        let proxy = CountingProxy::start(answering_server(4)).unwrap();
        let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        assert_eq!(proxy.round_trips(), 0);
        ask(&mut client, &[b"ping"]);
        assert_eq!(proxy.round_trips(), 1);
        // Written in pieces before any reply: still one.
        ask(&mut client, &[b"pi", b"n", b"g"]);
        assert_eq!(proxy.round_trips(), 2);
    }

    #[test]
    fn round_trips_add_up_over_connections() {
        let proxy = CountingProxy::start(answering_server(1).to_string()).unwrap();
        let mut first = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        let mut second = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        ask(&mut first, &[b"a"]);
        ask(&mut second, &[b"b"]);
        ask(&mut first, &[b"c"]);
        assert_eq!(proxy.round_trips(), 3);
    }

    #[test]
    fn dropping_the_proxy_closes_its_port_and_connections() {
        let proxy = CountingProxy::start(answering_server(1)).unwrap();
        let port = proxy.port();
        let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        ask(&mut client, &[b"a"]);
        drop(proxy);
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }

    #[test]
    fn an_upstream_that_resolves_to_nothing_is_refused() {
        let none: &[SocketAddr] = &[];
        let err = CountingProxy::start(none).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
