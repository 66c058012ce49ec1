//! Postgres connections under libpq's `sslmode`, for every service that
//! talks to Postgres (analytics, the dashboard): one `connect` for all.
//!
//! tokio-postgres understands `sslmode=disable|prefer|require` and leaves
//! what is checked of the server's certificate to the TLS connector it is
//! given; a `POSTGRES_URL` copied from `psql` or a hosted Postgres' console
//! uses libpq's modes and `sslrootcert`. This module reads those from the
//! URL (URI or key=value form) and builds the connector libpq's semantics
//! ask for:
//!
//! | sslmode | TLS | certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked; with `sslrootcert`, as `verify-ca` (libpq does so too) |
//! | `verify-ca` | always | signed by a CA in `sslrootcert` |
//! | `verify-full` | always | signed by a CA in `sslrootcert` and naming the URL's host |
//!
//! `sslrootcert` is a PEM (or DER) file of CA certificates, then the only
//! ones trusted, or `system` for the system's CAs (libpq 16's spelling).
//! `sslcert` (PEM: the client certificate, then any intermediates) and
//! `sslkey` (PEM, PKCS#1, SEC1 or PKCS#8; encrypted with `sslpassword`) are
//! the client certificate for the server's `cert` authentication, sent
//! whenever TLS is used; they are read and checked against each other
//! before connecting. Unlike libpq, nothing is read from `~/.postgresql/`
//! (`root.crt`, `postgresql.crt`, `postgresql.key`): a verifying mode
//! without `sslrootcert` is refused with what to add. `allow` tries TLS
//! first (libpq tries plain first).

use std::path::Path;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::Client;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// The mode tokio-postgres is given: whether TLS is tried or required.
    fn negotiation(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow | Self::Prefer => "prefer",
            Self::Require | Self::VerifyCa | Self::VerifyFull => "require",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Definite: the URL's TLS settings cannot be used as they are.
    #[error("POSTGRES_URL: {0}")]
    Settings(String),
    /// Definite: the server's certificate was refused; the same settings
    /// fail the same way again.
    #[error(
        "the Postgres server's TLS certificate was refused under sslmode={mode}: {reason}; {hint}"
    )]
    Certificate {
        mode: &'static str,
        /// OpenSSL's words (tokio-postgres' own message says only that the
        /// handshake failed).
        reason: String,
        source: tokio_postgres::Error,
        hint: &'static str,
    },
    /// What the server or the network said; the caller classifies it.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// What a URL asks of TLS, and the URL as tokio-postgres accepts it.
/// No `Debug`: the URL may hold the password (and `sslpassword`).
struct TlsSettings {
    mode: SslMode,
    /// `sslrootcert`: `None` unset, `Some("system")` the system's CAs.
    root_cert: Option<String>,
    /// `sslcert`, `sslkey` and `sslpassword`: the client certificate.
    client: Option<ClientCertificate>,
    url: String,
}

/// A client certificate's files, as `sslcert`/`sslkey`/`sslpassword` name them.
struct ClientCertificate {
    cert: String,
    key: String,
    password: Option<String>,
}

impl TlsSettings {
    fn from_url(url: &str) -> Result<Self, String> {
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        let (mut ssl_cert, mut ssl_key, mut ssl_password) = (None, None, None);
        let mut take = |key: &str, value: String| -> Result<bool, String> {
            match key {
                "sslmode" => {
                    mode = SslMode::parse(&value).ok_or_else(|| {
                        format!(
                            "sslmode={value} is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        )
                    })?;
                    Ok(true)
                }
                "sslrootcert" => {
                    root_cert = Some(value);
                    Ok(true)
                }
                "sslcert" => {
                    ssl_cert = Some(value);
                    Ok(true)
                }
                "sslkey" => {
                    ssl_key = Some(value);
                    Ok(true)
                }
                "sslpassword" => {
                    ssl_password = Some(value);
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let url = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned();
                if !take(key, value)? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else {
            let mut kept = Vec::new();
            for token in url.split_whitespace() {
                let taken = match token.split_once('=') {
                    Some((key, value)) => take(key, value.trim_matches('\'').to_owned())?,
                    None => false,
                };
                if !taken {
                    kept.push(token);
                }
            }
            kept.join(" ")
        };
        let url = if url.contains("://") {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}sslmode={}", mode.negotiation())
        } else {
            format!("{url} sslmode={}", mode.negotiation())
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(format!(
                "sslmode={} needs sslrootcert: the CA file that signed the server's certificate, \
                 or sslrootcert=system for the system's CAs",
                mode.name()
            ));
        }
        let client = match (ssl_cert, ssl_key) {
            (Some(cert), Some(key)) => Some(ClientCertificate {
                cert,
                key,
                password: ssl_password,
            }),
            (None, None) => None,
            // libpq falls back to ~/.postgresql/ for the other; nothing is read from there here.
            (Some(_), None) => {
                return Err(
                    "sslcert is set without sslkey: name the client certificate's \
                            private key file too"
                        .into(),
                )
            }
            (None, Some(_)) => {
                return Err(
                    "sslkey is set without sslcert: name the client certificate file \
                            too"
                    .into(),
                )
            }
        };
        Ok(Self {
            mode,
            root_cert,
            client,
            url,
        })
    }

    /// Whether the certificate is checked: libpq's `require` with a root
    /// certificate behaves as `verify-ca`.
    fn verifies(&self) -> bool {
        matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (self.mode == SslMode::Require && self.root_cert.is_some())
    }

    fn connector(&self) -> Result<MakeTlsConnector, String> {
        let mut builder = native_tls::TlsConnector::builder();
        if self.verifies() {
            builder.danger_accept_invalid_hostnames(self.mode != SslMode::VerifyFull);
            match self.root_cert.as_deref() {
                None | Some("system") => {}
                Some(path) => {
                    for certificate in root_certificates(Path::new(path))? {
                        builder.add_root_certificate(certificate);
                    }
                    builder.disable_built_in_roots(true);
                }
            }
        } else {
            builder.danger_accept_invalid_certs(true);
        }
        if let Some(client) = &self.client {
            builder.identity(client.identity()?);
        }
        let connector = builder
            .build()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        Ok(MakeTlsConnector::new(connector))
    }
}

impl ClientCertificate {
    /// The certificate chain and its key, read and checked to belong
    /// together (a mismatch would otherwise surface as a handshake failure
    /// that names neither file).
    fn identity(&self) -> Result<native_tls::Identity, String> {
        let chain = std::fs::read(&self.cert)
            .map_err(|e| format!("sslcert={} cannot be read: {e}", self.cert))?;
        let certificates = X509::stack_from_pem(&chain)
            .ok()
            .filter(|stack| !stack.is_empty())
            .ok_or_else(|| format!("sslcert={} is not a PEM certificate file", self.cert))?;
        let key = self.private_key()?;
        let belongs = certificates[0]
            .public_key()
            .map(|public| public.public_eq(&key))
            .unwrap_or(false);
        if !belongs {
            return Err(format!(
                "sslkey={} is not the private key of the certificate in sslcert={}",
                self.key, self.cert
            ));
        }
        // native-tls takes the key as PKCS#8 only; libpq takes any PEM key.
        let pkcs8 = key
            .private_key_to_pem_pkcs8()
            .map_err(|e| format!("sslkey={}: {e}", self.key))?;
        native_tls::Identity::from_pkcs8(&chain, &pkcs8)
            .map_err(|e| format!("sslcert={} with sslkey={}: {e}", self.cert, self.key))
    }

    fn private_key(&self) -> Result<PKey<Private>, String> {
        let pem = std::fs::read(&self.key)
            .map_err(|e| format!("sslkey={} cannot be read: {e}", self.key))?;
        let encrypted = String::from_utf8_lossy(&pem).contains("ENCRYPTED");
        match &self.password {
            Some(password) => PKey::private_key_from_pem_passphrase(&pem, password.as_bytes())
                .map_err(|_| {
                    format!(
                        "sslkey={} cannot be read with sslpassword (a PEM private key it \
                         decrypts)",
                        self.key
                    )
                }),
            None if encrypted => Err(format!(
                "sslkey={} is encrypted: add sslpassword to the URL",
                self.key
            )),
            None => PKey::private_key_from_pem(&pem)
                .map_err(|_| format!("sslkey={} is not a PEM private key", self.key)),
        }
    }
}

/// The CA certificates of an `sslrootcert` file (PEM, one or more, or DER).
fn root_certificates(path: &Path) -> Result<Vec<native_tls::Certificate>, String> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| format!("sslrootcert={shown} cannot be read: {e}"))?;
    let certificates = match X509::stack_from_pem(&bytes) {
        Ok(stack) if !stack.is_empty() => stack,
        _ => vec![X509::from_der(&bytes).map_err(|_| {
            format!("sslrootcert={shown} is neither a PEM nor a DER certificate file")
        })?],
    };
    certificates
        .iter()
        .map(|c| {
            c.to_der()
                .ok()
                .and_then(|der| native_tls::Certificate::from_der(&der).ok())
                .ok_or_else(|| format!("sslrootcert={shown}: a certificate cannot be loaded"))
        })
        .collect()
}

/// Connects to `url` under its `sslmode` and keeps a background task
/// driving the connection (its end is logged).
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    let settings = TlsSettings::from_url(url).map_err(ConnectError::Settings)?;
    let connector = settings.connector().map_err(ConnectError::Settings)?;
    let (client, connection) = tokio_postgres::connect(&settings.url, connector)
        .await
        .map_err(|e| certificate_refused(&settings, e))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgres connection closed");
        }
    });
    Ok(client)
}

fn certificate_refused(settings: &TlsSettings, error: tokio_postgres::Error) -> ConnectError {
    // OpenSSL's reason for a refused certificate; native-tls gives it as text only.
    let reason = std::error::Error::source(&error)
        .map(ToString::to_string)
        .unwrap_or_default();
    if !reason.contains("certificate verify failed") {
        return ConnectError::Postgres(error);
    }
    ConnectError::Certificate {
        mode: settings.mode.name(),
        reason,
        source: error,
        hint: if settings.mode == SslMode::VerifyFull {
            "it must be signed by a CA in sslrootcert and name the URL's host (a subject \
             alternative name; verify-ca skips the name)"
        } else {
            "it must be signed by a CA in sslrootcert"
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> TlsSettings {
        TlsSettings::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn uri_settings_are_read_and_the_rest_kept() {
        let s = settings("postgres://u:p%3Fw@db:5432/analytics");
        assert_eq!(s.mode, SslMode::Prefer, "libpq's default");
        assert_eq!(s.url, "postgres://u:p%3Fw@db:5432/analytics?sslmode=prefer");

        let s = settings(
            "postgresql://u@db/a?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem&connect_timeout=5",
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some("/etc/ca dir/ca.pem"));
        assert_eq!(
            s.url,
            "postgresql://u@db/a?application_name=x&connect_timeout=5&sslmode=require"
        );
        assert!(s.verifies());

        for (mode, negotiated) in [
            ("disable", "disable"),
            ("allow", "prefer"),
            ("prefer", "prefer"),
            ("require", "require"),
        ] {
            let s = settings(&format!("postgres://db/a?sslmode={mode}"));
            assert_eq!(s.url, format!("postgres://db/a?sslmode={negotiated}"));
            assert!(!s.verifies(), "{mode}");
        }
        // libpq: require with a root certificate verifies it.
        assert!(settings("postgres://db/a?sslmode=require&sslrootcert=/ca.pem").verifies());
        // What tokio-postgres gets, it accepts (it refuses verify-* and sslrootcert).
        for url in [
            "postgres://db/a?sslmode=verify-ca&sslrootcert=system",
            "host=db sslmode=verify-full sslrootcert=/ca.pem",
        ] {
            let rewritten = settings(url).url;
            assert!(
                rewritten.parse::<tokio_postgres::Config>().is_ok(),
                "{rewritten}"
            );
            assert!(url.parse::<tokio_postgres::Config>().is_err(), "{url}");
        }
    }

    #[test]
    fn key_value_settings_are_read_and_the_rest_kept() {
        let s = settings("host=db user=u password=pw sslmode=verify-ca sslrootcert='/ca.pem'");
        assert_eq!(s.mode, SslMode::VerifyCa);
        assert_eq!(s.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(s.url, "host=db user=u password=pw sslmode=require");
        let s = settings("host=db dbname=analytics");
        assert_eq!(s.url, "host=db dbname=analytics sslmode=prefer");
    }

    /// A server that answers the SSLRequest with 'N' (no TLS, as the compose
    /// demo's Postgres image): what the client sends next, or `None` when it
    /// hung up.
    async fn after_no_tls(query: &str) -> (Option<Vec<u8>>, Result<Client, ConnectError>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 8];
            socket.read_exact(&mut request).await.unwrap();
            // Length 8, code 80877103: the SSLRequest.
            assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
            socket.write_all(b"N").await.unwrap();
            let mut next = [0u8; 8];
            let sent = socket
                .read_exact(&mut next)
                .await
                .is_ok()
                .then(|| next.to_vec());
            drop(socket);
            sent
        });
        let connected = connect(&format!("postgres://u@127.0.0.1:{port}/a?{query}")).await;
        (server.await.unwrap(), connected)
    }

    #[tokio::test]
    async fn prefer_goes_on_in_plain_text_where_the_server_has_no_tls() {
        // The default: the StartupMessage follows in plain text (protocol 3.0).
        let (next, _) = after_no_tls("application_name=t").await;
        let next = next.expect("a startup message after the refusal");
        assert_eq!(&next[4..8], &[0, 3, 0, 0], "protocol 3.0 startup: {next:?}");
        // require and the verifying modes hang up instead.
        for query in ["sslmode=require", "sslmode=verify-full&sslrootcert=system"] {
            let (next, connected) = after_no_tls(query).await;
            assert_eq!(next, None, "{query}");
            assert!(connected.is_err(), "{query}");
        }
    }

    /// A certificate for `key`, self-signed (only the pairing is checked here).
    fn certificate_pem(key: &PKey<Private>) -> Vec<u8> {
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "client").unwrap();
        let name = name.build();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_issuer_name(&name).unwrap();
        builder.set_pubkey(key).unwrap();
        builder
            .set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        builder
            .sign(key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        builder.build().to_pem().unwrap()
    }

    #[test]
    fn client_keys_in_every_pem_form_libpq_takes_are_loaded_and_paired() {
        use openssl::ec::{EcGroup, EcKey};
        use openssl::nid::Nid;
        use openssl::rsa::Rsa;
        use openssl::symm::Cipher;

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path.display().to_string()
        };
        let rsa = Rsa::generate(2048).unwrap();
        let key = PKey::from_rsa(rsa.clone()).unwrap();
        let cert = write("client.crt", &certificate_pem(&key));
        let ec =
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
        let ec_key = PKey::from_ec_key(ec.clone()).unwrap();
        let ec_cert = write("ec.crt", &certificate_pem(&ec_key));
        let client = |cert: &str, key: &str, password: Option<&str>| ClientCertificate {
            cert: cert.to_owned(),
            key: key.to_owned(),
            password: password.map(str::to_owned),
        };
        let loads = [
            (
                "PKCS#1",
                cert.clone(),
                write("rsa.key", &rsa.private_key_to_pem().unwrap()),
                None,
            ),
            (
                "PKCS#8",
                cert.clone(),
                write("p8.key", &key.private_key_to_pem_pkcs8().unwrap()),
                None,
            ),
            (
                "encrypted PKCS#8",
                cert.clone(),
                write(
                    "enc.key",
                    &key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"s3cret")
                        .unwrap(),
                ),
                Some("s3cret"),
            ),
            (
                "SEC1",
                ec_cert,
                write("ec.key", &ec.private_key_to_pem().unwrap()),
                None,
            ),
        ];
        for (form, cert, key, password) in &loads {
            if let Err(e) = client(cert, key, *password).identity() {
                panic!("{form}: {e}");
            }
        }
        let encrypted = &loads[2].2;
        let err = client(&cert, encrypted, None).identity().err().unwrap();
        assert!(err.contains("is encrypted: add sslpassword"), "{err}");
        let err = client(&cert, encrypted, Some("wrong"))
            .identity()
            .err()
            .unwrap();
        assert!(err.contains("cannot be read with sslpassword"), "{err}");
        let err = client(&cert, &loads[3].2, None).identity().err().unwrap();
        assert!(
            err.contains("is not the private key of the certificate"),
            "{err}"
        );
        let err = client(&cert, &cert, None).identity().err().unwrap();
        assert!(err.contains("is not a PEM private key"), "{err}");
        // The password never reaches a message.
        let err = client(&cert, encrypted, Some("wrong-pw-42"))
            .identity()
            .err()
            .unwrap();
        assert!(!err.contains("wrong-pw-42"), "{err}");
    }

    #[test]
    fn unusable_settings_say_what_to_do() {
        let err = TlsSettings::from_url("postgres://db/a?sslmode=verify-full")
            .err()
            .unwrap();
        assert!(
            err.contains("needs sslrootcert") && err.contains("sslrootcert=system"),
            "{err}"
        );
        let err = TlsSettings::from_url("postgres://db/a?sslmode=on")
            .err()
            .unwrap();
        assert!(err.contains("verify-full"), "{err}");
        let err = TlsSettings::from_url("postgres://db/a?sslcert=/c.pem")
            .err()
            .unwrap();
        assert!(err.contains("without sslkey"), "{err}");
        let err = TlsSettings::from_url("host=db sslkey=/k.pem")
            .err()
            .unwrap();
        assert!(err.contains("without sslcert"), "{err}");
        let missing = settings("postgres://db/a?sslcert=/nonexistent/c.pem&sslkey=/k.pem");
        let err = missing.connector().err().unwrap();
        assert!(
            err.contains("sslcert=/nonexistent/c.pem cannot be read"),
            "{err}"
        );
        let missing = settings("postgres://db/a?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        let err = missing.connector().err().unwrap();
        assert!(
            err.contains("sslrootcert=/nonexistent/ca.pem cannot be read"),
            "{err}"
        );
    }
}
