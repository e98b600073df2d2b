//! No secret reaches the log, the API, the metrics or the timeline — also when deliveries fail
//! and errors are reported.

mod kit;

use kit::{Daemon, Sink, free_port, write_config};
use std::time::{Duration, Instant};

const SECRETS: [&str; 4] = [
    "T0KENINURL",
    "HMACS3CRET",
    "H3ADERS3CRET",
    "CLOSEDP0RTT0KEN",
];

#[test]
fn secrets_stay_out_of_logs_api_metrics_and_timeline() {
    let sink = Sink::start();
    sink.respond_with(500);
    let work = tempfile::tempdir().unwrap();
    let closed = free_port();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[api]
token = "${{LOOKOUT_TEST_API_TOKEN}}"

[[probe]]
id = "root"
kind = "disk"
mounts = ["/"]
interval = "1s"
for = "0s"
critical_free = "100%"
warning_free = "100%"

[[notifier]]
id = "failing"
kind = "webhook"
url = "{url}?token=T0KENINURL"
secret = "HMACS3CRET"
headers = {{ Authorization = "Bearer H3ADERS3CRET" }}
max_attempts = 2
timeout = "2s"

[[notifier]]
id = "refused"
kind = "webhook"
url = "http://127.0.0.1:{closed}/x/CLOSEDP0RTT0KEN"
max_attempts = 2
timeout = "2s"
"#,
            url = sink.url
        ),
    );
    // SAFETY: set before the daemon starts; read only by the child process.
    unsafe { std::env::set_var("LOOKOUT_TEST_API_TOKEN", "APIT0KENVALUE") };
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    // Wait until both channels have failed for good and raised their alerts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = d.get("/api/v1/alerts").to_string();
        if alerts.matches("notifier_failing").count() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no notifier_failing alerts: {alerts}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!sink.all().is_empty(), "the failing webhook was tried");
    let mut seen = vec![
        ("log", d.log_text()),
        ("status", d.get("/api/v1/status").to_string()),
        ("alerts", d.get("/api/v1/alerts?all=true").to_string()),
        ("timeline", d.get("/api/v1/timeline").to_string()),
        ("metrics", kit::http_get(&format!("{}/metrics", d.url()))),
        ("page", kit::http_get(&format!("{}/", d.url()))),
    ];
    let (code, out, err) = {
        let o = std::process::Command::new(kit::lookout_bin())
            .args(["config", "check", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(0), "{out}{err}");
    seen.push(("config check", out + &err));
    for (what, text) in &seen {
        for s in SECRETS.iter().chain(["APIT0KENVALUE"].iter()) {
            assert!(!text.contains(s), "{s} leaked into the {what}:\n{text}");
        }
    }
    // The failures are explained, without the secrets.
    let alerts = d.get("/api/v1/alerts").to_string();
    assert!(
        alerts.contains("HTTP 500") && alerts.contains("cannot connect"),
        "{alerts}"
    );
    eprintln!(
        "{}",
        d.get("/api/v1/alerts")
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["message"].to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    d.terminate(Duration::from_secs(5));
}
