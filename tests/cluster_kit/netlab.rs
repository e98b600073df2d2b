//! Network namespaces the test creates for cluster tests: a "hub" namespace with a bridge, the
//! services (etcd, a webhook sink, the probed target on its loopback) and a target address
//! only reachable through an explicit route; one namespace per lookout node joined to the hub by a veth pair
//! made inside the namespaces. Nothing of the host's own network is touched; every namespace
//! is deleted on drop (after the test's children in them were killed).

use super::super::kit::sh;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The hub's address on the bridge (nodes reach etcd and the sink there).
pub const HUB: &str = "10.97.0.254";
/// The probed target's address, on the hub, reachable only by the route to 10.96.0.0/24.
pub const TARGET: &str = "10.96.0.1";
/// The target network each node routes through the hub.
pub const TARGET_NET: &str = "10.96.0.0/24";

/// The lab: a hub and `n` node namespaces.
pub struct NetLab {
    prefix: String,
    nodes: usize,
}

impl NetLab {
    /// Creates the hub and `nodes` node namespaces, wired and routed.
    pub fn new(nodes: usize) -> NetLab {
        super::super::kit::require_root("network namespaces");
        let lab = NetLab {
            prefix: format!("lk-{:06x}", rand::random::<u32>() & 0xff_ffff),
            nodes,
        };
        let hub = lab.hub_ns();
        sh("ip", &["netns", "add", &hub]);
        lab.ip(&hub, &["link", "add", "br0", "type", "bridge"]);
        lab.ip(&hub, &["addr", "add", &format!("{HUB}/24"), "dev", "br0"]);
        // The target lives on the hub's loopback: local to the hub, reachable from a node only
        // through its route to TARGET_NET.
        lab.ip(&hub, &["addr", "add", &format!("{TARGET}/32"), "dev", "lo"]);
        for dev in ["lo", "br0"] {
            lab.ip(&hub, &["link", "set", dev, "up"]);
        }
        for i in 0..nodes {
            let ns = lab.node_ns(i);
            let peer = format!("v{i}");
            sh("ip", &["netns", "add", &ns]);
            lab.ip(
                &ns,
                &["link", "add", "eth0", "type", "veth", "peer", "name", &peer],
            );
            lab.ip(&ns, &["link", "set", &peer, "netns", &hub]);
            lab.ip(&hub, &["link", "set", &peer, "master", "br0"]);
            lab.ip(&hub, &["link", "set", &peer, "up"]);
            lab.ip(
                &ns,
                &[
                    "addr",
                    "add",
                    &format!("{}/24", lab.node_addr(i)),
                    "dev",
                    "eth0",
                ],
            );
            lab.ip(&ns, &["link", "set", "lo", "up"]);
            lab.ip(&ns, &["link", "set", "eth0", "up"]);
            lab.add_target_route(i);
        }
        lab
    }

    fn ip(&self, ns: &str, args: &[&str]) -> String {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    /// The hub namespace's name.
    pub fn hub_ns(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Node `i`'s namespace name.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// Node `i`'s address on the bridge.
    pub fn node_addr(&self, i: usize) -> String {
        format!("10.97.0.{}", i + 1)
    }

    /// Routes node `i` to the target network through the hub.
    pub fn add_target_route(&self, i: usize) {
        self.ip(
            &self.node_ns(i),
            &["route", "add", TARGET_NET, "via", HUB, "dev", "eth0"],
        );
    }

    /// Takes node `i`'s route to the target network away (its other traffic still flows).
    pub fn del_target_route(&self, i: usize) {
        self.ip(&self.node_ns(i), &["route", "del", TARGET_NET]);
    }

    /// Cuts node `i` off from everything: its link goes down inside its own namespace.
    pub fn partition(&self, i: usize) {
        self.ip(&self.node_ns(i), &["link", "set", "eth0", "down"]);
    }

    /// Undoes [`NetLab::partition`]: node `i`'s link comes up again, with its route to the
    /// target network (the kernel dropped it with the link).
    pub fn heal(&self, i: usize) {
        let ns = self.node_ns(i);
        self.ip(&ns, &["link", "set", "eth0", "up"]);
        self.ip(
            &ns,
            &["route", "replace", TARGET_NET, "via", HUB, "dev", "eth0"],
        );
    }

    /// A command run inside namespace `ns`.
    pub fn command_in(ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Runs a command inside `ns` under `timeout`; answers (exit code, stdout).
    pub fn run_in(ns: &str, program: &Path, args: &[&str], timeout: Duration) -> (i32, String) {
        let out = Command::new("timeout")
            .arg(format!("{}", timeout.as_secs().max(1)))
            .args(["ip", "netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// Starts a Python HTTP server in the hub on `TARGET:port` (the probed target).
    pub fn serve_target(&self, dir: &Path, port: u16) -> Child {
        let log = std::fs::File::create(dir.join("target.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.hub_ns(),
                "python3",
                "-m",
                "http.server",
            ])
            .args(["--bind", TARGET, &port.to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3 http.server");
        wait_port_in(&self.hub_ns(), TARGET, port);
        child
    }
}

/// A webhook receiver in the hub on `HUB:port`: each request becomes one JSON line
/// `{"at": unix seconds, "body": …}` in `dir/sink.jsonl`.
pub fn serve_sink(lab: &NetLab, dir: &Path, port: u16) -> Child {
    let script = dir.join("sink.py");
    std::fs::write(
        &script,
        r#"import http.server, json, sys, time
out = open(sys.argv[3], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(n) or b"null")
        out.write(json.dumps({"at": time.time(), "body": body}) + chr(10))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"#,
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.hub_ns(), "python3"])
        .arg(&script)
        .args([HUB, &port.to_string()])
        .arg(dir.join("sink.jsonl"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sink.err")).unwrap())
        .spawn()
        .expect("python3 sink");
    if std::panic::catch_unwind(|| wait_port_in(&lab.hub_ns(), HUB, port)).is_err() {
        let err = std::fs::read_to_string(dir.join("sink.err")).unwrap_or_default();
        panic!("the webhook sink in the hub did not start: {err}");
    }
    child
}

/// What the sink of [`serve_sink`] received: (unix seconds, body).
pub fn sink_received(dir: &Path) -> Vec<(f64, serde_json::Value)> {
    std::fs::read_to_string(dir.join("sink.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| (v["at"].as_f64().unwrap_or(0.0), v["body"].clone()))
        .collect()
}

/// Waits (at most 15 s) until `addr:port` accepts connections, seen from inside `ns`.
pub fn wait_port_in(ns: &str, addr: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let probe =
            format!("import socket; socket.create_connection(('{addr}', {port}), timeout=1)");
        let ok = Command::new("timeout")
            .args(["3", "ip", "netns", "exec", ns, "python3", "-c", &probe])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}:{port} does not answer in namespace {ns} within 15s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        let mut all: Vec<String> = (0..self.nodes).map(|i| self.node_ns(i)).collect();
        all.push(self.hub_ns());
        for ns in all {
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip")
                    .args(["netns", "del", &ns])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
