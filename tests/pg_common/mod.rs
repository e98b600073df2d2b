//! Helpers shared by the PostgreSQL scenario tests (`tests/postgres*.rs`).
#![allow(dead_code)]

use crate::kit::{Daemon, write_config, write_file};
use crate::pg_kit::{Cluster, PASSWORD};
use lookout::alert::{Alert, AlertEvent, AlertState, Engine};
use lookout::config::ProbeConfig;
use lookout::daemon::scheduler::{Scheduled, run_once};
use lookout::model::{Labels, Moment, Observation};
use std::path::Path;
use std::time::{Duration, Instant};

/// Probes and the engine, driven by the test (the daemon's code path without the daemon).
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub engine: Engine,
    pub probes: Vec<(ProbeConfig, Scheduled)>,
    pub permits: tokio::sync::Semaphore,
    pub t0: Instant,
    pub _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new(config_text: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "lookout.toml", config_text);
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

    pub fn now(&self) -> Moment {
        Moment {
            mono: self.t0.elapsed().as_secs_f64(),
            wall: lookout::daemon::clock::unix_now(),
        }
    }

    /// One run of a probe through the scheduler's `run_once` (its timeout) and the engine.
    pub fn run(&mut self, id: &str) -> (Observation, Vec<AlertEvent>, Duration) {
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
    pub fn open(&self, probe: &str, rule: &str) -> Option<Alert> {
        self.engine
            .alerts()
            .find(|a| a.probe == probe && a.rule == rule && a.state != AlertState::Resolved)
            .cloned()
    }
}

pub fn sample(obs: &Observation, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let l: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    obs.sample(name, &l)
}

pub fn pw_file(dir: &Path) -> String {
    write_file(dir, "pgpass", &format!("{PASSWORD}\n"))
        .to_str()
        .unwrap()
        .to_string()
}

/// `[[probe]]` text for a postgres probe on a cluster.
pub fn probe_toml(id: &str, c: &Cluster, pw: &str, interval: &str, extra: &str) -> String {
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
pub fn wait_for<T>(
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

/// A sample of a probe's last observation, from the daemon's status API.
pub fn daemon_sample(d: &Daemon, probe: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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

pub fn webhook(url: &str) -> String {
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

/// `[[probe]]` text for a postgres probe on a cluster logging in as `user`.
pub fn probe_toml_as(
    id: &str,
    c: &Cluster,
    user: &str,
    pw: &str,
    interval: &str,
    extra: &str,
) -> String {
    probe_toml(id, c, pw, interval, extra)
        .replace("user = \"postgres\"", &format!("user = \"{user}\""))
}

/// The SQL block that follows the line containing `marker` in `docs/probes/postgres.md`: the
/// tests run what the docs tell a user to run, so a wrong doc fails them.
pub fn doc_sql(marker: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/probes/postgres.md");
    let text = std::fs::read_to_string(&path).expect("docs/probes/postgres.md");
    let after = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {}", path.display()))
        .1;
    let block = after
        .split_once("```sql\n")
        .unwrap_or_else(|| panic!("no ```sql block after {marker:?}"))
        .1;
    block
        .split_once("```")
        .unwrap_or_else(|| panic!("unterminated ```sql block after {marker:?}"))
        .0
        .to_string()
}

/// The status and message of a probe's last observation, from the daemon's status API.
pub fn daemon_observation(d: &Daemon, probe: &str) -> Option<(String, String)> {
    let status = d.get("/api/v1/status");
    let p = status["probes"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == probe)?
        .clone();
    Some((
        p["observation"]["status"].as_str()?.to_string(),
        p["observation"]["message"].as_str()?.to_string(),
    ))
}

/// The first line of a webhook body's alert message.
pub fn first_line(body: &serde_json::Value) -> String {
    body["alert"]["message"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}
