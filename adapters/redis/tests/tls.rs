//! `rediss://` against a private TLS-only `redis-server` whose certificate a test CA signed
//! (made with the `openssl` command). Built only with the `tls` feature:
//! `cargo test -p kv-redis --features tls --test tls`.
#![cfg(feature = "tls")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kv_redis::RedisBackend;
use kv_test_services::LocalProcess;
use kv_trait::KvBackend;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(status.status.success(), "openssl {args:?}: {status:?}");
}

/// A CA, and a certificate it signed for `localhost` and `127.0.0.1`.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kvkit test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write the certificate extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_connect_with_a_private_ca() {
    let (Some(server), Some(_)) = (
        kv_test_services::find_binary("redis-server"),
        kv_test_services::find_binary("openssl"),
    ) else {
        let _: Option<()> = kv_test_services::unavailable(
            "TLS Redis server",
            "redis-server or openssl is missing",
            "install redis-server and openssl",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = kv_test_services::free_port(u16::MAX, |_| None).unwrap();
    let mut command = Command::new(server);
    command
        .current_dir(dir.path())
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "tls-pw",
        ]);
    let _process = LocalProcess::spawn(command, &dir.path().join("redis.log")).unwrap();
    kv_test_services::wait_for_port(port, Duration::from_secs(10)).unwrap();

    let ca = dir.path().join("ca.pem");
    let url = format!(
        "rediss://:tls-pw@localhost:{port}?tls_ca_file={}",
        ca.display()
    );
    // The backend never picks rustls's process-wide crypto provider: without one it says
    // what to do...
    let err = RedisBackend::from_url(&url).await.unwrap_err();
    assert!(
        matches!(err, kv_trait::KvError::InvalidConfig(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("install_default()"), "{err}");
    // ...and the application, choosing one now, is not refused: nothing was installed for it.
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("no provider was installed before the application's");
    for host in ["127.0.0.1", "localhost"] {
        let url = format!(
            "rediss://:tls-pw@{host}:{port}?namespace=tls&tls_ca_file={}",
            ca.display()
        );
        let store = RedisBackend::from_url(&url).await.unwrap();
        store.set("k", b"over TLS").await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), Some(b"over TLS".to_vec()));
        assert!(store.increment("n", 1).await.unwrap() >= 1);
        assert!(store
            .compare_and_swap("k", Some(b"over TLS"), b"swapped")
            .await
            .unwrap());
        assert!(store
            .compare_and_swap("k", Some(b"swapped"), b"over TLS")
            .await
            .unwrap());
        assert_eq!(store.list_keys("").await.unwrap(), ["k", "n"]);
        assert!(!format!("{store:?}").contains("tls-pw"));
    }
    let pem = std::fs::read(&ca).unwrap();
    let store = RedisBackend::builder(&format!("rediss://:tls-pw@localhost:{port}"))
        .unwrap()
        .tls_root_certificates(pem)
        .namespace("tls")
        .build()
        .await
        .unwrap();
    assert!(store.exists("k").await.unwrap());

    // Without the CA, the server's certificate is not trusted; plain TCP gets nowhere either.
    let untrusted = RedisBackend::from_url(&format!(
        "rediss://:tls-pw@localhost:{port}?connect_timeout_ms=2000"
    ))
    .await;
    assert!(untrusted.is_err(), "{untrusted:?}");
    let plain = RedisBackend::from_url(&format!(
        "redis://:tls-pw@localhost:{port}?connect_timeout_ms=500"
    ))
    .await;
    assert!(plain.is_err(), "{plain:?}");
}
