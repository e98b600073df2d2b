//! Three real lookout daemons in cluster mode on loopback, configured as docs/cluster.md says,
//! paging one webhook sink; etcd comes from `cluster_kit`. Each node is killed by PID on drop.
#![allow(dead_code)]

use super::kit::{Daemon, Sink, http_get_json, write_config};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Cluster tests of one binary run one at a time: their timings are what they measure, and
/// three daemons and etcd per test are plenty for two cores.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lease TTL the tests use (the minimum), in seconds.
pub const TTL: f64 = 2.0;

/// One node: its name, config, state dir, port, and the daemon while it runs.
pub struct Node {
    pub name: String,
    pub config: PathBuf,
    pub state: PathBuf,
    pub port: u16,
    pub daemon: Option<Daemon>,
}

/// The three nodes, their webhook sink and their files.
pub struct Trio {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub sink: Sink,
    /// The file the `homeserver` probe looks at: while it exists, the probe fails.
    pub flag: PathBuf,
}

/// The `[cluster]` section of docs/cluster.md, with the test's endpoints, name and TTL.
pub fn cluster_section(endpoints: &[String], name: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[cluster]\nendpoints = [{}]\nname = \"{name}\"\nlease_ttl = \"2s\"\n",
        list.join(", ")
    )
}

/// A remote target watched by every node with a majority quorum (docs/cluster.md), a webhook
/// and a policy that pages every `step` seconds: three steps, then the last one repeated.
pub fn paging_config(sink: &str, flag: &str, step: &str) -> String {
    format!(
        r#"
[[probe]]
id = "homeserver"
kind = "command"
argv = ["/bin/sh", "-c", "test ! -e {flag} || exit 2"]
interval = "1s"
timeout = "1s"
fail_after = 1
recover_after = 1
observers = "all"
quorum = "majority"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{sink}"
min_severity = "warning"

[[route]]
matchers = ["probe=homeserver"]
policy = "oncall"

[[policy]]
id = "oncall"
repeat_interval = "{step}"
[[policy.step]]
targets = ["hook"]
ack_timeout = "{step}"
[[policy.step]]
targets = ["hook"]
ack_timeout = "{step}"
[[policy.step]]
targets = ["hook"]
ack_timeout = "{step}"
"#
    )
}

impl Trio {
    /// Starts nodes a, b, c; node `i` reaches etcd at `endpoints[i]`. `extra[i]` is appended to
    /// node i's file (for drift).
    pub fn start(endpoints: Vec<Vec<String>>, step: &str, extra: [&str; 3]) -> Trio {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start();
        let flag = dir.path().join("homeserver-down");
        let mut nodes = Vec::new();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let text = format!(
                "{}{}{}",
                cluster_section(&endpoints[i], name),
                paging_config(&sink.url, flag.to_str().unwrap(), step),
                extra[i]
            );
            let config = write_config(dir.path(), &format!("{name}.toml"), &text);
            let state = dir.path().join(format!("state-{name}"));
            std::fs::create_dir_all(&state).unwrap();
            nodes.push(Node {
                name: name.to_string(),
                config,
                state,
                port: super::cluster_kit::distinct_ports(1)[0],
                daemon: None,
            });
        }
        let mut t = Trio {
            dir,
            nodes,
            sink,
            flag,
        };
        for i in 0..3 {
            t.start_node(i);
        }
        t
    }

    /// Starts (or restarts) node `i` on its own port and state dir.
    pub fn start_node(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let d = Daemon::start_with(Some(&n.config), &n.state, self.dir.path(), n.port);
        n.daemon = Some(d);
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(d) = self.nodes[i].daemon.take() {
            d.kill9();
        }
    }

    /// `GET path` on node `i`.
    pub fn get(&self, i: usize, path: &str) -> Value {
        http_get_json(&format!("http://127.0.0.1:{}{path}", self.nodes[i].port))
    }

    /// `GET /api/v1/cluster` on node `i`, or `None` when it does not answer.
    pub fn cluster(&self, i: usize) -> Option<Value> {
        self.nodes[i].daemon.as_ref()?;
        let url = format!("http://127.0.0.1:{}/api/v1/cluster", self.nodes[i].port);
        let r = super::cluster_kit::blocking(Duration::from_secs(2))
            .get(url)
            .send()
            .ok()?;
        r.json().ok()
    }

    /// The node that says it leads (with a valid lease), if one does.
    pub fn leader(&self) -> Option<usize> {
        (0..3).find(|&i| {
            self.cluster(i)
                .is_some_and(|v| v["role"] == "leader" && v["lease_valid"] == true)
        })
    }

    /// Waits until a node other than `not` leads; panics after `within`.
    pub fn wait_leader(&self, not: Option<usize>, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.leader().filter(|l| Some(*l) != not) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no leader (other than {not:?}) within {within:?}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The API token of node `i` (written by the daemon into its state dir).
    pub fn token(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].state.join("api-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The last lines of every running node's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            if let Some(d) = &n.daemon {
                let text = d.log_text();
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                out.push_str(&format!(
                    "--- node {} ---\n{}\n",
                    n.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        out
    }

    /// Waits for the first page of the homeserver's escalation; panics with the logs.
    pub fn first_page(&self) -> super::kit::Received {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(r) =
                self.sink.all().into_iter().find(|r| {
                    r.body["event"] == "firing" && r.body["alert"]["probe"] == "homeserver"
                })
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no page within 20s; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Trigger pages of the homeserver's escalation received so far: (arrival, node, key).
    pub fn triggers(&self) -> Vec<(Instant, String, String)> {
        self.sink
            .all()
            .into_iter()
            .filter(|r| {
                r.body["event"] == "firing"
                    && r.body["alert"]["probe"] == "homeserver"
                    && r.body["dedup_key"]
                        .as_str()
                        .is_some_and(|k| k.starts_with("esc:"))
            })
            .map(|r| {
                (
                    r.at,
                    r.body["node"].as_str().unwrap_or("?").to_string(),
                    r.body["dedup_key"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// The place of a page in its escalation from its dedup key
/// (`esc:GROUP@START:eE:stepN:repeatR:NOTIFIER`): (start, n) where n counts pages from 0.
pub fn slot(key: &str) -> (String, u32) {
    let parts: Vec<&str> = key.split(':').collect();
    let start = parts[1].to_string();
    let step: u32 = parts[3].trim_start_matches("step").parse().unwrap();
    let repeat: u32 = parts[4].trim_start_matches("repeat").parse().unwrap();
    // Steps 1..3 of the first pass, then the last step once per repeat.
    (start, if repeat == 0 { step - 1 } else { 2 + repeat })
}
