//! "Did not recover" (issue 11), the seed's 05-12 for real: a real PostgreSQL primary
//! (`pg_kit`), the kit app (`app_kit`: one connection, never reconnects) and lookout with a
//! postgres probe `db` and an http probe `app-write` (`POST /write`, `depends_on = ["db"]`),
//! configured as docs/alerts.md and docs/probes/http.md say, paging a real webhook sink. With an
//! action bound to `did_not_recover` (docs/actions.md) the story ends as it should have on
//! 05-12: the action restarts the app, its post-check passes, everything resolves, and the
//! measured fault → app writable again time is printed; a restart that does not help stops
//! after `max_runs` and pages `remediation_exhausted` once per episode, at once, and resolves it
//! with the alert it answered.

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

/// Waits until the app takes a write; returns when it did.
fn wait_writable(app: &App, within: Duration) -> Instant {
    let start = Instant::now();
    loop {
        if app.write().map(|(c, _)| c) == Some(200) {
            return Instant::now();
        }
        assert!(
            start.elapsed() < within,
            "the app is not writable within {within:?}; log:\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_db_restart_the_app_does_not_survive_is_repaired_by_its_bound_action() {
    let mut db = Cluster::primary("db", None, &PrimaryOpts::default());
    let app = App::start(&AppDb::postgres(db.port, PASSWORD));
    wait_writable(&app, Duration::from_secs(30));
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    // As docs/actions.md writes it, with a signal to the app's pid file (its supervisor starts
    // it again, as systemd's Restart=always would) and short guards for the test.
    let action = format!(
        r#"[[action]]
name = "restart-app"
kind = "signal"
pid_file = "{}"
signal = "TERM"
on = {{ rule = "did_not_recover", probe = "app-write" }}
mode = "auto"
delay = "1s"
require_ok_for = "2s"
post_check_within = "20s"
"#,
        app.pid_file().display()
    );
    let cfg = write_config(
        dir.path(),
        "lookout.toml",
        &config(dir.path(), &db, &app, &sink, "4s", &action),
    );
    let d = Daemon::start(&cfg, dir.path(), dir.path());
    // Both probes read ok before the fault.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = d.get("/api/v1/status");
        let ok = |id: &str| {
            status["probes"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["id"] == id && p["observation"]["status"] == "ok")
            })
        };
        if ok("db") && ok("app-write") {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The fault: PostgreSQL restarts; the app keeps its dead connection.
    let fault = Instant::now();
    db.stop();
    sink.wait_for("db's page", Duration::from_secs(20), |b| {
        is_event(b, "firing", "probe_status", None) && b["alert"]["probe"] == "db"
    });
    std::thread::sleep(Duration::from_secs(2));
    db.start();
    assert_eq!(app.write().map(|(c, _)| c), Some(503), "{}", app.log());

    let page = sink.wait_for("did_not_recover", Duration::from_secs(60), |b| {
        is_event(b, "firing", "did_not_recover", Some("critical"))
    });
    assert_eq!(page.body["alert"]["probe"], "app-write");
    // The action restarts the app: writable again, the alert resolves on fresh evidence.
    let writable = wait_writable(&app, Duration::from_secs(60));
    assert!(app.restarts() >= 1, "the action restarted the app");
    sink.wait_for("did_not_recover resolved", Duration::from_secs(30), |b| {
        is_event(b, "resolved", "did_not_recover", None)
    });
    let fault_to_writable = writable - fault;
    println!("measured: fault → app writable again: {fault_to_writable:?}");
    assert!(
        sink.all()
            .iter()
            .all(|r| !(r.body["alert"]["probe"] == "app-write"
                && r.body["alert"]["rule"] == "probe_status")),
        "the app's own alert was never paged"
    );
    assert!(
        sink.all()
            .iter()
            .all(|r| r.body["alert"]["rule"] != "action_failed"),
        "the action did not fail"
    );

    // The timeline reads as the story, in order.
    let lines = timeline(&d);
    let story = [
        find(&lines, &["probe_status on app-write", "suppressed"]),
        find(
            &lines,
            &["db: recovered at ", "app-write has 4s to recover"],
        ),
        find(
            &lines,
            &["did_not_recover on app-write", "fired (critical)"],
        ),
        find(&lines, &["restart-app: started "]),
        find(&lines, &["restart-app: post-check passed"]),
        find(&lines, &["did_not_recover on app-write", "resolved"]),
    ];
    // The post-check and the regular run race to see the app ok: either may come first.
    assert!(
        story[..5].windows(2).all(|w| w[0] < w[1]) && story[3] < story[5],
        "{story:?}\n{lines:#?}"
    );
    d.terminate(Duration::from_secs(5));
}

#[test]
fn a_restart_that_does_not_help_stops_after_max_runs_and_pages_once_per_episode() {
    let mut db = Cluster::primary("db", None, &PrimaryOpts::default());
    let app = App::start(&AppDb::postgres(db.port, PASSWORD));
    wait_writable(&app, Duration::from_secs(30));
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    // A "restart" that restarts nothing (the wrong unit, say): the app never comes back.
    let action = r#"[[action]]
name = "restart-wrong"
kind = "exec"
argv = ["/bin/true"]
on = { rule = "did_not_recover", probe = "app-write" }
mode = "auto"
delay = "1s"
require_ok_for = "1s"
cooldown = "8s"
max_runs = 2
window = "1h"
post_check_within = "2s"
"#;
    let cfg = write_config(
        dir.path(),
        "lookout.toml",
        &config(dir.path(), &db, &app, &sink, "4s", action),
    );
    let d = Daemon::start(&cfg, dir.path(), dir.path());
    let outage = |db: &mut Cluster| {
        db.stop();
        std::thread::sleep(Duration::from_secs(2));
        db.start();
    };
    std::thread::sleep(Duration::from_secs(3));
    outage(&mut db);
    sink.wait_for("remediation_exhausted", Duration::from_secs(90), |b| {
        is_event(b, "firing", "remediation_exhausted", None)
    });
    // The last allowed run failed: the stop is paged at once, not after the 8 s cooldown.
    let lines = timeline(&d);
    let failed = lines
        .iter()
        .rposition(|l| l.starts_with("restart-wrong: post-check failed"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let stopped = find(&lines, &["restart-wrong: stopped: max_runs reached"]);
    assert!(failed < stopped, "{lines:#?}");
    let mut rows: Vec<Value> = d.get("/api/v1/timeline").as_array().unwrap().clone();
    rows.sort_by_key(|r| r["seq"].as_i64().unwrap_or(0));
    let at = |line: usize| rows[line]["ts"].as_f64().unwrap();
    assert!(at(stopped) - at(failed) < 4.0, "{lines:#?}");
    // The post-check looked until its whole window (2 s) had passed.
    let finished = lines[..failed]
        .iter()
        .rposition(|l| l.starts_with("restart-wrong: ok: exit 0"))
        .unwrap();
    assert!(at(failed) - at(finished) >= 1.9, "{lines:#?}");
    // No restart loop: nothing more runs, one exhaustion page.
    std::thread::sleep(Duration::from_secs(6));
    let started = |d: &Daemon| {
        timeline(d)
            .iter()
            .filter(|l| l.starts_with("restart-wrong: started "))
            .count()
    };
    assert_eq!(started(&d), 2, "{:#?}", timeline(&d));
    let pages = |kind: &str| {
        sink.all()
            .iter()
            .filter(|r| is_event(&r.body, kind, "remediation_exhausted", None))
            .count()
    };
    assert_eq!(pages("firing"), 1);
    assert_eq!(app.restarts(), 0, "the wrong restart never touched the app");
    // A person fixes the app: did_not_recover resolves, and so does the exhaustion page.
    app.kill();
    sink.wait_for(
        "remediation_exhausted resolved",
        Duration::from_secs(30),
        |b| is_event(b, "resolved", "remediation_exhausted", None),
    );
    sink.wait_for("action_failed resolved", Duration::from_secs(10), |b| {
        is_event(b, "resolved", "action_failed", None)
    });
    assert!(
        timeline(&d)
            .iter()
            .any(|l| l == "restart-wrong: done: did_not_recover on app-write resolved"),
        "{:#?}",
        timeline(&d)
    );
    let list = d.get("/api/v1/actions");
    assert!(
        list[0]["state"]
            .as_str()
            .unwrap()
            .starts_with("exhausted: no automatic run before "),
        "{list}"
    );
    // A forced manual run is the person's: it does not count against max_runs.
    let out = std::process::Command::new(kit::lookout_bin())
        .arg("--state-dir")
        .arg(&d.state_dir)
        .args(["action", "run", "restart-wrong", "--force", "--by", "sre"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        timeline(&d)
            .iter()
            .any(|l| l.contains("by hand: not counted in max_runs; 2 of 2 automatic runs")),
        "{:#?}",
        timeline(&d)
    );
    assert_eq!(d.get("/api/v1/actions")[0]["runs_in_window"], 2);
    // A second outage, a new episode: the exhausted action says so and pages again.
    std::thread::sleep(Duration::from_secs(3));
    outage(&mut db);
    sink.wait_for(
        "second remediation_exhausted",
        Duration::from_secs(90),
        |b| {
            is_event(b, "firing", "remediation_exhausted", None)
                && b.to_string().contains("already ran 2 times")
        },
    );
    assert_eq!(started(&d), 3, "two automatic runs and one forced");
    assert_eq!(pages("firing"), 2);
    d.terminate(Duration::from_secs(5));
}
