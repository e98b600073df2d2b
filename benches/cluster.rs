//! `scripts/bench cluster`: three lookout nodes on three etcd members against three
//! Alertmanagers gossiping with each other, side by side in one run, in network namespaces the
//! bench creates (needs root and iproute2; nothing of the host's network is touched).
//!
//! One `NetLab` of six node namespaces: nodes 0–2 run lookout (release build, `[cluster]` with
//! `lease_ttl = "2s"`), nodes 3–5 run Alertmanager (Debian `prometheus-alertmanager`,
//! `--cluster.listen-address`, `--cluster.advertise-address` and `--cluster.peer` for the two
//! others; `group_wait: 0s`, `group_by: ['...']`). etcd ×3 and the webhook receiver both sides
//! post to run in the hub. The same alert goes to every node of a side, as Prometheus sends it:
//! lookout through `POST /api/v1/alertmanager` (payload version 4, the intake token),
//! Alertmanager through `POST /api/v2/alerts`.
//!
//! - (a) first page: from feeding an alert to its first delivery, `BENCH_CLUSTER_ALERTS`
//!   (default 10) distinct alerts, median and max;
//! - (b) duplicates while one node is partitioned (its link down; lookout's leader, the
//!   Alertmanager that sends): `BENCH_CLUSTER_PARTITION_ALERTS` (default 5) new alerts fed to
//!   every node, the partitioned one too; deliveries counted `BENCH_CLUSTER_WINDOW` seconds
//!   (default 30) into the partition and again 15 s after it healed;
//! - (c) paging resumes: an alert that pages every second (lookout: a route to a policy with
//!   `repeat_interval = "1s"`; Alertmanager: `group_interval` and `repeat_interval` 1s); the node
//!   that sends is SIGKILLed, the gap from the kill to the next delivery is measured
//!   `BENCH_CLUSTER_KILLS` times (default 3; the killed node is restarted in between).
//!
//! `BENCH_CLUSTER_QUICK=1`: one alert in (a), one in (b), one kill in (c) — a short run that
//! keeps this code working. Measured numbers only; nothing here asserts a timing.

#[path = "../tests/cluster_kit/mod.rs"]
mod cluster_kit;
#[path = "../tests/kit/mod.rs"]
mod kit;

use cluster_kit::Etcd;
use cluster_kit::netlab::{HUB, NetLab, serve_sink, sink_received, wait_port_in};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The intake token of every lookout node (they listen beyond loopback).
const TOKEN: &str = "bench-cluster-intake-token";
/// lookout's node names, nodes 0–2 of the lab.
const NAMES: [&str; 3] = ["a", "b", "c"];
/// The lab's first Alertmanager node.
const AM0: usize = 3;

/// Kills a child by PID on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A daemon in a node namespace, startable again after a kill; killed by PID on drop.
struct NsProc {
    label: String,
    ns: String,
    addr: String,
    port: u16,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl NsProc {
    fn spawn(&mut self) {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = NetLab::command_in(&self.ns, &self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        self.child = Some(cmd.spawn().expect("start a daemon in its namespace"));
        if std::panic::catch_unwind(|| wait_port_in(&self.ns, &self.addr, self.port)).is_err() {
            panic!(
                "{} did not listen on {}:{}; log:\n{}",
                self.label,
                self.addr,
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    /// SIGKILLs it by PID and waits for it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The command line it runs with (for the report).
    fn command_line(&self) -> String {
        let mut parts = vec![
            "ip netns exec".to_string(),
            self.ns.clone(),
            self.program.display().to_string(),
        ];
        parts.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        parts.join(" ")
    }
}

impl Drop for NsProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One delivery the receiver got: when, the alert's `n` label, and who sent it (lookout's
/// node name, Alertmanager's external URL).
#[derive(Clone, Debug)]
struct Delivery {
    at: f64,
    key: String,
    from: String,
}

/// Every firing delivery of either side so far.
fn deliveries(dir: &Path) -> Vec<Delivery> {
    let mut out = Vec::new();
    for (at, body) in sink_received(dir) {
        if body["event"] == "firing"
            && let Some(n) = body["alert"]["labels"]["n"].as_str()
        {
            out.push(Delivery {
                at,
                key: n.to_string(),
                from: body["node"].as_str().unwrap_or("?").to_string(),
            });
        }
        if let Some(alerts) = body["alerts"].as_array() {
            for a in alerts.iter().filter(|a| a["status"] == "firing") {
                if let Some(n) = a["labels"]["n"].as_str() {
                    out.push(Delivery {
                        at,
                        key: n.to_string(),
                        from: body["externalURL"].as_str().unwrap_or("?").to_string(),
                    });
                }
            }
        }
    }
    out
}

/// Waits (at most `within`) for a delivery of `key` after `after` (unix seconds) not sent by
/// `not_from`.
fn wait_delivery(
    dir: &Path,
    key: &str,
    after: f64,
    not_from: Option<&str>,
    within: Duration,
) -> Option<Delivery> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(d) = deliveries(dir)
            .into_iter()
            .find(|d| d.key == key && d.at > after && Some(d.from.as_str()) != not_from)
        {
            return Some(d);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The labels of bench alert `key` of `kind` (`first`, `partition`, `repeat`).
fn labels(kind: &str, key: &str) -> Value {
    json!({"alertname": "BenchCluster", "severity": "critical", "bench": kind, "n": key})
}

/// lookout's intake body (Alertmanager's webhook payload, version 4) for these labels.
fn lookout_body(alerts: &[Value]) -> String {
    json!({
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "lookout",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://bench",
        "alerts": alerts.iter().map(|l| json!({
            "status": "firing",
            "labels": l,
            "annotations": {"summary": "bench"},
            "startsAt": lookout::model::format_utc(unix_now()),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://bench",
            "fingerprint": l["n"],
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Alertmanager's `POST /api/v2/alerts` body for these labels.
fn am_body(alerts: &[Value]) -> String {
    Value::Array(
        alerts
            .iter()
            .map(|l| json!({"labels": l, "annotations": {"summary": "bench"}}))
            .collect(),
    )
    .to_string()
}

/// The feeder: posts one body to every URL at once (threads, as Prometheus does) and prints
/// the unix time it started sending, and each answer.
const FEED_PY: &str = r#"import json, sys, threading, time, urllib.request
token, body, urls = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
res = {}
def post(u):
    req = urllib.request.Request(u, data=body, method="POST", headers={"Content-Type": "application/json"})
    if token != "-":
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            res[u] = r.status
    except Exception as e:
        res[u] = str(e)
ts = [threading.Thread(target=post, args=(u,)) for u in urls]
t0 = time.time()
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({"sent": t0, "results": res}))
"#;

/// The lab and everything running in it.
struct Bench<'l> {
    dir: PathBuf,
    lab: &'l NetLab,
    lookout: Vec<NsProc>,
    am: Vec<NsProc>,
}

impl Bench<'_> {
    /// Feeds `body` from namespace `ns` to `urls` (`token` for lookout, `-` for none); answers
    /// the unix time it started sending.
    fn feed(&self, ns: &str, token: &str, body: &str, urls: &[String]) -> f64 {
        let script = self.dir.join("feed.py");
        let mut args = vec![script.to_str().unwrap(), token, body];
        args.extend(urls.iter().map(String::as_str));
        let (code, out) = NetLab::run_in(ns, Path::new("python3"), &args, Duration::from_secs(15));
        let v: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
        let ok = v["results"]
            .as_object()
            .is_some_and(|r| r.values().all(|s| s == 200));
        if code != 0 || !ok {
            eprintln!("feeding from {ns}: exit {code}, {}", out.trim());
        }
        v["sent"].as_f64().unwrap_or_else(unix_now)
    }

    fn lookout_urls(&self) -> Vec<String> {
        self.lookout
            .iter()
            .map(|n| format!("http://{}:{}/api/v1/alertmanager", n.addr, n.port))
            .collect()
    }

    fn am_urls(&self) -> Vec<String> {
        self.am
            .iter()
            .map(|n| format!("http://{}:{}/api/v2/alerts", n.addr, n.port))
            .collect()
    }

    /// Feeds these alerts to every lookout node from the hub (where Prometheus would be).
    fn feed_lookout(&self, alerts: &[Value]) -> f64 {
        self.feed(
            &self.lab.hub_ns(),
            TOKEN,
            &lookout_body(alerts),
            &self.lookout_urls(),
        )
    }

    /// Feeds these alerts to every Alertmanager from the hub.
    fn feed_am(&self, alerts: &[Value]) -> f64 {
        self.feed(&self.lab.hub_ns(), "-", &am_body(alerts), &self.am_urls())
    }

    /// `lookout --state-dir S cluster status --json` inside lookout node `i`'s namespace.
    fn cluster_status(&self, i: usize) -> Option<(i32, Value)> {
        let n = &self.lookout[i];
        n.child.as_ref()?;
        let state = self.dir.join(format!("state-{}", NAMES[i]));
        let (code, out) = NetLab::run_in(
            &n.ns,
            &kit::lookout_bin(),
            &[
                "--state-dir",
                state.to_str().unwrap(),
                "cluster",
                "status",
                "--json",
            ],
            Duration::from_secs(5),
        );
        Some((code, serde_json::from_str(&out).ok()?))
    }

    /// The lookout node that leads with a valid lease, if one does.
    fn leader(&self) -> Option<usize> {
        (0..3).find(|&i| {
            self.cluster_status(i)
                .is_some_and(|(_, v)| v["role"] == "leader" && v["lease_valid"] == true)
        })
    }

    /// Waits (at most `within`) until some node leads and every running node sees all three
    /// members healthy (`cluster status` exits 0); answers the leader if one was found.
    fn wait_lookout_healthy(&self, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        loop {
            let healthy = (0..3).all(|i| {
                self.lookout[i].child.is_none()
                    || self.cluster_status(i).is_some_and(|(c, v)| {
                        c == 0 && v["members"].as_array().map(Vec::len) == Some(3)
                    })
            });
            if healthy && let Some(l) = self.leader() {
                return Some(l);
            }
            if Instant::now() > deadline {
                eprintln!("lookout's cluster not healthy within {within:?}");
                return self.leader();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Alertmanager `i`'s `/api/v2/status`, asked inside its own namespace.
    fn am_status(&self, i: usize) -> Option<Value> {
        let n = &self.am[i];
        n.child.as_ref()?;
        let url = format!("http://{}:{}/api/v2/status", n.addr, n.port);
        let (code, out) = NetLab::run_in(
            &n.ns,
            Path::new("curl"),
            &["-s", "-m", "2", &url],
            Duration::from_secs(5),
        );
        if code != 0 {
            return None;
        }
        serde_json::from_str(&out).ok()
    }

    /// Waits (at most `within`) until every running Alertmanager's cluster is `ready` with
    /// `peers` peers.
    fn wait_am_ready(&self, peers: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ready = (0..3).all(|i| {
                self.am[i].child.is_none()
                    || self.am_status(i).is_some_and(|v| {
                        v["cluster"]["status"] == "ready"
                            && v["cluster"]["peers"].as_array().map(Vec::len) == Some(peers)
                    })
            });
            if ready {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("Alertmanager's cluster not ready with {peers} peers within {within:?}");
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The Alertmanager (0–2) whose external URL is `url`.
    fn am_index(&self, url: &str) -> Option<usize> {
        self.am
            .iter()
            .position(|n| url.trim_end_matches('/') == format!("http://{}:{}", n.addr, n.port))
    }
}

/// The sender that sent most of these deliveries.
fn most_common(ds: &[Delivery]) -> Option<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for d in ds {
        *count.entry(d.from.as_str()).or_default() += 1;
    }
    count
        .into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(f, _)| f.to_string())
}

/// Who sent these deliveries, and how many each: `a ×10`.
fn senders(ds: &[Delivery]) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for d in ds {
        *count.entry(d.from.as_str()).or_default() += 1;
    }
    if count.is_empty() {
        return "nobody".into();
    }
    count
        .into_iter()
        .map(|(f, c)| format!("{f} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn ratio(l: f64, a: f64) -> String {
    if a == 0.0 || a.is_nan() || l.is_nan() {
        "n/a".to_string()
    } else {
        format!("{:.2}", l / a)
    }
}

/// (b) of one side: deliveries per alert, during the partition and in all.
struct PartitionCount {
    during: usize,
    total: usize,
    duplicates: usize,
    lost: usize,
    senders: Vec<String>,
}

fn count_partition(dir: &Path, keys: &[String], during_until: f64) -> PartitionCount {
    let ds = deliveries(dir);
    let mut c = PartitionCount {
        during: 0,
        total: 0,
        duplicates: 0,
        lost: 0,
        senders: Vec::new(),
    };
    for k in keys {
        let mine: Vec<&Delivery> = ds.iter().filter(|d| &d.key == k).collect();
        c.total += mine.len();
        c.during += mine.iter().filter(|d| d.at <= during_until).count();
        c.duplicates += mine.len().saturating_sub(1);
        if mine.is_empty() {
            c.lost += 1;
        }
        for d in mine {
            if !c.senders.contains(&d.from) {
                c.senders.push(d.from.clone());
            }
        }
    }
    c
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` must not start servers
    }
    kit::require_root("network namespaces");
    let quick = std::env::var("BENCH_CLUSTER_QUICK").is_ok_and(|v| v == "1");
    let (alerts_a, alerts_b, kills) = if quick {
        (1, 1, 1)
    } else {
        (
            env_usize("BENCH_CLUSTER_ALERTS", 10),
            env_usize("BENCH_CLUSTER_PARTITION_ALERTS", 5),
            env_usize("BENCH_CLUSTER_KILLS", 3),
        )
    };
    let window = env_usize("BENCH_CLUSTER_WINDOW", 30) as u64;
    let began = Instant::now();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_path_buf();
    std::fs::write(dir.join("feed.py"), FEED_PY).unwrap();
    let lab = NetLab::new(6);
    let etcd = Etcd::start_in(Some(&lab.hub_ns()), HUB, 3);
    let ports = cluster_kit::distinct_ports(10);
    let sink_port = ports[0];
    let _sink = Killed(serve_sink(&lab, &dir, sink_port));
    let hook = format!("http://{HUB}:{sink_port}/");

    let endpoints: Vec<String> = etcd
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    let mut bench = Bench {
        dir: dir.clone(),
        lab: &lab,
        lookout: Vec::new(),
        am: Vec::new(),
    };
    for (i, name) in NAMES.iter().enumerate() {
        let addr = bench.lab.node_addr(i);
        let port = ports[1 + i];
        let config = format!(
            r#"[cluster]
endpoints = [{endpoints}]
name = "{name}"
lease_ttl = "2s"
api_url = "http://{addr}:{port}"

[intake]
alertmanager_token = "{TOKEN}"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{hook}"
min_severity = "info"

[[route]]
matchers = ["bench=repeat"]
policy = "repeat"

[[policy]]
id = "repeat"
repeat_interval = "1s"
[[policy.step]]
targets = ["hook"]
ack_timeout = "1s"
"#,
            endpoints = endpoints.join(", ")
        );
        let cfg = kit::write_config(&dir, &format!("{name}.toml"), &config);
        let state = dir.join(format!("state-{name}"));
        std::fs::create_dir_all(&state).unwrap();
        let mut p = NsProc {
            label: format!("lookout {name}"),
            ns: bench.lab.node_ns(i),
            addr: addr.clone(),
            port,
            program: kit::lookout_bin(),
            args: vec![
                "--config".into(),
                cfg.into(),
                "--state-dir".into(),
                state.into(),
                "run".into(),
                "--listen".into(),
                format!("0.0.0.0:{port}").into(),
            ],
            env: vec![("LOOKOUT_LOG".into(), "info".into())],
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        p.spawn();
        bench.lookout.push(p);
    }

    let am_config = format!(
        r#"route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['bench="repeat"']
      receiver: sink
      group_wait: 0s
      group_interval: 1s
      repeat_interval: 1s
receivers:
  - name: sink
    webhook_configs:
      - url: {hook}
        send_resolved: true
"#
    );
    let am_yml = kit::write_file(&dir, "alertmanager.yml", &am_config);
    let gossip: Vec<String> = (0..3)
        .map(|j| format!("{}:{}", bench.lab.node_addr(AM0 + j), ports[7 + j]))
        .collect();
    for j in 0..3 {
        let addr = bench.lab.node_addr(AM0 + j);
        let port = ports[4 + j];
        let mut args: Vec<OsString> = vec![
            format!("--config.file={}", am_yml.display()).into(),
            format!("--storage.path={}", dir.join(format!("am{j}")).display()).into(),
            format!("--web.listen-address=0.0.0.0:{port}").into(),
            format!("--web.external-url=http://{addr}:{port}").into(),
            format!("--cluster.listen-address={}", gossip[j]).into(),
            format!("--cluster.advertise-address={}", gossip[j]).into(),
        ];
        for (k, g) in gossip.iter().enumerate() {
            if k != j {
                args.push(format!("--cluster.peer={g}").into());
            }
        }
        let mut p = NsProc {
            label: format!("Alertmanager {j}"),
            ns: bench.lab.node_ns(AM0 + j),
            addr,
            port,
            program: PathBuf::from("/usr/bin/prometheus-alertmanager"),
            args,
            env: Vec::new(),
            log: dir.join(format!("am{j}.log")),
            child: None,
        };
        p.spawn();
        bench.am.push(p);
    }
    let leader0 = bench.wait_lookout_healthy(Duration::from_secs(30));
    bench.wait_am_ready(3, Duration::from_secs(90));
    println!(
        "set-up ({:.1} s): lookout leader {:?}; etcd ×3 in the hub",
        began.elapsed().as_secs_f64(),
        leader0.map(|l| NAMES[l])
    );

    // Warm-up: one alert each, waited for (connections, Alertmanager's gossip settling).
    bench.feed_lookout(&[labels("first", "L-warm")]);
    bench.feed_am(&[labels("first", "A-warm")]);
    let wl = wait_delivery(&dir, "L-warm", 0.0, None, Duration::from_secs(30));
    let wa = wait_delivery(&dir, "A-warm", 0.0, None, Duration::from_secs(60));
    eprintln!("warm-up: lookout {wl:?}, Alertmanager {wa:?}");

    // (a) first page.
    let mut lat_l = Vec::new();
    let mut lat_a = Vec::new();
    let mut lost_a = (0, 0);
    let mut first_l = Vec::new();
    let mut first_a = Vec::new();
    for i in 0..alerts_a {
        let key = format!("L-first-{i}");
        let sent = bench.feed_lookout(&[labels("first", &key)]);
        match wait_delivery(&dir, &key, 0.0, None, Duration::from_secs(30)) {
            Some(d) => {
                lat_l.push((d.at - sent) * 1000.0);
                first_l.push(d);
            }
            None => lost_a.0 += 1,
        }
        let key = format!("A-first-{i}");
        let sent = bench.feed_am(&[labels("first", &key)]);
        match wait_delivery(&dir, &key, 0.0, None, Duration::from_secs(60)) {
            Some(d) => {
                lat_a.push((d.at - sent) * 1000.0);
                first_a.push(d);
            }
            None => lost_a.1 += 1,
        }
    }
    eprintln!("(a) lookout {lat_l:?} ms; Alertmanager {lat_a:?} ms");

    // (b) one node of each side partitioned: lookout's leader, the Alertmanager that sends.
    let part_l = bench
        .wait_lookout_healthy(Duration::from_secs(30))
        .unwrap_or(0);
    let am_sender = most_common(&first_a).or(wa.as_ref().map(|d| d.from.clone()));
    let part_a = am_sender
        .as_deref()
        .and_then(|u| bench.am_index(u))
        .unwrap_or(0);
    bench.lab.partition(part_l);
    bench.lab.partition(AM0 + part_a);
    let t_part = unix_now();
    let keys_l: Vec<String> = (0..alerts_b).map(|i| format!("L-part-{i}")).collect();
    let keys_a: Vec<String> = (0..alerts_b).map(|i| format!("A-part-{i}")).collect();
    let body_l = lookout_body(
        &keys_l
            .iter()
            .map(|k| labels("partition", k))
            .collect::<Vec<_>>(),
    );
    let body_a = am_body(
        &keys_a
            .iter()
            .map(|k| labels("partition", k))
            .collect::<Vec<_>>(),
    );
    // Every node gets them from inside its own namespace, the partitioned one too.
    for n in &bench.lookout {
        let url = format!("http://127.0.0.1:{}/api/v1/alertmanager", n.port);
        bench.feed(&n.ns, TOKEN, &body_l, &[url]);
    }
    for n in &bench.am {
        let url = format!("http://127.0.0.1:{}/api/v2/alerts", n.port);
        bench.feed(&n.ns, "-", &body_a, &[url]);
    }
    std::thread::sleep(Duration::from_secs(window));
    let t_heal = unix_now();
    bench.lab.heal(part_l);
    bench.lab.heal(AM0 + part_a);
    std::thread::sleep(Duration::from_secs(15));
    let pc_l = count_partition(&dir, &keys_l, t_heal);
    let pc_a = count_partition(&dir, &keys_a, t_heal);
    eprintln!(
        "(b) partitioned lookout {} and Alertmanager {} at {t_part:.3}, healed at {t_heal:.3}",
        NAMES[part_l], part_a
    );

    // (c) paging resumes after the sending node is SIGKILLed.
    bench.wait_lookout_healthy(Duration::from_secs(30));
    bench.wait_am_ready(3, Duration::from_secs(60));
    let mut gaps_l = Vec::new();
    let mut gaps_a = Vec::new();
    let mut notes_c = Vec::new();
    bench.feed_lookout(&[labels("repeat", "L-repeat")]);
    for k in 0..kills {
        let t0 = unix_now();
        // Two pages in a row before the kill: the escalation is under way.
        let _ = wait_delivery(&dir, "L-repeat", t0, None, Duration::from_secs(30));
        let _ = wait_delivery(&dir, "L-repeat", unix_now(), None, Duration::from_secs(30));
        let Some(leader) = bench.leader() else {
            eprintln!("(c) kill {k}: no lookout leader");
            continue;
        };
        bench.lookout[leader].kill();
        let t_kill = unix_now();
        match wait_delivery(
            &dir,
            "L-repeat",
            t_kill,
            Some(NAMES[leader]),
            Duration::from_secs(60),
        ) {
            Some(d) => {
                gaps_l.push(d.at - t_kill);
                notes_c.push(format!(
                    "lookout kill {k}: killed leader {}, {} paged {:.2} s later",
                    NAMES[leader],
                    d.from,
                    d.at - t_kill
                ));
            }
            None => notes_c.push(format!("lookout kill {k}: no page within 60 s")),
        }
        bench.lookout[leader].spawn();
        bench.wait_lookout_healthy(Duration::from_secs(30));
        // Prometheus sends its firing alerts again and again: the restarted node has it too.
        bench.feed_lookout(&[labels("repeat", "L-repeat")]);
    }
    bench.feed_am(&[labels("repeat", "A-repeat")]);
    for k in 0..kills {
        let t0 = unix_now();
        let mut recent = Vec::new();
        for _ in 0..3 {
            let after = recent.last().map_or(t0, |d: &Delivery| d.at);
            if let Some(d) = wait_delivery(&dir, "A-repeat", after, None, Duration::from_secs(60)) {
                recent.push(d);
            }
        }
        let Some(sender) = most_common(&recent).and_then(|u| bench.am_index(&u)) else {
            notes_c.push(format!(
                "Alertmanager kill {k}: no deliveries to find the sender"
            ));
            continue;
        };
        let sender_url = recent
            .iter()
            .find(|d| bench.am_index(&d.from) == Some(sender))
            .map(|d| d.from.clone())
            .unwrap();
        bench.am[sender].kill();
        let t_kill = unix_now();
        match wait_delivery(
            &dir,
            "A-repeat",
            t_kill,
            Some(&sender_url),
            Duration::from_secs(90),
        ) {
            Some(d) => {
                gaps_a.push(d.at - t_kill);
                notes_c.push(format!(
                    "Alertmanager kill {k}: killed {sender_url}, {} sent {:.2} s later",
                    d.from,
                    d.at - t_kill
                ));
            }
            None => notes_c.push(format!("Alertmanager kill {k}: no delivery within 90 s")),
        }
        bench.am[sender].spawn();
        bench.wait_am_ready(3, Duration::from_secs(60));
        // Alertmanager keeps alerts in memory only and does not gossip them: the restarted
        // node gets the alert back as Prometheus sends it again.
        bench.feed_am(&[labels("repeat", "A-repeat")]);
    }

    // The report.
    // cargo adds `--bench`; anything else came from the command line.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let envs: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BENCH_CLUSTER_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "\ncommand: {}scripts/bench cluster (cargo bench --locked --bench cluster{})",
        envs.iter().map(|e| format!("{e} ")).collect::<String>(),
        if args.is_empty() {
            String::new()
        } else {
            format!(" -- {}", args.join(" "))
        }
    );
    println!("lookout node a: {}", bench.lookout[0].command_line());
    println!("Alertmanager 0: {}", bench.am[0].command_line());
    println!(
        "(a) {alerts_a} alerts, (b) {alerts_b} alerts counted {window} s into the partition and 15 s after it healed, (c) {kills} kill(s)\n"
    );
    println!("| scenario | lookout | Alertmanager | ratio (lookout/AM) | target |");
    println!("|---|---|---|---|---|");
    let (ml, ma) = (median(&lat_l), median(&lat_a));
    println!(
        "| (a) first page, median | {ml:.1} ms | {ma:.1} ms | {} | — |",
        ratio(ml, ma)
    );
    let (xl, xa) = (max(&lat_l), max(&lat_a));
    println!(
        "| (a) first page, max | {xl:.1} ms | {xa:.1} ms | {} | — |",
        ratio(xl, xa)
    );
    println!(
        "| (a) alerts never delivered (30 s / 60 s) | {} | {} | — | 0 |",
        lost_a.0, lost_a.1
    );
    println!(
        "| (b) duplicates, partition of one node ({alerts_b} alerts) | {} | {} | {} | 0 for lookout |",
        pc_l.duplicates,
        pc_a.duplicates,
        ratio(pc_l.duplicates as f64, pc_a.duplicates as f64)
    );
    println!(
        "| (b) alerts never delivered | {} | {} | — | 0 |",
        pc_l.lost, pc_a.lost
    );
    let (gl, ga) = (median(&gaps_l), median(&gaps_a));
    println!(
        "| (c) kill → next page, median | {gl:.2} s | {ga:.2} s | {} | ≤ 3.0 s (lease_ttl + 1 s) for lookout |",
        ratio(gl, ga)
    );
    let (gxl, gxa) = (max(&gaps_l), max(&gaps_a));
    println!(
        "| (c) kill → next page, max | {gxl:.2} s | {gxa:.2} s | {} | ≤ 3.0 s for lookout |",
        ratio(gxl, gxa)
    );
    println!();
    println!(
        "(a) lookout: first pages sent by {}; Alertmanager: by {}.",
        senders(&first_l),
        senders(&first_a)
    );
    println!(
        "(b) lookout: leader {} partitioned; {} deliveries while it was cut off, {} in all, sent by {:?}{}.",
        NAMES[part_l],
        pc_l.during,
        pc_l.total,
        pc_l.senders,
        if pc_l.senders.iter().any(|s| s == NAMES[part_l]) {
            ": the partitioned leader sent its own pages too"
        } else {
            ": the partitioned leader sent nothing, during the partition or after it healed"
        }
    );
    println!(
        "(b) Alertmanager: {} partitioned; {} deliveries while it was cut off, {} in all (the rest after it healed), sent by {:?}{}.",
        bench.am[part_a].addr,
        pc_a.during,
        pc_a.total,
        pc_a.senders,
        if pc_a
            .senders
            .iter()
            .any(|s| bench.am_index(s) == Some(part_a))
        {
            ": the isolated node sent its own notifications"
        } else {
            ""
        }
    );
    for n in &notes_c {
        println!("(c) {n}");
    }
    println!("\nrun time: {:.0} s", began.elapsed().as_secs_f64());
    // Children by PID first, then etcd and the sink; the namespaces go with `lab`, last.
    drop(bench);
    drop(_sink);
    drop(etcd);
    drop(lab);
}
