//! Escalation through the real daemon, with the seed's minutes scaled to seconds: tier 1 (a
//! Matrix room on a real Synapse + ntfy) does not acknowledge, tier 2 is paged after
//! `ack_timeout`, tier 2's PagerDuty answers 500 so the person's fallback contact is used at once
//! and `notifier_failing` goes out; lookout is SIGKILLed in the middle of a step and continues at
//! the right step with the remaining wait; a ✅ reaction by the paged Matrix user on the page
//! sent before the kill stops escalation; resolution reaches everyone paged (the Matrix room
//! too) and nobody else. And a ✅ on a grouped page acknowledges the whole group.

mod escalation_kit;
mod kit;
mod matrix_kit;

use escalation_kit::*;
use kit::fake::{Contract, Fake};
use kit::{Daemon, Sink, write_config};
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn seed_scenario_escalates_falls_back_survives_kill_and_stops_on_ack() {
    // A real Synapse: the bot, alice (paged in the room) and the room's owner.
    let OpsRoom {
        hs,
        owner,
        alice,
        room,
    } = OpsRoom::start("bot-password-for-lookout-7");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flag = dir.path().join("disk-full");
    let ntfy = Fake::start(Contract::Ntfy);
    let pd = Fake::start(Contract::PagerDuty);
    pd.respond_with(500);
    let (phone, chat, sms, carol, dave) = (
        Sink::start(),
        Sink::start(),
        Sink::start(),
        Sink::start(),
        Sink::start(),
    );
    let config = write_config(
        dir.path(),
        "lookout.toml",
        &format!(
            r##"
[api]
token = "{TOKEN}"
{probe}
[[notifier]]
id = "ntfy-alice"
kind = "ntfy"
server = "{ntfy}"
topic = "alice"
[[notifier]]
id = "phone-alice"
kind = "webhook"
url = "{phone}"
[[notifier]]
id = "ops-room"
kind = "matrix"
homeserver = "{hs}"
user = "lookout"
password = "bot-password-for-lookout-7"
room = "#ops:localhost"
mentions = ["@alice:localhost"]
[[notifier]]
id = "chat"
kind = "webhook"
url = "{chat}"
[[notifier]]
id = "pd-bob"
kind = "pagerduty"
routing_key = "R0UT1NGKEY000000000000000000000A"
url = "{pd}"
max_attempts = 2
[[notifier]]
id = "sms-bob"
kind = "webhook"
url = "{sms}"
[[notifier]]
id = "carol-hook"
kind = "webhook"
url = "{carol}"
[[notifier]]
id = "dave-hook"
kind = "webhook"
url = "{dave}"

[[person]]
id = "alice"
contacts = [{{ notifier = "ntfy-alice" }}, {{ notifier = "phone-alice", delay = "3s" }}]
[[person]]
id = "bob"
contacts = [{{ notifier = "pd-bob" }}, {{ notifier = "sms-bob", delay = "60s" }}]
[[person]]
id = "carol"
contacts = [{{ notifier = "carol-hook" }}]
[[person]]
id = "dave"
contacts = [{{ notifier = "dave-hook" }}]

[[policy]]
id = "critical"
repeat_interval = "2s"
[[policy.step]]
targets = ["alice", "ops-room"]
ack_timeout = "6s"
[[policy.step]]
targets = ["bob"]
ack_timeout = "8s"
[[policy.step]]
targets = ["carol"]
ack_timeout = "8s"
[[policy.step]]
targets = ["dave"]

[[policy]]
id = "chat-only"
[[policy.step]]
targets = ["chat"]

[[route]]
matchers = ["probe=db-disk"]
policy = "critical"
[[route]]
policy = "chat-only"
group_wait = "0s"
"##,
            probe = flag_probe(dir.path(), "db-disk", &flag),
            ntfy = ntfy.url(),
            hs = hs.url(),
            pd = pd.url(),
            phone = phone.url,
            chat = chat.url,
            sms = sms.url,
            carol = carol.url,
            dave = dave.url,
        ),
    );
    let d = Daemon::start(&config, &state, dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&flag, "").unwrap();
    let fired = Instant::now();
    let fired_wall = wall_now();

    // Tier 1 at once: alice's ntfy and the Matrix room (alice mentioned); her phone 3 s later.
    let n1 = ntfy.wait_for("tier 1 ntfy", 1, Duration::from_secs(5), |r| {
        r.header("title")
            .is_some_and(|t| t.contains("probe_status"))
    });
    let m1 = wait_bot_event(
        &hs,
        &owner,
        &room,
        "[CRITICAL] CRITICAL: /var/lib/postgresql is full | probe_status on db-disk",
        Duration::from_secs(5),
    );
    let p1 = phone.wait_for("alice's delayed phone", Duration::from_secs(8), |b| {
        firing_for(b, "probe_status")
    });
    assert!(secs(fired, n1[0].at) < 2.0, "{}", secs(fired, n1[0].at));
    let matrix_after = event_after(&m1, fired_wall);
    assert!(
        (-0.1..2.0).contains(&matrix_after),
        "matrix page {matrix_after} s after the flag"
    );
    assert_eq!(
        m1["content"]["m.mentions"]["user_ids"][0],
        "@alice:localhost"
    );
    assert!(
        m1["content"]["body"]
            .as_str()
            .unwrap()
            .contains("escalation step 1"),
        "{m1:#}"
    );
    let page_id = m1["event_id"].as_str().unwrap().to_string();
    let phone_delay = secs(n1[0].at, p1.at);
    assert!(
        (2.5..4.5).contains(&phone_delay),
        "phone after {phone_delay}"
    );

    // Tier 2 after ack_timeout (6 s): bob's PagerDuty answers 500 twice (max_attempts 2,
    // 1 s backoff), then his SMS is used at once instead of after its 60 s delay.
    let pd1 = pd.wait_for("tier 2 pagerduty", 1, Duration::from_secs(10), |r| {
        r.json["event_action"] == "trigger"
    });
    let t2 = secs(n1[0].at, pd1[0].at);
    assert!((5.5..7.5).contains(&t2), "tier 2 after {t2}");
    let s1 = sms.wait_for("bob's fallback sms", Duration::from_secs(8), |b| {
        firing_for(b, "probe_status")
    });
    let fallback = secs(pd1[0].at, s1.at);
    assert!((0.8..4.0).contains(&fallback), "fallback after {fallback}");
    // The meta-alert about the broken channel goes to the person being paged through it, by
    // his other contact ([paging] meta_route = "paged", the default), not to the chat route.
    sms.wait_for("notifier_failing", Duration::from_secs(5), |b| {
        firing_for(b, "notifier_failing") && b["alert"]["labels"]["notifier"] == "pd-bob"
    });

    // SIGKILL in the middle of step 2 (≈ 4 s into its 8 s), restart at once.
    let step2_started = pd1[0].at;
    while secs(step2_started, Instant::now()) < 4.0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    d.kill9();
    let d = Daemon::start(&config, &state, dir.path());
    let restarted = Instant::now();

    // Step 3 (carol) comes when step 2's 8 s are over, not 8 s after the restart.
    let k1 = carol.wait_for("tier 3 after the restart", Duration::from_secs(12), |b| {
        firing_for(b, "probe_status")
    });
    let t3 = secs(step2_started, k1.at);
    assert!(
        (7.3..9.8).contains(&t3),
        "step 3 came {t3} s after step 2 began"
    );
    assert!(
        secs(restarted, k1.at) < 7.0,
        "the restart must not restart the wait"
    );
    eprintln!(
        "measured: tier1 {:.2}s after the flag, phone +{phone_delay:.2}s, tier 2 +{t2:.2}s, \
         fallback +{fallback:.2}s after the first PagerDuty attempt, step 3 {t3:.2}s after step 2 \
         began ({:.2}s after the restart)",
        secs(fired, n1[0].at),
        secs(restarted, k1.at)
    );

    // Alice reacts ✅ to the Matrix page sent before the kill: the restarted listener reads the
    // alert back from the page and acknowledges; escalation stops (dave, step 4, is never paged).
    let alert = open_alert(&d, "db-disk").expect("alert open after restart");
    let id = alert["id"].as_str().unwrap().to_string();
    assert_eq!(alert["state"], "firing");
    let reacted = Instant::now();
    hs.react(&alice, &room, &page_id, "✅");
    wait_until("the ✅ acknowledgement", Duration::from_secs(5), || {
        open_alert(&d, "db-disk").is_some_and(|a| a["state"] == "acknowledged")
    });
    let ack_latency = secs(reacted, Instant::now());
    let acked = open_alert(&d, "db-disk").unwrap();
    assert_eq!(acked["id"], id.as_str());
    assert_eq!(acked["acked_by"], "@alice:localhost");
    // The paged are told who acknowledged, the room included.
    let ack_msg = wait_bot_event(
        &hs,
        &owner,
        &room,
        "[ACK by @alice:localhost] CRITICAL: /var/lib/postgresql is full | probe_status on db-disk",
        Duration::from_secs(5),
    );
    assert!(
        ack_msg["content"]["m.mentions"]["user_ids"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the ack notice wakes nobody: {ack_msg:#}"
    );
    for (name, s) in [("phone", &phone), ("sms", &sms), ("carol", &carol)] {
        s.wait_for(name, Duration::from_secs(5), |b| {
            b["event"] == "acknowledged" && b["alert"]["acked_by"] == "@alice:localhost"
        });
    }
    eprintln!(
        "measured: matrix page {matrix_after:.2}s after the flag; ✅ → acknowledged in {ack_latency:.2}s"
    );

    // Without the ack, dave (step 4) would be paged 8 s after carol: wait longer than that.
    while secs(k1.at, Instant::now()) < 9.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        dave.all().is_empty(),
        "the ack stops escalation: {:#?}",
        dave.all()
    );

    // Resolution reaches everyone paged, the Matrix room too.
    std::fs::remove_file(&flag).unwrap();
    for (name, s) in [("phone", &phone), ("sms", &sms), ("carol", &carol)] {
        s.wait_for(name, Duration::from_secs(8), |b| {
            b["event"] == "resolved" && b["alert"]["rule"] == "probe_status"
        });
    }
    ntfy.wait_for("resolved to alice's ntfy", 1, Duration::from_secs(8), |r| {
        r.header("title").is_some_and(|t| t.contains("RESOLVED"))
    });
    pd.wait_for("resolve to pagerduty", 1, Duration::from_secs(8), |r| {
        r.json["event_action"] == "resolve"
    });
    wait_bot_event(&hs, &owner, &room, "[RESOLVED] ", Duration::from_secs(8));
    std::thread::sleep(Duration::from_secs(1));

    // Exact deliveries: one trigger per target across the kill, nothing for dave; the chat
    // (not in the policy) got nothing.
    let count = |s: &Sink, event: &str| {
        s.all()
            .iter()
            .filter(|r| r.body["event"] == event && r.body["alert"]["rule"] == "probe_status")
            .count()
    };
    for (name, s) in [("phone", &phone), ("sms", &sms), ("carol", &carol)] {
        assert_eq!(count(s, "firing"), 1, "{name}: {:#?}", s.all());
        assert_eq!(count(s, "acknowledged"), 1, "{name}");
        assert_eq!(count(s, "resolved"), 1, "{name}");
    }
    assert!(
        chat.all().is_empty(),
        "the chat was never paged: {:#?}",
        chat.all()
    );
    assert!(
        dave.all().is_empty(),
        "dave was never paged: {:#?}",
        dave.all()
    );
    for (prefix, n) in [
        (
            "[CRITICAL] CRITICAL: /var/lib/postgresql is full | probe_status on db-disk",
            1,
        ),
        (
            "[ACK by @alice:localhost] CRITICAL: /var/lib/postgresql is full | probe_status",
            1,
        ),
        ("[RESOLVED] ", 1),
    ] {
        let got = bot_events(&hs, &owner, &room, prefix);
        assert_eq!(got.len(), n, "{prefix}: {got:#?}");
    }
    let bot_total = bot_events(&hs, &owner, &room, "").len();
    assert_eq!(bot_total, 3, "{:#?}", hs.messages(&owner, &room, 30));
    let ntfy_triggers = ntfy
        .matching(|r| {
            r.header("title").is_some_and(|t| {
                t.starts_with("[CRITICAL] CRITICAL: /var/lib/postgresql is full | probe_status")
            })
        })
        .len();
    assert_eq!(ntfy_triggers, 1);
    let pd_triggers = pd.matching(|r| r.json["event_action"] == "trigger").len();
    assert_eq!(pd_triggers, 2, "one page, two attempts");
    ntfy.assert_contract_kept();
    pd.assert_contract_kept();

    // The timeline tells the story, the ack with the Matrix user who did it.
    let tl = d.get("/api/v1/timeline?since=10m");
    let text = tl.to_string();
    for needle in [
        "step 1: paging alice via ntfy-alice, alice via phone-alice, ops-room",
        "step 2: paging bob via pd-bob",
        "pd-bob failed for bob; falling back to sms-bob at once",
        "step 3: paging carol via carol-hook",
        "@alice:localhost acknowledged probe_status on db-disk",
        "@alice:localhost acknowledged: escalation",
    ] {
        assert!(text.contains(needle), "timeline lacks {needle:?}: {tl:#}");
    }
    assert!(
        tl.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "alert_acknowledged" && e["actor"] == "@alice:localhost")
    );
    assert!(
        d.get("/api/v1/escalations")
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["lead"]["probe"] != "db-disk")
    );
}

#[test]
fn a_check_mark_on_a_grouped_matrix_page_acknowledges_the_whole_group() {
    let OpsRoom {
        hs,
        owner,
        alice,
        room,
    } = OpsRoom::start("bot-password-for-lookout-8");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (disk_flag, wal_flag, web_flag) = (
        dir.path().join("disk"),
        dir.path().join("wal"),
        dir.path().join("web"),
    );
    let (second, chat) = (Sink::start(), Sink::start());
    let config = write_config(
        dir.path(),
        "lookout.toml",
        &format!(
            r##"[api]
token = "{TOKEN}"
{disk}labels = {{ group = "db" }}
{wal}labels = {{ group = "db" }}
{conn}labels = {{ group = "db" }}
{web}
[[notifier]]
id = "ops-room"
kind = "matrix"
homeserver = "{hs}"
user = "lookout"
password = "bot-password-for-lookout-8"
room = "#ops:localhost"
mentions = ["@alice:localhost"]
[[notifier]]
id = "second"
kind = "webhook"
url = "{second}"
[[notifier]]
id = "chat"
kind = "webhook"
url = "{chat}"
[[policy]]
id = "db"
repeat_interval = "0s"
[[policy.step]]
targets = ["ops-room"]
ack_timeout = "10s"
[[policy.step]]
targets = ["second"]
[[policy]]
id = "chat-only"
[[policy.step]]
targets = ["chat"]
[[route]]
matchers = ["group=db"]
policy = "db"
group_by = ["group"]
[[route]]
policy = "chat-only"
group_wait = "0s"
"##,
            disk = flag_probe(dir.path(), "db-disk", &disk_flag),
            wal = flag_probe(dir.path(), "db-wal", &wal_flag),
            conn = flag_probe(dir.path(), "db-conn", &wal_flag),
            web = flag_probe(dir.path(), "web", &web_flag),
            hs = hs.url(),
            second = second.url,
            chat = chat.url,
        ),
    );
    let d = Daemon::start(&config, &state, dir.path());
    std::thread::sleep(Duration::from_millis(1500));

    // db-disk fires first: the group's page is about it. db-wal and db-conn join (no page);
    // web, on the chat-only route, goes to the chat.
    std::fs::write(&disk_flag, "").unwrap();
    let page = wait_bot_event(
        &hs,
        &owner,
        &room,
        "[CRITICAL] CRITICAL: /var/lib/postgresql is full | probe_status on db-disk",
        Duration::from_secs(5),
    );
    let paged = Instant::now();
    assert!(
        page["content"]["lookout.escalation"]
            .as_str()
            .is_some_and(|g| g.starts_with('g')),
        "the page names its group: {page:#}"
    );
    std::fs::write(&wal_flag, "").unwrap();
    std::fs::write(&web_flag, "").unwrap();
    wait_until("db-wal and db-conn firing", Duration::from_secs(5), || {
        ["db-wal", "db-conn"]
            .iter()
            .all(|p| open_alert(&d, p).is_some_and(|a| a["state"] == "firing"))
    });
    chat.wait_for("web to the chat", Duration::from_secs(5), |b| {
        b["event"] == "firing" && b["alert"]["probe"] == "web"
    });

    // The alert the page is about resolves; the group (two alerts) still fires.
    std::fs::remove_file(&disk_flag).unwrap();
    wait_until("db-disk resolved", Duration::from_secs(5), || {
        open_alert(&d, "db-disk").is_none_or(|a| a["state"] == "resolved")
    });
    assert!(
        secs(paged, Instant::now()) < 8.0,
        "the test must ack before step 2 (10 s)"
    );

    // Alice's ✅ on that page acknowledges both open alerts of the group.
    hs.react(&alice, &room, page["event_id"].as_str().unwrap(), "✅");
    wait_until("both acknowledged", Duration::from_secs(5), || {
        ["db-wal", "db-conn"].iter().all(|p| {
            open_alert(&d, p).is_some_and(|a| {
                a["state"] == "acknowledged" && a["acked_by"] == "@alice:localhost"
            })
        })
    });
    assert_eq!(
        open_alert(&d, "web").unwrap()["state"],
        "firing",
        "another group's alert is not acknowledged"
    );
    wait_bot_event(
        &hs,
        &owner,
        &room,
        "[ACK by @alice:localhost]",
        Duration::from_secs(5),
    );
    // Step 2 would page `second` 10 s after the page: escalation stopped.
    while secs(paged, Instant::now()) < 11.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(second.all().is_empty(), "{:#?}", second.all());

    // An API ack of web tells the chat, not the room (it never paged the room).
    let web_id = open_alert(&d, "web").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = post(
        &format!("{}/api/v1/alerts/{web_id}/ack", d.url()),
        Some(TOKEN),
        serde_json::json!({"by": "carol"}),
    );
    assert_eq!(status, 200, "{body}");
    chat.wait_for("web ack to the chat", Duration::from_secs(5), |b| {
        b["event"] == "acknowledged" && b["alert"]["probe"] == "web"
    });

    // Everything resolves: the room hears the group's resolution once, and nothing about web.
    std::fs::remove_file(&wal_flag).unwrap();
    std::fs::remove_file(&web_flag).unwrap();
    wait_bot_event(&hs, &owner, &room, "[RESOLVED] ", Duration::from_secs(8));
    chat.wait_for("web resolved to the chat", Duration::from_secs(8), |b| {
        b["event"] == "resolved" && b["alert"]["probe"] == "web"
    });
    std::thread::sleep(Duration::from_secs(1));
    let bodies: Vec<String> = bot_events(&hs, &owner, &room, "")
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        bodies.len(),
        3,
        "page, one ack, one resolution: {bodies:#?}"
    );
    assert!(
        bodies[0].starts_with(
            "[CRITICAL] CRITICAL: /var/lib/postgresql is full | probe_status on db-disk"
        )
    );
    assert!(bodies[1].starts_with("[ACK by @alice:localhost]"));
    assert!(bodies[2].starts_with("[RESOLVED] "));
    assert!(bodies.iter().all(|b| !b.contains(" on web")), "{bodies:#?}");
    assert!(second.all().is_empty());
    let tl = d.get("/api/v1/timeline?since=10m");
    let acks: Vec<&Value> = tl
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "alert_acknowledged" && e["actor"] == "@alice:localhost")
        .collect();
    assert_eq!(acks.len(), 2, "one entry per acknowledged alert: {acks:#?}");
}
