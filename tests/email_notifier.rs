//! The email notifier against a real SMTP server (aiosmtpd): the page arrives with the right
//! subject, recipients and body; STARTTLS against a server without it fails clearly (and that
//! failure is mailed through the working channel); 4xx answers retry, 5xx answers do not.

mod kit;

use kit::fake::{ALWAYS_CRITICAL, failing, wait_alert};
use kit::smtp::Smtp;
use kit::{Daemon, write_config};
use lookout::config::notifiers::NotifierKind;
use lookout::notify::{Notification, Outcome};
use std::time::Duration;

#[test]
fn a_critical_alert_is_mailed_and_a_missing_starttls_fails_clearly() {
    let smtp = Smtp::start();
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"{ALWAYS_CRITICAL}
[[notifier]]
id = "mail"
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "lookout <lookout@example.org>"
to = ["ops@example.org", "oncall@example.org"]
timeout = "5s"

[[notifier]]
id = "mail-starttls"
kind = "email"
host = "127.0.0.1"
port = {port}
from = "lookout@example.org"
to = ["ops@example.org"]
timeout = "5s"
"#,
            port = smtp.port
        ),
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let alert = wait_alert(&d, "disk_full", Duration::from_secs(15), |a| {
        a["rule"] == "disk_full" && a["state"] == "firing"
    });
    let id = alert["id"].as_str().unwrap();
    let message = alert["message"].as_str().unwrap();

    let mail = smtp.wait_for("the page", Duration::from_secs(15), |m| {
        m["body"].as_str().unwrap_or("").contains(id)
    });
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[CRITICAL] ") && subject.ends_with(" | disk_full on root"),
        "{mail:#}"
    );
    assert_eq!(mail["mail_from"], "lookout@example.org");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["ops@example.org", "oncall@example.org"])
    );
    assert_eq!(mail["from"], "lookout <lookout@example.org>");
    assert_eq!(mail["content_type"], "text/plain");
    let body = mail["body"].as_str().unwrap();
    for want in [
        message,
        "mount=/",
        &format!("Alert id: {id}"),
        &format!("lookout ack {id}"),
    ] {
        assert!(body.contains(want), "{want:?} missing from:\n{body}");
    }

    // STARTTLS is required by default, and aiosmtpd without a TLS context does not offer it.
    let meta = wait_alert(&d, "the STARTTLS failure", Duration::from_secs(15), |a| {
        failing(a, "mail-starttls")
    });
    let why = meta["message"].as_str().unwrap();
    assert!(why.contains("does not offer STARTTLS"), "{why}");
    // That failure is mailed through the working channel only.
    smtp.wait_for("the meta-alert", Duration::from_secs(15), |m| {
        m["subject"]
            .as_str()
            .unwrap_or("")
            .contains("notifier_failing")
            && m["body"].as_str().unwrap_or("").contains("mail-starttls")
    });
    assert_eq!(
        smtp.messages()
            .iter()
            .filter(|m| m["body"].as_str().unwrap_or("").contains(id))
            .count(),
        1,
        "only the plain channel delivered the page"
    );
    d.terminate(Duration::from_secs(5));
}

fn notification() -> Notification {
    serde_json::from_value(serde_json::json!({
        "version": 1, "event": "firing", "dedup_key": "00000000000000aa:1",
        "summary": "[CRITICAL] disk_full on root: / is full",
        "at": "2024-01-01T00:00:00Z",
        "alert": {
            "id": "00000000000000aa", "rule": "disk_full", "probe": "root",
            "labels": {"mount": "/"}, "state": "firing", "severity": "critical",
            "message": "/ is full — 0 B free", "value": null, "started_at": 1704067200.0,
            "changed_at": 1704067200.0, "resolved_at": null, "acked_by": null,
            "acked_at": null, "pending_since": null, "active_streak": 1,
            "inactive_streak": 0, "sequence": 1
        }
    }))
    .unwrap()
}

fn notifier(port: u16, extra: &str) -> std::sync::Arc<dyn lookout::notify::Notifier> {
    let c: lookout::notify::email::EmailConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"l@example.org\"\nto = [\"o@example.org\"]\n{extra}"
    ))
    .unwrap();
    c.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_4xx_retries_5xx_does_not_and_a_dead_server_retries() {
    let smtp = Smtp::start();
    let n = notification();
    let mail = notifier(smtp.port, "timeout = \"5s\"");

    smtp.respond_with(Some("451 4.3.0 mailbox busy, try later"));
    match mail.send(&n).await {
        Outcome::Retryable(e) => assert!(e.contains("451") && e.contains("try later"), "{e}"),
        other => panic!("451 should be retryable: {other:?}"),
    }
    smtp.respond_with(Some("550 5.1.1 no such user"));
    match mail.send(&n).await {
        Outcome::Permanent(e) => assert!(e.contains("550") && e.contains("no such user"), "{e}"),
        other => panic!("550 should be permanent: {other:?}"),
    }
    smtp.respond_with(None);
    assert_eq!(mail.send(&n).await, Outcome::Delivered);
    let got = smtp.messages();
    assert_eq!(got.len(), 1);
    // Non-ASCII survives the trip.
    assert!(
        got[0]["body"].as_str().unwrap().contains("— 0 B free"),
        "{got:#?}"
    );

    // Nothing listening: retryable.
    let closed = notifier(kit::free_port(), "timeout = \"2s\"");
    match closed.send(&n).await {
        Outcome::Retryable(e) => assert!(e.starts_with("SMTP:"), "{e}"),
        other => panic!("a refused connection should be retryable: {other:?}"),
    }

    // A server that accepts and never speaks costs one timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hung = notifier(port, "timeout = \"1s\"");
    let started = std::time::Instant::now();
    match hung.send(&n).await {
        Outcome::Retryable(e) => assert!(e.contains("timed out"), "{e}"),
        other => panic!("a silent server should be retryable: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}
