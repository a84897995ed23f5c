//! The round-trip-counting TCP proxy of the tests: the conformance kit's
//! [`FaultProxy`](kv_conformance::faults::FaultProxy), which counts round trips as well as it
//! injects faults (one proxy, so one pump to keep right).
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

/// The kit's fault proxy, used here for its round-trip count.
pub use kv_conformance::faults::FaultProxy as CountingProxy;
