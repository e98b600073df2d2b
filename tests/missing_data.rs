//! Issue 9, item 4: missing data never resolves an alert. A real primary with a standby's slot
//! holding WAL and the standby stopped fires `pg_standby_missing` and `pg_slot`; when the
//! primary goes down too, both stay firing, marked stale with the reason, and no RESOLVED page
//! reaches the webhook receiver (a repeat page of the escalation says the evidence is stale);
//! when the primary is back, fresh evidence drives them again.

mod kit;
mod pg_common;
mod pg_kit;

use kit::{Daemon, Sink, is_event, write_config};
use pg_common::*;
use pg_kit::{Cluster, PrimaryOpts};
use serde_json::Value;
use std::time::Duration;

/// The open alert of `rule` on `db1`, from the API.
fn alert(d: &Daemon, rule: &str) -> Option<Value> {
    d.get("/api/v1/alerts")
        .as_array()?
        .iter()
        .find(|a| a["rule"] == rule && a["probe"] == "db1")
        .cloned()
}

fn timeline(d: &Daemon) -> Vec<String> {
    d.get("/api/v1/timeline")
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["message"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn resolved_pages(sink: &Sink, rule: &str) -> Vec<String> {
    sink.all()
        .iter()
        .filter(|r| is_event(&r.body, "resolved", rule, None))
        .map(|r| r.body["alert"]["message"].to_string())
        .collect()
}

#[test]
fn alerts_stay_firing_and_stale_while_the_primary_is_down() {
    let mut primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let mut standby = primary.standby("node2", "node2");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let sink = Sink::start();
    let text = format!(
        "{}{}",
        probe_toml(
            "db1",
            &primary,
            &pw,
            "1s",
            "expected_standbys = [\"node2\"]"
        ),
        webhook(&sink.url),
    );
    // pg_slot goes through an escalation that repeats every 2 s, so a repeat page is sent while
    // its evidence cannot be read: the page must say so.
    let text = format!(
        "{text}{}",
        r#"
[[route]]
matchers = ["rule=pg_slot"]
policy = "slot"
group_wait = "0s"

[[policy]]
id = "slot"
repeat_interval = "2s"
[[policy.step]]
targets = ["hook"]
ack_timeout = "2s"
"#
    );
    let config = write_config(dir.path(), "lookout.toml", &text);
    let daemon = Daemon::start(&config, &dir.path().join("state"), dir.path());
    wait_for(
        "the standby connected",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            daemon_sample(
                &daemon,
                "db1",
                "pg.standby.connected",
                &[("standby", "node2")],
            )
            .filter(|v| *v == 1.0)
        },
    );

    // The standby stops; WAL piles up behind its slot.
    standby.stop();
    primary.sql("CREATE TABLE filler AS SELECT generate_series(1, 200000) AS n");
    primary.sql("SELECT pg_switch_wal()");
    for rule in ["pg_standby_missing", "pg_slot"] {
        sink.wait_for(rule, Duration::from_secs(20), |b| {
            is_event(b, "firing", rule, None)
        });
    }
    let slot_message = alert(&daemon, "pg_slot").unwrap()["message"].clone();

    // The primary goes down: nothing about the standby or the slot can be read now.
    primary.stop();
    sink.wait_for("the primary's own alert", Duration::from_secs(10), |b| {
        is_event(b, "firing", "probe_status", None) && b["alert"]["probe"] == "db1"
    });
    // recover_after = 1 and one run a second: five runs would have resolved both before.
    std::thread::sleep(Duration::from_secs(5));
    for rule in ["pg_standby_missing", "pg_slot"] {
        assert!(
            resolved_pages(&sink, rule).is_empty(),
            "{rule} resolved while its evidence could not be read: {:?}\n{}",
            resolved_pages(&sink, rule),
            daemon.log_text()
        );
        let a = alert(&daemon, rule).unwrap_or_else(|| panic!("{rule} is no longer open"));
        assert_eq!(a["state"], "firing", "{a}");
        let reason = a["stale"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("db1 failed: ") && reason.contains("127.0.0.1"),
            "{rule}: stale reason {reason:?} in {a}"
        );
        assert!(a["stale"]["since"].as_f64().is_some(), "{a}");
        assert!(
            !a["message"]
                .as_str()
                .unwrap()
                .contains("no longer reported"),
            "{a}"
        );
    }
    let stale_repeat = sink.wait_for(
        "a repeat page of the stale pg_slot alert",
        Duration::from_secs(10),
        |b| {
            is_event(b, "firing", "pg_slot", None)
                && b["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("; evidence stale)"))
        },
    );
    assert!(
        stale_repeat.body["alert"]["stale"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("db1 failed: ")),
        "{}",
        stale_repeat.body
    );
    assert_eq!(
        alert(&daemon, "pg_slot").unwrap()["message"],
        slot_message,
        "the last known evidence stays"
    );
    // `lookout alerts` says so too.
    let out = std::process::Command::new(kit::lookout_bin())
        .args(["--api", &daemon.url(), "alerts"])
        .output()
        .expect("run lookout alerts");
    let table = String::from_utf8_lossy(&out.stdout);
    let slot_row = table
        .lines()
        .find(|l| l.contains("pg_slot on db1"))
        .unwrap_or_else(|| panic!("no pg_slot row:\n{table}"));
    assert!(
        slot_row.contains("firing (stale)")
            && slot_row.contains("(stale since ")
            && slot_row.contains("db1 failed: "),
        "{slot_row}"
    );
    let notes: Vec<String> = timeline(&daemon)
        .into_iter()
        .filter(|m| m.contains("marked stale"))
        .collect();
    assert_eq!(
        notes.len(),
        2,
        "one note per alert, not one per run: {notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|m| m.starts_with("db1: pg_slot {slot=node2} stays firing, marked stale")),
        "{notes:#?}"
    );

    // The primary is back: fresh evidence. The standby is still down, so both still fire.
    primary.start();
    sink.wait_for(
        "the primary's alert resolved",
        Duration::from_secs(15),
        |b| is_event(b, "resolved", "probe_status", None) && b["alert"]["probe"] == "db1",
    );
    wait_for(
        "the stale markers cleared",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let fresh = ["pg_standby_missing", "pg_slot"].iter().all(|r| {
                alert(&daemon, r).is_some_and(|a| a["state"] == "firing" && a["stale"].is_null())
            });
            fresh.then_some(())
        },
    );
    for rule in ["pg_standby_missing", "pg_slot"] {
        assert!(
            resolved_pages(&sink, rule).is_empty(),
            "{rule}: {:?}",
            resolved_pages(&sink, rule)
        );
    }
    assert!(
        timeline(&daemon)
            .iter()
            .any(|m| m.contains("pg_standby_missing {standby=node2} has fresh evidence again")),
        "{:#?}",
        timeline(&daemon)
    );

    // And fresh evidence resolves them: the standby comes back.
    standby.start();
    for rule in ["pg_standby_missing", "pg_slot"] {
        let r = sink.wait_for(rule, Duration::from_secs(30), |b| {
            is_event(b, "resolved", rule, None)
        });
        let msg = r.body["alert"]["message"].as_str().unwrap_or_default();
        assert!(!msg.contains("no longer reported"), "{rule}: {msg}");
    }
    drop(daemon);
}
