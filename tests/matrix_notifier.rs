//! The `matrix` notifier against a real Synapse: a page arrives in the room with the paged
//! user mentioned (pill and `m.mentions`) and the alert id; a ✅ by a user who may not
//! acknowledge changes nothing; a ✅ by the paged user acknowledges the alert (the API shows
//! who, the timeline too), and the acknowledgement is posted back to the room; a reply "ack" to
//! an older page given while lookout is down (`kill -9`) acknowledges its alert once lookout is
//! back (the sync position is kept in the bot's account data; the alert id is read back from
//! the page). No password or token appears in the log, the API or the timeline.

mod kit;
mod matrix_kit;

use kit::fake::{ALWAYS_CRITICAL, wait_alert};
use kit::{Daemon, write_config, write_file};
use matrix_kit::{Synapse, SynapseOptions};
use serde_json::Value;
use std::time::{Duration, Instant};

const BOT_PASSWORD: &str = "bot-password-for-lookout-0042";

/// Waits until an event in the room matches; panics with what arrived.
fn wait_event(
    hs: &Synapse,
    token: &str,
    room: &str,
    what: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let events = hs.messages(token, room, 30);
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {within:?}: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_check_mark_from_the_paged_user_acknowledges_and_others_cannot() {
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
    write_file(work.path(), "bot.password", &format!("{BOT_PASSWORD}\n"));
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r##"{ALWAYS_CRITICAL}
[[probe]]
id = "root2"
kind = "disk"
mounts = ["/"]
interval = "1s"
for = "0s"
warning_free = "100%"
critical_free = "100%"

[[notifier]]
id = "ops-room"
kind = "matrix"
homeserver = "{url}"
user = "lookout"
password_file = "{pw}"
room = "#ops:localhost"
mentions = ["@alice:localhost"]
"##,
            url = hs.url(),
            pw = work.path().join("bot.password").display()
        ),
    );
    let state = work.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let d = Daemon::start(&config, &state, work.path());
    let alert = wait_alert(&d, "the disk alert", Duration::from_secs(20), |a| {
        a["probe"] == "root" && a["state"] == "firing"
    });
    let id = alert["id"].as_str().unwrap().to_string();

    let page = wait_event(
        &hs,
        &owner,
        &room,
        "the page",
        Duration::from_secs(20),
        |e| e["sender"] == "@lookout:localhost" && e["content"]["lookout.alert_id"] == id.as_str(),
    );
    let c = &page["content"];
    assert!(
        c["body"].as_str().unwrap().starts_with("[CRITICAL] "),
        "{page:#}"
    );
    assert!(
        c["body"].as_str().unwrap().contains("@alice:localhost"),
        "{page:#}"
    );
    assert_eq!(c["format"], "org.matrix.custom.html");
    assert!(
        c["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<a href=\"https://matrix.to/#/@alice:localhost\">"),
        "{page:#}"
    );
    assert_eq!(c["m.mentions"]["user_ids"][0], "@alice:localhost");
    let page_id = page["event_id"].as_str().unwrap().to_string();
    let second = wait_alert(&d, "the second alert", Duration::from_secs(20), |a| {
        a["probe"] == "root2" && a["state"] == "firing"
    });
    let second_id = second["id"].as_str().unwrap().to_string();
    let second_page = wait_event(
        &hs,
        &owner,
        &room,
        "the second page",
        Duration::from_secs(20),
        |e| {
            e["sender"] == "@lookout:localhost"
                && e["content"]["lookout.alert_id"] == second_id.as_str()
        },
    );

    // Mallory may not acknowledge.
    hs.react(&mallory, &room, &page_id, "✅");
    std::thread::sleep(Duration::from_secs(3));
    let a = d
        .get("/api/v1/alerts")
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        a["state"], "firing",
        "mallory's reaction acknowledged: {a:#}"
    );
    assert!(a["acked_by"].is_null());

    // Alice's ✅ acknowledges.
    let reacted = Instant::now();
    hs.react(&alice, &room, &page_id, "✅");
    let a = wait_alert(&d, "the acknowledgement", Duration::from_secs(15), |a| {
        a["id"] == id.as_str() && a["state"] == "acknowledged"
    });
    eprintln!("acknowledged {:?} after the reaction", reacted.elapsed());
    assert_eq!(a["acked_by"], "@alice:localhost");
    // The timeline entry follows the state change by a moment: poll for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let timeline = loop {
        let timeline = serde_json::to_string(&d.get("/api/v1/timeline")).unwrap();
        if timeline.contains("@alice:localhost acknowledged") {
            break timeline;
        }
        assert!(Instant::now() < deadline, "{timeline}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The acknowledgement is posted back to the room.
    wait_event(
        &hs,
        &owner,
        &room,
        "the ack notice",
        Duration::from_secs(15),
        |e| {
            e["sender"] == "@lookout:localhost"
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("[ACK by @alice:localhost]"))
        },
    );

    // lookout crashes; while it is down, alice replies "ack" to the second page. The restarted
    // listener catches up from the sync position it saved in the bot's account data, and
    // (nothing in memory) reads the alert id back from the page itself.
    let log_before = d.log_text();
    d.kill9();
    let second_page_id = second_page["event_id"].as_str().unwrap();
    hs.send(
        &alice,
        &room,
        "m.room.message",
        &serde_json::json!({
            "msgtype": "m.text",
            "body": "> <@lookout:localhost> [CRITICAL] disk_full on root2\n\nack, looking",
            "m.relates_to": {"m.in_reply_to": {"event_id": second_page_id}},
        }),
    );
    let d = Daemon::start(&config, &state, work.path());
    let a = wait_alert(
        &d,
        "the reply acknowledgement",
        Duration::from_secs(15),
        |a| a["id"] == second_id.as_str() && a["state"] == "acknowledged",
    );
    assert_eq!(a["acked_by"], "@alice:localhost");

    // No secret anywhere.
    let log = format!("{log_before}{}", d.log_text());
    let alerts = serde_json::to_string(&d.get("/api/v1/alerts")).unwrap();
    for (what, text) in [("log", &log), ("alerts", &alerts), ("timeline", &timeline)] {
        assert!(
            !text.contains(BOT_PASSWORD),
            "the password leaked into the {what}"
        );
        assert!(
            !text.contains("syt_"),
            "an access token leaked into the {what}"
        );
    }
}
