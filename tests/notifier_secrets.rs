//! Every notifier kind configured with recognisable secrets and failing against servers and
//! scripts that echo what they were sent: no secret (nor its basic-auth encoding) reaches the
//! log, the API, the timeline, the metrics or `lookout config check`.

mod kit;

use base64::Engine;
use kit::fake::{ALWAYS_CRITICAL, Contract, Fake, failing};
use kit::smtp::Smtp;
use kit::{Daemon, write_config, write_file};
use std::time::{Duration, Instant};

const ROUTING_KEY: &str = "PDR0UT1NGK3YVALUE0000000000000AB";
const NTFY_TOKEN: &str = "NTFYT0K3NVALUE";
const NTFY_TOPIC: &str = "NTFYT0P1CVALUE";
const NTFY_USER: &str = "NTFYUS3RVALUE";
const NTFY_PASSWORD: &str = "NTFYPASSW0RDVALUE";
const SLACK_TOKEN: &str = "SL4CKT0K3NVALUE0123456789";
const MAIL_USER: &str = "MAILUS3RVALUE";
const MAIL_PASSWORD: &str = "MAILPASSW0RDVALUE";
const EXEC_SECRET: &str = "EXECS3CRETVALUE";
const MATRIX_TOKEN: &str = "MATRIXT0K3NVALUE";
const MATRIX_PASSWORD: &str = "MATRIXPASSW0RDVALUE";

/// A homeserver stand-in that answers every request with `500` and a Matrix error whose text
/// echoes the whole request (headers with the bearer token, body with the password).
fn echoing_homeserver() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let body = serde_json::json!({
                    "errcode": "M_UNKNOWN",
                    "error": String::from_utf8_lossy(&request),
                })
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

#[test]
fn no_notifier_leaks_a_secret_when_it_fails() {
    let pd = Fake::start(Contract::PagerDuty);
    let ntfy = Fake::start(Contract::Ntfy);
    let slack = Fake::start(Contract::Slack);
    for (f, status) in [(&pd, 400), (&ntfy, 500), (&slack, 500)] {
        f.respond_with(status);
        f.echo_requests();
    }
    let smtp = Smtp::start();
    let homeserver = echoing_homeserver();
    let work = tempfile::tempdir().unwrap();
    let password_file = write_file(work.path(), "mail-password", &format!("{MAIL_PASSWORD}\n"));
    let echo = write_file(
        work.path(),
        "echo.sh",
        "#!/bin/sh\ncat >/dev/null\necho \"refused key $PAGER_KEY\" >&2\nexit 1\n",
    );
    std::fs::set_permissions(&echo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r##"{ALWAYS_CRITICAL}
[[notifier]]
id = "pd"
kind = "pagerduty"
routing_key = "{ROUTING_KEY}"
url = "{pd}"
max_attempts = 1

[[notifier]]
id = "ntfy-token"
kind = "ntfy"
server = "{ntfy}"
topic = "{NTFY_TOPIC}"
token = "{NTFY_TOKEN}"
max_attempts = 2
timeout = "2s"

[[notifier]]
id = "ntfy-basic"
kind = "ntfy"
server = "{ntfy}"
topic = "{NTFY_TOPIC}"
username = "{NTFY_USER}"
password = "${{LOOKOUT_TEST_NTFY_PASSWORD}}"
max_attempts = 2
timeout = "2s"

[[notifier]]
id = "slack"
kind = "slack"
url = "{slack}/services/T000/B000/{SLACK_TOKEN}"
max_attempts = 2
timeout = "2s"

[[notifier]]
id = "mail"
kind = "email"
host = "127.0.0.1"
port = {smtp}
tls = "none"
username = "{MAIL_USER}"
password_file = "{password_file}"
from = "lookout@example.org"
to = ["ops@example.org"]
max_attempts = 1
timeout = "5s"

[[notifier]]
id = "exec"
kind = "exec"
argv = ["{echo}"]
env = {{ PAGER_KEY = "{EXEC_SECRET}" }}
max_attempts = 1

[[notifier]]
id = "matrix-token"
kind = "matrix"
homeserver = "{homeserver}"
access_token = "{MATRIX_TOKEN}"
room = "#ops:example.org"
mentions = ["@alice:example.org"]
max_attempts = 1

[[notifier]]
id = "matrix-password"
kind = "matrix"
homeserver = "{homeserver}"
user = "lookout"
password = "{MATRIX_PASSWORD}"
room = "#ops:example.org"
mentions = ["@alice:example.org"]
max_attempts = 1
"##,
            pd = pd.url(),
            ntfy = ntfy.base,
            slack = slack.base,
            smtp = smtp.port,
            password_file = password_file.display(),
            echo = echo.display(),
        ),
    );
    // SAFETY: set before the daemon starts; read only by the child processes.
    unsafe { std::env::set_var("LOOKOUT_TEST_NTFY_PASSWORD", NTFY_PASSWORD) };
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let ids = [
        "pd",
        "ntfy-token",
        "ntfy-basic",
        "slack",
        "mail",
        "exec",
        "matrix-token",
        "matrix-password",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = d.get("/api/v1/alerts");
        let list = alerts.as_array().unwrap();
        if ids.iter().all(|id| list.iter().any(|a| failing(a, id))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every notifier failed: {alerts:#}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The echoing servers did receive the secrets: the test has teeth.
    assert!(pd.all().iter().any(|r| r.body.contains(ROUTING_KEY)));
    assert!(ntfy.all().iter().any(|r| r.path.contains(NTFY_TOPIC)));
    assert!(slack.all().iter().any(|r| r.path.contains(SLACK_TOKEN)));

    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{NTFY_USER}:{NTFY_PASSWORD}"));
    let secrets = [
        ROUTING_KEY,
        NTFY_TOKEN,
        NTFY_TOPIC,
        NTFY_USER,
        NTFY_PASSWORD,
        &basic,
        SLACK_TOKEN,
        MAIL_USER,
        MAIL_PASSWORD,
        EXEC_SECRET,
        MATRIX_TOKEN,
        MATRIX_PASSWORD,
    ];
    let check = std::process::Command::new(kit::lookout_bin())
        .args(["config", "check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let seen = [
        ("log", d.log_text()),
        ("alerts", d.get("/api/v1/alerts?all=true").to_string()),
        ("timeline", d.get("/api/v1/timeline").to_string()),
        ("status", d.get("/api/v1/status").to_string()),
        ("metrics", kit::http_get(&format!("{}/metrics", d.url()))),
        (
            "config check",
            String::from_utf8_lossy(&check.stdout).into_owned()
                + &String::from_utf8_lossy(&check.stderr),
        ),
    ];
    for (what, text) in &seen {
        for s in secrets {
            assert!(!text.contains(s), "{s} leaked into the {what}:\n{text}");
        }
    }
    // The failures are still explained.
    let alerts = d.get("/api/v1/alerts");
    for a in alerts.as_array().unwrap() {
        eprintln!("{}", a["message"]);
    }
    let alerts = alerts.to_string();
    for want in [
        "HTTP 400",
        "HTTP 500",
        "refused key <secret>",
        "SMTP",
        "500 M_UNKNOWN",
    ] {
        assert!(alerts.contains(want), "{want} missing: {alerts}");
    }
    d.terminate(Duration::from_secs(5));
}
