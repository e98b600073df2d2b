//! The action runner through the real daemon: exec actions (shell scripts written by the test)
//! bound to a `command` probe's alert, pages at a real webhook sink, the API and the CLI.
//! Time is real: the guards are set to seconds.

mod kit;

use kit::{Daemon, Sink, is_event, lookout_bin, write_config, write_file};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes an executable `#!/bin/sh` script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = write_file(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A directory with a probe `app` that is ok while the file `app-ok` exists.
struct Setup {
    work: tempfile::TempDir,
    sink: Sink,
}

impl Setup {
    fn new() -> Setup {
        let work = tempfile::tempdir().unwrap();
        let d = work.path().display().to_string();
        script(
            work.path(),
            "check_app",
            &format!(
                "if [ -f {d}/app-ok ]; then echo 'APP OK - writes work'; exit 0; fi\necho 'APP CRITICAL - database connection lost'; exit 2"
            ),
        );
        script(
            work.path(),
            "check_db",
            &format!(
                "if [ -f {d}/db-ok ]; then echo 'DB OK'; exit 0; fi\necho 'DB CRITICAL - connection refused'; exit 2"
            ),
        );
        Setup {
            work,
            sink: Sink::start(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        script(self.work.path(), name, body)
    }

    /// Starts the daemon with the probes, the webhook and `action` (an `[[action]]` table).
    fn start(&self, action: &str) -> Daemon {
        let d = self.work.path().display();
        let config = write_config(
            self.work.path(),
            "lookout.toml",
            &format!(
                r#"
[[probe]]
id = "app"
kind = "command"
argv = ["{d}/check_app"]
interval = "1s"
timeout = "1s"

[[probe]]
id = "db"
kind = "command"
argv = ["{d}/check_db"]
interval = "1s"
timeout = "1s"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"

{action}
"#,
                self.sink.url
            ),
        );
        Daemon::start(&config, &self.path("state"), self.work.path())
    }
}

/// The timeline entries of `kind` (all kinds when empty).
fn timeline(d: &Daemon, kind: &str) -> Vec<Value> {
    d.get("/api/v1/timeline?since=1h")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| kind.is_empty() || e["kind"] == kind)
        .cloned()
        .collect()
}

/// Waits for a timeline entry of `kind` whose message contains `text`.
fn wait_entry(d: &Daemon, kind: &str, text: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(e) = timeline(d, kind)
            .into_iter()
            .find(|e| e["message"].as_str().unwrap_or("").contains(text))
        {
            return e;
        }
        if Instant::now() > deadline {
            let all: Vec<String> = timeline(d, "")
                .iter()
                .map(|e| format!("{} {}", e["kind"], e["message"]))
                .collect();
            panic!("no {kind} entry with {text:?} within {within:?}; timeline:\n{all:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn token(d: &Daemon) -> String {
    std::fs::read_to_string(d.state_dir.join("api-token")).unwrap()
}

/// POST JSON with the daemon's token; (status, body).
fn post(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(20)).unwrap();
        let r = c
            .post(format!("{}{path}", d.url()))
            .bearer_auth(token(d))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    })
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

/// The one proposal, once made.
fn wait_proposal(d: &Daemon) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = d
            .get("/api/v1/actions/proposals")
            .as_array()
            .unwrap()
            .first()
        {
            return p.clone();
        }
        assert!(Instant::now() < deadline, "no proposal within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

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

fn ask_action(s: &Setup, deadline: &str) -> Daemon {
    let fix = s.script(
        "fix",
        &format!(
            "touch {}\necho run >> {}",
            s.path("app-ok").display(),
            s.path("runs").display()
        ),
    );
    s.start(&format!(
        r#"[[action]]
name = "restart-app"
kind = "exec"
argv = ["{}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "ask"
delay = "1s"
require_ok = []
ask_deadline = "{deadline}"
"#,
        fix.display()
    ))
}

#[test]
fn ask_mode_pages_the_proposal_and_runs_once_approved_through_the_api() {
    let s = Setup::new();
    let d = ask_action(&s, "5m");
    let p = wait_proposal(&d);
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    let page = s
        .sink
        .wait_for("the proposal's page", Duration::from_secs(20), |b| {
            is_event(b, "firing", "action_proposal", None)
        });
    let msg = page.body["alert"]["message"].as_str().unwrap();
    assert!(msg.contains("proposes to run: exec"), "{msg}");
    assert!(
        msg.contains(&format!("lookout action approve {id}")),
        "{msg}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!s.path("runs").exists(), "it ran before approval");
    // Without the token: refused, in JSON.
    let (status, body) = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = lookout::http::client(Duration::from_secs(5))
                .unwrap()
                .post(format!("{}/api/v1/actions/proposals/{id}/approve", d.url()))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("bearer token"));
    let (status, body) = post(
        &d,
        &format!("/api/v1/actions/proposals/{id}/approve"),
        json!({"by": "alice"}),
    );
    assert_eq!(status, 200, "{body}");
    let approved = wait_entry(
        &d,
        "action_approved",
        "approved by alice",
        Duration::from_secs(5),
    );
    assert_eq!(approved["actor"], "alice");
    let started = wait_entry(
        &d,
        "action_started",
        "started exec",
        Duration::from_secs(10),
    );
    assert_eq!(started["actor"], "alice");
    wait_entry(
        &d,
        "action_postcheck",
        "post-check passed",
        Duration::from_secs(20),
    );
    s.sink
        .wait_for("the proposal resolved", Duration::from_secs(10), |b| {
            is_event(b, "resolved", "action_proposal", None)
        });
    let (status, body) = post(
        &d,
        &format!("/api/v1/actions/proposals/{id}/approve"),
        json!({}),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(lines(&s.path("runs")), 1);
}

#[test]
fn ask_mode_approved_with_the_cli_by_an_id_prefix() {
    let s = Setup::new();
    let d = ask_action(&s, "5m");
    let id = wait_proposal(&d)["id"].as_str().unwrap().to_string();
    let out = std::process::Command::new(lookout_bin())
        .arg("--state-dir")
        .arg(&d.state_dir)
        .args(["action", "approve", &id[..6], "--by", "bob"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("approved proposal {id} as bob")),
        "{stdout}"
    );
    wait_entry(
        &d,
        "action_started",
        "started exec",
        Duration::from_secs(10),
    );
    wait_entry(
        &d,
        "action_postcheck",
        "post-check passed",
        Duration::from_secs(20),
    );
    let list = std::process::Command::new(lookout_bin())
        .arg("--state-dir")
        .arg(&d.state_dir)
        .args(["action", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("restart-app"), "{text}");
    assert!(text.contains("cooldown 5m"), "{text}");
    assert!(text.contains("by bob"), "{text}");
}

#[test]
fn an_unanswered_proposal_expires_and_nothing_runs() {
    let s = Setup::new();
    let d = ask_action(&s, "3s");
    let id = wait_proposal(&d)["id"].as_str().unwrap().to_string();
    wait_entry(
        &d,
        "action_expired",
        &format!("proposal {id} expired unanswered"),
        Duration::from_secs(10),
    );
    s.sink
        .wait_for("the proposal resolved", Duration::from_secs(10), |b| {
            is_event(b, "resolved", "action_proposal", None)
        });
    assert!(!s.path("runs").exists());
    assert!(
        d.get("/api/v1/actions/proposals")
            .as_array()
            .unwrap()
            .is_empty()
    );
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
    let out = cli(&["action", "run", "rotate", "--force"]);
    assert!(out.status.success());
    assert_eq!(lines(&runs), 2);
    let (status, body) = post(&d, "/api/v1/actions/nope/run", json!({}));
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no action"));
}

#[test]
fn runs_in_the_window_are_rebuilt_from_the_timeline_after_a_restart() {
    let s = Setup::new();
    let runs = s.path("runs");
    let fix = s.script("fix", &format!("echo run >> {}", runs.display()));
    let action = format!(
        r#"[[action]]
name = "rotate"
kind = "exec"
argv = ["{}"]
max_runs = 1
cooldown = "1s"
"#,
        fix.display()
    );
    let d = s.start(&action);
    let (status, body) = post(&d, "/api/v1/actions/rotate/run", json!({"by": "carol"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    // A crash right after the run: the timeline entry is committed before the run's answer.
    d.kill9();
    let d = s.start(&action);
    assert_eq!(d.get("/api/v1/actions")[0]["runs_in_window"], 1);
    std::thread::sleep(Duration::from_secs(2));
    let (status, body) = post(&d, "/api/v1/actions/rotate/run", json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("max_runs reached"),
        "{body}"
    );
    assert_eq!(lines(&runs), 1);
}

#[test]
fn a_proposal_is_withdrawn_when_its_alert_resolves_unanswered() {
    let s = Setup::new();
    let d = ask_action(&s, "5m");
    let id = wait_proposal(&d)["id"].as_str().unwrap().to_string();
    // The app comes back by itself (someone restarted it by hand).
    std::fs::write(s.path("app-ok"), "").unwrap();
    wait_entry(
        &d,
        "action_skipped",
        &format!("proposal {id} withdrawn, the alert resolved before the run"),
        Duration::from_secs(20),
    );
    s.sink
        .wait_for("the proposal resolved", Duration::from_secs(10), |b| {
            is_event(b, "resolved", "action_proposal", None)
        });
    let (status, _) = post(
        &d,
        &format!("/api/v1/actions/proposals/{id}/approve"),
        json!({}),
    );
    assert_eq!(status, 404);
    assert!(!s.path("runs").exists());
}

#[test]
fn after_a_restart_the_old_proposal_is_withdrawn_and_the_still_firing_alert_proposed_again() {
    let s = Setup::new();
    let d = ask_action(&s, "5m");
    let first = wait_proposal(&d)["id"].as_str().unwrap().to_string();
    s.sink
        .wait_for("the first proposal's page", Duration::from_secs(10), |b| {
            is_event(b, "firing", "action_proposal", None)
                && b["alert"]["labels"]["proposal"] == first.as_str()
        });
    d.kill9();
    let d = ask_action(&s, "5m");
    s.sink
        .wait_for("the old proposal withdrawn", Duration::from_secs(20), |b| {
            is_event(b, "resolved", "action_proposal", None)
                && b["alert"]["labels"]["proposal"] == first.as_str()
        });
    let second = wait_proposal(&d)["id"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let (status, _) = post(
        &d,
        &format!("/api/v1/actions/proposals/{first}/approve"),
        json!({}),
    );
    assert_eq!(status, 404);
    let (status, body) = post(
        &d,
        &format!("/api/v1/actions/proposals/{second}/approve"),
        json!({"by": "dave"}),
    );
    assert_eq!(status, 200, "{body}");
    wait_entry(
        &d,
        "action_postcheck",
        "post-check passed",
        Duration::from_secs(20),
    );
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
