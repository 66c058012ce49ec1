//! TLS to the source, under Debezium's `database.ssl.*` properties.
//!
//! `database.ssl.mode` has Debezium's five values. `disabled` talks plain TCP;
//! `preferred` and `required` encrypt without checking who answers (MySQL
//! makes a self-signed certificate at initialisation, so this is what most
//! servers can offer); `verify_ca` also requires the server's certificate to
//! chain to a trusted CA, and `verify_identity` requires in addition that it
//! names `database.hostname` (a subject alternative name, DNS or IP). Only
//! the last one stops a man in the middle who holds a certificate from the
//! same CA.
//!
//! Trusted CAs: `database.ssl.truststore` when set, and then only those, as
//! in Debezium (a Java trust store replaces the JVM's default); the system's
//! CAs when unset. The trust store is a PEM file (one or more CA
//! certificates), a DER certificate, or a PKCS#12 store (Java's default type
//! since 9, opened with `database.ssl.truststore.password`). A client
//! certificate (an account `REQUIRE X509`) comes from `database.ssl.keystore`,
//! a PKCS#12 file with its key, opened with `database.ssl.keystore.password`;
//! it is sent under every mode that encrypts. Java's older JKS format is
//! refused with the `keytool` command that converts it.
//!
//! Both files are read and checked once, at start, so that a wrong path,
//! format or password is a configuration error naming the property, not a
//! handshake failure on the first connection; every later connection
//! (snapshot, binlog, reconnects, `cdc verify`) uses the same bytes.

use std::fmt;
use std::path::{Path, PathBuf};

use openssl::pkcs12::Pkcs12;
use openssl::x509::X509;
use pipeline::secret::Secret;

/// `database.ssl.mode`: whether the connection to the source is encrypted,
/// and what of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    /// TLS when the server offers it, else plain TCP; not verified.
    Preferred,
    /// TLS or no connection; not verified.
    Required,
    /// TLS, the certificate chained to a trusted CA; any name.
    VerifyCa,
    /// TLS, the certificate chained to a trusted CA and naming the host.
    VerifyIdentity,
}

impl SslMode {
    /// Debezium's value names.
    pub const NAMES: &'static str = "disabled, preferred, required, verify_ca or verify_identity";

    /// Parses a value (case-insensitive), `None` for an unknown one.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value.to_ascii_lowercase().as_str() {
            "disabled" => Self::Disabled,
            "preferred" => Self::Preferred,
            "required" => Self::Required,
            "verify_ca" => Self::VerifyCa,
            "verify_identity" => Self::VerifyIdentity,
            _ => return None,
        })
    }

    /// Whether the server's certificate is checked against trusted CAs.
    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyIdentity)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disabled => "disabled",
            Self::Preferred => "preferred",
            Self::Required => "required",
            Self::VerifyCa => "verify_ca",
            Self::VerifyIdentity => "verify_identity",
        })
    }
}

/// The trusted CA certificates, as PEM.
#[derive(Clone)]
pub struct TrustStore {
    path: PathBuf,
    pem: Vec<u8>,
    certificates: usize,
}

impl TrustStore {
    /// Reads and checks `database.ssl.truststore`; the error is the reason,
    /// for a message that names the property and the file.
    pub fn load(path: &Path, password: &str) -> Result<Self, String> {
        let bytes = read(path)?;
        let certificates = if looks_like_pem(&bytes) {
            X509::stack_from_pem(&bytes).map_err(|e| format!("not a PEM certificate file: {e}"))?
        } else if is_jks(&bytes) {
            return Err(format!(
                "a Java KeyStore (JKS), which only the JVM reads; export its CA certificates as PEM \
                 (keytool -exportcert -rfc -alias <ca> -keystore {} > ca.pem) and point \
                 database.ssl.truststore at that file",
                path.display()
            ));
        } else if let Ok(certificate) = X509::from_der(&bytes) {
            vec![certificate]
        } else {
            let store = Pkcs12::from_der(&bytes)
                .map_err(|_| "neither a PEM or DER certificate nor a PKCS#12 store".to_owned())?;
            let parsed = store.parse2(password).map_err(|e| {
                format!(
                    "a PKCS#12 store that does not open with database.ssl.truststore.password: {e}"
                )
            })?;
            parsed.ca.into_iter().flatten().chain(parsed.cert).collect()
        };
        if certificates.is_empty() {
            return Err("holds no certificate".to_owned());
        }
        let mut pem = Vec::new();
        for certificate in &certificates {
            pem.extend(
                certificate
                    .to_pem()
                    .map_err(|e| format!("a certificate cannot be re-encoded: {e}"))?,
            );
        }
        Ok(Self {
            path: path.to_owned(),
            pem,
            certificates: certificates.len(),
        })
    }

    /// How many CA certificates it holds.
    pub fn certificates(&self) -> usize {
        self.certificates
    }
}

/// The client certificate and key, as a checked PKCS#12 archive.
#[derive(Clone)]
pub struct KeyStore {
    path: PathBuf,
    pkcs12: Vec<u8>,
    password: Secret,
}

impl KeyStore {
    /// Reads and checks `database.ssl.keystore`: it must open with the
    /// password and hold a certificate with its private key.
    pub fn load(path: &Path, password: Secret) -> Result<Self, String> {
        let bytes = read(path)?;
        if is_jks(&bytes) {
            return Err(format!(
                "a Java KeyStore (JKS), which only the JVM reads; convert it to PKCS#12 \
                 (keytool -importkeystore -srckeystore {} -destkeystore keystore.p12 \
                 -deststoretype PKCS12) and point database.ssl.keystore at the result",
                path.display()
            ));
        }
        let store = Pkcs12::from_der(&bytes).map_err(|_| {
            "not a PKCS#12 file (PEM key and certificate files combine into one with: \
             openssl pkcs12 -export -in client-cert.pem -inkey client-key.pem -out keystore.p12)"
                .to_owned()
        })?;
        let parsed = store
            .parse2(password.expose())
            .map_err(|e| format!("does not open with database.ssl.keystore.password: {e}"))?;
        if parsed.pkey.is_none() || parsed.cert.is_none() {
            return Err("holds no certificate with its private key".to_owned());
        }
        Ok(Self {
            path: path.to_owned(),
            pkcs12: bytes,
            password,
        })
    }
}

/// What `database.ssl.*` configures besides the mode.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub truststore: Option<TrustStore>,
    pub keystore: Option<KeyStore>,
}

/// The path only: the contents and the password stay out of logs.
impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TrustStore").field(&self.path).finish()
    }
}

/// The path only: the key and the password stay out of logs.
impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyStore").field(&self.path).finish()
    }
}

impl TlsFiles {
    /// The client's TLS options under `mode`; `None` for `disabled`.
    pub fn ssl_opts(&self, mode: SslMode) -> Option<mysql_async::SslOpts> {
        let mut opts = mysql_async::SslOpts::default();
        match mode {
            SslMode::Disabled => return None,
            SslMode::Preferred | SslMode::Required => {
                opts = opts.with_danger_accept_invalid_certs(true);
            }
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                if let Some(trust) = &self.truststore {
                    // As a Java trust store does: these CAs, not the system's too.
                    opts = opts
                        .with_root_certs(vec![trust.pem.clone().into()])
                        .with_disable_built_in_roots(true);
                }
                opts = opts.with_danger_skip_domain_validation(mode == SslMode::VerifyCa);
            }
        }
        if let Some(key) = &self.keystore {
            opts = opts.with_client_identity(Some(
                mysql_async::ClientIdentity::new(key.pkcs12.clone().into())
                    .with_password(key.password.expose().to_owned()),
            ));
        }
        Some(opts)
    }
}

/// The client refused the server's certificate (not signed by a trusted CA,
/// or, under `verify_identity`, not naming the host): the same settings will
/// fail the same way again, so this is definite.
#[derive(Debug, thiserror::Error)]
#[error(
    "the source's TLS certificate was refused under database.ssl.mode={mode}: {source}; {}",
    certificate_hint(*.mode, .hostname)
)]
pub struct CertificateRefused {
    pub mode: SslMode,
    pub hostname: String,
    pub source: mysql_async::Error,
}

impl CertificateRefused {
    /// `Ok` when a connection error is the certificate being refused, the
    /// error back otherwise. Other TLS failures, such as the connection
    /// closing mid-handshake while the server restarts, are left to the retry.
    pub fn classify(
        error: mysql_async::Error,
        mode: SslMode,
        hostname: &str,
    ) -> Result<Self, mysql_async::Error> {
        if is_certificate_refused(&error) {
            Ok(Self {
                mode,
                hostname: hostname.to_owned(),
                source: error,
            })
        } else {
            Err(error)
        }
    }
}

fn is_certificate_refused(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Io(mysql_async::IoError::Tls(_)))
        // OpenSSL's reason for SSL_R_CERTIFICATE_VERIFY_FAILED, whatever the
        // X509 verification result it is followed by; native-tls exposes it
        // only as text.
        && error.to_string().contains("certificate verify failed")
}

/// What to check after the server's certificate was refused under `mode`.
fn certificate_hint(mode: SslMode, hostname: &str) -> String {
    let ca = "the server's certificate must be signed by a CA in database.ssl.truststore (the \
              system's CAs when unset)";
    if mode == SslMode::VerifyIdentity {
        format!(
            "{ca} and name database.hostname {hostname:?} in its subject alternative names \
             (verify_ca skips the name)"
        )
    } else {
        ca.to_owned()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// JKS files start with the magic number 0xFEEDFEED.
fn is_jks(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFE, 0xED, 0xFE, 0xED])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// Makes a CA, a client certificate signed by it and the stores a user
    /// would have, with the openssl command line (and keytool when the
    /// machine has Java).
    pub(crate) struct Material {
        dir: tempfile::TempDir,
    }

    impl Material {
        pub(crate) fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let run = |args: &[&str]| {
                let out = Command::new("openssl")
                    .args(args)
                    .current_dir(dir.path())
                    .output()
                    .expect("openssl on PATH");
                assert!(
                    out.status.success(),
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=test CA",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
            ]);
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=client",
                "-keyout",
                "client-key.pem",
                "-out",
                "client.csr",
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                "client-cert.pem",
            ]);
            run(&[
                "pkcs12",
                "-export",
                "-in",
                "client-cert.pem",
                "-inkey",
                "client-key.pem",
                "-passout",
                "pass:secret",
                "-out",
                "client.p12",
            ]);
            run(&["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"]);
            run(&[
                "pkcs12",
                "-export",
                "-nokeys",
                "-in",
                "ca.pem",
                "-passout",
                "pass:changeit",
                "-out",
                "trust.p12",
            ]);
            Self { dir }
        }

        pub(crate) fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    #[test]
    fn modes_are_debeziums() {
        for (text, mode) in [
            ("disabled", SslMode::Disabled),
            ("preferred", SslMode::Preferred),
            ("REQUIRED", SslMode::Required),
            ("verify_ca", SslMode::VerifyCa),
            ("Verify_Identity", SslMode::VerifyIdentity),
        ] {
            assert_eq!(SslMode::parse(text), Some(mode));
            assert_eq!(SslMode::parse(&mode.to_string()), Some(mode));
        }
        assert_eq!(SslMode::parse("verify-full"), None);
    }

    #[test]
    fn a_truststore_is_pem_der_or_pkcs12() {
        let m = Material::new();
        let pem = TrustStore::load(&m.path("ca.pem"), "").unwrap();
        assert_eq!(pem.certificates(), 1);
        let der = TrustStore::load(&m.path("ca.der"), "").unwrap();
        assert_eq!(der.pem, pem.pem, "the same CA either way");
        let p12 = TrustStore::load(&m.path("trust.p12"), "changeit").unwrap();
        assert_eq!(p12.pem, pem.pem);

        // Two CAs in one PEM file are both trusted.
        let mut two = std::fs::read(m.path("ca.pem")).unwrap();
        two.extend(std::fs::read(m.path("client-cert.pem")).unwrap());
        std::fs::write(m.path("two.pem"), two).unwrap();
        assert_eq!(
            TrustStore::load(&m.path("two.pem"), "")
                .unwrap()
                .certificates(),
            2
        );
    }

    #[test]
    fn a_java_pkcs12_truststore_opens_as_debeziums_would() {
        // keytool's default store type since Java 9: trusted-certificate
        // entries without keys, which is what Debezium users hold.
        let m = Material::new();
        let keytool = Command::new("keytool")
            .args([
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-storetype",
                "PKCS12",
            ])
            .arg("-file")
            .arg(m.path("ca.pem"))
            .arg("-keystore")
            .arg(m.path("java.p12"))
            .args(["-storepass", "changeit"])
            .output();
        match keytool {
            Ok(out) if out.status.success() => {}
            other => {
                eprintln!("skipping: keytool (Java) is not usable here: {other:?}");
                return;
            }
        }
        let store = TrustStore::load(&m.path("java.p12"), "changeit").unwrap();
        let pem = TrustStore::load(&m.path("ca.pem"), "").unwrap();
        assert_eq!(store.pem, pem.pem);
    }

    #[test]
    fn bad_truststores_say_what_to_do() {
        let m = Material::new();
        let err = TrustStore::load(&m.path("missing.pem"), "").err().unwrap();
        assert!(err.contains("cannot be read"), "{err}");
        let err = TrustStore::load(&m.path("trust.p12"), "wrong")
            .err()
            .unwrap();
        assert!(err.contains("database.ssl.truststore.password"), "{err}");
        std::fs::write(m.path("jks"), [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).unwrap();
        let err = TrustStore::load(&m.path("jks"), "").err().unwrap();
        assert!(err.contains("keytool -exportcert -rfc"), "{err}");
        std::fs::write(m.path("junk"), b"not a certificate").unwrap();
        let err = TrustStore::load(&m.path("junk"), "").err().unwrap();
        assert!(err.contains("neither a PEM or DER certificate"), "{err}");
        std::fs::write(m.path("bad.pem"), b"-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let err = TrustStore::load(&m.path("bad.pem"), "").err().unwrap();
        assert!(err.contains("not a PEM certificate file"), "{err}");
    }

    #[test]
    fn a_keystore_is_pkcs12_with_a_key_and_its_password() {
        let m = Material::new();
        let key = KeyStore::load(&m.path("client.p12"), Secret::new("secret")).unwrap();
        let files = TlsFiles {
            truststore: None,
            keystore: Some(key),
        };
        let debug = format!("{files:?}");
        assert!(
            debug.contains("client.p12") && !debug.contains("secret"),
            "{debug}"
        );
        let err = KeyStore::load(&m.path("client.p12"), Secret::new("wrong"))
            .err()
            .unwrap();
        assert!(err.contains("database.ssl.keystore.password"), "{err}");
        let err = KeyStore::load(&m.path("trust.p12"), Secret::new("changeit"))
            .err()
            .unwrap();
        assert!(err.contains("no certificate with its private key"), "{err}");
        let err = KeyStore::load(&m.path("client-cert.pem"), Secret::new(""))
            .err()
            .unwrap();
        assert!(err.contains("openssl pkcs12 -export"), "{err}");
        std::fs::write(m.path("jks"), [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).unwrap();
        let err = KeyStore::load(&m.path("jks"), Secret::new(""))
            .err()
            .unwrap();
        assert!(err.contains("-deststoretype PKCS12"), "{err}");
    }

    #[test]
    fn only_a_refused_certificate_is_definite() {
        // The live side (a real refusal) is cdc --test mysql_specifics.
        let plain = mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer);
        assert!(!is_certificate_refused(&plain));
        let reset = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(!is_certificate_refused(&reset));
        assert!(CertificateRefused::classify(reset, SslMode::VerifyCa, "db").is_err());
        assert!(certificate_hint(SslMode::VerifyIdentity, "db").contains("\"db\""));
        assert!(!certificate_hint(SslMode::VerifyCa, "db").contains("\"db\""));
    }

    #[test]
    fn each_mode_checks_what_it_says() {
        let m = Material::new();
        let files = TlsFiles {
            truststore: Some(TrustStore::load(&m.path("ca.pem"), "").unwrap()),
            keystore: Some(KeyStore::load(&m.path("client.p12"), Secret::new("secret")).unwrap()),
        };
        assert!(files.ssl_opts(SslMode::Disabled).is_none());
        for mode in [SslMode::Preferred, SslMode::Required] {
            let opts = files.ssl_opts(mode).unwrap();
            assert!(opts.accept_invalid_certs(), "{mode}");
            assert!(
                opts.client_identity().is_some(),
                "{mode}: the client certificate is sent"
            );
        }
        let ca = files.ssl_opts(SslMode::VerifyCa).unwrap();
        assert!(!ca.accept_invalid_certs() && ca.skip_domain_validation());
        assert_eq!(ca.root_certs().len(), 1);
        assert!(ca.disable_built_in_roots(), "only the trust store's CAs");
        let identity = files.ssl_opts(SslMode::VerifyIdentity).unwrap();
        assert!(!identity.accept_invalid_certs() && !identity.skip_domain_validation());
        assert!(identity.client_identity().is_some());

        // Without a trust store: the system's CAs.
        let system = TlsFiles::default()
            .ssl_opts(SslMode::VerifyIdentity)
            .unwrap();
        assert!(system.root_certs().is_empty() && !system.disable_built_in_roots());
    }
}
