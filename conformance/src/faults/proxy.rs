//! [`FaultProxy`]: a loopback TCP proxy that injects network faults and counts round trips.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the acceptor looks for a new client, a fault or the end of the proxy; also the
/// most a new connection waits to be accepted.
const ACCEPT_POLL: Duration = Duration::from_millis(2);

/// How long a stalled pump sleeps between looks at its connection (reset, proxy dropped) when
/// nobody wakes it.
const STALL_POLL: Duration = Duration::from_millis(50);

/// How long [`FaultProxy::heal`] waits to listen again on its port, and
/// [`FaultProxy::refuse_new`] to stop listening.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// How long the proxy waits for the upstream server to accept a connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP proxy on a free `127.0.0.1` port to one upstream server, which injects network
/// faults on command and counts round trips.
///
/// Point the client under test at [`FaultProxy::address`] instead of the server; each client
/// connection gets its own connection upstream. Then, at any time:
///
/// | control | what the client sees |
/// | --- | --- |
/// | [`reset_all`](Self::reset_all) | every open connection is reset (an RST, as from a crashed peer or a stateful firewall); new connections work |
/// | [`black_hole`](Self::black_hole) | connections (open and new) stay open, new ones are accepted, but no byte is forwarded either way: a partition, or a server that hangs |
/// | [`refuse_new`](Self::refuse_new) | new connections are refused (`ECONNREFUSED`, the port is closed); open ones keep working |
/// | [`latency`](Self::latency) | every reply is held that long before it is forwarded (so a round trip takes that much longer) |
/// | [`cut_mid_reply`](Self::cut_mid_reply) | the next reply, on whichever connection, is forwarded only in part, then that connection is closed |
/// | [`heal`](Self::heal) | all of the above end |
///
/// Decisions, where a proxy could do otherwise:
///
/// - A black hole holds bytes, it does not drop them: TCP never loses bytes in the middle of
///   a stream, it retransmits them when the path heals. So a request sent into a black hole
///   reaches the server after [`heal`](Self::heal), if its connection is still open then: as
///   a delayed packet does, it can apply a write whose caller already got a timeout. (That is
///   exactly what `Unavailable` must allow for.)
/// - Refusing closes the listening socket; [`heal`](Self::heal) opens it again on the same
///   port (`SO_REUSEADDR`, which the standard library sets).
/// - A cut reply is followed by an orderly close (FIN), so that the client surely receives
///   the part: it is a test of the client's framing. [`reset_all`](Self::reset_all) sends
///   an RST (`SO_LINGER` 0), with no FIN first.
///
/// Round trips: one is the client sending and then waiting for the server. A client write
/// that starts while no reply is awaited is a new round trip, and the server's next bytes end
/// the wait; commands a client pipelines before the first reply arrives are one round trip, as
/// they cost one network delay. The count is over all the proxy's connections together.
///
/// ```no_run
/// use std::time::Duration;
/// use kv_conformance::faults::FaultProxy;
///
/// let proxy = FaultProxy::start("127.0.0.1:6379")?;
/// // Point the client at proxy.address() instead of the server; then:
/// let before = proxy.round_trips();
/// // ... one operation ...
/// println!("{} round trips", proxy.round_trips() - before);
/// proxy.black_hole();
/// // ... calls now time out ...
/// proxy.heal()?;
/// proxy.latency(Duration::from_millis(50));
/// proxy.reset_all();
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// It is plain threads and blocking sockets (one thread accepting, two per connection), so it
/// serves clients of any async runtime, or of none. Dropping it closes its listener and its
/// connections and ends its threads.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// The faults in force.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    black_hole: bool,
    refusing: bool,
    latency: Duration,
    cut_armed: bool,
}

/// What the proxy's threads share.
#[derive(Debug)]
struct Shared {
    upstream: Vec<SocketAddr>,
    round_trips: AtomicU64,
    accepted: AtomicU64,
    /// Set when the proxy is dropped.
    stopping: AtomicBool,
    /// Whether the acceptor holds a listening socket (false while refusing).
    listening: AtomicBool,
    faults: Mutex<Faults>,
    /// Notified when faults end, a connection is reset or the proxy stops: stalled pumps
    /// look again.
    changed: Condvar,
    /// The connections that may still be open, to reset or to close when the proxy is dropped.
    connections: Mutex<Vec<Connection>>,
}

/// One client connection and its connection to the upstream server.
#[derive(Debug)]
struct Connection {
    /// The client's socket and the upstream one.
    sockets: [TcpStream; 2],
    /// Set when the proxy ends the connection itself (a reset, a cut): the pumps then stop
    /// without passing a half-close on.
    aborted: Arc<AtomicBool>,
    /// The threads copying requests upstream and replies back.
    pumps: [JoinHandle<()>; 2],
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`"127.0.0.1:6379"`, a `SocketAddr`, ...), resolved now,
    /// with no fault in force. A client whose upstream connection fails sees its connection
    /// closed, as after a network error.
    pub fn start(upstream: impl ToSocketAddrs) -> io::Result<Self> {
        let upstream: Vec<SocketAddr> = upstream.to_socket_addrs()?.collect();
        if upstream.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the upstream address resolves to no address",
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            round_trips: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            listening: AtomicBool::new(true),
            faults: Mutex::default(),
            changed: Condvar::new(),
            connections: Mutex::default(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || accept(listener, address, &shared))?
        };
        Ok(Self {
            address,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The loopback address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Round trips so far, over all connections: read it before and after an operation.
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::SeqCst)
    }

    /// Client connections accepted so far (a client that reconnects adds one each time).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Resets every open connection, both ways: the client gets an RST (`SO_LINGER` 0, no
    /// FIN first), and so does the server. New connections are not affected.
    pub fn reset_all(&self) {
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for connection in &connections {
            connection.aborted.store(true, Ordering::SeqCst);
            for socket in &connection.sockets {
                // A zero linger makes the last close send an RST instead of a FIN; shutting
                // down the reading side wakes a pump blocked reading without sending anything
                // (Linux), so the pumps drop their handles and that last close comes.
                let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
                let _ = socket.shutdown(Shutdown::Read);
            }
        }
        self.shared.changed.notify_all();
        // The pumps close the sockets as they stop; they are not waited for, since one
        // blocked writing to a client that reads nothing would hold the caller up.
        drop(connections);
    }

    /// Stops forwarding, both ways, on every connection (open and new) until
    /// [`heal`](Self::heal), while accepting new connections and keeping every connection
    /// open. Bytes are held, not dropped (see the type's docs).
    pub fn black_hole(&self) {
        lock(&self.shared.faults).black_hole = true;
    }

    /// Refuses new connections until [`heal`](Self::heal): the listening socket is closed, so
    /// a connect fails with `ECONNREFUSED`. Open connections keep working. Returns once the
    /// port is closed (within milliseconds).
    pub fn refuse_new(&self) {
        lock(&self.shared.faults).refusing = true;
        wait_until(LISTEN_WAIT, || {
            !self.shared.listening.load(Ordering::SeqCst)
        });
    }

    /// Holds every reply `delay` before forwarding it, until [`heal`](Self::heal) (or
    /// another `latency`): each round trip takes `delay` longer.
    pub fn latency(&self, delay: Duration) {
        lock(&self.shared.faults).latency = delay;
    }

    /// The next reply from the server, on whichever connection, is forwarded only in part
    /// (the first half of the bytes the proxy read at once, which may be none of a one-byte
    /// reply), and then its connection is closed both ways. One reply per call; `heal`
    /// disarms a cut that has not happened yet.
    pub fn cut_mid_reply(&self) {
        lock(&self.shared.faults).cut_armed = true;
    }

    /// Ends every fault: held bytes flow again, the port listens again, latency is zero, an
    /// armed cut is disarmed. Connections reset or cut stay closed. Fails only when the port
    /// cannot be listened on again within 5 s (another program took it while refusing).
    pub fn heal(&self) -> io::Result<()> {
        let was_refusing = {
            let mut faults = lock(&self.shared.faults);
            let was_refusing = faults.refusing;
            *faults = Faults::default();
            was_refusing
        };
        self.shared.changed.notify_all();
        if was_refusing && !wait_until(LISTEN_WAIT, || self.shared.listening.load(Ordering::SeqCst))
        {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("the proxy could not listen on {} again", self.address),
            ));
        }
        Ok(())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join(); // it polls, so it sees the flag within milliseconds
        }
        // Shutting a socket down wakes the threads blocked reading or writing it.
        for connection in std::mem::take(&mut *lock(&self.shared.connections)) {
            connection.aborted.store(true, Ordering::SeqCst);
            for socket in &connection.sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
            self.shared.changed.notify_all();
            for pump in connection.pumps {
                let _ = pump.join();
            }
        }
    }
}

/// Polls `done` every millisecond until it holds or `limit` passes; returns whether it held.
fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = kv_trait::monotonic_now();
    while !done() {
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Accepts clients until the proxy is dropped, connecting each to the upstream server; closes
/// the listener while refusing and opens it again on `address` after.
fn accept(listener: TcpListener, address: SocketAddr, shared: &Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stopping.load(Ordering::SeqCst) {
        if lock(&shared.faults).refusing {
            if listener.take().is_some() {
                shared.listening.store(false, Ordering::SeqCst);
            }
            std::thread::sleep(ACCEPT_POLL);
            continue;
        }
        let Some(open) = &listener else {
            match TcpListener::bind(address).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(reopened) => {
                    listener = Some(reopened);
                    shared.listening.store(true, Ordering::SeqCst);
                }
                Err(_) => std::thread::sleep(ACCEPT_POLL),
            }
            continue;
        };
        match open.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                connect(client, shared);
            }
            // WouldBlock: nobody waiting; any other error concerns that one client.
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Connects `client` to the upstream server and starts its pumps.
fn connect(client: TcpStream, shared: &Arc<Shared>) {
    let server = shared
        .upstream
        .iter()
        .find_map(|address| TcpStream::connect_timeout(address, UPSTREAM_CONNECT_TIMEOUT).ok());
    let Some(server) = server else {
        return; // the client sees its connection closed
    };
    // Accepted sockets are blocking on Linux already; said explicitly, as the listener is not.
    // No Nagle delay: the proxy forwards what it reads at once, as the client meant it.
    for socket in [&client, &server] {
        let _ = socket.set_nonblocking(false);
        let _ = socket.set_nodelay(true);
    }
    if let Ok(connection) = Connection::open(client, server, shared) {
        let mut connections = lock(&shared.connections);
        connections.retain(|connection| !connection.pumps.iter().all(JoinHandle::is_finished));
        connections.push(connection);
    }
}

impl Connection {
    /// Starts copying between `client` and `server` both ways.
    fn open(client: TcpStream, server: TcpStream, shared: &Arc<Shared>) -> io::Result<Self> {
        let aborted = Arc::new(AtomicBool::new(false));
        match start_pumps(&client, &server, shared, &aborted) {
            Ok(pumps) => Ok(Self {
                sockets: [client, server],
                aborted,
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

/// Which way a pump copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Requests,
    Replies,
}

/// The two pumps of a connection: requests, which count a round trip when none is awaited,
/// and replies, which end the wait.
fn start_pumps(
    client: &TcpStream,
    server: &TcpStream,
    shared: &Arc<Shared>,
    aborted: &Arc<AtomicBool>,
) -> io::Result<[JoinHandle<()>; 2]> {
    let awaiting = Arc::new(AtomicBool::new(false));
    let pump_of = |direction, from: &TcpStream, to: &TcpStream| -> io::Result<JoinHandle<()>> {
        let pump = Pump {
            direction,
            from: from.try_clone()?,
            to: to.try_clone()?,
            // Cut replies close both sockets: the pump needs the client's to close it.
            client: client.try_clone()?,
            shared: Arc::clone(shared),
            aborted: Arc::clone(aborted),
            awaiting: Arc::clone(&awaiting),
        };
        std::thread::Builder::new()
            .name("fault-proxy-pump".into())
            .spawn(move || pump.run())
    };
    let requests = pump_of(Direction::Requests, client, server)?;
    let replies = pump_of(Direction::Replies, server, client)?;
    Ok([requests, replies])
}

/// Copies bytes one way on a thread of its own, applying the faults in force to each chunk.
struct Pump {
    direction: Direction,
    from: TcpStream,
    to: TcpStream,
    client: TcpStream,
    shared: Arc<Shared>,
    aborted: Arc<AtomicBool>,
    /// Whether the client waits for a reply (a round trip is open).
    awaiting: Arc<AtomicBool>,
}

impl Pump {
    /// Copies until the end of `from` (or an error), then shuts `to`'s writing down, passing
    /// the half-close on, unless the proxy ended the connection itself.
    fn run(mut self) {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match self.from.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            match self.direction {
                Direction::Requests => {
                    if !self.awaiting.swap(true, Ordering::SeqCst) {
                        self.shared.round_trips.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Direction::Replies => self.awaiting.store(false, Ordering::SeqCst),
            }
            let Some(faults) = self.wait_out_black_hole() else {
                break;
            };
            if self.direction == Direction::Replies {
                if !faults.latency.is_zero() {
                    std::thread::sleep(faults.latency);
                }
                if self.take_cut() {
                    let _ = self.to.write_all(&buffer[..n / 2]);
                    self.aborted.store(true, Ordering::SeqCst);
                    let _ = self.client.shutdown(Shutdown::Both);
                    let _ = self.from.shutdown(Shutdown::Both);
                    break;
                }
            }
            if self.aborted.load(Ordering::SeqCst) || self.to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        if !self.aborted.load(Ordering::SeqCst) {
            let _ = self.to.shutdown(Shutdown::Write);
        }
    }

    /// Waits while a black hole is in force; the faults then in force, or `None` when the
    /// connection was ended meanwhile (reset, proxy dropped).
    fn wait_out_black_hole(&self) -> Option<Faults> {
        let mut faults = lock(&self.shared.faults);
        loop {
            if self.aborted.load(Ordering::SeqCst) || self.shared.stopping.load(Ordering::SeqCst) {
                return None;
            }
            if !faults.black_hole {
                return Some(*faults);
            }
            faults = self
                .shared
                .changed
                .wait_timeout(faults, STALL_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Disarms the armed cut, if any, for this reply.
    fn take_cut(&self) -> bool {
        std::mem::take(&mut lock(&self.shared.faults).cut_armed)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
                        if stream.write_all(b"ok").is_err() {
                            break;
                        }
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

    fn client(proxy: &FaultProxy) -> TcpStream {
        let client = TcpStream::connect(proxy.address()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
    }

    #[test]
    fn a_request_and_its_reply_are_one_round_trip() {
        let proxy = FaultProxy::start(answering_server(4)).unwrap();
        let mut client = client(&proxy);
        assert_eq!(proxy.round_trips(), 0);
        ask(&mut client, &[b"ping"]);
        assert_eq!(proxy.round_trips(), 1);
        // Written in pieces before any reply: still one.
        ask(&mut client, &[b"pi", b"n", b"g"]);
        assert_eq!(proxy.round_trips(), 2);
    }

    #[test]
    fn round_trips_add_up_over_connections() {
        let proxy = FaultProxy::start(answering_server(1).to_string()).unwrap();
        let mut first = client(&proxy);
        let mut second = client(&proxy);
        ask(&mut first, &[b"a"]);
        ask(&mut second, &[b"b"]);
        ask(&mut first, &[b"c"]);
        assert_eq!(proxy.round_trips(), 3);
        assert_eq!(proxy.connections_accepted(), 2);
    }

    #[test]
    fn dropping_the_proxy_closes_its_port_and_connections() {
        let proxy = FaultProxy::start(answering_server(1)).unwrap();
        let address = proxy.address();
        let mut client = client(&proxy);
        ask(&mut client, &[b"a"]);
        drop(proxy);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
        assert!(TcpStream::connect(address).is_err());
    }

    #[test]
    fn an_upstream_that_resolves_to_nothing_is_refused() {
        let none: &[SocketAddr] = &[];
        let err = FaultProxy::start(none).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn reset_all_sends_an_rst_and_new_connections_work() {
        let proxy = FaultProxy::start(answering_server(1)).unwrap();
        let mut old = client(&proxy);
        ask(&mut old, &[b"a"]);
        proxy.reset_all();
        let mut byte = [0u8; 1];
        let err = old.read(&mut byte).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        ask(&mut client(&proxy), &[b"b"]);
    }

    #[test]
    fn a_black_hole_holds_bytes_until_healed() {
        let proxy = FaultProxy::start(answering_server(1)).unwrap();
        let mut old = client(&proxy);
        ask(&mut old, &[b"a"]);
        proxy.black_hole();
        old.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        old.write_all(b"b").unwrap();
        let mut reply = [0u8; 2];
        let err = old.read(&mut reply).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        // A new connection is accepted, and stalls too.
        let mut new = client(&proxy);
        new.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        new.write_all(b"c").unwrap();
        assert!(new.read(&mut reply).is_err());
        proxy.heal().unwrap();
        old.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        old.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"ok");
        new.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        new.read_exact(&mut reply).unwrap();
    }

    #[test]
    fn refusing_closes_the_port_and_keeps_open_connections() {
        let proxy = FaultProxy::start(answering_server(1)).unwrap();
        let mut old = client(&proxy);
        ask(&mut old, &[b"a"]); // accepted, not waiting in the backlog
        proxy.refuse_new();
        let err = TcpStream::connect(proxy.address()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        ask(&mut old, &[b"a"]);
        proxy.heal().unwrap();
        ask(&mut client(&proxy), &[b"b"]);
    }

    #[test]
    fn latency_delays_each_reply() {
        let proxy = FaultProxy::start(answering_server(1)).unwrap();
        let mut client = client(&proxy);
        proxy.latency(Duration::from_millis(150));
        let start = Instant::now();
        ask(&mut client, &[b"a"]);
        assert!(start.elapsed() >= Duration::from_millis(150));
        proxy.heal().unwrap();
        let start = Instant::now();
        ask(&mut client, &[b"a"]);
        assert!(start.elapsed() < Duration::from_millis(150));
    }

    #[test]
    fn a_cut_reply_arrives_in_part_then_the_connection_closes() {
        let proxy = FaultProxy::start(answering_server(1)).unwrap();
        let mut cut = client(&proxy);
        proxy.cut_mid_reply();
        cut.write_all(b"a").unwrap();
        let mut received = Vec::new();
        cut.read_to_end(&mut received).unwrap();
        assert_eq!(received, b"o", "half of the two-byte reply, then the end");
        // One cut per call: the next connection is whole.
        ask(&mut client(&proxy), &[b"b"]);
    }
}
