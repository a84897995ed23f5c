//! TLS (the `tls` feature) against a private server that this test turns TLS on for, with a
//! certificate for `localhost` only, signed by a CA made here: the chain and the host name are
//! verified, `prefer` stays plain until the application chooses rustls's crypto provider, and
//! `require` without one says what to call.

#![cfg(feature = "tls")]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use kv_postgres::PostgresBackend;
use kv_test_services::certificates::TestCertificates;
use kv_trait::{KvBackend, KvError};

use common::raw_client;

/// Whether the session of `application` uses TLS, as the server sees it.
async fn uses_tls(admin: &tokio_postgres::Client, application: &str) -> bool {
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&application],
        )
        .await
        .expect("read pg_stat_ssl");
    assert!(!rows.is_empty(), "a session of {application}");
    rows.iter().all(|row| row.get::<_, bool>(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_chain_and_the_host_name() {
    let Some(server) = kv_test_services::postgres::private_server() else {
        return;
    };
    let admin = raw_client(&server.url).await;

    // The server's key and certificate go into its data directory, owned by its user.
    let data_dir: String = admin
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    let data_dir = Path::new(&data_dir);
    let owner = std::fs::metadata(data_dir).unwrap();
    let certificates = tempfile_dir();
    // For the DNS name `localhost` only.
    let made = TestCertificates::make(&certificates, &["DNS:localhost"]).unwrap();
    for (file, source) in [
        ("server.crt", made.server_cert()),
        ("server.key", made.server_key()),
    ] {
        let target = data_dir.join(file);
        std::fs::copy(source, &target).unwrap();
        std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // One statement each: ALTER SYSTEM may not run in the implicit transaction of a batch.
    for statement in [
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ssl: String = raw_client(&server.url)
        .await
        .query_one("SHOW ssl", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ssl, "on");

    let ca = made.ca();
    let by_name = server.url.replacen("@127.0.0.1:", "@localhost:", 1);
    assert_ne!(by_name, server.url);
    let url = |base: &str, application: &str, options: &str| {
        format!(
            "{base}?namespace=tls&application_name={application}&sslrootcert={}&{options}",
            ca.display()
        )
    };

    // No crypto provider yet: `prefer` connects in plain TCP, `require` says what to do.
    let plain = PostgresBackend::from_url(&url(&by_name, "tls-prefer-plain", "sslmode=prefer"))
        .await
        .unwrap();
    plain.set("k", b"v").await.unwrap();
    assert!(!uses_tls(&admin, "tls-prefer-plain").await);
    let refused = PostgresBackend::from_url(&url(&by_name, "tls-refused", "sslmode=require")).await;
    assert!(
        matches!(&refused, Err(KvError::InvalidConfig(m)) if m.contains("install_default")),
        "{refused:?}"
    );

    // The application chooses the provider, as at the start of its main.
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("no provider was installed before: kv-postgres installs none");

    let secured =
        PostgresBackend::from_url(&url(&by_name, "tls-verify-full", "sslmode=verify-full"))
            .await
            .unwrap();
    assert_eq!(secured.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert!(uses_tls(&admin, "tls-verify-full").await);

    let preferred = PostgresBackend::from_url(&url(&by_name, "tls-prefer", "sslmode=prefer"))
        .await
        .unwrap();
    preferred.exists("k").await.unwrap();
    assert!(
        uses_tls(&admin, "tls-prefer").await,
        "prefer takes TLS once it can"
    );

    // The certificate names `localhost`, not 127.0.0.1: the host name is checked.
    let wrong_name =
        PostgresBackend::from_url(&url(&server.url, "tls-wrong-name", "sslmode=require")).await;
    let message = format!("{:?}", wrong_name.as_ref().map(drop));
    assert!(
        wrong_name.is_err() && message.contains("certificate"),
        "{message}"
    );

    // Without sslrootcert the Mozilla roots are trusted, which do not include this CA.
    let unknown_ca = PostgresBackend::from_url(&format!(
        "{by_name}?namespace=tls&sslmode=require&connect_timeout_ms=2000"
    ))
    .await;
    let message = format!("{:?}", unknown_ca.as_ref().map(drop));
    assert!(
        unknown_ca.is_err() && message.contains("certificate"),
        "{message}"
    );

    secured.delete("k").await.unwrap();
    std::fs::remove_dir_all(&certificates).unwrap();
}

/// A fresh directory under the system's temp dir, for the certificates.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kv-postgres-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the certificates");
    dir
}
