//! PostgreSQL servers for tests, for real: a private server stops, closes its port, and starts
//! again on the same port with its data, which is what a test of a client riding out a
//! server restart relies on; the shared server answers queries.

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::Duration;

use kv_test_services::postgres::{self, PostgresService};

/// Whether something accepts TCP connections on loopback `port` now.
fn listening(port: u16) -> bool {
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// What `psql -Atc SQL` prints, trimmed; `None` when `psql` is not installed.
fn query(server: &PostgresService, sql: &str) -> Option<String> {
    let mut psql = server.psql()?;
    let output = psql.args(["-Atc", sql]).output().expect("run psql");
    assert!(
        output.status.success(),
        "psql -c {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn a_private_server_stops_and_starts_again_on_its_port() {
    let Some(mut server) = postgres::private_server() else {
        return;
    };
    let port = server.port;
    assert!(
        server.url.starts_with("postgres://kvkit:")
            && server.url.ends_with(&format!("@127.0.0.1:{port}/postgres")),
        "{server:?}"
    );
    assert!(server.is_running());
    assert!(listening(port));
    let psql = query(
        &server,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')",
    );

    server.stop().expect("stop the server");
    assert!(!server.is_running());
    assert!(
        !listening(port),
        "127.0.0.1:{port} still accepts after stop"
    );
    server
        .stop()
        .expect("stopping a stopped server does nothing");

    server.start().expect("start the server again");
    assert!(server.is_running());
    assert!(
        listening(port),
        "127.0.0.1:{port} does not accept after start"
    );
    if psql.is_some() {
        assert_eq!(
            query(&server, "SELECT v FROM kept").as_deref(),
            Some("before")
        );
    }
    server
        .start()
        .expect("starting a running server does nothing");
}

#[test]
fn the_shared_server_answers() {
    let Some(server) = postgres::server() else {
        return;
    };
    match query(server, "SELECT 6 * 7") {
        Some(answer) => assert_eq!(answer, "42"),
        None => {
            let address = format!("{}:{}", server.host, server.port);
            TcpStream::connect(&address)
                .unwrap_or_else(|err| panic!("connect to {address}: {err}"));
        }
    }
}
