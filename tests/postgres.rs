//! The postgres probe against real clusters (issue 4, scenarios 1, 5 and 6): a primary and a
//! streaming standby built by `pg_kit` in temp dirs on free loopback ports, run as the
//! `postgres` user, driven through the library (the daemon's code path without the daemon).

mod kit;
mod pg_common;
mod pg_kit;

use kit::write_config;
use lookout::alert::AlertState;
use lookout::model::{Severity, Status};
use pg_common::*;
use pg_kit::{Cluster, PrimaryOpts};
use rustix::process::Signal;
use std::time::{Duration, Instant};

#[test]
fn scenario_1_healthy_primary_and_standby() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let text = format!(
        "{}{}",
        probe_toml(
            "db1",
            &primary,
            &pw,
            "1s",
            "expected_standbys = [\"node2\"]\nheartbeat = true\nwrite_check = true"
        ),
        probe_toml("db2", &standby, &pw, "1s", "heartbeat = true")
    );
    let mut h = Harness::new(&text);
    let mut ages = Vec::new();
    let mut last = None;
    for _ in 0..6 {
        let (p, _, _) = h.run("db1");
        let (s, _, _) = h.run("db2");
        assert_eq!(p.status, Status::Ok, "primary: {}", p.message);
        if let Some(a) = sample(&s, "pg.heartbeat_age_seconds", &[]) {
            ages.push(a);
        }
        last = Some((p, s));
        std::thread::sleep(Duration::from_secs(1));
    }
    let (p, s) = last.unwrap();
    eprintln!(
        "primary:\n{}\n\nstandby:\n{}\nheartbeat ages {ages:?}",
        p.message, s.message
    );
    assert_eq!(s.status, Status::Ok, "standby: {}", s.message);
    for words in [
        "primary (PostgreSQL 15",
        "standby node2 (127.0.0.1 via slot node2): streaming, async",
        "slot node2 (physical): active, wal_status reserved, retains",
        "write check ok",
        "heartbeat written",
    ] {
        assert!(
            p.message.contains(words),
            "{words:?} not in:\n{}",
            p.message
        );
    }
    assert!(
        p.message.contains("WAL directory:") && p.message.contains(" on /"),
        "{}",
        p.message
    );
    for words in [
        "standby (PostgreSQL 15",
        "WAL receiver streaming from 127.0.0.1 via slot node2",
        "heartbeat from the primary is",
    ] {
        assert!(
            s.message.contains(words),
            "{words:?} not in:\n{}",
            s.message
        );
    }
    assert_eq!(
        sample(&p, "pg.slot.active", &[("slot", "node2")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&p, "pg.standby.connected", &[("standby", "node2")]),
        Some(1.0)
    );
    assert!(sample(&p, "pg.wal.dir_bytes", &[]).is_some_and(|v| v > 0.0));
    // Heartbeat age ≈ the interval: written every second, read a moment later.
    assert!(ages.len() >= 4, "heartbeat ages {ages:?}");
    assert!(
        ages.iter().skip(1).all(|a| (0.0..2.5).contains(a)),
        "heartbeat age should stay about one interval: {ages:?}"
    );
    let open: Vec<String> = h
        .engine
        .alerts()
        .filter(|a| a.state != AlertState::Resolved)
        .map(|a| format!("{} {} {}", a.probe, a.rule, a.message))
        .collect();
    assert!(open.is_empty(), "no alerts on a healthy pair: {open:#?}");

    // `lookout check --once` prints the same lines. A fresh process logs in anew (SCRAM in a
    // debug build) while other tests load this 2-core machine: give it 5 s, not the 1 s the
    // runs above need with their sessions already open.
    let cfg = write_config(
        dir.path(),
        "check.toml",
        &text
            .replace("interval = \"1s\"", "interval = \"5s\"")
            .replace("timeout = \"1s\"", "timeout = \"5s\""),
    );
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg(kit::lookout_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["check", "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check --once: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for words in [
        "slot node2 (physical): active, wal_status reserved, retains",
        "standby node2",
        "heartbeat from the primary is",
    ] {
        assert!(
            stdout.contains(words),
            "{words:?} not in check output:\n{stdout}"
        );
    }
}

#[test]
fn scenario_5_frozen_primary_costs_one_timeout_then_recovers() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let text = probe_toml("db1", &primary, &pw, "3s", "");
    let limit = Duration::from_secs(3) + Duration::from_secs(1);

    // A: the postmaster alone is stopped: a new session cannot even start.
    let mut h = Harness::new(&text);
    let postmaster = primary.pid();
    pg_kit::signal(postmaster, Signal::STOP);
    let (obs, _, took) = h.run("db1");
    pg_kit::signal(postmaster, Signal::CONT);
    eprintln!("postmaster stopped: {:?} after {took:?}", obs.message);
    assert!(took < limit, "the run took {took:?}");
    assert_eq!(obs.status, Status::Critical);
    assert!(
        obs.message.contains("timed out after")
            && obs.message.contains("(connecting to 127.0.0.1:"),
        "{}",
        obs.message
    );
    let (obs, _, _) = h.run("db1");
    assert_eq!(
        obs.status,
        Status::Ok,
        "recovers after SIGCONT: {}",
        obs.message
    );

    // B: the whole server frozen (postmaster and backends) under an open session.
    let frozen: Vec<i32> = std::iter::once(postmaster)
        .chain(primary.children())
        .collect();
    for p in &frozen {
        pg_kit::signal(*p, Signal::STOP);
    }
    let (obs, _, took) = h.run("db1");
    let (obs2, _, took2) = h.run("db1");
    for p in &frozen {
        pg_kit::signal(*p, Signal::CONT);
    }
    eprintln!(
        "server frozen: {:?} after {took:?}; then {:?} after {took2:?}",
        obs.message, obs2.message
    );
    assert!(
        took < limit && took2 < limit,
        "runs took {took:?}, {took2:?}"
    );
    assert!(
        obs.message.contains("timed out after") && obs.message.contains("(checking the role)"),
        "{}",
        obs.message
    );
    assert!(
        obs2.message.contains("timed out after") && obs2.message.contains("(connecting"),
        "{}",
        obs2.message
    );
    assert!(
        h.open("db1", "probe_status").is_some(),
        "the timeout is an alert"
    );
    let obs = wait_for(
        "recovery after SIGCONT",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let (o, _, _) = h.run("db1");
            (o.status == Status::Ok).then_some(o)
        },
    );
    assert!(obs.message.starts_with("primary"), "{}", obs.message);
    assert!(
        h.open("db1", "probe_status").is_none(),
        "the timeout alert resolved"
    );
}

#[test]
fn scenario_6_primary_stopped_refused_and_receiver_down() {
    let mut primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let text = format!(
        "{}{}",
        probe_toml(
            "db1",
            &primary,
            &pw,
            "2s",
            "expected_standbys = [\"node2\"]"
        ),
        probe_toml("db2", &standby, &pw, "2s", "")
    );
    let mut h = Harness::new(&text);
    assert_eq!(h.run("db1").0.status, Status::Ok);
    assert_eq!(h.run("db2").0.status, Status::Ok);

    primary.stop();
    let stopped = Instant::now();
    let (obs, _, _) = h.run("db1");
    eprintln!("primary: {}", obs.message);
    assert_eq!(obs.status, Status::Critical);
    assert!(
        obs.message.to_lowercase().contains("connection refused"),
        "{}",
        obs.message
    );
    let alert = h.open("db1", "probe_status").expect("probe_status alert");
    assert_eq!(alert.severity, Severity::Critical);

    let down = wait_for(
        "receiver down on the standby",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            h.run("db2");
            h.open("db2", "pg_wal_receiver_down")
                .filter(|a| a.severity == Severity::Critical)
        },
    );
    eprintln!("standby after {:?}: {}", stopped.elapsed(), down.message);
    assert!(
        down.message.starts_with("WAL receiver is down"),
        "{}",
        down.message
    );

    // And back: the primary restarts, the receiver reconnects, the alerts resolve.
    primary.start();
    wait_for(
        "receiver back",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            h.run("db1");
            h.run("db2");
            (h.open("db2", "pg_wal_receiver_down").is_none()
                && h.open("db1", "probe_status").is_none())
            .then_some(())
        },
    );
}
