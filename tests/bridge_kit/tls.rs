//! TLS for the kit's ngIRCd: a test CA and a server certificate it signed (SAN 127.0.0.1 and
//! localhost), written as PEM files; ngIRCd (GnuTLS) serves them on an extra SSL port.

use base64::Engine;
use std::path::{Path, PathBuf};

/// A CA's certificate and a server certificate it signed, as PEM files.
pub struct TestCa {
    /// The CA's certificate: what a client trusts (`irc.ca_file`).
    pub ca_pem: PathBuf,
    /// The server's certificate (SAN 127.0.0.1 and localhost).
    pub cert_pem: PathBuf,
    /// The server's PKCS#8 key.
    pub key_pem: PathBuf,
}

/// Makes a CA named `name` and a server certificate it signed, in `dir` (`NAME-ca.pem`,
/// `NAME-cert.pem`, `NAME-key.pem`).
pub fn make_ca(dir: &Path, name: &str) -> TestCa {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("lookout test CA {name}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(2);
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    server
        .distinguished_name
        .push(DnType::CommonName, "irc.localhost");
    server.not_before = now - time::Duration::days(1);
    server.not_after = now + time::Duration::days(2);
    let cert = server.signed_by(&key, &issuer).expect("server certificate");

    let write = |suffix: &str, label: &str, der: &[u8]| {
        let p = dir.join(format!("{name}-{suffix}.pem"));
        std::fs::write(&p, pem(label, der)).unwrap();
        // ngIRCd may read it after dropping to `nobody`.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        p
    };
    TestCa {
        ca_pem: write("ca", "CERTIFICATE", ca_cert.der()),
        cert_pem: write("cert", "CERTIFICATE", cert.der()),
        key_pem: write("key", "PRIVATE KEY", &key.serialize_der()),
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
