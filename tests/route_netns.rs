//! The route probe against a real routing table: inside a network namespace the test creates
//! (a veth pair, addresses, a route to 10.99.0.0/16), the real lookout daemon runs with a route
//! probe every second. Deleting the route raises a critical alert naming it within about two
//! intervals; adding it back resolves the alert. Needs root and iproute2 (`ip`).

mod kit;

use kit::{lookout_bin, require_root, sh, write_config};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A network namespace with the daemon inside; the daemon is killed by PID and the namespace
/// deleted on drop, even when the test fails.
struct NetNs {
    name: String,
    daemon: Option<Child>,
    log: PathBuf,
}

impl NetNs {
    fn new() -> NetNs {
        require_root("a network namespace");
        let name = format!("lk-{:08x}", rand::random::<u32>());
        sh("ip", &["netns", "add", &name]);
        let ns = NetNs {
            name,
            daemon: None,
            log: PathBuf::new(),
        };
        // Both ends of the veth pair are created inside the namespace: nothing of the host's
        // network is touched.
        ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
        ns.ip(&["addr", "add", "10.98.0.1/24", "dev", "va"]);
        ns.ip(&["addr", "add", "10.98.0.2/24", "dev", "vb"]);
        for dev in ["lo", "va", "vb"] {
            ns.ip(&["link", "set", dev, "up"]);
        }
        ns.add_route();
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    fn add_route(&self) {
        self.ip(&[
            "route",
            "add",
            "10.99.0.0/16",
            "via",
            "10.98.0.2",
            "dev",
            "va",
        ]);
    }

    fn del_route(&self) {
        self.ip(&["route", "del", "10.99.0.0/16"]);
    }

    /// Starts `lookout run` inside the namespace, listening on 127.0.0.1:port there.
    fn start_daemon(&mut self, config: &Path, work: &Path, port: u16) {
        self.log = work.join("lookout.log");
        let logf = std::fs::File::create(&self.log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(lookout_bin())
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(work.join("state"))
            .arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("LOOKOUT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("spawn `ip netns exec … lookout run` (iproute2 installed?)");
        self.daemon = Some(child);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `lookout alerts --all --json` run inside the namespace (the API is only reachable there).
    fn alerts(&self, config: &Path, port: u16) -> Option<Vec<Value>> {
        let out = Command::new("timeout")
            .args(["10", "ip", "netns", "exec", &self.name])
            .arg(lookout_bin())
            .arg("--config")
            .arg(config)
            .arg("--api")
            .arg(format!("http://127.0.0.1:{port}"))
            .args(["alerts", "--all", "--json"])
            .output()
            .expect("run lookout alerts inside the namespace");
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()?
            .as_array()
            .cloned()
    }

    /// Polls the route alert until `pred` holds; panics after `within` with what was seen.
    fn wait_alert(
        &self,
        config: &Path,
        port: u16,
        what: &str,
        within: Duration,
        pred: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            if let Some(alerts) = self.alerts(config, port) {
                let a = alerts
                    .into_iter()
                    .find(|a| a["probe"] == "routes" && a["rule"] == "probe_status");
                if pred(a.as_ref()) {
                    return a;
                }
                last = Some(a);
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not seen within {within:?}; last route alert: {last:?}\nlog:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn is_open(a: Option<&Value>) -> bool {
    a.is_some_and(|a| a["state"] == "firing" || a["state"] == "pending")
}

/// Runs the delete/re-add cycle against a daemon configured with `probe`.
fn route_loss_pages_and_recovers(probe: &str, missing: &str) {
    let work = tempfile::tempdir().unwrap();
    let mut ns = NetNs::new();
    let port = kit::free_port();
    let config = write_config(work.path(), "lookout.toml", probe);
    ns.start_daemon(&config, work.path(), port);

    // The daemon is up and the probe has run once without complaint.
    ns.wait_alert(
        &config,
        port,
        "the daemon answering",
        Duration::from_secs(20),
        |a| !is_open(a),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = ns.alerts(&config, port).expect("alerts");
    assert!(
        !before
            .iter()
            .any(|a| a["probe"] == "routes" && is_open(Some(a))),
        "no alert while the route is there: {before:?}\n{}",
        ns.log_text()
    );

    ns.del_route();
    let deleted = Instant::now();
    let a = ns
        .wait_alert(
            &config,
            port,
            "the critical route alert",
            Duration::from_secs(10),
            |a| a.is_some_and(|a| a["state"] == "firing" && a["severity"] == "critical"),
        )
        .unwrap();
    let took = deleted.elapsed();
    let message = a["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(missing),
        "the alert names the missing route ({missing}): {message}"
    );
    // Interval 1 s: the next run (plus jitter) sees it; allow for the CLI round trips.
    assert!(took < Duration::from_secs(4), "alert took {took:?}");

    ns.add_route();
    ns.wait_alert(
        &config,
        port,
        "the alert resolving",
        Duration::from_secs(10),
        |a| a.is_some_and(|a| a["state"] == "resolved"),
    );
}

#[test]
fn configured_route_deleted_pages_critical_and_readding_resolves() {
    route_loss_pages_and_recovers(
        r#"
[[probe]]
id = "routes"
kind = "route"
interval = "1s"
expected = [
  { destination = "10.99.0.0/16", gateway = "10.98.0.2", device = "va" },
  { destination = "10.98.0.0/24", device = "va" },
]
"#,
        "missing: 10.99.0.0/16 via 10.98.0.2 dev va",
    );
}

#[test]
fn without_expected_routes_the_start_snapshot_is_expected() {
    route_loss_pages_and_recovers(
        r#"
[[probe]]
id = "routes"
kind = "route"
interval = "1s"
"#,
        "missing: 10.99.0.0/16 via 10.98.0.2 dev va",
    );
}
