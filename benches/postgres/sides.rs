//! The two sides of `scripts/bench postgres`: the lookout daemon, and postgres_exporter +
//! Prometheus with the stock awesome-prometheus-alerts rules. Both started on free loopback
//! ports in temp dirs and stopped by PID on drop.

use crate::INTERVAL_S;
use crate::kit::{self, free_port, write_file};
use crate::pg_kit::{Bg, Cluster, PASSWORD};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The peer as Debian ships it.
pub const PROM_STOCK: &str = "postgres_exporter 0.11 (Debian) + Prometheus";
/// The peer with the replication series today's upstream exporter has.
pub const PROM_CURRENT: &str = "same + today's upstream replication series";
/// Every side, in table order.
pub const SIDES: [&str; 3] = ["lookout", PROM_STOCK, PROM_CURRENT];

/// For [`PROM_CURRENT`]: an `--extend.query-path` file giving exporter 0.11 the two series the
/// stock replication rules use and 0.11 lacks (`pg_replication_lag_seconds`,
/// `pg_replication_is_replica`), defined as upstream's replication collector defines them
/// (prometheus-community/postgres_exporter `collector/pg_replication.go` at dbb1987e, after
/// v0.20.1): 0 on a primary, 0 when received = replayed, else the age of the last replayed
/// transaction.
const CURRENT_REPLICATION_QUERY: &str = r#"pg_replication:
  query: "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END AS lag_seconds, CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END AS is_replica"
  master: true
  metrics:
    - lag_seconds:
        usage: "GAUGE"
        description: "Replication lag behind the primary in seconds (upstream's definition)"
    - is_replica:
        usage: "GAUGE"
        description: "1 on a standby"
"#;

/// The replication, WAL, slot and availability rules of the stock PostgreSQL rules file,
/// samber/awesome-prometheus-alerts `dist/rules/postgresql/postgres-exporter.yml` at commit
/// ed1515015a55bee02fe057c2e78317371682e48f (2026-04-06, the last published version): alert
/// name, `expr`, `for` and severity exactly as there; annotations left out (they do not change
/// when an alert fires). The rest of that file (vacuum, bloat, connections, deadlocks, commit
/// and XID rates, rollbacks, locks, dead tuples, configuration changes, invalid indexes) is
/// about other things.
const STOCK_RULES: &[(&str, &str, &str, &str)] = &[
    ("PostgresqlDown", "pg_up == 0", "1m", "critical"),
    (
        "PostgresqlRestarted",
        "time() - pg_postmaster_start_time_seconds < 60",
        "0m",
        "critical",
    ),
    (
        "PostgresqlExporterError",
        "pg_exporter_last_scrape_error > 0",
        "0m",
        "critical",
    ),
    (
        "PostgresqlUnusedReplicationSlot",
        "(pg_replication_slots_active == 0) and (pg_replication_is_replica == 0)",
        "1m",
        "warning",
    ),
    (
        "PostgresqlSslCompressionActive",
        "sum by (instance) (pg_stat_ssl_compression) > 0",
        "0m",
        "warning",
    ),
    (
        "PostgresqlReplicationLag",
        "pg_replication_lag_seconds > 5",
        "30s",
        "warning",
    ),
];

/// One open alert at one look.
pub struct Seen {
    /// `rule{labels}` (lookout: `probe rule{labels}`).
    pub key: String,
    /// Firing (else pending).
    pub firing: bool,
    /// Its severity.
    pub severity: String,
    /// The `wal_status` its message names (`unreserved`, `lost`), if any.
    pub tag: Option<String>,
}

/// The rule (alert name) of a key.
pub fn rule_of(key: &str) -> &str {
    let k = key.split_once(' ').map(|(_, r)| r).unwrap_or(key);
    k.split('{').next().unwrap_or(k)
}

/// One side, running.
pub enum Monitor {
    Lookout {
        daemon: kit::Daemon,
        _dir: tempfile::TempDir,
    },
    Prometheus {
        exporters: Vec<(Bg, u16)>,
        _prometheus: Bg,
        port: u16,
        _dir: tempfile::TempDir,
        rules: String,
        current: bool,
    },
}

fn lookout_config(primary: &Cluster, standby: &Cluster, pw: &str) -> String {
    let probe = |id: &str, c: &Cluster, extra: &str| {
        format!(
            "[[probe]]\nid = \"{id}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\n\
             user = \"postgres\"\npassword_file = \"{pw}\"\ninterval = \"{INTERVAL_S}s\"\n\
             timeout = \"4s\"\n{extra}\n",
            c.port
        )
    };
    format!(
        "{}\n{}",
        probe(
            "db1",
            primary,
            "expected_standbys = [\"node2\"]\nheartbeat = true"
        ),
        probe("db2", standby, "heartbeat = true")
    )
}

fn prometheus_config(targets: &[(u16, &str)], rules: &str) -> String {
    let mut t = format!(
        "global:\n  scrape_interval: {INTERVAL_S}s\n  scrape_timeout: 4s\n  evaluation_interval: {INTERVAL_S}s\n\
         rule_files:\n  - {rules}\nscrape_configs:\n  - job_name: postgres\n    static_configs:\n"
    );
    for (port, node) in targets {
        t.push_str(&format!(
            "      - targets: ['127.0.0.1:{port}']\n        labels:\n          node: {node}\n"
        ));
    }
    t
}

fn stock_rules_yaml() -> String {
    let mut t = String::from("groups:\n- name: PostgresExporter\n  rules:\n");
    for (name, expr, r#for, severity) in STOCK_RULES {
        t.push_str(&format!(
            "    - alert: {name}\n      expr: '{expr}'\n      for: {for}\n      labels:\n        severity: {severity}\n"
        ));
    }
    t
}

fn wait_listening(port: u16, what: &str, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not listen on 127.0.0.1:{port} within 30 s; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn spawn_logged(cmd: &mut Command, log: &std::path::Path, what: &str) -> Bg {
    let f = std::fs::File::create(log).expect("log file in the temp dir");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("log file"))
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    Bg(child)
}

/// A GET with a 2 s deadline and these query parameters; `None` on any failure (the caller
/// looks again 250 ms later).
fn get_with(url: &str, query: &[(&str, &str)]) -> Option<String> {
    static CLIENT: OnceLock<(tokio::runtime::Runtime, reqwest::Client)> = OnceLock::new();
    let (rt, client) = CLIENT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = lookout::http::client(Duration::from_secs(2)).expect("HTTP client");
        (rt, client)
    });
    rt.block_on(async {
        let url = reqwest::Url::parse_with_params(url, query).ok()?;
        let r = client.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    })
}

fn get(url: &str) -> Option<String> {
    get_with(url, &[])
}

fn get_json(url: &str) -> Option<Value> {
    serde_json::from_str(&get(url)?).ok()
}

fn labels_text(pairs: Vec<(String, String)>) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(","))
}

impl Monitor {
    /// Starts a side watching the two clusters.
    pub fn start(side: &str, primary: &Cluster, standby: &Cluster) -> Monitor {
        let dir = tempfile::Builder::new()
            .prefix("lookout-pgbench")
            .tempdir()
            .expect("temp dir");
        if side == "lookout" {
            let pw = write_file(dir.path(), "pgpass", &format!("{PASSWORD}\n"));
            let text = lookout_config(primary, standby, pw.to_str().unwrap_or_default());
            let config = write_file(dir.path(), "lookout.toml", &text);
            let daemon = kit::Daemon::start(&config, &dir.path().join("state"), dir.path());
            return Monitor::Lookout { daemon, _dir: dir };
        }
        let mut exporters = Vec::new();
        let extend = (side == PROM_CURRENT)
            .then(|| write_file(dir.path(), "queries.yaml", CURRENT_REPLICATION_QUERY));
        for (c, node) in [(primary, "db1"), (standby, "db2")] {
            let port = free_port();
            let log = dir.path().join(format!("exporter-{node}.log"));
            let mut cmd = Command::new("prometheus-postgres-exporter");
            if let Some(q) = &extend {
                cmd.arg(format!("--extend.query-path={}", q.display()));
            }
            let bg = spawn_logged(
                cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .env(
                        "DATA_SOURCE_NAME",
                        format!(
                            "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
                            c.port
                        ),
                    ),
                &log,
                "prometheus-postgres-exporter",
            );
            wait_listening(port, "postgres_exporter", &log);
            exporters.push((bg, port));
        }
        let rules = match std::env::var("BENCH_PG_RULES") {
            Ok(p) => p,
            Err(_) => write_file(dir.path(), "rules.yml", &stock_rules_yaml())
                .to_string_lossy()
                .into_owned(),
        };
        let targets: Vec<(u16, &str)> = exporters
            .iter()
            .map(|(_, p)| *p)
            .zip(["db1", "db2"])
            .collect();
        let cfg = write_file(
            dir.path(),
            "prometheus.yml",
            &prometheus_config(&targets, &rules),
        );
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let prometheus = spawn_logged(
            Command::new("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}")),
            &log,
            "prometheus",
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&format!("http://127.0.0.1:{port}/-/ready")).is_none() {
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready within 30 s; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let loaded = get_json(&format!("http://127.0.0.1:{port}/api/v1/rules"))
            .and_then(|v| v["data"]["groups"].as_array().map(|g| g.len()))
            .unwrap_or(0);
        assert!(loaded > 0, "Prometheus loaded no rule group from {rules}");
        Monitor::Prometheus {
            exporters,
            _prometheus: prometheus,
            port,
            _dir: dir,
            rules,
            current: extend.is_some(),
        }
    }

    /// The open alerts now (none when the API did not answer).
    pub fn poll(&self) -> Vec<Seen> {
        match self {
            Monitor::Lookout { daemon, .. } => {
                let Some(Value::Array(list)) = get_json(&format!("{}/api/v1/alerts", daemon.url()))
                else {
                    return Vec::new();
                };
                list.iter()
                    .filter(|a| a["probe"] == "db1" || a["probe"] == "db2")
                    .filter_map(|a| {
                        let state = a["state"].as_str()?;
                        if !matches!(state, "pending" | "firing" | "acknowledged") {
                            return None;
                        }
                        let labels = a["labels"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let msg = a["message"].as_str().unwrap_or("");
                        let tag = ["unreserved", "lost"]
                            .into_iter()
                            .find(|w| msg.contains(&format!("wal_status {w}")))
                            .map(String::from);
                        Some(Seen {
                            key: format!(
                                "{} {}{}",
                                a["probe"].as_str()?,
                                a["rule"].as_str()?,
                                labels_text(labels)
                            ),
                            firing: state != "pending",
                            severity: a["severity"].as_str().unwrap_or("?").to_string(),
                            tag,
                        })
                    })
                    .collect()
            }
            Monitor::Prometheus { port, .. } => {
                let Some(v) = get_json(&format!("http://127.0.0.1:{port}/api/v1/alerts")) else {
                    return Vec::new();
                };
                let Some(list) = v["data"]["alerts"].as_array() else {
                    return Vec::new();
                };
                list.iter()
                    .filter_map(|a| {
                        let l = a["labels"].as_object()?;
                        let name = l.get("alertname")?.as_str()?;
                        let pairs = l
                            .iter()
                            .filter(|(k, _)| {
                                !matches!(
                                    k.as_str(),
                                    "alertname" | "severity" | "job" | "instance" | "server"
                                )
                            })
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect();
                        Some(Seen {
                            key: format!("{name}{}", labels_text(pairs)),
                            firing: a["state"] == "firing",
                            severity: l
                                .get("severity")
                                .and_then(|s| s.as_str())
                                .unwrap_or("?")
                                .to_string(),
                            tag: None,
                        })
                    })
                    .collect()
            }
        }
    }

    /// What each side saw at the end of the window, for the log.
    pub fn evidence(&self) -> String {
        match self {
            Monitor::Lookout { daemon, .. } => {
                let Some(v) = get_json(&format!("{}/api/v1/status", daemon.url())) else {
                    return "lookout: no status".into();
                };
                let mut out = String::from("lookout's last observations:\n");
                for p in v["probes"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "[{}] {}\n",
                        p["id"].as_str().unwrap_or("?"),
                        p["observation"]["message"].as_str().unwrap_or("")
                    ));
                }
                out
            }
            Monitor::Prometheus {
                exporters, port, ..
            } => {
                // How many series each rule's expression (and the slot rule's first half alone)
                // returns now: shows which rules cannot fire, and why.
                let mut out = String::from("Prometheus, series per expression at the end:\n");
                let half = ("(first half alone)", "pg_replication_slots_active == 0");
                for (name, expr) in STOCK_RULES
                    .iter()
                    .map(|(n, e, _, _)| (*n, *e))
                    .chain(std::iter::once(half))
                {
                    let n = get_with(
                        &format!("http://127.0.0.1:{port}/api/v1/query"),
                        &[("query", expr)],
                    )
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|v| v["data"]["result"].as_array().map(|r| r.len()));
                    out.push_str(&format!("  {name}: `{expr}` → {n:?} series\n"));
                }
                out.push_str("postgres_exporter's replication series at the end:\n");
                for ((_, port), node) in exporters.iter().zip(["db1", "db2"]) {
                    let text = get(&format!("http://127.0.0.1:{port}/metrics"))
                        .unwrap_or_else(|| "(no answer)".into());
                    for line in text.lines().filter(|l| {
                        !l.starts_with('#')
                            && (!l.starts_with("pg_settings_")
                                || l.starts_with("pg_settings_max_slot_wal_keep_size"))
                            && (l.starts_with("pg_up")
                                || l.starts_with("pg_replication")
                                || l.starts_with("pg_stat_replication")
                                || l.starts_with("pg_exporter_last_scrape_error")
                                || l.contains("wal"))
                    }) {
                        out.push_str(&format!("[{node}] {line}\n"));
                    }
                }
                out
            }
        }
    }

    /// Exactly what this side was configured with.
    pub fn settings(&self) -> String {
        match self {
            Monitor::Lookout { .. } => format!(
                "the `lookout run` daemon (release build), one `postgres` probe per server, \
                 interval {INTERVAL_S} s, timeout 4 s, the kind's defaults otherwise (for 0 s, \
                 recover_after 2, slot_retained_critical 10 GiB, slot_growth_horizon 4 h, \
                 heartbeat_warning 3 × interval = 15 s, heartbeat_critical 10 × interval = 50 s); \
                 primary: `expected_standbys = [\"node2\"]`, `heartbeat = true`; standby: \
                 `heartbeat = true`; alerts read from `/api/v1/alerts` (probes db1, db2 only)"
            ),
            Monitor::Prometheus { rules, current, .. } => {
                let version = Command::new("prometheus-postgres-exporter")
                    .arg("--version")
                    .output()
                    .map(|o| {
                        let s = format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        );
                        s.lines().next().unwrap_or("").to_string()
                    })
                    .unwrap_or_default();
                let list = if std::env::var("BENCH_PG_RULES").is_ok() {
                    format!("rules file {rules}")
                } else {
                    STOCK_RULES
                        .iter()
                        .map(|(n, e, f, s)| format!("`{n}` (`{e}`, for {f}, {s})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let flags = if *current {
                    "stock flags plus `--extend.query-path` with `pg_replication_lag_seconds` and \
                     `pg_replication_is_replica` defined as upstream's replication collector \
                     (postgres_exporter dbb1987e, after v0.20.1) defines them"
                } else {
                    "stock flags (no extra queries)"
                };
                format!(
                    "{version}, one per server, {flags}, `DATA_SOURCE_NAME` = superuser \
                     `postgres` over TCP; Prometheus scrape_interval {INTERVAL_S} s, \
                     scrape_timeout 4 s, evaluation_interval {INTERVAL_S} s; rules from \
                     samber/awesome-prometheus-alerts `dist/rules/postgresql/postgres-exporter.yml` \
                     @ ed1515015a55 (expr, for, severity verbatim): {list}"
                )
            }
        }
    }
}
