//! Cluster mode over etcd (docs/cluster.md): every node runs its probes and publishes its open
//! alerts; one leader, elected with a leased key, runs the escalations and sends the pages;
//! acknowledgements, silences, escalation positions and delivered dedup keys live in etcd so a
//! new leader resumes where the old one stood.
//!
//! - `lease.rs` — when a node may act on its lease (the arithmetic that keeps two pagers apart);
//! - `view.rs` — the merged view of every node's alerts, quorum of observers, and its events;
//! - `etcd.rs` — the etcd edge, every call under a deadline;
//! - `node.rs` — the loop: lease, membership, election, publishing, the leader's paging feed,
//!   and the fallback when etcd is gone for everyone.

pub mod etcd;
pub mod lease;
pub mod node;
mod records;
pub mod view;

use crate::config::cluster::ClusterConfig;
use lease::LeaseClock;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// The rule of the alert every node raises while it cannot reach etcd (nor a peer that can).
pub const UNAVAILABLE_RULE: &str = "cluster_unavailable";
/// The rule of the alert raised for a member whose lease expired.
pub const NODE_DOWN_RULE: &str = "lookout_node_down";
/// The rule of the warning raised while members run different configurations.
pub const DRIFT_RULE: &str = "cluster_config_drift";

/// What a node is in its cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Not (yet) holding a lease.
    #[default]
    Joining,
    /// Holds a lease; another node leads.
    Follower,
    /// Holds the leader key: runs escalations and sends pages.
    Leader,
}

/// One member as published under `PREFIX/members/NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Where its API answers.
    pub api: String,
    /// lookout version.
    pub version: String,
    /// Hash of its effective configuration.
    pub config_hash: String,
    /// Unix seconds when it joined.
    pub started_at: f64,
}

/// Something to write to etcd, queued by the daemon and written by the cluster loop.
#[derive(Clone, Debug)]
pub enum Write {
    /// An acknowledgement given on this node.
    Ack {
        /// Alert id.
        id: String,
        /// Who.
        by: String,
        /// Unix seconds.
        at: f64,
    },
    /// A silence added or expired on this node (its JSON).
    Silence {
        /// Silence id.
        id: String,
        /// Its JSON.
        body: String,
    },
    /// A page or notification delivered by this node (its dedup key).
    Delivered(String),
    /// An escalation changed on the leader (`None`: it ended).
    Escalation {
        /// Group id.
        id: String,
        /// Its JSON.
        body: Option<String>,
    },
}

/// What the cluster loop knows, for the gate, the API and `lookout cluster status`.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// This node's role.
    pub role: Role,
    /// The leader's name, when known.
    pub leader: Option<String>,
    /// This node's lease.
    pub lease: LeaseClock,
    /// Paging this node's own critical alerts directly (etcd unreachable for everyone).
    pub fallback: bool,
    /// Live members at the last look.
    pub members: Vec<Member>,
    /// Members known to the cluster whose lease expired.
    pub down: Vec<String>,
    /// Nodes whose configuration hash differs from the leader's (or the majority's).
    pub drift: Vec<String>,
    /// The merged open alerts of the cluster at the last look.
    pub view: view::View,
    /// The last error talking to etcd.
    pub last_error: Option<String>,
}

/// This node's cluster membership, shared by the daemon, the dispatcher and the API.
pub struct Cluster {
    /// This node's name.
    pub node: String,
    /// `[cluster]`.
    pub config: ClusterConfig,
    /// Hash of this node's effective configuration (changes with a reload).
    config_hash: Mutex<String>,
    /// Where this node's API answers.
    pub api_url: String,
    state: Mutex<State>,
    outbox: UnboundedSender<Write>,
}

impl Cluster {
    /// A cluster handle and the receiving end of its write queue (for [`node::run`]).
    pub fn new(
        config: ClusterConfig,
        config_hash: String,
        api_url: String,
    ) -> (Cluster, UnboundedReceiver<Write>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Cluster {
                node: config.node_name(),
                config,
                config_hash: Mutex::new(config_hash),
                api_url,
                state: Mutex::default(),
                outbox: tx,
            },
            rx,
        )
    }

    /// Hash of this node's effective configuration.
    pub fn config_hash(&self) -> String {
        self.config_hash.lock().expect("hash lock").clone()
    }

    /// After a reload: the member key is written again with the new hash.
    pub fn set_config_hash(&self, hash: String) {
        *self.config_hash.lock().expect("hash lock") = hash;
    }

    /// A copy of what the loop knows.
    pub fn state(&self) -> State {
        self.state.lock().expect("cluster lock").clone()
    }

    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("cluster lock"))
    }

    /// Whether this node may send pages now: the leader while its lease is valid (see
    /// `lease.rs`), or any node in fallback.
    pub fn may_page(&self) -> bool {
        let s = self.state.lock().expect("cluster lock");
        s.fallback || (s.role == Role::Leader && s.lease.valid(Instant::now()))
    }

    /// Whether this node is in fallback (pages its own critical alerts).
    pub fn fallback(&self) -> bool {
        self.state.lock().expect("cluster lock").fallback
    }

    /// Whether this node leads with a valid lease.
    pub fn leads(&self) -> bool {
        let s = self.state.lock().expect("cluster lock");
        s.role == Role::Leader && s.lease.valid(Instant::now())
    }

    /// Queues a write to etcd.
    pub fn send(&self, w: Write) {
        let _ = self.outbox.send(w);
    }

    /// An open alert of the cluster by id or unique prefix (for acknowledging an alert another
    /// node raised).
    pub fn find_alert(&self, id: &str) -> Result<crate::alert::Alert, String> {
        let s = self.state.lock().expect("cluster lock");
        if let Some(a) = s.view.get(id) {
            return Ok(a.clone());
        }
        let found: Vec<_> = s
            .view
            .values()
            .filter(|a| !id.is_empty() && a.id.starts_with(id))
            .collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!("no open alert with id {id} in the cluster")),
            _ => Err(format!("alert id {id} is ambiguous")),
        }
    }
}

/// The hash of a configuration as members compare it: everything but what must differ
/// between nodes (the node name, listen address, state directory, file positions).
pub fn config_hash(config: &crate::config::Config) -> String {
    use sha2::Digest;
    let c = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        config.probes,
        config.notifiers,
        config.actions,
        config.intake,
        config.heartbeats,
        config.paging,
        config.routes,
        config.policies,
        config.people,
        config.schedules,
        config.maintenance,
        config.drills,
        config.store,
        config
            .cluster
            .as_ref()
            .map(|c| (&c.endpoints, &c.prefix, c.lease_ttl)),
    );
    // File positions differ when one node's file has a line more (its own name, say).
    let c = strip_spans(&c);
    let digest = sha2::Sha256::digest(c.as_bytes());
    hex::encode(&digest[..8])
}

/// Drops `span: A..B` (and `span: Some(A..B)`) from a Debug rendering.
fn strip_spans(s: &str) -> String {
    static SPAN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"span: (Some\()?\d+\.\.\d+\)?").expect("span pattern")
    });
    SPAN.replace_all(s, "").into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn spans_are_dropped_from_the_hashed_text() {
        assert_eq!(
            super::strip_spans("A { span: 10..20, x: 1, span: Some(3..4), y }"),
            "A { , x: 1, , y }"
        );
    }
}
