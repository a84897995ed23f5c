//! TLS for the `tls` feature: rustls, verifying the server's certificate chain and host name
//! against `sslrootcert` or the Mozilla roots (webpki-roots).
//!
//! rustls needs a crypto provider for the process. Choosing one is the application's call,
//! made once at the start of `main`: a library that installed one would make the
//! application's own `install_default()` fail later. So opening a TLS backend without one
//! is `InvalidConfig` saying what to call.

use std::path::Path;

use kv_trait::KvError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::invalid;

/// The connector for every connection of the pool.
pub(crate) fn connector(root_file: Option<&Path>) -> Result<MakeRustlsConnect, KvError> {
    let provider = rustls::crypto::CryptoProvider::get_default().ok_or_else(|| {
        invalid(
            "TLS needs a rustls crypto provider for the process: call \
             rustls::crypto::ring::default_provider().install_default() (or the aws_lc_rs one) \
             at the start of main, before opening a postgres:// backend with sslmode prefer or \
             require"
                .into(),
        )
    })?;
    let mut roots = RootCertStore::empty();
    match root_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let unreadable = |err: &dyn std::fmt::Display| {
                invalid(format!("sslrootcert {}: {err}", path.display()))
            };
            for certificate in
                CertificateDer::pem_file_iter(path).map_err(|err| unreadable(&err))?
            {
                let certificate = certificate.map_err(|err| unreadable(&err))?;
                roots.add(certificate).map_err(|err| unreadable(&err))?;
            }
            if roots.is_empty() {
                return Err(unreadable(&"no certificate in the file"));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| invalid(format!("TLS: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
