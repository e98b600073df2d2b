//! `scripts/bench postgres`: scenarios 2, 3 and 4 of the postgres probe's tests (issue 4), run
//! once watched by lookout and once by postgres_exporter + Prometheus with the stock
//! awesome-prometheus-alerts PostgreSQL rules. For each run: which alerts fired and how many
//! seconds after the fault; then one Markdown table.
//!
//! Each run builds its own primary and streaming standby (`tests/pg_kit`) in temp dirs on free
//! loopback ports; every process is started here and stopped by PID. Both sides look every
//! 5 s (lookout probe interval = Prometheus scrape and evaluation interval) and both are
//! polled every 250 ms for firing alerts.
//!
//! `BENCH_PG_WINDOW` (s, default 120): how long after the fault to watch.
//! `BENCH_PG_WARMUP` (s, default 20): watching before the fault.
//! `BENCH_PG_RULES`: a Prometheus rules file to load instead of the embedded stock rules.

#[path = "../tests/kit/mod.rs"]
mod kit;
#[path = "../tests/pg_kit/mod.rs"]
mod pg_kit;

#[path = "postgres/sides.rs"]
mod sides;

use pg_kit::{Bg, Cluster, PrimaryOpts};
use sides::{Monitor, Seen};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Probe interval, scrape interval and rule evaluation interval, seconds.
pub const INTERVAL_S: u64 = 5;
/// How often each side's alert API is polled.
const POLL: Duration = Duration::from_millis(250);
/// Scenario 4: the CHECKPOINT that removes the slot's WAL comes this long after the slot turned
/// `unreserved`, so that both sides get several looks at the `unreserved` state.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(30);
/// Scenario 4: watching goes on at least this long after the slot was lost…
const LOST_WATCH: Duration = Duration::from_secs(30);
/// …but at most this long past the window.
const MAX_EXTRA: Duration = Duration::from_secs(240);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Scenario {
    StandbyGone,
    StreamBlocked,
    SlotLost,
}

impl Scenario {
    fn all() -> [Scenario; 3] {
        [
            Scenario::StandbyGone,
            Scenario::StreamBlocked,
            Scenario::SlotLost,
        ]
    }

    fn title(self) -> &'static str {
        match self {
            Scenario::StandbyGone => "2. standby stopped, pgbench writes (200 tx/s)",
            Scenario::StreamBlocked => {
                "3. walreceiver SIGSTOPped (stream blocked), pgbench 5 tx/s throughout"
            }
            Scenario::SlotLost => {
                "4. max_slot_wal_keep_size = 48MB: standby stopped, pgbench writes until the slot is unreserved, CHECKPOINT 30 s later"
            }
        }
    }

    /// The scenario's own signal: (what, matches on lookout, matches on Prometheus).
    fn signals(self) -> Vec<(&'static str, Matcher, Matcher)> {
        match self {
            Scenario::StandbyGone => vec![(
                "inactive slot retaining WAL",
                Matcher::Rule("pg_slot", None),
                Matcher::Rule("PostgresqlUnusedReplicationSlot", None),
            )],
            Scenario::StreamBlocked => vec![(
                "replication delay (stream blocked)",
                Matcher::Rule("pg_heartbeat_age", None),
                Matcher::Rule("PostgresqlReplicationLag", None),
            )],
            Scenario::SlotLost => vec![
                (
                    "wal_status unreserved",
                    Matcher::Rule("pg_slot", Some("unreserved")),
                    Matcher::None,
                ),
                (
                    "wal_status lost",
                    Matcher::Rule("pg_slot", Some("lost")),
                    Matcher::None,
                ),
            ],
        }
    }
}

/// Which alert is a scenario's own signal.
#[derive(Clone, Copy)]
enum Matcher {
    /// A rule (alert name), optionally only once its message names this `wal_status`.
    Rule(&'static str, Option<&'static str>),
    /// No stock rule looks at this.
    None,
}

/// What one alert did during one run.
#[derive(Default, Debug)]
struct Track {
    /// Open (pending or firing) when the fault was injected: listed apart, not counted.
    open_at_fault: bool,
    pending_at: Option<f64>,
    firing_at: Option<f64>,
    /// First firing at each severity and each `wal_status` named, in order.
    marks: Vec<(String, f64)>,
}

/// One run's results.
struct Outcome {
    scenario: Scenario,
    side: &'static str,
    settings: String,
    tracks: BTreeMap<String, Track>,
    /// Seconds watched after the fault.
    watched: f64,
    /// Ground truth from the test harness's own SQL, seconds after the fault.
    truth: Vec<(String, f64)>,
}

/// Clusters and background load of one run.
/// (Fields drop in order: the load first, the primary last.)
struct Setup {
    load: Option<Bg>,
    receiver: Option<i32>,
    unreserved_at: Option<Instant>,
    checkpoint_done: bool,
    lost_at: Option<Instant>,
    standby: Cluster,
    primary: Cluster,
}

impl Setup {
    fn new(s: Scenario) -> Setup {
        let opts = match s {
            Scenario::SlotLost => PrimaryOpts {
                max_wal_size: "1GB".into(),
                max_slot_wal_keep_size: "48MB".into(),
                checkpoint_timeout: "1h".into(),
                ..Default::default()
            },
            _ => PrimaryOpts::default(),
        };
        let primary = Cluster::primary("db1", None, &opts);
        let standby = primary.standby("node2", "node2");
        primary.pgbench_init(1);
        let load = (s == Scenario::StreamBlocked)
            .then(|| primary.pgbench(&["-n", "-c", "1", "-R", "5", "-T", "3600"]));
        Setup {
            primary,
            standby,
            load,
            receiver: None,
            unreserved_at: None,
            checkpoint_done: false,
            lost_at: None,
        }
    }

    /// Injects the fault; returns t = 0.
    fn inject(&mut self, s: Scenario) -> Instant {
        match s {
            Scenario::StandbyGone | Scenario::SlotLost => {
                self.standby.stop();
                let t0 = Instant::now();
                let rate: &[&str] = if s == Scenario::StandbyGone {
                    &["-R", "200"]
                } else {
                    &[]
                };
                let mut args = vec!["-n", "-c", "2", "-T", "3600"];
                args.extend_from_slice(rate);
                self.load = Some(self.primary.pgbench(&args));
                t0
            }
            Scenario::StreamBlocked => {
                let pid = self.standby.walreceiver_pid();
                pg_kit::signal(pid, rustix::process::Signal::STOP);
                self.receiver = Some(pid);
                Instant::now()
            }
        }
    }

    /// Scenario 4's ground truth and actions, called at every poll after the fault.
    fn tick(&mut self, s: Scenario, t0: Instant, truth: &mut Vec<(String, f64)>) {
        if s != Scenario::SlotLost || self.lost_at.is_some() {
            return;
        }
        let status = self.primary.sql(
            "SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = 'node2'",
        );
        let t = t0.elapsed().as_secs_f64();
        let label = format!("wal_status {status}");
        let previous = truth
            .iter()
            .rev()
            .find(|(w, _)| w.starts_with("wal_status"));
        if previous.map(|(w, _)| w) != Some(&label) {
            truth.push((label, t));
        }
        if status == "unreserved" && self.unreserved_at.is_none() {
            self.unreserved_at = Some(Instant::now());
            if let Some(load) = self.load.take() {
                load.stop();
            }
        }
        if let Some(u) = self.unreserved_at
            && !self.checkpoint_done
            && u.elapsed() >= CHECKPOINT_AFTER
        {
            self.primary.sql("CHECKPOINT");
            self.checkpoint_done = true;
            truth.push(("CHECKPOINT".into(), t0.elapsed().as_secs_f64()));
        }
        if status == "lost" {
            self.lost_at = Some(Instant::now());
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(pid) = self.receiver {
            pg_kit::signal(pid, rustix::process::Signal::CONT);
        }
    }
}

fn record(tracks: &mut BTreeMap<String, Track>, seen: Vec<Seen>, t: Option<f64>) {
    for s in seen {
        let tr = tracks.entry(s.key).or_default();
        let Some(t) = t else {
            tr.open_at_fault = true;
            continue;
        };
        if tr.open_at_fault {
            continue;
        }
        tr.pending_at.get_or_insert(t);
        if s.firing {
            tr.firing_at.get_or_insert(t);
            for m in std::iter::once(s.severity).chain(s.tag) {
                if !tr.marks.iter().any(|(w, _)| *w == m) {
                    tr.marks.push((m, t));
                }
            }
        }
    }
}

fn run(s: Scenario, side: &'static str, window: Duration, warmup: Duration) -> Outcome {
    eprintln!("\n=== scenario {:?}, {side}: building clusters", s);
    let mut setup = Setup::new(s);
    let monitor = Monitor::start(side, &setup.primary, &setup.standby);
    let mut tracks = BTreeMap::new();
    // Warm-up: only what is open at the last look before the fault is kept (as "open at fault").
    let started = Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < warmup {
        last = monitor.poll();
        std::thread::sleep(POLL);
    }
    record(&mut tracks, last, None);
    let t0 = setup.inject(s);
    eprintln!("fault injected; watching for {window:?}");
    let mut truth = Vec::new();
    // Scenario 4 watches until LOST_WATCH past the moment the slot was lost (or would be, once
    // unreserved), within a bound.
    let mut end = t0 + window;
    while Instant::now() < end {
        let tick = Instant::now();
        let seen = monitor.poll();
        record(&mut tracks, seen, Some(t0.elapsed().as_secs_f64()));
        setup.tick(s, t0, &mut truth);
        let until = match (setup.unreserved_at, setup.lost_at) {
            (_, Some(lost)) => Some(lost + LOST_WATCH),
            (Some(u), None) => Some(u + CHECKPOINT_AFTER + LOST_WATCH),
            (None, None) => None,
        };
        if let Some(until) = until {
            end = end.max(until.min(t0 + window + MAX_EXTRA));
        }
        std::thread::sleep(POLL.saturating_sub(tick.elapsed()));
    }
    let watched = t0.elapsed().as_secs_f64();
    eprintln!("{}", monitor.evidence());
    for (k, t) in &tracks {
        eprintln!("  {k}: {t:?}");
    }
    let settings = monitor.settings();
    drop(monitor);
    drop(setup);
    Outcome {
        scenario: s,
        side,
        settings,
        tracks,
        watched,
        truth,
    }
}

fn secs(t: f64) -> String {
    format!("{t:.1} s")
}

fn first_match(o: &Outcome, m: Matcher) -> Option<f64> {
    let Matcher::Rule(rule, tag) = m else {
        return None;
    };
    o.tracks
        .iter()
        .filter(|(k, t)| !t.open_at_fault && sides::rule_of(k) == rule)
        .filter_map(|(_, t)| match tag {
            None => t.firing_at,
            Some(tag) => t.marks.iter().find(|(w, _)| w == tag).map(|(_, t)| *t),
        })
        .min_by(f64::total_cmp)
}

fn row(o: &Outcome) -> String {
    let none = format!("not detected within {:.0} s", o.watched);
    let truth = if o.truth.is_empty() {
        "—".to_string()
    } else {
        o.truth
            .iter()
            .map(|(w, t)| format!("{w} at {}", secs(*t)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let first = o
        .tracks
        .values()
        .filter(|t| !t.open_at_fault)
        .filter_map(|t| t.firing_at)
        .min_by(f64::total_cmp)
        .map(secs)
        .unwrap_or_else(|| none.clone());
    let own = o
        .scenario
        .signals()
        .into_iter()
        .map(|(what, l, p)| {
            let m = if o.side == "lookout" { l } else { p };
            let v = match (m, first_match(o, m)) {
                (Matcher::None, _) => "no stock rule".to_string(),
                (_, Some(t)) => secs(t),
                (_, None) => none.clone(),
            };
            format!("{what}: {v}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut fired: Vec<(f64, String)> = o
        .tracks
        .iter()
        .filter(|(_, t)| !t.open_at_fault)
        .filter_map(|(k, t)| {
            let at = t.firing_at?;
            let marks = t
                .marks
                .iter()
                .map(|(w, t)| format!("{w} {}", secs(*t)))
                .collect::<Vec<_>>()
                .join(", ");
            Some((at, format!("`{k}` {marks}")))
        })
        .collect();
    fired.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pending: Vec<String> = o
        .tracks
        .iter()
        .filter(|(_, t)| !t.open_at_fault && t.firing_at.is_none())
        .filter_map(|(k, t)| Some(format!("`{k}` pending {}", secs(t.pending_at?))))
        .collect();
    let mut all: Vec<String> = fired.into_iter().map(|(_, s)| s).collect();
    all.extend(pending);
    let before: Vec<String> = o
        .tracks
        .iter()
        .filter(|(_, t)| t.open_at_fault)
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    let or_dash = |v: Vec<String>| {
        if v.is_empty() {
            "—".to_string()
        } else {
            v.join("; ")
        }
    };
    format!(
        "| {} | {} | {truth} | {first} | {own} | {} | {} |",
        o.scenario.title(),
        o.side,
        or_dash(all),
        or_dash(before)
    )
}

/// Installs a Debian package when its binary is missing.
fn need(bin: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return;
    }
    eprintln!("{bin} missing: apt-get install -y {package}");
    let ok = Command::new("timeout")
        .args(["900", "apt-get", "install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "apt-get install -y {package} failed; {bin} is needed");
}

fn env_secs(name: &str, default: u64) -> Duration {
    let v = match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number of seconds")),
        Err(_) => default,
    };
    Duration::from_secs(v)
}

fn main() {
    kit::require_root("the PostgreSQL benchmark (clusters run as the postgres user)");
    need("prometheus", "prometheus");
    need(
        "prometheus-postgres-exporter",
        "prometheus-postgres-exporter",
    );
    need("psql", "postgresql-client");
    need("pgbench", "postgresql-contrib");
    if !std::path::Path::new("/usr/lib/postgresql/15/bin/initdb").exists()
        && Command::new("pg_config").arg("--bindir").output().is_err()
    {
        need("/usr/lib/postgresql/15/bin/initdb", "postgresql-15");
    }
    pg_kit::bindir();
    let window = env_secs("BENCH_PG_WINDOW", 120);
    let warmup = env_secs("BENCH_PG_WARMUP", 20);
    let began = Instant::now();
    let mut outcomes = Vec::new();
    for s in Scenario::all() {
        for side in sides::SIDES {
            outcomes.push(run(s, side, window, warmup));
        }
    }
    let took = began.elapsed();
    println!(
        "\n## PostgreSQL failures: lookout vs postgres_exporter + Prometheus\n\n\
         Times are seconds after the fault (t = 0: `pg_ctl stop` of the standby returned, or the \
         walreceiver got SIGSTOP), as first seen by polling each side's `/api/v1/alerts` every \
         250 ms; each side watched for {} s after the fault (scenario 4: until 30 s after the slot was \
         lost), and {} s before. Fresh clusters for every run.\n",
        window.as_secs(),
        warmup.as_secs()
    );
    println!(
        "| scenario | side | ground truth (this run) | first alert | the scenario's own signal | every alert that fired after the fault (first firing per severity) | open before the fault (not counted) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for o in &outcomes {
        println!("{}", row(o));
    }
    println!("\nSettings:");
    let mut shown = Vec::new();
    for o in &outcomes {
        if !shown.contains(&o.side) {
            println!("- {}: {}", o.side, o.settings);
            shown.push(o.side);
        }
    }
    println!(
        "\nWhole benchmark: {:.0} s ({} runs).",
        took.as_secs_f64(),
        outcomes.len()
    );
}
