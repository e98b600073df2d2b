//! The postgres probe against real clusters (issue 4, scenarios 1–6): a primary and a
//! streaming standby built by `pg_kit` in temp dirs on free loopback ports, run as the
//! `postgres` user. Scenarios 2 and 3 run through the real daemon and a webhook receiver; the
//! others drive the probe and the engine directly through the library.

mod kit;
mod pg_kit;

use kit::{Daemon, LoopFs, Sink, is_event, write_file};
use lookout::alert::{Alert, AlertEvent, AlertState, Engine};
use lookout::config::ProbeConfig;
use lookout::daemon::scheduler::{Scheduled, run_once};
use lookout::model::{Labels, Moment, Observation, Severity, Status};
use pg_kit::{Cluster, PASSWORD, PrimaryOpts};
use rustix::process::Signal;
use std::path::Path;
use std::time::{Duration, Instant};

/// Probes and the engine, driven by the test (the daemon's code path without the daemon).
struct Harness {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    probes: Vec<(ProbeConfig, Scheduled)>,
    permits: tokio::sync::Semaphore,
    t0: Instant,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(config_text: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "lookout.toml", config_text);
        let config = lookout::config::parse_str(&path, config_text)
            .unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
        let mut engine = Engine::new();
        let mut probes = Vec::new();
        for p in config.probes {
            let built = lookout::probe::build(&p);
            engine.set_probe(p.spec(), built.rules);
            let s = Scheduled {
                id: p.id.clone(),
                probe: built.probe,
                interval: p.interval().0,
                timeout: p.timeout().0,
            };
            probes.push((p, s));
        }
        Harness {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            engine,
            probes,
            permits: tokio::sync::Semaphore::new(8),
            t0: Instant::now(),
            _dir: dir,
        }
    }

    fn now(&self) -> Moment {
        Moment {
            mono: self.t0.elapsed().as_secs_f64(),
            wall: lookout::daemon::clock::unix_now(),
        }
    }

    /// One run of a probe through the scheduler's `run_once` (its timeout) and the engine.
    fn run(&mut self, id: &str) -> (Observation, Vec<AlertEvent>, Duration) {
        let (_, s) = self
            .probes
            .iter()
            .find(|(p, _)| p.id == id)
            .unwrap_or_else(|| panic!("no probe {id}"));
        let started = Instant::now();
        let obs = self.rt.block_on(run_once(s, &self.permits));
        let took = started.elapsed();
        let now = self.now();
        let (obs, events) = self.engine.ingest(id, obs, now);
        (obs, events, took)
    }

    /// The open (not resolved) alert of a rule on a probe, if any.
    fn open(&self, probe: &str, rule: &str) -> Option<Alert> {
        self.engine
            .alerts()
            .find(|a| a.probe == probe && a.rule == rule && a.state != AlertState::Resolved)
            .cloned()
    }
}

fn sample(obs: &Observation, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let l: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    obs.sample(name, &l)
}

fn pw_file(dir: &Path) -> String {
    write_file(dir, "pgpass", &format!("{PASSWORD}\n"))
        .to_str()
        .unwrap()
        .to_string()
}

/// `[[probe]]` text for a postgres probe on a cluster.
fn probe_toml(id: &str, c: &Cluster, pw: &str, interval: &str, extra: &str) -> String {
    format!(
        r#"
[[probe]]
id = "{id}"
kind = "postgres"
host = "127.0.0.1"
port = {port}
user = "postgres"
password_file = "{pw}"
interval = "{interval}"
timeout = "{interval}"
for = "0s"
recover_after = 1
{extra}
"#,
        port = c.port
    )
}

/// Polls `f` every `every` until it returns `Some`, at most `within`; panics with `what`.
fn wait_for<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(every);
    }
}

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
        "standby node2 (127.0.0.1): streaming, async",
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

    // `lookout check --once` prints the same lines.
    let cfg = write_file(dir.path(), "check.toml", &text);
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

/// A sample of a probe's last observation, from the daemon's status API.
fn daemon_sample(d: &Daemon, probe: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let status = d.get("/api/v1/status");
    let p = status["probes"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == probe)?
        .clone();
    p["observation"]["samples"]
        .as_array()?
        .iter()
        .find_map(|s| {
            let matches = s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v);
            matches.then(|| s["value"].as_f64()).flatten()
        })
}

fn webhook(url: &str) -> String {
    format!(
        r#"
[[notifier]]
id = "hook"
kind = "webhook"
url = "{url}"
timeout = "5s"
"#
    )
}

#[test]
fn scenario_3_blocked_stream_heartbeat_alert_through_the_daemon() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let sink = Sink::start();
    // The primary writes the heartbeat every second; the standby probe runs every 2 s and
    // warns at 2 s of heartbeat age.
    let text = format!(
        "{}{}{}",
        probe_toml("db1", &primary, &pw, "1s", "heartbeat = true"),
        probe_toml(
            "db2",
            &standby,
            &pw,
            "2s",
            "heartbeat = true\nheartbeat_warning = \"2s\"\nheartbeat_critical = \"60s\""
        ),
        webhook(&sink.url)
    );
    let config = write_file(dir.path(), "lookout.toml", &text);
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
    // Warning threshold (2 s) plus at most two runs of the standby probe (2 × 2 s), plus
    // delivery slack.
    assert!(
        detected < Duration::from_secs(7),
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
    let config = write_file(dir.path(), "lookout.toml", &text);
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
    let unreserved = wait_for(
        "wal_status unreserved",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let (obs, _, _) = h.run("db1");
            let code = sample(&obs, "pg.slot.wal_status", &[("slot", "node2")]);
            if seen.last() != Some(&code) {
                seen.push(code);
            }
            h.open("db1", "pg_slot")
                .filter(|a| a.message.contains("will lose WAL at the next checkpoint"))
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
    let lost = wait_for(
        "wal_status lost",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let (obs, _, _) = h.run("db1");
            let code = sample(&obs, "pg.slot.wal_status", &[("slot", "node2")]);
            if seen.last() != Some(&code) {
                seen.push(code);
            }
            h.open("db1", "pg_slot")
                .filter(|a| a.message.contains("wal_status lost"))
        },
    );
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
