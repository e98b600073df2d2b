//! The `bridge` probe's IRC connection over TLS, against a real ngIRCd (GnuTLS) serving a
//! certificate from a test CA (`tests/bridge_kit/tls.rs`); no Synapse needed:
//! 1. trusting that CA (`irc.ca_file`), two connections join over TLS and see each other's lines;
//! 2. a certificate from a CA lookout does not trust (another CA in `ca_file`, or none) fails
//!    with "TLS handshake with 127.0.0.1:PORT failed: … UnknownIssuer" within the deadline — no
//!    panic, no hang; a `ca_file` without a PEM certificate says so;
//! 3. the binary (`lookout check --once`, ring and aws-lc-rs both compiled in) shows the same
//!    message as the probe's, and joins with the right CA.

mod bridge_kit;
mod kit;
mod matrix_kit;

use bridge_kit::tls::{TestCa, make_ca};
use lookout::probe::bridge::irc::{IrcTarget, IrcTransport};
use lookout::probe::bridge::transport::{Transport, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn target(tls_port: u16, nick: &str, ca_file: Option<PathBuf>) -> IrcTarget {
    IrcTarget {
        server: "127.0.0.1".into(),
        port: tls_port,
        tls: true,
        ca_file,
        nick: nick.into(),
        channel: bridge_kit::CHANNEL.into(),
        password: None,
        connect_timeout: Duration::from_secs(5),
    }
}

fn soon(s: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(s)
}

/// ngIRCd with a plain port and a TLS port serving `good`'s server certificate.
fn ircd(dir: &Path) -> (bridge_kit::Proc, u16, TestCa, TestCa) {
    let good = make_ca(dir, "good");
    let other = make_ca(dir, "other");
    let port = bridge_kit::free_port();
    let tls_port = bridge_kit::free_port();
    let t = Instant::now();
    let proc = bridge_kit::start_ircd_with(dir, port, Some((tls_port, &good)));
    eprintln!("ngircd with TLS up in {:.1?}", t.elapsed());
    (proc, tls_port, good, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_over_tls_works_with_the_right_ca_and_fails_clearly_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (ircd, tls_port, good, other) = ircd(dir.path());
    let log = || std::fs::read_to_string(&ircd.log).unwrap_or_default();

    // 1. The right CA: both join over TLS and see each other's lines.
    let a = IrcTransport::start(target(tls_port, "tlsa", Some(good.ca_pem.clone())));
    let b = IrcTransport::start(target(tls_port, "tlsb", Some(good.ca_pem.clone())));
    let t = Instant::now();
    a.ready(soon(10))
        .await
        .unwrap_or_else(|e| panic!("a joins over TLS: {e}\n{}", log()));
    b.ready(soon(10))
        .await
        .unwrap_or_else(|e| panic!("b joins over TLS: {e}\n{}", log()));
    eprintln!("both joined over TLS in {:.1?}", t.elapsed());
    let mut rx = b.subscribe();
    a.send("hello over tls").await.unwrap();
    assert!(
        wait_for(&mut rx, "hello over tls", soon(10))
            .await
            .is_some(),
        "b sees a's line\n{}",
        log()
    );
    let mut rx = a.subscribe();
    b.send("and back").await.unwrap();
    assert!(wait_for(&mut rx, "and back", soon(10)).await.is_some());

    // 2. Certificates lookout cannot trust: a clear message within the deadline.
    let handshake = format!("TLS handshake with 127.0.0.1:{tls_port} failed: ");
    for (nick, ca) in [("tlsc", Some(other.ca_pem.clone())), ("tlsd", None)] {
        let c = IrcTransport::start(target(tls_port, nick, ca.clone()));
        let t = Instant::now();
        let err = c
            .ready(soon(4))
            .await
            .expect_err("an untrusted certificate must not join");
        let took = t.elapsed();
        eprintln!("ca_file {ca:?}: {err} (after {took:.1?})");
        assert!(err.starts_with(&handshake), "{err}");
        assert!(err.contains("UnknownIssuer"), "{err}");
        assert!(
            err.contains("irc.ca_file"),
            "the hint names the option: {err}"
        );
        assert!(
            took < Duration::from_millis(4500),
            "bounded by the deadline: {took:?}"
        );
    }
    let der = dir.path().join("ca.der");
    std::fs::write(&der, b"\x30\x82\x01\x00not pem").unwrap();
    let e = IrcTransport::start(target(tls_port, "tlse", Some(der.clone())));
    let err = e.ready(soon(3)).await.expect_err("no PEM certificate");
    assert!(err.contains("holds no PEM certificate"), "{err}");
}

/// The binary: `check --once` with the homeserver refused (so the round fails on Matrix too) shows
/// the IRC side's own result: the TLS message with the wrong CA, nothing about IRC with the right.
#[test]
fn check_once_reports_the_tls_failure_and_joins_with_the_right_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ircd, tls_port, good, other) = ircd(dir.path());
    let refused = bridge_kit::free_port();
    let check = |id: &str, ca: &Path| -> String {
        let config = kit::write_config(
            dir.path(),
            &format!("{id}.toml"),
            &format!(
                r##"
[[probe]]
id = "{id}"
kind = "bridge"
timeout = "6s"
homeserver = "http://127.0.0.1:{refused}"
user = "@lookout:localhost"
password = "pw"
room = "!abc"
[probe.irc]
server = "127.0.0.1"
port = {tls_port}
tls = true
ca_file = "{ca}"
channel = "#test"
nick = "{id}"
"##,
                ca = ca.display()
            ),
        );
        let t = Instant::now();
        let out = Command::new("timeout")
            .arg("60")
            .arg(kit::lookout_bin())
            .arg("--config")
            .arg(&config)
            .args(["check", "--once", "--json"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        let rows: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{stderr}", String::from_utf8_lossy(&out.stdout)));
        let message = rows[0]["message"].as_str().unwrap_or_default().to_string();
        eprintln!("check --once {id} in {:.1?}: {message}", t.elapsed());
        assert_eq!(rows[0]["status"], "critical", "{rows:#}");
        assert!(message.contains("Matrix: "), "{message}");
        message
    };
    let bad = check("lkbad", &other.ca_pem);
    assert!(
        bad.contains(&format!(
            "IRC: TLS handshake with 127.0.0.1:{tls_port} failed: "
        )) && bad.contains("UnknownIssuer"),
        "{bad}"
    );
    let good = check("lkgood", &good.ca_pem);
    assert!(
        !good.contains("IRC"),
        "joined over TLS, so only Matrix fails: {good}\n{}",
        std::fs::read_to_string(&ircd.log).unwrap_or_default()
    );
}
