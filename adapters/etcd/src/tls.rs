//! The client's TLS configuration, read from the files [`TlsSettings`] names (the `tls`
//! feature). tonic verifies the members' certificates with rustls, using the application's
//! process-wide crypto provider if it installed one and ring otherwise, so an application
//! needs no setup for it.

use etcd_client::{Certificate, Identity, TlsOptions};
use kv_trait::KvError;

use crate::config::TlsSettings;

/// The TLS options for `settings`, its files read now. A file that cannot be read is
/// `InvalidConfig` naming it; its contents are never quoted (the key is a secret).
pub(crate) fn options(settings: &TlsSettings) -> Result<TlsOptions, KvError> {
    let mut options = TlsOptions::new();
    options = match &settings.ca_file {
        Some(path) => options.ca_certificate(Certificate::from_pem(read(path, "CA")?)),
        None => options.with_webpki_roots(),
    };
    if let Some((cert, key)) = &settings.client_identity {
        let identity =
            Identity::from_pem(read(cert, "client certificate")?, read(key, "client key")?);
        options = options.identity(identity);
    }
    if let Some(name) = &settings.server_name {
        options = options.domain_name(name.clone());
    }
    Ok(options)
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, KvError> {
    let pem = std::fs::read(path).map_err(|err| {
        KvError::InvalidConfig(format!(
            "cannot read the TLS {what} file {}: {err}",
            path.display()
        ))
    })?;
    // rustls would refuse it only at the first handshake, as a connection failure; a file
    // without a single PEM block is a configuration mistake to name here.
    if !pem.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(KvError::InvalidConfig(format!(
            "the TLS {what} file {} holds no PEM block (-----BEGIN ...)",
            path.display()
        )));
    }
    Ok(pem)
}
