//! Inbound heartbeats against the real daemon: a heartbeat that goes quiet alerts within
//! period + grace, the next beat resolves it, `/fail` alerts at once; unknown names are 404,
//! tokens are enforced and never leak.

mod intake_kit;
mod kit;

use intake_kit::request;
use kit::{Daemon, Sink, is_event, write_config};
use std::time::{Duration, Instant};

const TOKEN: &str = "HEARTBEATT0KEN";

fn is_beat(body: &serde_json::Value, event: &str, rule: &str, name: &str) -> bool {
    is_event(body, event, rule, None)
        && body["alert"]["probe"] == "heartbeat"
        && body["alert"]["labels"]["heartbeat"] == name
}

#[test]
fn a_quiet_heartbeat_alerts_within_period_plus_grace_and_recovers() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[heartbeat]]
name = "backup"
period = "2s"
grace = "1s"

[[heartbeat]]
name = "nightly"
period = "1h"
severity = "warning"
token = "{TOKEN}"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"
"#,
            sink.url
        ),
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let url = |path: &str| format!("{}/api/v1/heartbeat/{path}", d.url());

    // Beats every 0.5 s for longer than period + grace: nothing fires.
    let mut last = Instant::now();
    for i in 0..9 {
        let method = if i % 2 == 0 { "POST" } else { "GET" };
        let suffix = if i % 3 == 0 { "backup/0" } else { "backup" };
        let a = request(method, &url(suffix), None, None);
        assert_eq!(a.status, 200, "{}", a.body);
        last = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !sink
            .all()
            .iter()
            .any(|r| is_beat(&r.body, "firing", "heartbeat_missing", "backup")),
        "no alert while beats come"
    );

    // Quiet: the alert comes within period + grace (+2 s tolerance for a loaded machine).
    let page = sink.wait_for("heartbeat_missing", Duration::from_secs(8), |b| {
        is_beat(b, "firing", "heartbeat_missing", "backup")
    });
    let after = page.at - last;
    eprintln!("missing beat paged {after:?} after the last beat (period 2s + grace 1s)");
    assert!(
        after >= Duration::from_millis(2900) && after <= Duration::from_secs(5),
        "paged {after:?} after the last beat"
    );
    assert_eq!(page.body["alert"]["severity"], "critical");
    // It stays firing, announced once.
    std::thread::sleep(Duration::from_secs(1));
    let firings = |rule: &str| {
        sink.all()
            .iter()
            .filter(|r| is_beat(&r.body, "firing", rule, "backup"))
            .count()
    };
    assert_eq!(firings("heartbeat_missing"), 1);

    // The next beat resolves it.
    assert_eq!(request("POST", &url("backup"), None, None).status, 200);
    sink.wait_for("heartbeat_missing resolved", Duration::from_secs(3), |b| {
        is_beat(b, "resolved", "heartbeat_missing", "backup")
    });

    // /fail alerts at once; an exit code 0 resolves it; a non-zero one alerts again.
    let failed_at = Instant::now();
    assert_eq!(request("POST", &url("backup/fail"), None, None).status, 200);
    let page = sink.wait_for("heartbeat_failed", Duration::from_secs(4), |b| {
        is_beat(b, "firing", "heartbeat_failed", "backup")
    });
    assert!(page.at - failed_at < Duration::from_secs(2));
    assert_eq!(request("GET", &url("backup/0"), None, None).status, 200);
    sink.wait_for("heartbeat_failed resolved", Duration::from_secs(3), |b| {
        is_beat(b, "resolved", "heartbeat_failed", "backup")
    });
    assert_eq!(request("POST", &url("backup/3"), None, None).status, 200);
    let deadline = Instant::now() + Duration::from_secs(3);
    while firings("heartbeat_failed") < 2 {
        assert!(Instant::now() < deadline, "exit code 3 did not alert");
        std::thread::sleep(Duration::from_millis(50));
    }
    let failed = d.get("/api/v1/alerts").to_string();
    assert!(failed.contains("exit code 3"), "{failed}");

    // Unknown names, unknown actions, tokens.
    let a = request("POST", &url("nope"), None, None);
    assert_eq!(a.status, 404);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("no heartbeat named")
    );
    assert_eq!(request("POST", &url("backup/log"), None, None).status, 404);
    assert_eq!(request("POST", &url("backup/256"), None, None).status, 404);
    assert_eq!(request("POST", &url("nightly"), None, None).status, 401);
    assert_eq!(
        request("POST", &url("nightly"), None, Some("wrong")).status,
        401
    );
    assert_eq!(
        request("POST", &url("nightly/start"), None, Some(TOKEN)).status,
        200
    );
    assert_eq!(
        request("GET", &url("nightly"), None, Some(TOKEN)).status,
        200
    );

    let timeline = d.get("/api/v1/timeline").to_string();
    for want in [
        "heartbeat_missing on heartbeat {heartbeat=backup} fired (critical): heartbeat backup: no success for 3s (period 2s + grace 1s)",
        "heartbeat_missing on heartbeat {heartbeat=backup} resolved",
        "heartbeat_failed on heartbeat {heartbeat=backup} fired",
    ] {
        assert!(timeline.contains(want), "{want} not in {timeline}");
    }
    for (what, text) in [
        ("log", d.log_text()),
        ("alerts", d.get("/api/v1/alerts?all=true").to_string()),
        ("timeline", timeline),
    ] {
        assert!(
            !text.contains(TOKEN),
            "the heartbeat token leaked into the {what}"
        );
    }
    d.terminate(Duration::from_secs(5));
}
