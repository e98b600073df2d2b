//! Observers and quorum (docs/cluster.md, "Remote targets: observers and quorum") in network
//! namespaces the test creates: three lookout nodes, each in its own namespace, reach etcd,
//! each other and a webhook sink on a hub, and the probed target only through a route. One
//! node losing that route raises its own route alert, not a page for the target; when every
//! node loses it, the target's page goes out. Needs root and iproute2.

mod cluster_kit;
mod kit;

use cluster_kit::Etcd;
use cluster_kit::netlab::{HUB, NetLab, TARGET, serve_sink, sink_received, wait_port_in};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A lookout daemon inside a node namespace, killed by PID on drop.
struct NsNode {
    ns: String,
    state: PathBuf,
    log: PathBuf,
    child: Child,
}

impl NsNode {
    fn start(ns: &str, dir: &Path, name: &str, config: &str, addr: &str, port: u16) -> NsNode {
        let state = dir.join(format!("state-{name}"));
        std::fs::create_dir_all(&state).unwrap();
        let cfg = kit::write_config(dir, &format!("{name}.toml"), config);
        let log = dir.join(format!("{name}.log"));
        let logf = std::fs::File::create(&log).unwrap();
        let child = NetLab::command_in(ns, &kit::lookout_bin())
            .arg("--config")
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&state)
            .args(["run", "--listen", &format!("{addr}:{port}")])
            .env("LOOKOUT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("lookout in a namespace");
        if std::panic::catch_unwind(|| wait_port_in(ns, addr, port)).is_err() {
            panic!(
                "lookout {name} did not listen on {addr}:{port}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        NsNode {
            ns: ns.to_string(),
            state,
            log,
            child,
        }
    }

    /// `lookout --state-dir STATE ARGS` run inside this node's namespace.
    fn cli(&self, args: &[&str]) -> (i32, String) {
        let state = self.state.to_str().unwrap();
        let mut all = vec!["--state-dir", state];
        all.extend_from_slice(args);
        NetLab::run_in(&self.ns, &kit::lookout_bin(), &all, Duration::from_secs(10))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a child by PID on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(name: &str, etcd: &str, target_port: u16, sink_port: u16) -> String {
    format!(
        r#"
[cluster]
endpoints = ["{etcd}"]
name = "{name}"
lease_ttl = "2s"

[intake]
alertmanager_token = "quorum-test-intake-token"

[[probe]]
id = "homeserver"
kind = "http"
url = "http://{TARGET}:{target_port}/"
interval = "1s"
timeout = "1s"
observers = "all"
quorum = "majority"

[[probe]]
id = "routes"
kind = "route"
interval = "1s"
timeout = "1s"

[[notifier]]
id = "hook"
kind = "webhook"
url = "http://{HUB}:{sink_port}/"
"#
    )
}

fn pages(dir: &Path, probe: &str) -> Vec<serde_json::Value> {
    sink_received(dir)
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b["event"] == "firing" && b["alert"]["probe"] == probe)
        .collect()
}

#[test]
fn one_observer_losing_its_route_pages_its_own_alert_not_the_targets() {
    kit::require_root("network namespaces");
    let lab = NetLab::new(3);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let etcd = Etcd::start_in(Some(&lab.hub_ns()), HUB, 1);
    let ports = cluster_kit::distinct_ports(5);
    let (target_port, sink_port) = (ports[0], ports[1]);
    let _target = Killed(lab.serve_target(dir, target_port));
    let _sink = Killed(serve_sink(&lab, dir, sink_port));
    let names = ["a", "b", "c"];
    let nodes: Vec<NsNode> = (0..3)
        .map(|i| {
            let port = ports[2 + i];
            NsNode::start(
                &lab.node_ns(i),
                dir,
                names[i],
                &config(names[i], &etcd.endpoint(0), target_port, sink_port),
                &lab.node_addr(i),
                port,
            )
        })
        .collect();
    // A leader, and every probe ok on every node before anything breaks.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out) = nodes[0].cli(&["cluster", "status"]);
        if code == 0 && out.contains("leader") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no healthy cluster: {out}\n{}",
            nodes[0].log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(pages(dir, "homeserver").is_empty(), "the target is up");

    // Node c loses its route to the target: its route alert pages, the target's does not.
    lab.del_target_route(2);
    let deadline = Instant::now() + Duration::from_secs(15);
    let route_page = loop {
        if let Some(p) = pages(dir, "routes").into_iter().next() {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no route alert for node c; log of c:\n{}",
            nodes[2].log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(route_page["alert"]["labels"]["node"], "c", "{route_page}");
    assert!(
        route_page["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("10.96.0.0/24"),
        "{route_page}"
    );
    std::thread::sleep(Duration::from_secs(5));
    let (_, alerts_c) = nodes[2].cli(&["alerts", "--json"]);
    assert!(
        alerts_c.contains("homeserver"),
        "node c itself sees the target fail: {alerts_c}"
    );
    assert!(
        pages(dir, "homeserver").is_empty(),
        "one observer of three is no majority: no page for the target"
    );

    // Every observer loses it: the target's page goes out, once.
    lab.del_target_route(0);
    lab.del_target_route(1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let target_page = loop {
        if let Some(p) = pages(dir, "homeserver").into_iter().next() {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no page for the target once every observer lost it"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let message = target_page["alert"]["message"].as_str().unwrap();
    assert!(message.contains("live observers"), "{message}");
    assert!(
        target_page["alert"]["labels"].get("node").is_none(),
        "the target's alert is the cluster's, not one node's: {target_page}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pages(dir, "homeserver").len(), 1, "one page for the target");
    drop(nodes);
    drop(etcd);
}
