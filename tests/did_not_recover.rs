//! "Did not recover" (issue 11), the seed's 05-12 for real: a real PostgreSQL primary
//! (`pg_kit`), the kit app (`app_kit`: one connection, never reconnects) and lookout with a
//! postgres probe `db` and an http probe `app-write` (`POST /write`, `depends_on = ["db"]`),
//! configured as docs/alerts.md and docs/probes/http.md say, paging a real webhook sink.

mod app_kit;
mod kit;
mod pg_kit;

use app_kit::{App, AppDb};
use kit::{Daemon, Sink, is_event, write_config, write_file};
use pg_kit::{Cluster, PASSWORD, PrimaryOpts};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The configuration: `db` (postgres), `app-write` (http POST /write, depends on db) with
/// `recover_within`, a webhook notifier `hook`, and `extra` (more notifiers, routes).
fn config(
    dir: &Path,
    db: &Cluster,
    app: &App,
    sink: &Sink,
    recover_within: &str,
    extra: &str,
) -> String {
    let pw = write_file(dir, "pgpass", &format!("{PASSWORD}\n"));
    format!(
        r#"
[[probe]]
id = "db"
kind = "postgres"
host = "127.0.0.1"
port = {port}
user = "postgres"
password_file = "{pw}"
interval = "1s"
timeout = "1s"
recover_after = 1

[[probe]]
id = "app-write"
kind = "http"
url = "{app}/write"
method = "POST"
interval = "1s"
timeout = "1s"
depends_on = ["db"]
recover_within = "{recover_within}"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{hook}"
{extra}
"#,
        port = db.port,
        pw = pw.display(),
        app = app.url(),
        hook = sink.url,
    )
}

/// The last status of a probe, from `/api/v1/status`.
fn probe_status(d: &Daemon, id: &str) -> String {
    let status = d.get("/api/v1/status");
    let probes: Vec<Value> = match &status["probes"] {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m.values().cloned().collect(),
        _ => Vec::new(),
    };
    probes
        .iter()
        .find(|p| p["id"] == id)
        .map(|p| {
            p["observation"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

fn wait_status(d: &Daemon, id: &str, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while probe_status(d, id) != want {
        assert!(
            start.elapsed() < within,
            "{id} not {want} within {within:?} (is {}); log:\n{}",
            probe_status(d, id),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// The timeline's messages, in order.
fn timeline(d: &Daemon) -> Vec<String> {
    let mut rows: Vec<Value> = d.get("/api/v1/timeline").as_array().unwrap().clone();
    rows.sort_by_key(|r| r["seq"].as_i64().unwrap_or(0));
    rows.iter()
        .map(|r| r["message"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The index of the first timeline message containing all of `parts`.
fn find(lines: &[String], parts: &[&str]) -> usize {
    lines
        .iter()
        .position(|l| parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no timeline entry with {parts:?}:\n{lines:#?}"))
}

fn pages_for(sink: &Sink, probe: &str, rule: &str) -> Vec<Value> {
    sink.all()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["alert"]["probe"] == probe && b["alert"]["rule"] == rule)
        .collect()
}

#[test]
fn the_app_that_did_not_recover_after_a_db_restart_pages_did_not_recover() {
    let mut db = Cluster::primary("db", None, &PrimaryOpts::default());
    let app = App::start(&AppDb::postgres(db.port, PASSWORD));
    assert_eq!(app.write().map(|(c, _)| c), Some(200), "{}", app.log());
    let sink = Sink::start();
    // did_not_recover of app-write is routed, by rule and probe, to its own receiver.
    let oncall = Sink::start();
    let route = format!(
        r#"
[[notifier]]
id = "oncall"
kind = "webhook"
url = "{}"

[[policy]]
id = "app-recovery"
[[policy.step]]
targets = ["oncall"]

[[route]]
matchers = ["rule=did_not_recover", "probe=app-write"]
policy = "app-recovery"
"#,
        oncall.url
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "lookout.toml",
        &config(dir.path(), &db, &app, &sink, "5s", &route),
    );
    let d = Daemon::start(&cfg, dir.path(), dir.path());
    wait_status(&d, "db", "ok", Duration::from_secs(20));
    wait_status(&d, "app-write", "ok", Duration::from_secs(20));

    // The fault: PostgreSQL restarts (stop, wait, start). The app's connection breaks.
    let fault = Instant::now();
    db.stop();
    sink.wait_for("db's own page", Duration::from_secs(20), |b| {
        is_event(b, "firing", "probe_status", None) && b["alert"]["probe"] == "db"
    });
    // The app fails too (no database): its alert is suppressed, not paged.
    wait_status(&d, "app-write", "critical", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    db.start();
    let restarted = Instant::now();
    let (code, body) = app.write().expect("the app answers");
    assert_eq!(code, 503, "the app never reconnects: {body}");
    assert!(body.starts_with("database connection lost: "), "{body}");

    let page = oncall.wait_for("did_not_recover", Duration::from_secs(60), |b| {
        is_event(b, "firing", "did_not_recover", Some("critical"))
    });
    let to_page = page.at - restarted;
    let a = &page.body["alert"];
    assert_eq!(a["probe"], "app-write");
    assert_eq!(a["labels"]["dependency"], "db");
    let message = a["message"].as_str().unwrap();
    assert!(
        message.starts_with("app-write still failing ")
            && message.contains(" after db recovered at ")
            && message.contains("; app-write did not recover within 5s: "),
        "{message}"
    );
    assert!(
        to_page >= Duration::from_secs(5),
        "not before the grace: {to_page:?}"
    );
    assert!(
        pages_for(&sink, "app-write", "probe_status").is_empty(),
        "the app's own alert stays suppressed, one page tells the story: {:#?}",
        pages_for(&sink, "app-write", "probe_status")
    );
    let lines = timeline(&d);
    let recovered = find(
        &lines,
        &["db: recovered at ", "app-write has 5s to recover"],
    );
    let fired = find(
        &lines,
        &["did_not_recover on app-write {dependency=db} fired (critical): app-write still failing"],
    );
    let suppressed = find(&lines, &["probe_status on app-write", "suppressed"]);
    assert!(suppressed < recovered && recovered < fired, "{lines:#?}");

    // The remedy: restart the app (kill its pid; the supervisor starts it again).
    let old = app.kill();
    let remedy = Instant::now();
    app.wait_up(old, Duration::from_secs(30));
    assert_eq!(app.restarts(), 1);
    let resolved = oncall.wait_for("did_not_recover resolved", Duration::from_secs(30), |b| {
        is_event(b, "resolved", "did_not_recover", None)
    });
    let writable = resolved.at - remedy;
    let mut open = d.get("/api/v1/alerts");
    open.as_array_mut()
        .unwrap()
        .retain(|a| a["probe"] == "app-write");
    assert_eq!(open, serde_json::json!([]), "the app's alerts resolved too");
    assert!(
        pages_for(&sink, "app-write", "probe_status").is_empty(),
        "never paged the app's own alert"
    );
    find(&timeline(&d), &["did_not_recover on app-write", "resolved"]);
    assert!(
        pages_for(&sink, "app-write", "did_not_recover").is_empty(),
        "the route took did_not_recover to its own receiver only"
    );
    eprintln!(
        "measured: db restart took {:?}; db back → did_not_recover page {to_page:?}; \
         app kill → resolved {writable:?}; fault → resolved {:?}",
        restarted - fault,
        resolved.at - fault
    );
}

#[test]
fn an_app_that_reconnects_within_the_grace_pages_nothing() {
    let mut db = Cluster::primary("db", None, &PrimaryOpts::default());
    let app = App::start(&AppDb::postgres(db.port, PASSWORD));
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "lookout.toml",
        &config(dir.path(), &db, &app, &sink, "20s", ""),
    );
    let d = Daemon::start(&cfg, dir.path(), dir.path());
    wait_status(&d, "db", "ok", Duration::from_secs(20));
    wait_status(&d, "app-write", "ok", Duration::from_secs(20));

    // The database goes away and the app is restarted meanwhile (a box that self-recovers:
    // the new instance cannot connect yet, exits, and its supervisor keeps trying).
    db.stop();
    let old = app.kill();
    wait_status(&d, "app-write", "critical", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    db.start();
    let restarted = Instant::now();
    app.wait_up(old, Duration::from_secs(20));
    let ok = wait_status(&d, "app-write", "ok", Duration::from_secs(20));
    // Past the end of the grace: nothing more comes.
    std::thread::sleep(
        Duration::from_secs(20).saturating_sub(restarted.elapsed()) + Duration::from_secs(3),
    );
    assert!(
        pages_for(&sink, "app-write", "did_not_recover").is_empty()
            && pages_for(&sink, "app-write", "probe_status").is_empty(),
        "the app recovered by itself: no page for it; got {:#?}",
        sink.all()
            .iter()
            .map(|r| r.body["summary"].clone())
            .collect::<Vec<_>>()
    );
    let lines = timeline(&d);
    find(
        &lines,
        &["db: recovered at ", "app-write has 20s to recover"],
    );
    find(
        &lines,
        &["app-write: recovered by itself ", " after db recovered"],
    );
    eprintln!("measured: db back → app-write ok {ok:?}");
}
