//! The heartbeat and the write check with least-privilege grants (issue 9, items 1, 2 and 7),
//! through the real daemon and a webhook receiver, against a real primary and streaming
//! standby. The grants are read from docs/probes/postgres.md and run verbatim, so a wrong doc
//! fails here.

mod kit;
mod pg_common;
mod pg_kit;

use kit::{Daemon, Sink, is_event, write_config, write_file};
use pg_common::*;
use pg_kit::{Cluster, PrimaryOpts};
use rustix::process::Signal;
use std::time::{Duration, Instant};

/// The marker of the least-privilege recipe in docs/probes/postgres.md.
const RECIPE: &str = "least-privilege recipe: tests/postgres_grants.rs";

/// The password the documented recipe sets (`'change-me'`, run verbatim).
const DOC_PASSWORD: &str = "change-me";

/// Waits until the standby has replayed `sql` being true.
fn replicated(standby: &Cluster, what: &str, sql: &str) {
    wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (standby.sql(sql) == "t").then_some(()),
    );
}

fn is_probe_status(b: &serde_json::Value, probe: &str) -> bool {
    is_event(b, "firing", "probe_status", Some("warning")) && b["alert"]["probe"] == probe
}

#[test]
fn documented_grants_run_the_heartbeat_and_write_check_and_a_frozen_receiver_pages() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    // Exactly the documented statements, as a superuser on the primary; nothing on the standby.
    let recipe = doc_sql(RECIPE);
    eprintln!("the documented recipe:\n{recipe}");
    primary.sql(&recipe);
    // The role has nothing more: no superuser, no CREATE anywhere, only pg_monitor.
    assert_eq!(
        primary.sql(
            "SELECT rolsuper, has_schema_privilege('lookout', 'public', 'CREATE'), \
             has_database_privilege('lookout', 'postgres', 'CREATE'), \
             (SELECT string_agg(b.rolname, ',') FROM pg_auth_members m \
                JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid) \
             FROM pg_roles r WHERE rolname = 'lookout'"
        ),
        "f|f|f|pg_monitor"
    );
    replicated(
        &standby,
        "the role and table on the standby",
        "SELECT to_regclass('lookout_heartbeat') IS NOT NULL \
         AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lookout')",
    );

    let dir = tempfile::tempdir().unwrap();
    let pw = write_file(dir.path(), "pg-password", &format!("{DOC_PASSWORD}\n"));
    let pw = pw.to_str().unwrap();
    let sink = Sink::start();
    // Both probes run every 2 s (a 1 s timeout leaves too little for a first SCRAM login in a
    // debug build on a loaded 2-core machine); the standby warns at 5 s of heartbeat age.
    let text = format!(
        "{}{}{}",
        probe_toml_as(
            "db1",
            &primary,
            "lookout",
            pw,
            "2s",
            "role = \"primary\"\nexpected_standbys = [\"node2\"]\nheartbeat = true\nwrite_check = true"
        ),
        probe_toml_as(
            "db2",
            &standby,
            "lookout",
            pw,
            "2s",
            "role = \"standby\"\nheartbeat = true\nheartbeat_warning = \"5s\"\nheartbeat_critical = \"60s\""
        ),
        webhook(&sink.url)
    );
    let config = write_config(dir.path(), "lookout.toml", &text);
    let daemon = Daemon::start(&config, &dir.path().join("state"), dir.path());
    wait_for(
        "a heartbeat age from the standby",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || daemon_sample(&daemon, "db2", "pg.heartbeat_age_seconds", &[]).filter(|a| *a < 2.0),
    );
    let (status, message) = wait_for(
        "the primary's write check",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || daemon_observation(&daemon, "db1").filter(|(_, m)| m.contains("write check ok")),
    );
    eprintln!("primary ({status}):\n{message}");
    assert_eq!(status, "ok", "{message}");
    assert!(
        message.contains("heartbeat written to lookout_heartbeat"),
        "{message}"
    );
    assert!(
        !message.contains("created the heartbeat table"),
        "the documented table is used as it is: {message}"
    );
    assert!(
        message.starts_with("primary (PostgreSQL "),
        "nothing wrong: the context comes first: {message}"
    );
    assert!(daemon_sample(&daemon, "db1", "pg.write_check_seconds", &[]).is_some());
    std::thread::sleep(Duration::from_secs(3));
    let firing: Vec<String> = sink
        .all()
        .iter()
        .filter(|r| r.body["event"] == "firing")
        .map(|r| r.body["summary"].to_string())
        .collect();
    assert!(
        firing.is_empty(),
        "nothing fires while healthy: {firing:#?}"
    );

    // Freeze the WAL receiver (by PID): the heartbeat alert comes within the warning threshold
    // plus two standby runs, long before wal_sender_timeout would drop the standby.
    let receiver = standby.walreceiver_pid();
    pg_kit::signal(receiver, Signal::STOP);
    let fault = Instant::now();
    let fired = sink.wait_for("the heartbeat age alert", Duration::from_secs(30), |b| {
        is_event(b, "firing", "pg_heartbeat_age", None)
    });
    let detected = fired.at - fault;
    let missing_first = sink
        .all()
        .iter()
        .any(|r| r.at <= fired.at && is_event(&r.body, "firing", "pg_standby_missing", None));
    pg_kit::signal(receiver, Signal::CONT);
    let first = first_line(&fired.body);
    eprintln!(
        "heartbeat alert {detected:?} after the SIGSTOP; summary {}\nmessage: {}",
        fired.body["summary"], fired.body["alert"]["message"]
    );
    assert!(
        !missing_first,
        "pg_standby_missing came before the heartbeat alert"
    );
    assert!(
        detected < Duration::from_secs(12),
        "detected after {detected:?} (warning 5s + 2 × 2s runs + slack)"
    );
    assert!(
        first.starts_with("replication heartbeat is")
            && first.contains("written on the primary at"),
        "the first line names the fault: {first}"
    );
    assert!(
        fired.body["summary"]
            .as_str()
            .is_some_and(|s| s.contains("replication heartbeat is")),
        "{}",
        fired.body["summary"]
    );
    sink.wait_for(
        "the heartbeat alert to resolve",
        Duration::from_secs(30),
        |b| is_event(b, "resolved", "pg_heartbeat_age", None),
    );
    drop(daemon);
}

#[test]
fn missing_table_and_grants_are_named_first_on_the_primary_and_the_standby() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    // The recipe's role, but not its table.
    primary.sql("CREATE ROLE lookout LOGIN PASSWORD 'change-me'; GRANT pg_monitor TO lookout;");
    replicated(
        &standby,
        "the role on the standby",
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lookout')",
    );
    let dir = tempfile::tempdir().unwrap();
    let pw = write_file(dir.path(), "pg-password", &format!("{DOC_PASSWORD}\n"));
    let pw = pw.to_str().unwrap();
    let sink = Sink::start();
    let text = format!(
        "{}{}{}",
        probe_toml_as("db1", &primary, "lookout", pw, "2s", "heartbeat = true"),
        probe_toml_as("db2", &standby, "lookout", pw, "2s", "heartbeat = true"),
        webhook(&sink.url)
    );
    let config = write_config(dir.path(), "lookout.toml", &text);
    let daemon = Daemon::start(&config, &dir.path().join("state"), dir.path());

    // No table, no CREATE: the primary's page says what to run, on its first line.
    let p = sink.wait_for("the primary's warning", Duration::from_secs(20), |b| {
        is_probe_status(b, "db1")
    });
    let first = first_line(&p.body);
    eprintln!(
        "primary: {}\n{}",
        p.body["summary"], p.body["alert"]["message"]
    );
    assert_eq!(p.body["alert"]["severity"], "warning");
    assert!(
        first.starts_with(
            "heartbeat table lookout_heartbeat does not exist and role lookout cannot create it \
             (permission denied for schema public); an admin must run on the primary: \
             CREATE TABLE lookout_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL); \
             GRANT SELECT, INSERT, UPDATE ON lookout_heartbeat TO lookout;"
        ),
        "{first}"
    );
    // The standby says what it observed (first line of its page) and, once the primary's
    // probe has run in this process, the primary's failure.
    let s = sink.wait_for("the standby's warning", Duration::from_secs(20), |b| {
        is_probe_status(b, "db2")
    });
    let first = first_line(&s.body);
    eprintln!(
        "standby: {}\n{}",
        s.body["summary"], s.body["alert"]["message"]
    );
    assert!(
        first.starts_with("no heartbeat table lookout_heartbeat on this standby"),
        "{first}"
    );
    assert!(
        !first.contains("set heartbeat = true"),
        "no false advice: {first}"
    );
    let (_, sm) = wait_for(
        "the standby naming the primary's failure",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            daemon_observation(&daemon, "db2")
                .filter(|(_, m)| m.contains("the primary's probe db1"))
        },
    );
    let first = sm.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("no heartbeat table lookout_heartbeat on this standby")
            && first.contains("the primary's probe db1 has failed to write it since")
            && first.contains("permission denied for schema public"),
        "{sm}"
    );

    // The table without grants: "permission denied for table", and the grant to run.
    primary.sql("CREATE TABLE lookout_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)");
    let (_, pm) = wait_for(
        "the primary naming the missing grant",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            daemon_observation(&daemon, "db1")
                .filter(|(_, m)| m.starts_with("cannot write the heartbeat"))
        },
    );
    let (_, sm) = wait_for(
        "the standby naming the missing grant",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            daemon_observation(&daemon, "db2")
                .filter(|(_, m)| m.starts_with("cannot read the heartbeat"))
        },
    );
    eprintln!("primary:\n{pm}\nstandby:\n{sm}");
    assert!(
        pm.starts_with(
            "cannot write the heartbeat: permission denied for table lookout_heartbeat; an admin \
             must run on the primary: GRANT SELECT, INSERT, UPDATE ON lookout_heartbeat TO lookout;"
        ),
        "{pm}"
    );
    assert!(
        sm.starts_with(
            "cannot read the heartbeat: permission denied for table lookout_heartbeat; an admin \
             must run on the primary (grants replicate): GRANT SELECT ON lookout_heartbeat TO \
             lookout;"
        ),
        "{sm}"
    );
    assert!(
        sm.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("standby (PostgreSQL ")),
        "{sm}"
    );

    // The documented grant: both resolve.
    primary.sql("GRANT SELECT, INSERT, UPDATE ON lookout_heartbeat TO lookout");
    for probe in ["db1", "db2"] {
        sink.wait_for(&format!("{probe} resolved"), Duration::from_secs(20), |b| {
            is_event(b, "resolved", "probe_status", None) && b["alert"]["probe"] == probe
        });
    }
    assert!(daemon_sample(&daemon, "db2", "pg.heartbeat_age_seconds", &[]).is_some());
    drop(daemon);
}
