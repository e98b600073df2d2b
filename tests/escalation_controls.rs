//! Escalation controls through the real daemon: silences (CLI + API), a maintenance window,
//! `lookout oncall` across DST, an expired acknowledgement, `group_by` across a reload.

mod escalation_kit;
mod kit;
mod matrix_kit; // escalation_kit reads Matrix rooms

use escalation_kit::*;
use kit::{Daemon, Sink, lookout_bin, write_config};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn silences_from_cli_and_api_mute_paging_but_not_the_alert() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flag = dir.path().join("flag");
    let sink = Sink::start();
    let config = legacy_config(dir.path(), &flag, &sink, "");
    let d = Daemon::start(&config, &state, dir.path());
    let (ok, out) = cli(
        &config,
        &state,
        &d.url(),
        &[
            "silence",
            "add",
            "--match",
            "probe=db-disk",
            "--match",
            "rule=~probe_.*",
            "--for",
            "1h",
            "--comment",
            "replacing the disk",
            "--by",
            "alice",
        ],
    );
    assert!(ok, "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    // Without the token, no silence.
    let (status, _) = post(
        &format!("{}/api/v1/silences", d.url()),
        None,
        serde_json::json!({"matchers": ["a=b"], "duration": "1h"}),
    );
    assert_eq!(status, 401);
    let (status, body) = post(
        &format!("{}/api/v1/silences", d.url()),
        Some(TOKEN),
        serde_json::json!({"matchers": ["a=~("], "duration": "1h"}),
    );
    assert_eq!(status, 400, "{body}");
    // A mistyped operator is refused, naming the matcher and the operators, by the API and
    // the CLI alike: `probe==db1` would be a silence of the value "=db1", which matches nothing.
    let (status, body) = post(
        &format!("{}/api/v1/silences", d.url()),
        Some(TOKEN),
        serde_json::json!({"matchers": ["probe==db1"], "duration": "1h"}),
    );
    assert_eq!(status, 400, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("probe==db1") && e.contains("= != =~ !~"),
        "{body}"
    );
    let (ok, out) = cli(
        &config,
        &state,
        &d.url(),
        &["silence", "add", "--match", "probe==db1", "--for", "1h"],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("probe==db1") && out.contains("= != =~ !~"),
        "{out}"
    );
    assert_eq!(
        d.get("/api/v1/silences").as_array().unwrap().len(),
        1,
        "only the first silence"
    );

    std::fs::write(&flag, "").unwrap();
    wait_until("the alert", Duration::from_secs(5), || {
        open_alert(&d, "db-disk").is_some()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(sink.all().is_empty(), "silenced: {:#?}", sink.all());
    let shown = open_alert(&d, "db-disk").unwrap();
    assert!(
        shown["silenced_by"].as_str().unwrap().contains("by alice"),
        "{shown:#}"
    );
    let (ok, out) = cli(&config, &state, &d.url(), &["silence", "list"]);
    assert!(
        ok && out.contains(&id) && out.contains("active") && out.contains("alice"),
        "{out}"
    );

    // Expired through the API: the alert still fires, so it is paged now.
    let (status, body) = request(
        "DELETE",
        &format!("{}/api/v1/silences/{id}?by=bob", d.url()),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    sink.wait_for("the page after the silence", Duration::from_secs(5), |b| {
        firing_for(b, "probe_status")
    });
    let (status, _) = request(
        "DELETE",
        &format!("{}/api/v1/silences/{id}", d.url()),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 409, "already expired");
    let tl = d.get("/api/v1/timeline?since=10m");
    let has = |kind: &str, actor: &str| {
        tl.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == kind && e["actor"] == actor)
    };
    assert!(has("silence_added", "alice"), "{tl:#}");
    assert!(has("silence_expired", "bob"), "{tl:#}");
    assert!(tl.to_string().contains("not paged: silence"), "{tl:#}");

    // A silence survives a restart.
    let (ok, out) = cli(
        &config,
        &state,
        &d.url(),
        &["silence", "add", "--match", "probe=other", "--for", "2h"],
    );
    assert!(ok, "{out}");
    let second = out.split_whitespace().nth(1).unwrap().to_string();
    d.kill9();
    let d = Daemon::start(&config, &state, dir.path());
    let list = d.get("/api/v1/silences");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == second.as_str() && s["active"] == true),
        "{list:#}"
    );
}

#[test]
fn a_maintenance_window_holds_pages_until_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flag = dir.path().join("flag");
    let sink = Sink::start();
    let fmt = |t: jiff::Timestamp| {
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let now = jiff::Timestamp::now();
    let start = fmt(now - jiff::SignedDuration::from_secs(60));
    let end = fmt(now + jiff::SignedDuration::from_secs(6));
    let config = legacy_config(
        dir.path(),
        &flag,
        &sink,
        &format!(
            "[[maintenance]]\nname = \"disk swap\"\nmatchers = [\"probe=db-disk\"]\nstart = \"{start}\"\nend = \"{end}\"\n"
        ),
    );
    std::fs::write(&flag, "").unwrap();
    let d = Daemon::start(&config, &state, dir.path());
    wait_until("the alert", Duration::from_secs(5), || {
        open_alert(&d, "db-disk").is_some()
    });
    assert!(sink.all().is_empty(), "in maintenance: {:#?}", sink.all());
    // A restart inside the window still pages when it closes (after the store committed).
    std::thread::sleep(Duration::from_millis(300));
    d.kill9();
    let d = Daemon::start(&config, &state, dir.path());
    let paged = sink.wait_for(
        "the page when the window closes",
        Duration::from_secs(10),
        |b| firing_for(b, "probe_status"),
    );
    let closes =
        std::time::SystemTime::UNIX_EPOCH + Duration::from_secs((now.as_second() + 6) as u64);
    let late = std::time::SystemTime::now()
        .duration_since(closes)
        .map(|d| d.as_secs_f64())
        .unwrap_or(-1.0);
    assert!(late < 2.0, "paged {late} s after the window closed");
    let _ = paged;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sink.all().len(), 1, "{:#?}", sink.all());
    let tl = d.get("/api/v1/timeline?since=10m").to_string();
    for needle in [
        "maintenance_started",
        "maintenance window disk swap opened",
        "not paged: maintenance window disk swap",
        "maintenance_ended",
    ] {
        assert!(tl.contains(needle), "timeline lacks {needle}: {tl}");
    }
}

#[test]
fn oncall_shows_who_is_on_call_across_dst() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "lookout.toml",
        r#"
[[notifier]]
id = "a"
kind = "webhook"
url = "http://127.0.0.1:9/a"
[[notifier]]
id = "b"
kind = "webhook"
url = "http://127.0.0.1:9/b"
[[person]]
id = "alice"
contacts = [{ notifier = "a" }]
[[person]]
id = "bob"
contacts = [{ notifier = "b" }]
[[schedule]]
id = "ops"
time_zone = "Europe/Berlin"
layers = [{ rotation = ["alice", "bob"], start = "2026-10-20T09:00", every = "1d" }]
overrides = [{ person = "bob", start = "2026-10-26T12:00", end = "2026-10-26T13:00" }]
"#,
    );
    let run = |args: &[&str]| {
        let out = Command::new(lookout_bin())
            .arg("--config")
            .arg(&config)
            .arg("oncall")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // DST ends 2026-10-25: the 09:00 handoff is 08:00Z that day, not 07:00Z.
    assert!(run(&["--at", "2026-10-25T07:30:00Z"]).contains("alice"));
    let out = run(&["--at", "2026-10-25T08:00:00Z", "--schedule", "ops"]);
    assert!(
        out.contains("bob") && out.contains("2026-10-26 09:00 CET"),
        "{out}"
    );
    // Local time in the schedule's zone; an override.
    assert!(run(&["--at", "2026-10-26T12:30"]).contains("bob"));
    let j: Value = serde_json::from_str(&run(&["--at", "2026-10-26T11:00", "--json"])).unwrap();
    assert_eq!(j[0]["on_call"], "alice");
    let out = Command::new(lookout_bin())
        .arg("--config")
        .arg(&config)
        .args(["oncall", "--schedule", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A grouped page in Matrix stands for its group: a ✅ acknowledges every open alert of the
/// group (even after the alert the page was about resolved), the room hears one "[ACK by …]"
/// and one "[RESOLVED]" for the group, and nothing about an alert whose policy never paged it.
#[test]
fn an_expired_ack_of_a_firing_alert_pages_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flag = dir.path().join("flag");
    let sink = Sink::start();
    let config = legacy_config(
        dir.path(),
        &flag,
        &sink,
        "[[policy]]\nid = \"p\"\nack_expiry = \"3s\"\n[[policy.step]]\ntargets = [\"hook\"]\nack_timeout = \"60s\"\n[[route]]\npolicy = \"p\"\n",
    );
    std::fs::write(&flag, "").unwrap();
    let d = Daemon::start(&config, &state, dir.path());
    sink.wait_for("the first page", Duration::from_secs(5), |b| {
        firing_for(b, "probe_status")
    });
    let id = open_alert(&d, "db-disk").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out) = cli(&config, &state, &d.url(), &["ack", &id, "--by", "alice"]);
    assert!(ok, "{out}");
    let acked = Instant::now();
    let again = sink.wait_for(
        "the page after the ack expired",
        Duration::from_secs(8),
        |b| firing_for(b, "probe_status") && b["dedup_key"].as_str().unwrap().contains(":e1:"),
    );
    let after = secs(acked, again.at);
    assert!(
        (2.5..4.5).contains(&after),
        "paged again {after} s after the ack"
    );
    let a = open_alert(&d, "db-disk").unwrap();
    assert_eq!(a["state"], "firing", "{a:#}");
    // It can be acknowledged again.
    let (ok, out) = cli(&config, &state, &d.url(), &["ack", &id, "--by", "bob"]);
    assert!(ok, "{out}");
    assert!(
        d.get("/api/v1/timeline?since=10m")
            .to_string()
            .contains("the acknowledgement expired after 3s")
    );
}

#[test]
fn group_by_pages_once_and_a_reload_keeps_the_escalation_going() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flag = dir.path().join("flag");
    let (first, second) = (Sink::start(), Sink::start());
    let write = |ack_timeout: &str, step2: &str| {
        write_config(
            dir.path(),
            "lookout.toml",
            &format!(
                r#"[api]
token = "{TOKEN}"
{a}labels = {{ group = "db" }}
{b}labels = {{ group = "db" }}
[[notifier]]
id = "first"
kind = "webhook"
url = "{first}"
[[notifier]]
id = "second"
kind = "webhook"
url = "{second}"
[[policy]]
id = "p"
repeat_interval = "0s"
[[policy.step]]
targets = ["first"]
ack_timeout = "{ack_timeout}"
[[policy.step]]
targets = ["{step2}"]
[[route]]
policy = "p"
group_by = ["group"]
"#,
                a = flag_probe(dir.path(), "db-disk", &flag),
                b = flag_probe(dir.path(), "db-wal", &flag),
                first = first.url,
                second = second.url,
            ),
        )
    };
    let config = write("60s", "first");
    let d = Daemon::start(&config, &state, dir.path());
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(&flag, "").unwrap();
    first.wait_for("the group's page", Duration::from_secs(5), |b| {
        b["event"] == "firing"
    });
    wait_until("both alerts", Duration::from_secs(5), || {
        d.get("/api/v1/alerts").as_array().unwrap().len() >= 2
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        first.all().len(),
        1,
        "two alerts, one page: {:#?}",
        first.all()
    );
    let esc = d.get("/api/v1/escalations");
    assert_eq!(esc.as_array().unwrap().len(), 1, "{esc:#}");
    assert_eq!(esc[0]["alerts"].as_array().unwrap().len(), 2, "{esc:#}");

    // Reload: step 1 now waits 2 s and step 2 pages `second`; the running escalation follows.
    write("2s", "second");
    d.signal(rustix::process::Signal::HUP);
    second.wait_for(
        "step 2 under the reloaded policy",
        Duration::from_secs(6),
        |b| b["event"] == "firing",
    );
    assert_eq!(first.all().len(), 1, "{:#?}", first.all());

    // Resolution: both alerts must resolve before the group tells the paged, once each.
    std::fs::remove_file(&flag).unwrap();
    for s in [&first, &second] {
        s.wait_for("resolved", Duration::from_secs(6), |b| {
            b["event"] == "resolved"
        });
    }
    std::thread::sleep(Duration::from_millis(1500));
    for s in [&first, &second] {
        let resolved = s
            .all()
            .iter()
            .filter(|r| r.body["event"] == "resolved")
            .count();
        assert_eq!(resolved, 1);
    }
    assert!(d.get("/api/v1/escalations").as_array().unwrap().is_empty());
}
