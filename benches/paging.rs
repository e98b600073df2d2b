//! `scripts/bench paging`: alert in → webhook delivered, side by side in one run on loopback.
//!
//! - lookout (release build, its notification log persisted in SQLite as always) is fed through
//!   its Alertmanager intake (`POST /api/v1/alertmanager`, a version 4 payload) and pages one
//!   `webhook` notifier;
//! - Alertmanager (Debian `prometheus-alertmanager`, clustering off, `group_wait: 0s`,
//!   `group_by: ['...']` so that every alert is a group of its own) is fed through its own API
//!   (`POST /api/v2/alerts`, as Prometheus does) and posts to one webhook receiver.
//!
//! - lookout again, with one `[[route]]` to a one-step `[[policy]]` paging the same webhook, so
//!   the escalation path is measured too.
//!
//! All post to the same kind of receiver here, which notes when each alert (label `n`) arrived.
//! Single alerts are sent one at a time, each waiting for its delivery; then a burst of
//! `BENCH_BURST` alerts in one request: the time until all arrived, and how many were lost or
//! arrived twice. `BENCH_SINGLES` (default 300) and `BENCH_BURST` (default 1000) change the sizes.

#[path = "../tests/intake_kit/mod.rs"]
mod intake_kit;
#[path = "../tests/kit/mod.rs"]
mod kit;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arrival times of alerts by their `n` label, and how often each came.
#[derive(Default)]
struct Arrivals {
    first: BTreeMap<String, Instant>,
    count: BTreeMap<String, u32>,
}

/// A webhook receiver on a free loopback port that understands both payloads.
struct Receiver {
    url: String,
    arrivals: Arc<Mutex<Arrivals>>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
        let a = arrivals.clone();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let a = a.clone();
                async move {
                    let now = Instant::now();
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let mut keys = Vec::new();
                    // lookout: one alert per message; only firing events count.
                    if v["event"] == "firing"
                        && let Some(n) = v["alert"]["labels"]["n"].as_str()
                    {
                        keys.push(n.to_string());
                    }
                    // Alertmanager: a group of alerts.
                    if let Some(alerts) = v["alerts"].as_array() {
                        for al in alerts.iter().filter(|al| al["status"] == "firing") {
                            if let Some(n) = al["labels"]["n"].as_str() {
                                keys.push(n.to_string());
                            }
                        }
                    }
                    let mut a = a.lock().unwrap();
                    for k in keys {
                        a.first.entry(k.clone()).or_insert(now);
                        *a.count.entry(k).or_insert(0) += 1;
                    }
                    "ok"
                }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            arrivals,
            _rt: rt,
        }
    }

    fn arrived(&self, key: &str) -> Option<Instant> {
        self.arrivals.lock().unwrap().first.get(key).copied()
    }

    fn wait(&self, key: &str, deadline: Duration) -> Option<Instant> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(t) = self.arrived(key) {
                return Some(t);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// One side of the comparison: how to send alerts to it.
trait Side {
    fn name(&self) -> &'static str;
    /// Sends these alerts (labels) in one request.
    fn send(&self, client: &reqwest::blocking::Client, alerts: &[Value]);
}

struct Lookout {
    url: String,
    label: &'static str,
}

impl Side for Lookout {
    fn name(&self) -> &'static str {
        self.label
    }

    fn send(&self, client: &reqwest::blocking::Client, alerts: &[Value]) {
        let payload = json!({
            "version": "4",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "lookout",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://bench",
            "alerts": alerts.iter().map(|labels| json!({
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "bench"},
                "startsAt": intake_kit::rfc3339(0.0),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://bench",
                "fingerprint": labels["n"],
            })).collect::<Vec<_>>(),
        });
        let r = client
            .post(format!("{}/api/v1/alertmanager", self.url))
            .bearer_auth("bench-token")
            .json(&payload)
            .send()
            .expect("lookout intake");
        assert!(r.status().is_success(), "lookout refused: {}", r.status());
    }
}

struct Am {
    am: intake_kit::Alertmanager,
}

impl Side for Am {
    fn name(&self) -> &'static str {
        "Alertmanager"
    }

    fn send(&self, client: &reqwest::blocking::Client, alerts: &[Value]) {
        let body: Vec<Value> = alerts
            .iter()
            .map(|labels| json!({"labels": labels, "annotations": {"summary": "bench"}}))
            .collect();
        let r = client
            .post(format!("{}/api/v2/alerts", self.am.url()))
            .json(&body)
            .send()
            .expect("Alertmanager API");
        assert!(
            r.status().is_success(),
            "Alertmanager refused: {}",
            r.status()
        );
    }
}

/// Results of one side.
struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    singles_lost: usize,
    burst_s: f64,
    burst_lost: usize,
    burst_dup: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn measure(side: &dyn Side, rx: &Receiver, run: &str, singles: usize, burst: usize) -> Measured {
    lookout::http::install_crypto_provider();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let labels = |n: String| json!({"alertname": "BenchAlert", "severity": "critical", "n": n});
    // Warm-up: connections, first-alert paths.
    for i in 0..10 {
        let key = format!("{run}-warm-{i}");
        side.send(&client, &[labels(key.clone())]);
        rx.wait(&key, Duration::from_secs(10));
    }
    let mut lat = Vec::new();
    let mut lost = 0;
    for i in 0..singles {
        let key = format!("{run}-single-{i}");
        let sent = Instant::now();
        side.send(&client, &[labels(key.clone())]);
        match rx.wait(&key, Duration::from_secs(10)) {
            Some(t) => lat.push(t.duration_since(sent).as_secs_f64() * 1000.0),
            None => lost += 1,
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let keys: Vec<String> = (0..burst).map(|i| format!("{run}-burst-{i}")).collect();
    let alerts: Vec<Value> = keys.iter().map(|k| labels(k.clone())).collect();
    let sent = Instant::now();
    side.send(&client, &alerts);
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let done = keys.iter().all(|k| rx.arrived(k).is_some());
        if done || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Late duplicates get a moment to show up.
    std::thread::sleep(Duration::from_secs(2));
    let a = rx.arrivals.lock().unwrap();
    let last = keys.iter().filter_map(|k| a.first.get(k)).max().copied();
    Measured {
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        singles_lost: lost,
        burst_s: last.map_or(f64::NAN, |t| t.duration_since(sent).as_secs_f64()),
        burst_lost: keys.iter().filter(|k| !a.first.contains_key(*k)).count(),
        burst_dup: keys
            .iter()
            .filter(|k| a.count.get(*k).copied().unwrap_or(0) > 1)
            .count(),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` must not start servers
    }
    let singles = env_usize("BENCH_SINGLES", 300);
    let burst = env_usize("BENCH_BURST", 1000);
    let rx = Receiver::start();
    let work = tempfile::tempdir().unwrap();
    let base = format!(
        r#"
[intake]
alertmanager_token = "bench-token"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"
min_severity = "info"
"#,
        rx.url
    );
    // The same, paged through a route and a one-step escalation policy.
    let escalated = format!(
        r#"{base}
[[route]]
policy = "page"

[[policy]]
id = "page"
[[policy.step]]
targets = ["hook"]
ack_timeout = "1h"
"#
    );
    let start = |name: &str, text: &str| {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = kit::write_file(&dir, "lookout.toml", text);
        kit::Daemon::start(&cfg, &dir.join("state"), &dir)
    };
    let plain_daemon = start("plain", &base);
    let policy_daemon = start("policy", &escalated);
    let lookout = Lookout {
        url: plain_daemon.url(),
        label: "lookout",
    };
    let lookout_policy = Lookout {
        url: policy_daemon.url(),
        label: "lookout, escalation policy",
    };
    let am = Am {
        am: intake_kit::Alertmanager::start_grouped(&rx.url, "unused", "['...']"),
    };
    println!("singles: {singles} alerts one at a time; burst: {burst} alerts in one request\n");
    let mut rows = Vec::new();
    for (i, side) in [&lookout as &dyn Side, &lookout_policy, &am]
        .into_iter()
        .enumerate()
    {
        let run = format!("side{i}");
        let m = measure(side, &rx, &run, singles, burst);
        rows.push((side.name(), m));
    }
    println!(
        "| side | p50 | p99 | max | singles lost | burst: all delivered after | burst lost | burst duplicated |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, m) in &rows {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {:.3} s | {} | {} |",
            m.p50_ms, m.p99_ms, m.max_ms, m.singles_lost, m.burst_s, m.burst_lost, m.burst_dup
        );
    }
    let a = &rows[2].1;
    for (name, l) in &rows[..2] {
        println!(
            "\n{name} / Alertmanager: p50 {:.2}×, p99 {:.2}×, burst {:.2}×",
            l.p50_ms / a.p50_ms,
            l.p99_ms / a.p99_ms,
            l.burst_s / a.burst_s
        );
    }
    for name in ["plain", "policy"] {
        let stored = lookout_deliveries(&work.path().join(name).join("state"));
        println!("lookout ({name}): the notification log holds {stored} delivered rows");
    }
    plain_daemon.terminate(Duration::from_secs(10));
    policy_daemon.terminate(Duration::from_secs(10));
}

/// Delivered rows in lookout's persisted notification log.
fn lookout_deliveries(state: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(state.join("lookout.db")).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM notifications WHERE outcome = 'delivered'",
        [],
        |r| r.get(0),
    )
    .unwrap_or(-1)
}
