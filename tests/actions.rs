//! The action runner through the real daemon: exec actions (shell scripts written by the test)
//! bound to a `command` probe's alert, pages at a real webhook sink, the API and the CLI.
//! Time is real: the guards are set to seconds.

mod actions_kit;
mod kit;

use actions_kit::*;
use kit::{is_event, lookout_bin};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn an_exec_action_bound_to_a_rule_runs_once_after_its_delay_and_its_post_check_resolves_the_alert()
{
    let s = Setup::new();
    let fix = s.script(
        "fix",
        &format!(
            "echo restarting app\ntouch {}\necho run >> {}",
            s.path("app-ok").display(),
            s.path("runs").display()
        ),
    );
    let d = s.start(&format!(
        r#"[[action]]
name = "restart-app"
kind = "exec"
argv = ["{}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "auto"
delay = "2s"
require_ok = []
"#,
        fix.display()
    ));
    let fired = wait_entry(
        &d,
        "alert_firing",
        "probe_status on app",
        Duration::from_secs(20),
    );
    let started = wait_entry(
        &d,
        "action_started",
        "restart-app: started exec",
        Duration::from_secs(20),
    );
    assert_eq!(started["actor"], "lookout");
    assert_eq!(started["probe"], "app");
    let waited = started["ts"].as_f64().unwrap() - fired["ts"].as_f64().unwrap();
    assert!(
        waited >= 1.9,
        "ran {waited}s after the alert fired, before its 2s delay"
    );
    let finished = wait_entry(
        &d,
        "action_finished",
        "restart-app: ok: exit 0",
        Duration::from_secs(20),
    );
    assert!(
        finished["message"]
            .as_str()
            .unwrap()
            .contains("restarting app"),
        "{finished}"
    );
    wait_entry(
        &d,
        "action_postcheck",
        "post-check passed: app reads ok",
        Duration::from_secs(20),
    );
    s.sink
        .wait_for("the alert resolved", Duration::from_secs(20), |b| {
            is_event(b, "resolved", "probe_status", None) && b["alert"]["probe"] == "app"
        });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lines(&s.path("runs")), 1, "the action ran more than once");
    assert_eq!(timeline(&d, "action_started").len(), 1);
    let list = d.get("/api/v1/actions");
    assert_eq!(list[0]["name"], "restart-app");
    assert_eq!(list[0]["kind"], "exec");
    assert_eq!(list[0]["mode"], "auto");
    assert_eq!(list[0]["runs_in_window"], 1);
    assert_eq!(list[0]["last_run"]["ok"], true);
    assert_eq!(list[0]["guards"]["cooldown"], "5m");
}

#[test]
fn a_failing_action_pages_action_failed_with_its_output_tail() {
    let s = Setup::new();
    let fix = s.script(
        "fix",
        "echo 'systemctl: Access denied: restart app.service' >&2\nexit 4",
    );
    let _d = s.start(&format!(
        r#"[[action]]
name = "restart-app"
kind = "exec"
argv = ["{}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "auto"
delay = "1s"
require_ok = []
"#,
        fix.display()
    ));
    let page = s
        .sink
        .wait_for("action_failed", Duration::from_secs(30), |b| {
            is_event(b, "firing", "action_failed", Some("critical"))
        });
    let msg = page.body["alert"]["message"].as_str().unwrap();
    assert!(msg.contains("action restart-app failed: exit 4"), "{msg}");
    assert!(msg.contains("Access denied: restart app.service"), "{msg}");
    assert_eq!(page.body["alert"]["labels"]["action"], "restart-app");
}

#[test]
fn max_runs_with_a_cooldown_then_remediation_exhausted_pages_once_and_nothing_runs_again() {
    let s = Setup::new();
    let runs = s.path("runs");
    let fix = s.script("fix", &format!("echo run >> {}", runs.display()));
    let d = s.start(&format!(
        r#"[[action]]
name = "restart-app"
kind = "exec"
argv = ["{}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "auto"
delay = "1s"
require_ok = []
cooldown = "2s"
max_runs = 2
window = "1h"
post_check_within = "2s"
"#,
        fix.display()
    ));
    let page = s
        .sink
        .wait_for("remediation_exhausted", Duration::from_secs(40), |b| {
            is_event(b, "firing", "remediation_exhausted", Some("critical"))
        });
    assert!(
        page.body["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("ran 2 times")
    );
    // The post-check failed each time: that pages too.
    s.sink
        .wait_for("action_failed (post-check)", Duration::from_secs(5), |b| {
            is_event(b, "firing", "action_failed", None)
                && b["alert"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("post-check failed")
        });
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(lines(&runs), 2, "the action ran after max_runs");
    let exhausted = s
        .sink
        .all()
        .iter()
        .filter(|r| is_event(&r.body, "firing", "remediation_exhausted", None))
        .count();
    assert_eq!(exhausted, 1, "remediation_exhausted paged more than once");
    let started: Vec<Value> = timeline(&d, "action_started");
    assert_eq!(started.len(), 2);
    let gap = started[1]["ts"].as_f64().unwrap() - started[0]["ts"].as_f64().unwrap();
    assert!(
        gap >= 1.9,
        "the second run came {gap}s after the first, within the cooldown"
    );
    wait_entry(
        &d,
        "action_skipped",
        "stopped: max_runs reached (2 runs in 1h)",
        Duration::from_secs(1),
    );
    assert_eq!(d.get("/api/v1/actions")[0]["runs_in_window"], 2);
}

#[test]
fn dry_run_runs_nothing_and_records_what_it_would_have_done() {
    let s = Setup::new();
    let fix = s.script("fix", &format!("touch {}", s.path("ran").display()));
    let d = s.start(&format!(
        r#"[[action]]
name = "restart-app"
kind = "exec"
argv = ["{}", "--now"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "dry_run"
delay = "1s"
require_ok = []
"#,
        fix.display()
    ));
    let e = wait_entry(
        &d,
        "action_proposed",
        "dry run: would run exec",
        Duration::from_secs(20),
    );
    assert!(e["message"].as_str().unwrap().contains("--now"), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("nothing ran"),
        "{e}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!s.path("ran").exists(), "a dry run ran the action");
    assert!(timeline(&d, "action_started").is_empty());
}

#[test]
fn a_precondition_not_met_waits_says_why_once_and_runs_when_it_holds() {
    let s = Setup::new();
    let fix = s.script("fix", &format!("touch {}", s.path("app-ok").display()));
    let d = s.start(&format!(
        r#"[[action]]
name = "restart-app"
kind = "exec"
argv = ["{}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "auto"
delay = "1s"
require_ok = ["db"]
require_ok_for = "3s"
"#,
        fix.display()
    ));
    let e = wait_entry(
        &d,
        "action_skipped",
        "waiting: precondition not met: db is not ok",
        Duration::from_secs(20),
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{e}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        timeline(&d, "action_started").is_empty(),
        "ran while db was down"
    );
    let said = timeline(&d, "action_skipped")
        .iter()
        .filter(|e| e["message"].as_str().unwrap().contains("db is not ok"))
        .count();
    assert_eq!(said, 1, "the reason was said more than once");
    let up = Instant::now();
    std::fs::write(s.path("db-ok"), "").unwrap();
    wait_entry(
        &d,
        "action_skipped",
        "db has been ok for only",
        Duration::from_secs(10),
    );
    wait_entry(
        &d,
        "action_started",
        "started exec",
        Duration::from_secs(20),
    );
    assert!(
        up.elapsed() >= Duration::from_secs(3),
        "ran before db was ok for 3s"
    );
    wait_entry(
        &d,
        "action_postcheck",
        "post-check passed",
        Duration::from_secs(20),
    );
}

#[test]
fn a_manual_run_goes_through_the_guards_and_force_overrides_them() {
    let s = Setup::new();
    let runs = s.path("runs");
    let fix = s.script("fix", &format!("echo run >> {}\necho done", runs.display()));
    let d = s.start(&format!(
        r#"[[action]]
name = "rotate"
kind = "exec"
argv = ["{}"]
"#,
        fix.display()
    ));
    let cli = |args: &[&str]| {
        std::process::Command::new(lookout_bin())
            .arg("--state-dir")
            .arg(&d.state_dir)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["action", "run", "rotate", "--by", "carol"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rotate: exit 0"));
    let e = wait_entry(
        &d,
        "action_started",
        "rotate: started",
        Duration::from_secs(5),
    );
    assert_eq!(e["actor"], "carol");
    // The cooldown (5m by default) refuses a second run, with the reason.
    let out = cli(&["action", "run", "rotate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cooldown"), "{err}");
    let out = cli(&["action", "run", "rotate", "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("would run exec"));
    // docs/cli.md: without `--by` and with `$USER` unset, the actor is `cli`.
    let out = std::process::Command::new(lookout_bin())
        .arg("--state-dir")
        .arg(&d.state_dir)
        .args(["action", "run", "rotate", "--force"])
        .env_remove("USER")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(lines(&runs), 2);
    let started = timeline(&d, "action_started");
    assert!(started.iter().any(|e| e["actor"] == "cli"), "{started:#?}");
    let (status, body) = post(&d, "/api/v1/actions/nope/run", json!({}));
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no action"));
}

#[test]
fn runs_in_the_window_are_rebuilt_from_the_timeline_after_a_restart() {
    let s = Setup::new();
    let runs = s.path("runs");
    // A fix that fixes nothing: one automatic run, then max_runs stops the action.
    let fix = s.script("fix", &format!("echo run >> {}", runs.display()));
    let action = format!(
        r#"[[action]]
name = "rotate"
kind = "exec"
argv = ["{}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "auto"
delay = "1s"
require_ok = []
max_runs = 1
cooldown = "1s"
post_check_within = "2s"
"#,
        fix.display()
    );
    let d = s.start(&action);
    wait_entry(
        &d,
        "action_skipped",
        "rotate: stopped: max_runs reached",
        Duration::from_secs(30),
    );
    assert_eq!(lines(&runs), 1);
    // A crash: the count of lookout's own runs comes back from the timeline.
    d.kill9();
    let d = s.start(&action);
    let listed = d.get("/api/v1/actions");
    assert_eq!(listed[0]["runs_in_window"], 1);
    // The last run comes back too: lookout's, and failed (its post-check did).
    assert_eq!(listed[0]["last_run"]["by"], "lookout", "{listed}");
    assert_eq!(listed[0]["last_run"]["ok"], false, "{listed}");
    std::thread::sleep(Duration::from_secs(2));
    let (status, body) = post(&d, "/api/v1/actions/rotate/run", json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("max_runs reached"),
        "{body}"
    );
    assert_eq!(lines(&runs), 1);
    // A forced run is the person's: it runs and is not counted, before or after a restart.
    let (status, body) = post(
        &d,
        "/api/v1/actions/rotate/run",
        json!({"force": true, "by": "carol"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(lines(&runs), 2);
    let started = wait_entry(
        &d,
        "action_started",
        "by hand: not counted in max_runs",
        Duration::from_secs(5),
    );
    assert_eq!(started["actor"], "carol");
    d.kill9();
    let d = s.start(&action);
    let listed = d.get("/api/v1/actions");
    assert_eq!(listed[0]["runs_in_window"], 1);
    assert_eq!(listed[0]["last_run"]["by"], "carol", "{listed}");
}

#[test]
fn a_pursuit_waiting_on_a_precondition_ends_when_its_alert_resolves() {
    let s = Setup::new();
    let fix = s.script("fix", &format!("echo run >> {}", s.path("runs").display()));
    let d = s.start(&format!(
        r#"[[action]]
name = "restart-app"
kind = "exec"
argv = ["{}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "auto"
delay = "1s"
require_ok = ["db"]
"#,
        fix.display()
    ));
    wait_entry(
        &d,
        "action_skipped",
        "waiting: precondition not met: db is not ok",
        Duration::from_secs(20),
    );
    std::fs::write(s.path("app-ok"), "").unwrap();
    wait_entry(
        &d,
        "action_skipped",
        "skipped: the alert resolved before the run",
        Duration::from_secs(20),
    );
    assert!(!s.path("runs").exists());
    assert_eq!(d.get("/api/v1/actions")[0]["state"], "idle");
}
