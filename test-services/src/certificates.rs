//! Certificates for TLS tests: a private CA, a server certificate and a client certificate
//! signed by it, made with the `openssl` command (Debian's `openssl`, which its `postgresql`
//! package depends on) and valid for two days.
//!
//! ```no_run
//! use kv_test_services::certificates::TestCertificates;
//!
//! let dir = std::env::temp_dir().join("my-tls-test");
//! std::fs::create_dir_all(&dir)?;
//! let certificates = TestCertificates::make(&dir, &["DNS:localhost", "IP:127.0.0.1"])?;
//! // Give the server certificates.server_cert() and .server_key(); trust certificates.ca().
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and two certificates it signed, as PEM files in one directory.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    /// Makes, in `dir` (which must exist): `ca.crt` and `ca.key`, the CA; `server.crt` and
    /// `server.key`, for the subject alternative names `server_names` (`DNS:localhost`,
    /// `IP:127.0.0.1`, ...), for server authentication only; `client.crt` and `client.key`,
    /// common name `kvkit-test-client`, for client authentication only. An error names the
    /// `openssl` step that failed and quotes what it printed.
    pub fn make(dir: &Path, server_names: &[&str]) -> io::Result<Self> {
        let made = Self {
            dir: dir.to_path_buf(),
        };
        made.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=kvkit test CA",
        ])?;
        made.sign(
            "server",
            "/CN=kvkit-test-server",
            &format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                server_names.join(",")
            ),
        )?;
        made.sign(
            "client",
            "/CN=kvkit-test-client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )?;
        Ok(made)
    }

    /// The CA's certificate, for the side that verifies.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server's private key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The client's certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// The client's private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// `NAME.key`, and `NAME.crt` signed by the CA with the extensions `extensions`.
    fn sign(&self, name: &str, subject: &str, extensions: &str) -> io::Result<()> {
        let (key, request, certificate, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        self.openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &request, "-subj",
            subject,
        ])?;
        std::fs::write(self.dir.join(&extfile), extensions)?;
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &certificate,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ])
    }

    fn openssl(&self, args: &[&str]) -> io::Result<()> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("running `openssl` (Debian: apt-get install openssl): {err}"),
                )
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }
}
