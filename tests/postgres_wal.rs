//! The postgres probe against real clusters (issue 4, scenarios 2, 3 and 4): the standby gone while
//! WAL piles up behind its slot, a blocked stream seen by the heartbeat, and a slot past
//! `max_slot_wal_keep_size`. Scenarios 2 and 3 run through the real daemon and a webhook receiver.

mod kit;
mod pg_common;
mod pg_kit;

use kit::{Daemon, LoopFs, Sink, is_event, write_config};
use lookout::model::{Severity, Status};
use pg_common::*;
use pg_kit::{Cluster, PrimaryOpts};
use rustix::process::Signal;
use std::time::{Duration, Instant};

#[test]
fn scenario_3_blocked_stream_heartbeat_alert_through_the_daemon() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let sink = Sink::start();
    // The primary writes the heartbeat every second; the standby probe runs every 2 s and
    // warns at 4 s of heartbeat age (2 s left room for a primary run delayed by the other
    // scenarios' pgbench on a 2-core machine).
    let text = format!(
        "{}{}{}",
        probe_toml("db1", &primary, &pw, "1s", "heartbeat = true"),
        probe_toml(
            "db2",
            &standby,
            &pw,
            "2s",
            "heartbeat = true\nheartbeat_warning = \"4s\"\nheartbeat_critical = \"60s\""
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
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !sink
            .all()
            .iter()
            .any(|r| is_event(&r.body, "firing", "pg_heartbeat_age", None)),
        "no heartbeat alert while healthy"
    );

    // Block the stream: the WAL receiver is frozen, its row stays, receive = replay.
    let receiver = standby.walreceiver_pid();
    pg_kit::signal(receiver, Signal::STOP);
    let fault = Instant::now();
    let fired = sink.wait_for("the heartbeat age alert", Duration::from_secs(30), |b| {
        is_event(b, "firing", "pg_heartbeat_age", None)
    });
    let detected = fired.at - fault;
    let pending = daemon_sample(&daemon, "db2", "pg.replay_pending_bytes", &[]);
    let receiver_up = daemon_sample(&daemon, "db2", "pg.receiver.up", &[]);
    pg_kit::signal(receiver, Signal::CONT);
    let msg = fired.body["alert"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!(
        "scenario 3: heartbeat alert {detected:?} after the SIGSTOP: {msg}; receive−replay = {pending:?}, receiver row = {receiver_up:?}"
    );
    assert!(msg.starts_with("replication heartbeat is"), "{msg}");
    assert!(msg.contains("look at the WAL receiver"), "{msg}");
    // What a stock exporter sees at that moment: a receiver row and receive − replay = 0.
    assert_eq!(receiver_up, Some(1.0), "the frozen receiver keeps its row");
    assert_eq!(
        pending,
        Some(0.0),
        "receive − replay reads 0 while the stream is blocked"
    );
    // Warning threshold (4 s) plus at most two runs of the standby probe (2 × 2 s), plus
    // delivery slack.
    assert!(
        detected < Duration::from_secs(10),
        "detected after {detected:?}"
    );

    sink.wait_for(
        "the heartbeat alert to resolve",
        Duration::from_secs(30),
        |b| is_event(b, "resolved", "pg_heartbeat_age", None),
    );
    drop(daemon);
}

#[test]
fn scenario_2_standby_gone_slot_fills_the_disk_and_the_forecast_names_it() {
    let fs = LoopFs::new(384, 5);
    kit::sh("chmod", &["0755", fs.dir.path().to_str().unwrap()]);
    let primary = Cluster::primary("db1", Some(&fs.mount), &PrimaryOpts::default());
    let mut standby = primary.standby("node2", "node2");
    primary.pgbench_init(1);
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let sink = Sink::start();
    let text = format!(
        r#"{pg}
[[probe]]
id = "dbdisk"
kind = "disk"
mounts = ["{mount}"]
interval = "1s"
timeout = "1s"
for = "0s"
recover_after = 1
forecast_window = "30s"
min_history = "5s"
warning_within = "10m"
critical_within = "60s"
warning_free = "1MiB"
critical_free = "512KiB"
{hook}"#,
        pg = probe_toml(
            "db1",
            &primary,
            &pw,
            "1s",
            "expected_standbys = [\"node2\"]\nslot_growth_window = \"20s\""
        ),
        mount = fs.path(),
        hook = webhook(&sink.url)
    );
    let config = write_config(dir.path(), "lookout.toml", &text);
    let daemon = Daemon::start(&config, &dir.path().join("state"), dir.path());
    wait_for(
        "the pg_wal mount from the primary's probe",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || daemon_sample(&daemon, "db1", "pg.wal.mount", &[("mount", fs.path())]),
    );
    // Let the disk forecast see a quiet disk for a few seconds.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        sink.all().is_empty(),
        "quiet before the fault: {:?}",
        sink.all()
            .iter()
            .map(|r| r.body["summary"].to_string())
            .collect::<Vec<_>>()
    );

    standby.stop();
    let fault = Instant::now();
    let missing = sink.wait_for("standby missing", Duration::from_secs(15), |b| {
        is_event(b, "firing", "pg_standby_missing", Some("critical"))
    });
    let missing_after = missing.at - fault;
    let msg = missing.body["alert"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.starts_with("standby node2 is not connected (missing since "),
        "{msg}"
    );

    let retained_before = daemon_sample(
        &daemon,
        "db1",
        "pg.slot.retained_bytes",
        &[("slot", "node2")],
    )
    .unwrap_or(0.0);
    let bench = primary.pgbench(&["-n", "-c", "2", "-T", "300"]);
    let writes = Instant::now();
    let slot = sink.wait_for("slot inactive", Duration::from_secs(30), |b| {
        is_event(b, "firing", "pg_slot", None)
    });
    let slot_after = slot.at - fault;
    let full = sink.wait_for(
        "the disk forecast naming the slot",
        Duration::from_secs(240),
        |b| {
            (is_event(b, "firing", "disk_full", None)
                || is_event(b, "severity_changed", "disk_full", None))
                && b["alert"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("slot node2"))
        },
    );
    let full_after = full.at - writes;
    let avail_then = fs.avail_bytes();
    let retained_then = daemon_sample(
        &daemon,
        "db1",
        "pg.slot.retained_bytes",
        &[("slot", "node2")],
    )
    .unwrap_or(0.0);
    let growth = daemon_sample(
        &daemon,
        "db1",
        "pg.slot.retained_growth_bytes_per_second",
        &[("slot", "node2")],
    );
    bench.stop();
    let full_msg = full.body["alert"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!(
        "scenario 2: standby missing {missing_after:?} after the stop; slot alert {slot_after:?}; \
         disk forecast {full_after:?} after writes began, {} MiB still free; retained {:.0} → {:.0} MiB ({growth:?} B/s)\n{msg}\n{}\n{full_msg}",
        avail_then >> 20,
        retained_before / 1048576.0,
        retained_then / 1048576.0,
        slot.body["alert"]["message"]
    );
    assert!(
        missing_after < Duration::from_secs(4),
        "standby missing after {missing_after:?}"
    );
    assert!(
        retained_then > retained_before + 8.0 * 1048576.0,
        "retained bytes grow: {retained_before} → {retained_then}"
    );
    assert!(
        full_msg.contains("WAL retained by inactive slot node2 ("),
        "{full_msg}"
    );
    assert!(full_msg.contains("full in"), "{full_msg}");
    assert!(
        avail_then > 1 << 20,
        "the forecast fired before the disk was full ({avail_then} B left)"
    );
    assert!(
        pg_kit::children_of(primary.pid()).len() > 1,
        "the primary still runs:\n{}",
        primary.log_text()
    );
    drop(daemon);
    drop(primary);
}

#[test]
fn scenario_4_slot_beyond_max_slot_wal_keep_size_unreserved_then_lost() {
    let opts = PrimaryOpts {
        max_wal_size: "1GB".into(),
        max_slot_wal_keep_size: "48MB".into(),
        checkpoint_timeout: "1h".into(),
        ..Default::default()
    };
    let primary = Cluster::primary("db1", None, &opts);
    let mut standby = primary.standby("node2", "node2");
    primary.pgbench_init(1);
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let mut h = Harness::new(&probe_toml(
        "db1",
        &primary,
        &pw,
        "2s",
        "expected_standbys = [\"node2\"]",
    ));
    assert_eq!(h.run("db1").0.status, Status::Ok);

    standby.stop();
    let bench = primary.pgbench(&["-n", "-c", "2", "-T", "120"]);
    let writes = Instant::now();
    let mut seen = Vec::new();
    // pgbench's WAL rate depends on how busy the machine is; a WAL segment switch on each poll
    // (at most 8 × 16 MB, far below max_wal_size, so no checkpoint is triggered) makes sure the
    // slot passes max_slot_wal_keep_size within seconds however slow the disk is.
    let mut switches = 0;
    let unreserved = slot_alert_saying(
        &mut h,
        &mut seen,
        "will lose WAL at the next checkpoint",
        120,
        || {
            if switches < 8 {
                primary.sql("SELECT pg_switch_wal()");
                switches += 1;
            }
        },
    );
    let unreserved_after = writes.elapsed();
    bench.stop();
    assert_eq!(
        unreserved.severity,
        Severity::Critical,
        "{}",
        unreserved.message
    );

    primary.sql("CHECKPOINT");
    let checkpoint = Instant::now();
    let lost = slot_alert_saying(&mut h, &mut seen, "wal_status lost", 30, || {});
    let lost_after = checkpoint.elapsed();
    eprintln!(
        "scenario 4: wal_status codes seen {seen:?}; unreserved alert {unreserved_after:?} after writes began: {}\n\
         lost alert {lost_after:?} after the CHECKPOINT: {}",
        unreserved.message, lost.message
    );
    assert_eq!(lost.severity, Severity::Critical);
    assert!(
        lost.message.contains("drop and recreate the slot")
            && lost.message.contains("re-clone the standby"),
        "{}",
        lost.message
    );
}

/// Runs the primary's probe every 500 ms (recording each new `wal_status` code in `seen`, and
/// calling `each_poll` first) until its open `pg_slot` alert says `text`; panics after
/// `within_secs`.
fn slot_alert_saying(
    h: &mut Harness,
    seen: &mut Vec<Option<f64>>,
    text: &str,
    within_secs: u64,
    mut each_poll: impl FnMut(),
) -> lookout::alert::Alert {
    wait_for(
        text,
        Duration::from_secs(within_secs),
        Duration::from_millis(500),
        || {
            each_poll();
            let (obs, _, _) = h.run("db1");
            let code = sample(&obs, "pg.slot.wal_status", &[("slot", "node2")]);
            if seen.last() != Some(&code) {
                seen.push(code);
            }
            h.open("db1", "pg_slot")
                .filter(|a| a.message.contains(text))
        },
    )
}

/// Issue 9, item 6: the slot growth estimate follows a new steady WAL rate within a few probe
/// intervals (a 15-minute average once read +117 MiB/h while WAL grew at 2.7 GiB/h).
#[test]
fn slot_growth_follows_a_new_steady_wal_rate_within_three_intervals() {
    let opts = PrimaryOpts {
        max_wal_size: "1GB".into(),
        checkpoint_timeout: "1h".into(),
        ..Default::default()
    };
    let primary = Cluster::primary("db1", None, &opts);
    primary.pgbench_init(1);
    // An inactive slot holding WAL from now on (no standby ever uses it).
    primary.sql("SELECT pg_create_physical_replication_slot('idle', true)");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    // The default slot_growth_window.
    let mut h = Harness::new(&probe_toml("db1", &primary, &pw, "2s", ""));
    let lsn = || -> f64 {
        primary
            .sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
            .parse()
            .unwrap()
    };
    let tick = |h: &mut Harness, k: u32| {
        let next = h.t0 + Duration::from_secs(2 * k as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let (obs, _, _) = h.run("db1");
        let at = h.now().mono;
        (obs, at, lsn())
    };
    // 20 s of a quiet slot: history a long window would average the new rate with.
    let mut k = 0;
    for _ in 0..10 {
        k += 1;
        tick(&mut h, k);
    }
    // A steady load from here on.
    let bench = primary.pgbench(&["-n", "-c", "2", "-R", "100", "-T", "120"]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        k += 1;
        let (obs, at, l) = tick(&mut h, k);
        let g = sample(
            &obs,
            "pg.slot.retained_growth_bytes_per_second",
            &[("slot", "idle")],
        );
        seen.push((at, l, g));
    }
    bench.stop();
    let (t1, l1, _) = seen[0];
    let (t3, l3, g3) = seen[2];
    // The WAL rate the test measures itself over the last two intervals.
    let wal_rate = (l3 - l1) / (t3 - t1);
    let g3 = g3.expect("a growth sample");
    eprintln!(
        "slot growth after 3 intervals of pgbench: {:.1} KiB/s; WAL rate measured by the test \
         over the last two intervals: {:.1} KiB/s; samples {seen:?}",
        g3 / 1024.0,
        wal_rate / 1024.0
    );
    assert!(wal_rate > 10_000.0, "pgbench wrote WAL: {wal_rate} B/s");
    // Tolerance ±20 %: pgbench -R schedules transactions at random (Poisson) times, and the
    // probe reads the LSN a few milliseconds before the test does.
    assert!(
        (g3 - wal_rate).abs() <= 0.2 * wal_rate,
        "slot growth {g3:.0} B/s vs WAL rate {wal_rate:.0} B/s"
    );
}
