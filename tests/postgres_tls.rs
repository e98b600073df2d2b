//! The postgres probe's TLS (`sslmode`, `sslrootcert`, `sslcert`/`sslkey`) against real
//! PostgreSQL: a cluster with `ssl = on` and a certificate from a CA made here (rcgen), one
//! with `ssl = off`, and silent TCP servers for the connect deadline.

mod kit;
mod pg_common;
mod pg_kit;

use kit::write_file;
use lookout::model::{Observation, Status};
use pg_common::*;
use pg_kit::{Cluster, PASSWORD, PrimaryOpts};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::io::Read;
use std::time::{Duration, Instant};

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate authority: its issuer and its certificate as PEM.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = pem("CERTIFICATE", issuer.der());
    Ca { issuer, pem }
}

/// A leaf certificate signed by `ca`: (certificate PEM, PKCS#8 key PEM).
fn leaf(ca: &Ca, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (
        pem("CERTIFICATE", cert.der()),
        pem("PRIVATE KEY", &key.serialize_der()),
    )
}

/// A `[[probe]]` of kind postgres with `extra` options.
fn probe(id: &str, host: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[[probe]]
id = "{id}"
kind = "postgres"
host = "{host}"
port = {port}
interval = "5s"
timeout = "5s"
for = "0s"
recover_after = 1
{extra}
"#
    )
}

fn run(h: &mut Harness, id: &str) -> Observation {
    let (obs, _, took) = h.run(id);
    eprintln!("{id} ({took:?}): {:?}: {}", obs.status, obs.message);
    assert!(
        !obs.message.contains(PASSWORD),
        "{id}: the password leaked: {}",
        obs.message
    );
    obs
}

fn assert_ok_with_tls(h: &mut Harness, id: &str, tls: bool) {
    let obs = run(h, id);
    assert_eq!(obs.status, Status::Ok, "{id}: {}", obs.message);
    assert_eq!(
        sample(&obs, "pg.tls", &[]),
        Some(if tls { 1.0 } else { 0.0 }),
        "{id}: {}",
        obs.message
    );
    let first = obs.message.lines().next().unwrap_or_default();
    if tls {
        assert!(first.contains("; TLSv1."), "{id}: {first}");
    } else {
        assert!(first.contains("; not encrypted)"), "{id}: {first}");
    }
}

fn assert_critical(h: &mut Harness, id: &str, words: &[&str]) {
    let obs = run(h, id);
    assert_eq!(obs.status, Status::Critical, "{id}: {}", obs.message);
    for w in words {
        assert!(
            obs.message.contains(w),
            "{id}: {w:?} not in: {}",
            obs.message
        );
    }
}

#[test]
fn tls_server_modes_verification_and_client_certificates() {
    let ca1 = ca("lookout test CA");
    let other = ca("some other CA");
    let (server_crt, server_key) = leaf(
        &ca1,
        "localhost",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_crt, client_key) = leaf(&ca1, "certuser", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let opts = PrimaryOpts {
        extra: vec![
            "listen_addresses = '127.0.0.1,127.0.0.2'".into(),
            "ssl = on".into(),
            "ssl_cert_file = 'server.crt'".into(),
            "ssl_key_file = 'server.key'".into(),
            "ssl_ca_file = 'ca.crt'".into(),
        ],
        data_files: vec![
            ("server.crt".into(), server_crt),
            ("server.key".into(), server_key),
            ("ca.crt".into(), ca1.pem.clone()),
        ],
        hba: Some(vec![
            "local all all trust".into(),
            "hostssl all certuser 127.0.0.0/8 cert".into(),
            "hostnossl all plainuser 127.0.0.0/8 scram-sha-256".into(),
            "hostssl all postgres 127.0.0.0/8 scram-sha-256".into(),
        ]),
        ..Default::default()
    };
    let db = Cluster::primary("tls1", None, &opts);
    db.sql(&format!(
        "CREATE ROLE plainuser LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor; \
         CREATE ROLE certuser LOGIN IN ROLE pg_monitor"
    ));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = pw_file(d);
    let file = |name: &str, text: &str| write_file(d, name, text).display().to_string();
    let ca_file = file("ca.pem", &ca1.pem);
    let other_file = file("other.pem", &other.pem);
    let cert_file = file("client.crt", &client_crt);
    let key_file = file("client.key", &client_key);
    let pg = |id: &str, host: &str, extra: &str| {
        probe(
            id,
            host,
            db.port,
            &format!("user = \"postgres\"\npassword_file = \"{pw}\"\n{extra}"),
        )
    };
    let mut text = [
        pg(
            "full",
            "127.0.0.1",
            &format!("sslmode = \"verify-full\"\nsslrootcert = \"{ca_file}\""),
        ),
        pg(
            "full_localhost",
            "localhost",
            &format!("sslmode = \"verify-full\"\nsslrootcert = \"{ca_file}\""),
        ),
        pg(
            "full_other_ca",
            "127.0.0.1",
            &format!("sslmode = \"verify-full\"\nsslrootcert = \"{other_file}\""),
        ),
        pg(
            "full_system_roots",
            "127.0.0.1",
            "sslmode = \"verify-full\"",
        ),
        pg(
            "full_wrong_name",
            "127.0.0.2",
            &format!("sslmode = \"verify-full\"\nsslrootcert = \"{ca_file}\""),
        ),
        pg(
            "ca_wrong_name",
            "127.0.0.2",
            &format!("sslmode = \"verify-ca\"\nsslrootcert = \"{ca_file}\""),
        ),
        pg(
            "ca_other_ca",
            "127.0.0.2",
            &format!("sslmode = \"verify-ca\"\nsslrootcert = \"{other_file}\""),
        ),
        pg("require", "127.0.0.2", "sslmode = \"require\""),
        pg(
            "require_other_ca",
            "127.0.0.2",
            &format!("sslmode = \"require\"\nsslrootcert = \"{other_file}\""),
        ),
        pg("prefer_default", "127.0.0.1", ""),
        pg("disable", "127.0.0.1", "sslmode = \"disable\""),
    ]
    .concat();
    let plain = |id: &str, mode: &str| {
        probe(
            id,
            "127.0.0.1",
            db.port,
            &format!("user = \"plainuser\"\npassword_file = \"{pw}\"\nsslmode = \"{mode}\""),
        )
    };
    text.push_str(&plain("plainuser_prefer", "prefer"));
    text.push_str(&plain("plainuser_require", "require"));
    let certuser = |id: &str, extra: &str| {
        probe(
            id,
            "127.0.0.1",
            db.port,
            &format!(
                "user = \"certuser\"\nsslmode = \"verify-full\"\nsslrootcert = \"{ca_file}\"\n{extra}"
            ),
        )
    };
    text.push_str(&certuser(
        "client_cert",
        &format!("sslcert = \"{cert_file}\"\nsslkey = \"{key_file}\""),
    ));
    text.push_str(&certuser("no_client_cert", ""));
    let mut h = Harness::new(&text);

    assert_ok_with_tls(&mut h, "full", true);
    assert_ok_with_tls(&mut h, "full_localhost", true);
    assert_critical(
        &mut h,
        "full_other_ca",
        &[
            "TLS handshake failed: certificate is not trusted: it is not signed by a CA in sslrootcert",
            "(sslmode=verify-full)",
        ],
    );
    assert_critical(
        &mut h,
        "full_system_roots",
        &["certificate is not trusted", "a CA the system trusts"],
    );
    assert_critical(
        &mut h,
        "full_wrong_name",
        &[
            "TLS handshake failed: certificate is not valid for 127.0.0.2",
            "(it names 127.0.0.1, localhost)",
            "(sslmode=verify-full)",
        ],
    );
    assert_ok_with_tls(&mut h, "ca_wrong_name", true);
    assert_critical(
        &mut h,
        "ca_other_ca",
        &["certificate is not trusted", "(sslmode=verify-ca)"],
    );
    assert_ok_with_tls(&mut h, "require", true);
    // require with sslrootcert checks the chain, as libpq.
    assert_critical(
        &mut h,
        "require_other_ca",
        &["certificate is not trusted", "(sslmode=require)"],
    );
    assert_ok_with_tls(&mut h, "prefer_default", true);
    assert_critical(
        &mut h,
        "disable",
        &[
            "no pg_hba.conf entry",
            "no encryption",
            "accepts this connection only with TLS: set sslmode",
        ],
    );
    // pg_hba.conf takes plainuser only without TLS: prefer retries plain, as libpq does.
    assert_ok_with_tls(&mut h, "plainuser_prefer", false);
    assert_critical(
        &mut h,
        "plainuser_require",
        &[
            "no pg_hba.conf entry",
            "SSL encryption (the server accepts this connection only without TLS",
        ],
    );
    assert_ok_with_tls(&mut h, "client_cert", true);
    assert_critical(&mut h, "no_client_cert", &["certificate"]);
    // The session is kept: a second run of a TLS probe reuses it.
    assert_ok_with_tls(&mut h, "full", true);
}

#[test]
fn plain_server_require_fails_and_prefer_falls_back() {
    let db = Cluster::primary("plain1", None, &PrimaryOpts::default());
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let pg = |id: &str, mode: &str| {
        probe(
            id,
            "127.0.0.1",
            db.port,
            &format!("password_file = \"{pw}\"\nsslmode = \"{mode}\""),
        )
    };
    let text = [
        pg("require", "require"),
        pg("full", "verify-full"),
        pg("prefer", "prefer"),
        pg("disable", "disable"),
    ]
    .concat();
    let mut h = Harness::new(&text);
    assert_critical(
        &mut h,
        "require",
        &["the server does not offer TLS but sslmode=require requires it"],
    );
    assert_critical(
        &mut h,
        "full",
        &["the server does not offer TLS but sslmode=verify-full requires it"],
    );
    assert_ok_with_tls(&mut h, "prefer", false);
    assert_ok_with_tls(&mut h, "disable", false);
}

/// A TCP server that accepts, optionally answers the SSLRequest with `S`, then says nothing.
fn silent_server(answer_s: bool) -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = [0u8; 8];
        if s.read_exact(&mut req).is_ok() && answer_s {
            use std::io::Write;
            let _ = s.write_all(b"S");
        }
        // Hold the socket until the client gives up.
        let mut rest = [0u8; 1024];
        while matches!(s.read(&mut rest), Ok(n) if n > 0) {}
    });
    (port, t)
}

#[test]
fn a_silent_server_costs_one_connect_timeout_including_the_tls_handshake() {
    let (p1, t1) = silent_server(false);
    let (p2, t2) = silent_server(true);
    let extra = |mode: &str| format!("sslmode = \"{mode}\"\nconnect_timeout = \"1s\"");
    let text = [
        probe("no_answer", "127.0.0.1", p1, &extra("require")),
        probe("no_handshake", "127.0.0.1", p2, &extra("verify-full")),
    ]
    .concat();
    let mut h = Harness::new(&text);
    for (id, port) in [("no_answer", p1), ("no_handshake", p2)] {
        let started = Instant::now();
        assert_critical(
            &mut h,
            id,
            &[&format!(
                "timed out after 1.0s (connecting to 127.0.0.1:{port})"
            )],
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
            "{id}: took {took:?}"
        );
    }
    // The probe dropped its sockets: the servers see end of file.
    t1.join().unwrap();
    t2.join().unwrap();
}
