//! Alertmanager intake against Debian's real `prometheus-alertmanager` (0.25): alerts posted to
//! Alertmanager reach lookout through its webhook receiver, fire once, are not announced again
//! when Alertmanager resends the group, and resolve when Alertmanager ends them. Plus the
//! captured payloads posted directly, the 401/400 answers, and no leaked token.

mod intake_kit;
mod kit;

use intake_kit::{Alertmanager, request, request_typed, rfc3339};
use kit::{Daemon, Sink, write_config};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "AMINTAKET0KEN";

fn lookout(sink: &Sink, work: &std::path::Path) -> Daemon {
    let config = write_config(
        work,
        "lookout.toml",
        &format!(
            r#"
[intake]
alertmanager_token = "{TOKEN}"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"
min_severity = "info"
"#,
            sink.url
        ),
    );
    Daemon::start(&config, &work.join("state"), work)
}

fn disk_full(instance: &str, severity: &str, ends_at: Option<String>) -> Value {
    let mut a = json!({
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": severity},
        "annotations": {"summary": format!("Disk on {instance} is full"), "description": "/var has 0 bytes left"},
        "startsAt": rfc3339(-60.0),
        "generatorURL": "http://prometheus.example/graph",
    });
    if let Some(e) = ends_at {
        a["endsAt"] = json!(e);
    }
    a
}

/// Whether a webhook body is `event` of DiskFull on `instance`.
fn is(body: &Value, event: &str, instance: &str) -> bool {
    body["event"] == event
        && body["alert"]["rule"] == "DiskFull"
        && body["alert"]["probe"] == "alertmanager"
        && body["alert"]["labels"]["instance"] == instance
}

fn count(sink: &Sink, event: &str, instance: &str) -> usize {
    sink.all()
        .iter()
        .filter(|r| is(&r.body, event, instance))
        .count()
}

fn open_alert(d: &Daemon, instance: &str) -> Option<Value> {
    d.get("/api/v1/alerts")
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["probe"] == "alertmanager" && a["labels"]["instance"] == instance)
        .cloned()
}

#[test]
fn alerts_from_a_real_alertmanager_fire_once_and_resolve() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let d = lookout(&sink, work.path());
    let am = Alertmanager::start(&format!("{}/api/v1/alertmanager", d.url()), TOKEN);

    let posted = Instant::now();
    am.post_alerts(&json!([disk_full("db1", "critical", None)]));
    let page = sink.wait_for("DiskFull db1 firing", Duration::from_secs(15), |b| {
        is(b, "firing", "db1")
    });
    eprintln!("Alertmanager → lookout → webhook in {:?}", page.at - posted);
    assert_eq!(page.body["alert"]["severity"], "critical");
    assert!(
        page.body["alert"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Disk on db1 is full\n/var has 0 bytes left"),
        "{}",
        page.body
    );
    assert!(page.body["alert"]["labels"].get("alertname").is_none());
    let a = open_alert(&d, "db1").expect("the alert is open in lookout");
    assert_eq!(a["state"], "firing");
    assert_eq!(a["rule"], "DiskFull");

    // A second alert of the same group: Alertmanager resends the whole group, db1 included.
    let sent_before = am.metric("alertmanager_notifications_total");
    am.post_alerts(&json!([disk_full("db2", "warning", None)]));
    sink.wait_for("DiskFull db2 firing", Duration::from_secs(15), |b| {
        is(b, "firing", "db2")
    });
    // Prometheus re-posts firing alerts on every evaluation; that changes nothing either.
    am.post_alerts(&json!([disk_full("db1", "critical", None)]));
    std::thread::sleep(Duration::from_secs(3)); // three group_intervals
    assert!(
        am.metric("alertmanager_notifications_total") > sent_before,
        "Alertmanager sent the group again"
    );
    assert_eq!(count(&sink, "firing", "db1"), 1, "db1 announced once");
    assert_eq!(count(&sink, "firing", "db2"), 1, "db2 announced once");

    // Ended in Alertmanager ⇒ resolved in lookout.
    am.post_alerts(&json!([disk_full("db1", "critical", Some(rfc3339(0.0)))]));
    sink.wait_for("DiskFull db1 resolved", Duration::from_secs(15), |b| {
        is(b, "resolved", "db1")
    });
    assert!(
        open_alert(&d, "db1").is_none(),
        "db1 is no longer open in lookout"
    );
    assert_eq!(open_alert(&d, "db2").unwrap()["state"], "firing");
    let timeline = d.get("/api/v1/timeline").to_string();
    assert!(
        timeline.contains("DiskFull on alertmanager {instance=db1, severity=critical} fired")
            && timeline
                .contains("DiskFull on alertmanager {instance=db1, severity=critical} resolved"),
        "{timeline}"
    );
    for (what, text) in [
        ("log", d.log_text()),
        ("alerts", d.get("/api/v1/alerts?all=true").to_string()),
        ("timeline", timeline),
    ] {
        assert!(
            !text.contains(TOKEN),
            "the intake token leaked into the {what}"
        );
    }
    assert!(
        !am.log_text().contains("level=error"),
        "Alertmanager reported errors:\n{}",
        am.log_text()
    );
    d.terminate(Duration::from_secs(5));
}

#[test]
fn an_alert_that_began_an_hour_ago_shows_its_starts_at_everywhere() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let d = lookout(&sink, work.path());
    let am = Alertmanager::start(&format!("{}/api/v1/alertmanager", d.url()), TOKEN);
    let mut alert = disk_full("db3", "critical", None);
    let starts_at = rfc3339(-3600.0);
    alert["startsAt"] = json!(starts_at);
    let began = lookout::rule::alertmanager::parse_rfc3339(&starts_at).unwrap();
    am.post_alerts(&json!([alert]));
    let page = sink.wait_for("DiskFull db3 firing", Duration::from_secs(15), |b| {
        is(b, "firing", "db3")
    });
    // The page, the API, `lookout alerts` and the status page all say when it began.
    assert_eq!(
        page.body["alert"]["started_at"],
        json!(began),
        "{}",
        page.body
    );
    let a = open_alert(&d, "db3").expect("the alert is open in lookout");
    assert_eq!(a["started_at"], json!(began), "{a}");
    assert_eq!(a["since"], json!(began), "{a}");
    let out = std::process::Command::new(kit::lookout_bin())
        .args(["alerts", "--api", &d.url()])
        .current_dir(work.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("DiskFull"))
        .unwrap_or_default();
    assert!(
        row.contains(&starts_at),
        "SINCE is not {starts_at}:\n{table}"
    );
    let html = kit::http_get(&format!("{}/", d.url()));
    assert!(html.contains(&format!("{starts_at} (1h00m ago)")), "{html}");
    // It fired now, though: the timeline entry is at the time lookout paged.
    let fired = d.get("/api/v1/timeline");
    let entry = fired
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["message"].as_str().unwrap_or("").contains("instance=db3")
                && e["kind"] == "alert_firing"
        })
        .cloned()
        .unwrap_or_else(|| panic!("no alert_firing entry for db3: {fired}"));
    assert!(entry["ts"].as_f64().unwrap() > began + 3000.0, "{entry}");
    d.terminate(Duration::from_secs(5));
}

#[test]
fn captured_payloads_bad_payloads_and_tokens() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let d = lookout(&sink, work.path());
    let url = format!("{}/api/v1/alertmanager", d.url());
    let firing = include_str!("fixtures/alertmanager/firing.json");
    let resolved = include_str!("fixtures/alertmanager/resolved.json");

    for bearer in [None, Some("wrong"), Some("AMINTAKET0KE")] {
        let a = request("POST", &url, Some(firing), bearer);
        assert_eq!(a.status, 401, "{bearer:?}: {}", a.body);
        assert!(a.json()["error"].as_str().unwrap().contains("bearer token"));
    }
    assert!(
        d.get("/api/v1/alerts")
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["probe"] != "alertmanager"),
        "nothing filed without the token"
    );
    for (body, says) in [
        ("{", "not an Alertmanager webhook payload"),
        ("[]", "not an Alertmanager webhook payload"),
        (
            r#"{"version":"3","status":"firing","alerts":[]}"#,
            "version",
        ),
        (
            r#"{"version":"4","status":"firing","alerts":[{"status":"burning","labels":{}}]}"#,
            "alerts[0].status",
        ),
        (
            r#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A"}},{"status":"firing","labels":{}}]}"#,
            "alerts[1] has no labels: an alert is identified by its labels (at least alertname); nothing of this batch was filed",
        ),
    ] {
        let a = request("POST", &url, Some(body), Some(TOKEN));
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(
            a.json()["error"].as_str().unwrap().contains(says),
            "{}",
            a.body
        );
    }

    let a = request("POST", &url, Some(firing), Some(TOKEN));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"alerts": 2, "fired": 2, "resolved": 0, "changed": 0})
    );
    let again = request("POST", &url, Some(firing), Some(TOKEN));
    assert_eq!(again.json()["fired"], 0, "a resend is not a new alert");
    let a = request("POST", &url, Some(resolved), Some(TOKEN));
    assert_eq!(a.json()["resolved"], 2, "{}", a.body);
    sink.wait_for("db2 resolved", Duration::from_secs(10), |b| {
        is(b, "resolved", "db2")
    });
    assert_eq!(count(&sink, "firing", "db1"), 1);
    assert_eq!(count(&sink, "firing", "db2"), 1);
    let warned = sink
        .all()
        .into_iter()
        .find(|r| is(&r.body, "firing", "db2"))
        .unwrap();
    assert_eq!(warned.body["alert"]["severity"], "warning");
    assert!(!d.log_text().contains(TOKEN));
    d.terminate(Duration::from_secs(5));
}

/// Every error of the API answers `{"error": "…", "status": N}` with the right status, also
/// those axum itself produces (a body that is not JSON, a body over the limit, a bad query
/// parameter, an unknown path, a method the path does not take).
#[test]
fn api_errors_are_json_in_one_shape() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let d = lookout(&sink, work.path());
    let big = format!("{{\"by\": \"{}\"}}", "x".repeat(3 << 20));
    let cases: [(&str, String, Option<&str>, u16, &str); 6] = [
        (
            "POST",
            "/api/v1/alerts/0123/ack".into(),
            Some("{\"by\":"),
            400,
            "JSON",
        ),
        (
            "POST",
            "/api/v1/alerts/0123/ack".into(),
            Some(&big),
            413,
            "length limit",
        ),
        (
            "GET",
            "/api/v1/timeline?limit=-1".into(),
            None,
            400,
            "limit",
        ),
        (
            "GET",
            "/api/v1/timeline?since=yesterday".into(),
            None,
            400,
            "since",
        ),
        (
            "GET",
            "/api/v1/no-such-thing".into(),
            None,
            404,
            "/api/v1/no-such-thing",
        ),
        (
            "GET",
            "/api/v1/alertmanager".into(),
            None,
            405,
            "Method Not Allowed",
        ),
    ];
    // With the API token: a request is judged on its body only after the token is checked.
    let token = std::fs::read_to_string(work.path().join("state/api-token")).unwrap();
    for (method, path, body, status, says) in cases {
        let a = request(
            method,
            &format!("{}{path}", d.url()),
            body,
            Some(token.trim()),
        );
        assert_eq!(a.status, status, "{method} {path}: {}", a.body);
        let v = a.json();
        assert_eq!(v["status"], status, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(says)),
            "{method} {path}: {v}"
        );
        assert_eq!(v.as_object().unwrap().len(), 2, "one shape: {v}");
    }
    // Without the token the body is not even read: 401, whatever it holds.
    let ack = format!("{}/api/v1/alerts/0123/ack", d.url());
    assert_eq!(request("POST", &ack, Some("{\"by\":"), None).status, 401);
    d.terminate(Duration::from_secs(5));
}

/// The status codes docs/api.md promises for bodies: 415 without `Content-Type:
/// application/json`, 422 for JSON of the wrong shape, 400 for a body that is not JSON; the
/// Alertmanager intake reads its body as JSON whatever the `Content-Type` (as documented).
#[test]
fn body_errors_answer_the_documented_status_codes() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let d = lookout(&sink, work.path());
    let token = std::fs::read_to_string(work.path().join("state/api-token")).unwrap();
    let token = token.trim();
    let silence = r#"{"matchers":["probe=db1"],"duration":"1h"}"#;
    let ack = format!("{}/api/v1/alerts/0123/ack", d.url());
    let silences = format!("{}/api/v1/silences", d.url());
    let cases = [
        (&silences, silence, None, 415, "Content-Type"),
        (&silences, silence, Some("text/plain"), 415, "Content-Type"),
        (
            &silences,
            r#"{"matchers":"probe=db1","duration":"1h"}"#,
            Some("application/json"),
            422,
            "matchers",
        ),
        (&silences, "{", Some("application/json"), 400, "JSON"),
        (&ack, r#"{"by":"alice"}"#, None, 415, "Content-Type"),
        (&ack, r#"{"by":5}"#, Some("application/json"), 422, "by"),
        (&ack, "{", Some("application/json"), 400, "JSON"),
    ];
    for (url, body, ctype, status, says) in cases {
        let a = request_typed("POST", url, Some(body), ctype, Some(token));
        assert_eq!(a.status, status, "{url} {body} {ctype:?}: {}", a.body);
        let v = a.json();
        assert_eq!(v["status"], status, "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
    // No silence was made by any of them.
    assert_eq!(d.get("/api/v1/silences"), json!([]));
    // An empty ack body is fine (the alert does not exist: 404, not 415).
    let a = request_typed("POST", &ack, Some(""), None, Some(token));
    assert_eq!(a.status, 404, "{}", a.body);

    let firing = include_str!("fixtures/alertmanager/firing.json");
    let url = format!("{}/api/v1/alertmanager", d.url());
    for ctype in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let a = request_typed("POST", &url, Some(firing), ctype, Some(TOKEN));
        assert_eq!(a.status, 200, "{ctype:?}: {}", a.body);
        assert_eq!(a.json()["alerts"], 2, "{}", a.body);
    }
    d.terminate(Duration::from_secs(5));
}

/// `severity: page` (and the other usual names) through the real Alertmanager: mapped by the
/// built-in conventions or `[intake.alertmanager_severities]`, paged at once when critical (no
/// 30 s `group_wait`), and shown with the label it came from in `lookout alerts` and the API.
#[test]
fn usual_severity_names_map_and_show_where_they_came_from() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    // As docs/paging.md sets it up: a route with the default group_wait (0 s for critical,
    // 30 s otherwise).
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[intake]
alertmanager_token = "{TOKEN}"
[intake.alertmanager_severities]
high = "warning"
"*" = "critical"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"
[[policy]]
id = "page"
[[policy.step]]
targets = ["hook"]
[[route]]
policy = "page"
"#,
            sink.url
        ),
    );
    let state = work.path().join("state");
    let d = Daemon::start(&config, &state, work.path());
    let am = Alertmanager::start(&format!("{}/api/v1/alertmanager", d.url()), TOKEN);
    let posted = Instant::now();
    am.post_alerts(&json!([
        disk_full("db1", "page", None),
        disk_full("db2", "P1", None),
        disk_full("db3", "high", None),
        disk_full("db4", "purple", None),
    ]));
    // Critical: paged at once, not after the 30 s group_wait of a warning.
    for db in ["db1", "db2", "db4"] {
        let page = sink.wait_for(db, Duration::from_secs(10), |b| is(b, "firing", db));
        assert_eq!(page.body["alert"]["severity"], "critical", "{db}");
        assert!(page.at - posted < Duration::from_secs(10));
    }
    let shown = |db: &str| open_alert(&d, db).unwrap();
    assert_eq!(shown("db1")["severity"], "critical");
    assert_eq!(shown("db1")["severity_source"], "severity=page");
    assert_eq!(shown("db2")["severity_source"], "severity=P1");
    assert_eq!(shown("db3")["severity"], "warning", "the table wins");
    assert_eq!(shown("db3")["severity_source"], "severity=high");
    assert_eq!(
        shown("db4")["severity"],
        "critical",
        "\"*\" is the fallback"
    );
    assert!(
        shown("db4")["message"]
            .as_str()
            .unwrap()
            .contains("severity label \"purple\" is not one lookout knows: paged as critical"),
        "{}",
        shown("db4")
    );
    assert_eq!(
        count(&sink, "firing", "db3"),
        0,
        "a warning waits group_wait"
    );
    let out = std::process::Command::new(kit::lookout_bin())
        .args(["--config", config.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--api", &d.url(), "alerts"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    for want in [
        "critical (severity=page)",
        "critical (severity=P1)",
        "warning (severity=high)",
        "critical (severity=purple)",
    ] {
        assert!(table.contains(want), "{want} missing:\n{table}");
    }
    d.terminate(Duration::from_secs(5));
}
