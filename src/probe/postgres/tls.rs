//! Optional TLS for the probe's connection, modelled on libpq's `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey`. rustls with the ring provider; the tokio-postgres glue (including
//! SCRAM channel binding) is `tokio-postgres-rustls`.
//!
//! | `sslmode` | TLS | chain checked | host name checked |
//! |---|---|---|---|
//! | `disable` | never | | |
//! | `prefer` | if the server offers it, else plain | only with `sslrootcert` | no |
//! | `require` | always | only with `sslrootcert` (as libpq) | no |
//! | `verify-ca` | always | yes | no |
//! | `verify-full` | always | yes | yes |

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, SignatureScheme};
use std::sync::{Arc, OnceLock};

/// libpq's `sslmode` values this probe supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it; plain otherwise (and after a failed TLS attempt).
    Prefer,
    /// TLS always; the certificate is not checked (unless `sslrootcert` is set).
    Require,
    /// TLS always; the chain must lead to a trusted CA; any host name.
    VerifyCa,
    /// TLS always; trusted chain and the host name must match the certificate.
    VerifyFull,
}

impl SslMode {
    /// Every value, in libpq's order.
    pub const ALL: [SslMode; 5] = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The default: `prefer`, as libpq.
    pub const DEFAULT: SslMode = SslMode::Prefer;

    /// The mode named `s` (libpq's spelling).
    pub fn parse(s: &str) -> Option<SslMode> {
        SslMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether TLS is mandatory.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Prefer)
    }

    /// tokio-postgres's coarser mode (verification is the rustls configuration's job).
    pub fn wire(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

impl<'de> serde::Deserialize<'de> for SslMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SslMode::parse(&s).ok_or_else(|| serde::de::Error::custom(unknown_mode(&s)))
    }
}

/// Why `s` is not an `sslmode`, with the likely intended value.
fn unknown_mode(s: &str) -> String {
    let names: Vec<&str> = SslMode::ALL.iter().map(|m| m.as_str()).collect();
    let mut out = format!(
        "sslmode {s:?} is not one of {} (libpq's values)",
        names.join(", ")
    );
    let near = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
    if let Some(m) = SslMode::parse(&near) {
        out.push_str(&format!("; did you mean \"{}\"?", m.as_str()));
    }
    out
}

/// The PEM contents the connector is built from (read at each connect).
#[derive(Default)]
pub struct Pem {
    /// `sslrootcert`: CA certificates.
    pub root: Option<Vec<u8>>,
    /// `sslcert` and `sslkey`: the client's certificate chain and private key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The platform's verifier, built once per process (loading the system's roots is not free).
fn platform_verifier() -> Result<Arc<dyn ServerCertVerifier>, String> {
    static V: OnceLock<Result<Arc<dyn ServerCertVerifier>, String>> = OnceLock::new();
    V.get_or_init(|| {
        rustls_platform_verifier::Verifier::new(provider())
            .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))
    })
    .clone()
}

/// The rustls configuration for `mode` (not called for `disable`).
pub fn client_config(mode: SslMode, pem: &Pem) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let chain: Option<Arc<dyn ServerCertVerifier>> = match &pem.root {
        Some(bytes) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(bytes) {
                let cert = cert.map_err(|e| format!("sslrootcert: not PEM certificates: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert: unusable CA certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("sslrootcert holds no PEM certificate".into());
            }
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?,
            )
        }
        None if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
            Some(platform_verifier()?)
        }
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, chain) {
        (SslMode::VerifyFull, Some(v)) => v,
        (_, Some(v)) => Arc::new(ChainOnly(v)),
        (_, None) => Arc::new(Unverified(provider.clone())),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &pem.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslcert: not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("sslcert holds no PEM certificate".into());
            }
            // The key's bytes stay out of the message.
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| "sslkey holds no usable PEM private key".to_string())?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("sslcert/sslkey: {e}"))?
        }
    };
    // PostgreSQL 17 checks ALPN when a client sends it; "postgresql" is the registered name.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// Checks the chain with the inner verifier and ignores only a host-name mismatch
/// (`verify-ca`, or `require`/`prefer` with `sslrootcert`).
#[derive(Debug)]
struct ChainOnly(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means the chain passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate (encryption without authentication, as libpq's `require` without a
/// root certificate); the handshake signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connect error that is about TLS, in words; `None` for other errors.
pub fn explain(e: &tokio_postgres::Error, mode: SslMode, own_roots: bool) -> Option<String> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut tls_kind = false;
    while let Some(err) = src {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(rustls_words(r, mode, own_roots));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(rustls_words(r, mode, own_roots));
        }
        let text = err.to_string();
        if text == "server does not support TLS" {
            return Some(format!(
                "the server does not offer TLS but sslmode={} requires it: turn ssl on in its \
                 postgresql.conf, or set sslmode = \"prefer\"",
                mode.as_str()
            ));
        }
        tls_kind |= text.starts_with("error performing TLS handshake");
        src = err.source();
    }
    if tls_kind {
        return Some(format!(
            "TLS handshake failed: {} (sslmode={})",
            super::queries::describe(e),
            mode.as_str()
        ));
    }
    let db = e.as_db_error()?;
    let m = db.message();
    if !m.starts_with("no pg_hba.conf entry") {
        return None;
    }
    if mode == SslMode::Disable && m.contains("no encryption") {
        return Some(format!(
            "{m} (the server accepts this connection only with TLS: set sslmode)"
        ));
    }
    if mode.requires_tls() && m.contains("SSL encryption") {
        return Some(format!(
            "{m} (the server accepts this connection only without TLS: sslmode=\"{}\" \
             forbids that)",
            mode.as_str()
        ));
    }
    None
}

fn rustls_words(e: &rustls::Error, mode: SslMode, own_roots: bool) -> String {
    let roots = if own_roots {
        "a CA in sslrootcert"
    } else {
        "a CA the system trusts"
    };
    let what = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                format!("certificate is not trusted: it is not signed by {roots}")
            }
            CertificateError::NotValidForName => "certificate does not name this host".into(),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate is not valid for {} (it names {})",
                server_name(expected),
                if presented.is_empty() {
                    "nothing".to_string()
                } else {
                    presented
                        .iter()
                        .map(|p| presented_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate is not valid yet (are the clocks right?)".into()
            }
            CertificateError::Revoked => "certificate is revoked".into(),
            other => format!("certificate is invalid: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server refused the handshake ({alert:?}); does it want a client certificate \
             (sslcert/sslkey)?"
        ),
        other => other.to_string(),
    };
    format!("TLS handshake failed: {what} (sslmode={})", mode.as_str())
}

/// rustls lists the names a certificate presents as `DnsName("a")` / `IpAddress(1.2.3.4)`.
fn presented_name(p: &str) -> String {
    for prefix in ["DnsName(", "IpAddress(", "UniformResourceIdentifier("] {
        if let Some(inner) = p.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            return inner.trim_matches('"').to_string();
        }
    }
    p.to_string()
}

fn server_name(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_map_to_the_wire() {
        for m in SslMode::ALL {
            assert_eq!(SslMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(SslMode::parse("verify_full"), None);
        assert_eq!(
            SslMode::VerifyCa.wire(),
            tokio_postgres::config::SslMode::Require
        );
        assert!(!SslMode::Prefer.requires_tls());
    }

    #[test]
    fn bad_pem_is_named_without_its_bytes() {
        let pem = Pem {
            root: Some(b"not a certificate".to_vec()),
            client: None,
        };
        let e = client_config(SslMode::VerifyFull, &pem).unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        let pem = Pem {
            root: None,
            client: Some((b"x".to_vec(), b"secret-key-bytes".to_vec())),
        };
        let e = client_config(SslMode::Require, &pem).unwrap_err();
        assert!(e.contains("sslcert") && !e.contains("secret-key"), "{e}");
    }

    #[test]
    fn presented_names_read_plainly() {
        assert_eq!(presented_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(presented_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(presented_name("other"), "other");
    }
}
