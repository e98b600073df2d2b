//! `mode = "ask"` against a real Synapse: the proposal is paged to the room with what would
//! run and how to approve it; a ✅ from someone who may not acknowledge changes nothing; a ✅
//! from the paged user approves it: the action runs (actor: the Matrix user), its post-check
//! passes, and the proposal's alert resolves.

mod kit;
mod matrix_kit;

use kit::{Daemon, write_config, write_file};
use matrix_kit::{Synapse, SynapseOptions};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const BOT_PASSWORD: &str = "bot-password-for-lookout-0043";

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = write_file(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

fn wait_event(
    hs: &Synapse,
    token: &str,
    room: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = hs.messages(token, room, 30);
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within 30 s: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn timeline_has(d: &Daemon, kind: &str, text: &str) -> Option<Value> {
    d.get("/api/v1/timeline?since=1h")
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind && e["message"].as_str().unwrap_or("").contains(text))
        .cloned()
}

#[test]
fn a_check_mark_on_the_proposal_page_approves_the_run() {
    let hs = Synapse::start(SynapseOptions::default());
    hs.register("owner", "owner-password-1", true);
    hs.register("lookout", BOT_PASSWORD, false);
    hs.register("alice", "alice-password-1", false);
    hs.register("mallory", "mallory-password-1", false);
    let owner = hs.login("owner", "owner-password-1");
    let alice = hs.login("alice", "alice-password-1");
    let mallory = hs.login("mallory", "mallory-password-1");
    let room = hs.create_room(
        &owner,
        Some("ops"),
        &[
            "@lookout:localhost",
            "@alice:localhost",
            "@mallory:localhost",
        ],
    );
    hs.join(&alice, &room);
    hs.join(&mallory, &room);

    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    write_file(work.path(), "bot.password", &format!("{BOT_PASSWORD}\n"));
    let check = script(
        work.path(),
        "check_app",
        &format!(
            "if [ -f {w}/app-ok ]; then echo 'APP OK'; exit 0; fi\necho 'APP CRITICAL - database connection lost'; exit 2"
        ),
    );
    let fix = script(
        work.path(),
        "restart-app",
        &format!("touch {w}/app-ok\necho restarted"),
    );
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r##"
[[probe]]
id = "app"
kind = "command"
argv = ["{check}"]
interval = "1s"
timeout = "1s"

[[action]]
name = "restart-app"
kind = "exec"
argv = ["{fix}"]
on = {{ rule = "probe_status", probe = "app" }}
mode = "ask"
delay = "1s"
require_ok = []

[[notifier]]
id = "ops-room"
kind = "matrix"
homeserver = "{url}"
user = "lookout"
password_file = "{w}/bot.password"
room = "#ops:localhost"
mentions = ["@alice:localhost"]
"##,
            url = hs.url(),
        ),
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let page = wait_event(&hs, &owner, &room, "the proposal's page", |e| {
        e["sender"] == "@lookout:localhost"
            && e["content"]["body"]
                .as_str()
                .unwrap_or("")
                .contains("proposes to run: exec")
    });
    let body = page["content"]["body"].as_str().unwrap();
    let proposal = d.get("/api/v1/actions/proposals")[0].clone();
    let id = proposal["id"].as_str().unwrap();
    assert!(
        body.contains(&format!("lookout action approve {id}")),
        "{body}"
    );
    assert!(body.contains("react ✅ to this page"), "{body}");
    let page_id = page["event_id"].as_str().unwrap().to_string();

    hs.react(&mallory, &room, &page_id, "✅");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !work.path().join("app-ok").exists(),
        "mallory's ✅ approved the run"
    );
    assert_eq!(
        d.get("/api/v1/actions/proposals").as_array().unwrap().len(),
        1
    );

    let reacted = Instant::now();
    hs.react(&alice, &room, &page_id, "✅");
    let deadline = Instant::now() + Duration::from_secs(30);
    let approved = loop {
        if let Some(e) = timeline_has(&d, "action_approved", "approved by @alice:localhost") {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "alice's ✅ did not approve; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("approved {:?} after the reaction", reacted.elapsed());
    assert_eq!(approved["actor"], "@alice:localhost");
    let deadline = Instant::now() + Duration::from_secs(30);
    while timeline_has(&d, "action_postcheck", "post-check passed").is_none() {
        assert!(
            Instant::now() < deadline,
            "no passed post-check; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = timeline_has(&d, "action_started", "started exec").unwrap();
    assert_eq!(started["actor"], "@alice:localhost");
    wait_event(&hs, &owner, &room, "the proposal resolved", |e| {
        e["sender"] == "@lookout:localhost"
            && e["content"]["body"]
                .as_str()
                .unwrap_or("")
                .contains("RESOLVED")
            && e["content"]["body"]
                .as_str()
                .unwrap_or("")
                .contains("action_proposal")
    });
}
