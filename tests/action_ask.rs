//! `mode = "ask"` through the real daemon: proposals paged at a real webhook sink, approved
//! through the API and the CLI, expiring unanswered, withdrawn when their alert resolves and
//! after a restart.

mod actions_kit;
mod kit;

use actions_kit::*;
use kit::{Daemon, is_event, lookout_bin};
use serde_json::{Value, json};
use std::time::Duration;

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
