//! TLS (the `tls` feature) against a private member that speaks only TLS, with a certificate
//! for 127.0.0.1 and localhost signed by a CA made for it, and that requires a client
//! certificate from the same CA: the chain, the server's name and the client's certificate
//! are all checked, and each mistake fails when the backend opens, within its timeouts, with
//! an error that says what is wrong. (The whole conformance suite runs on this member too:
//! `tests/conformance.rs`.)

#![cfg(feature = "tls")]

mod common;

use std::time::Duration;

use kv_etcd::{EtcdBackend, EtcdBackendBuilder};
use kv_test_services::etcd::{self, EtcdService};
use kv_trait::{monotonic_now, KvBackend, KvError};

/// The TLS member, and its address as a URL without any TLS option.
fn member() -> Option<(&'static EtcdService, String)> {
    let service = etcd::tls_single()?;
    Some((service, format!("etcd://{}", service.members[0])))
}

/// Opens `builder` with short timeouts and reports how long it took.
async fn open(builder: EtcdBackendBuilder) -> (Result<EtcdBackend, KvError>, Duration) {
    let started = monotonic_now();
    let opened = builder
        .connect_timeout(Duration::from_millis(1500))
        .request_timeout(Duration::from_millis(1500))
        .namespace(common::namespace("tls"))
        .build()
        .await;
    (opened, started.elapsed())
}

/// The error of a failed opening; it must have come within both timeouts and a margin.
fn failure(outcome: (Result<EtcdBackend, KvError>, Duration)) -> KvError {
    let (opened, took) = outcome;
    assert!(took < Duration::from_secs(5), "opening took {took:?}");
    match opened {
        Ok(backend) => panic!("opened {backend:?}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn the_members_url_works_and_its_data_is_readable_over_tls() {
    let Some((service, _)) = member() else { return };
    let store = common::builder(service, "tls").build().await.unwrap();
    store.set("k", b"over tls").await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"over tls".to_vec()));
    assert_eq!(store.increment("n", 2).await.unwrap(), 2);
    let debug = format!("{store:?}");
    let key = std::fs::read_to_string(service.certificates.as_ref().unwrap().client_key()).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!debug.contains(key_line), "{debug}");
}

#[tokio::test]
async fn plain_text_to_a_tls_member_fails_within_the_timeouts() {
    let Some((_, url)) = member() else { return };
    let err = failure(open(EtcdBackend::builder(&url).unwrap()).await);
    assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn an_unknown_authority_is_refused_naming_the_certificate() {
    let Some((service, url)) = member() else {
        return;
    };
    let certificates = service.certificates.as_ref().unwrap();
    // The Mozilla roots do not include the test CA.
    let builder = EtcdBackend::builder(&url)
        .unwrap()
        .tls(true)
        .tls_client_identity(certificates.client_cert(), certificates.client_key());
    let err = failure(open(builder).await);
    let message = err.to_string();
    assert!(message.contains("certificate"), "{err:?}");
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err:?}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let Some((service, url)) = member() else {
        return;
    };
    let certificates = service.certificates.as_ref().unwrap();
    let builder = EtcdBackend::builder(&url)
        .unwrap()
        .tls_ca_file(certificates.ca())
        .tls_client_identity(certificates.client_cert(), certificates.client_key())
        .tls_server_name("etcd.example.com");
    let err = failure(open(builder).await);
    assert!(err.to_string().contains("certificate"), "{err:?}");
    assert!(matches!(err, KvError::InvalidConfig(_)), "{err:?}");

    // The name it does carry is accepted.
    let builder = EtcdBackend::builder(&url)
        .unwrap()
        .tls_ca_file(certificates.ca())
        .tls_client_identity(certificates.client_cert(), certificates.client_key())
        .tls_server_name("localhost");
    let (opened, _) = open(builder).await;
    opened.unwrap().set("named", b"1").await.unwrap();
}

#[tokio::test]
async fn without_a_client_certificate_the_member_refuses() {
    let Some((service, url)) = member() else {
        return;
    };
    let certificates = service.certificates.as_ref().unwrap();
    let builder = EtcdBackend::builder(&url)
        .unwrap()
        .tls_ca_file(certificates.ca());
    // The member closes the connection after the handshake, which is all the client sees:
    // the error says what may be missing.
    let err = failure(open(builder).await);
    assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains("`cert_file` and `key_file`"),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_or_malformed_files_are_invalid_config_naming_the_file() {
    let Some((service, url)) = member() else {
        return;
    };
    let certificates = service.certificates.as_ref().unwrap();
    let missing = std::env::temp_dir().join("kv-etcd-tls-no-such-ca.pem");
    let err = failure(
        open(
            EtcdBackend::builder(&url)
                .unwrap()
                .tls_ca_file(&missing)
                .tls_client_identity(certificates.client_cert(), certificates.client_key()),
        )
        .await,
    );
    assert!(
        matches!(&err, KvError::InvalidConfig(m) if m.contains(&*missing.to_string_lossy())),
        "{err:?}"
    );

    let not_pem = std::env::temp_dir().join(format!("kv-etcd-tls-{}.txt", std::process::id()));
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let err = failure(
        open(
            EtcdBackend::builder(&url)
                .unwrap()
                .tls_ca_file(certificates.ca())
                .tls_client_identity(&not_pem, certificates.client_key()),
        )
        .await,
    );
    assert!(
        matches!(&err, KvError::InvalidConfig(m) if m.contains("PEM") && m.contains(&*not_pem.to_string_lossy())),
        "{err:?}"
    );
    std::fs::remove_file(&not_pem).unwrap();
}
