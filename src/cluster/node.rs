//! The cluster loop of one node: keeps its lease and member key, takes the leader key when it
//! is free, publishes the node's open alerts, and — on the leader — turns the merged view of
//! every node's alerts into the paging feed. Writes queued by the daemon (acknowledgements,
//! silences, delivered keys, escalation positions) go out from here. Every etcd call has a
//! deadline; nothing here blocks the daemon, which reads only [`Cluster::may_page`].

use super::etcd::{Entry, Etcd};
use super::lease::renew_every;
use super::records::{apply_acks, drifted, parse_acks, parse_escalations, parse_records};
use super::view::{self, View};
use super::{Cluster, Member, Role, Write};
use crate::daemon::core::Core;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes kept while etcd cannot take them, oldest dropped first.
const MAX_PENDING: usize = 10_000;

/// The loop's own memory.
struct Node {
    cluster: Arc<Cluster>,
    core: Arc<Core>,
    etcd: Option<Etcd>,
    lease_id: Option<i64>,
    ttl: Duration,
    last_renew: Option<Instant>,
    /// The create revision of the leader key while this node holds it.
    leader_rev: Option<i64>,
    /// Alert id → the JSON this node last published for it.
    published: BTreeMap<String, String>,
    /// The leader's view at its last tick.
    paged_view: View,
    pending: VecDeque<Write>,
    /// The last instant this node held a valid lease (or started).
    last_valid: Instant,
    last_peer_check: Option<Instant>,
    /// Said once per cut-off: a peer still reaches etcd, this node stays quiet.
    told_isolated: bool,
    started_at: f64,
    /// The configuration hash in the member key.
    joined_hash: String,
    /// Whether what an earlier run published under this node's name was taken back.
    cleaned: bool,
    /// A lease given up (not renewed in time): revoked once etcd answers again, so the old
    /// leader key and member key go at once.
    stale_lease: Option<i64>,
    /// After a fallback: no campaign before this instant, so every node that paged on its own
    /// has handed its escalations and delivered keys to etcd before a leader takes over.
    settle_until: Option<Instant>,
    outbox: tokio::sync::mpsc::UnboundedReceiver<Write>,
}

/// Runs the cluster loop until `stop` turns true.
pub async fn run(
    cluster: Arc<Cluster>,
    core: Arc<Core>,
    outbox: tokio::sync::mpsc::UnboundedReceiver<Write>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let ttl = cluster.config.lease_ttl.0;
    let mut node = Node {
        started_at: core.clock.now().wall,
        cluster,
        core,
        etcd: None,
        lease_id: None,
        ttl,
        last_renew: None,
        leader_rev: None,
        published: BTreeMap::new(),
        paged_view: View::new(),
        pending: VecDeque::new(),
        last_valid: Instant::now(),
        last_peer_check: None,
        told_isolated: false,
        outbox,
        joined_hash: String::new(),
        cleaned: false,
        stale_lease: None,
        settle_until: None,
    };
    let mut tick = tokio::time::interval(crate::config::cluster::CLUSTER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => node.tick().await,
            Some(w) = node.outbox.recv() => {
                node.queue(w);
                node.drain();
                node.flush().await;
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    node.leave().await;
}

impl Node {
    fn deadline(&self) -> Duration {
        (self.ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(1))
    }

    fn queue(&mut self, w: Write) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(w);
    }

    /// Moves what the daemon queued since into `pending`.
    fn drain(&mut self) {
        while let Ok(w) = self.outbox.try_recv() {
            self.queue(w);
        }
    }

    fn failed(&mut self, e: String) {
        tracing::debug!(error = %e, "cluster: etcd call failed");
        self.cluster.update(|s| s.last_error = Some(e));
    }

    async fn tick(&mut self) {
        if let Err(e) = self.keep_lease().await {
            self.failed(e);
            if !self.cluster.update(|s| s.lease.valid(Instant::now())) {
                // Connect afresh next tick: a channel that failed for a while backs off its
                // reconnects, which would keep this node paging on its own after etcd is back.
                self.etcd = None;
            }
        }
        let now = Instant::now();
        let valid = self.cluster.update(|s| s.lease.valid(now));
        if !valid {
            self.lease_lost();
            self.maybe_fall_back().await;
            return;
        }
        self.last_valid = now;
        if self.cluster.fallback() {
            self.leave_fallback().await;
        }
        self.told_isolated = false;
        if let Err(e) = self.round().await {
            self.failed(e);
        }
    }

    /// Grants a lease (and joins) when there is none; renews it every `ttl / 4`.
    async fn keep_lease(&mut self) -> Result<(), String> {
        if self.etcd.is_none() {
            self.etcd = Some(Etcd::connect(&self.cluster.config, self.deadline()).await?);
        }
        let etcd = self.etcd.as_mut().expect("etcd");
        match self.lease_id {
            None => {
                let sent = Instant::now();
                let (id, granted) = etcd.grant(self.ttl).await?;
                if let Some(old) = self.stale_lease.take() {
                    let _ = etcd.revoke(old).await;
                }
                self.ttl = granted.max(self.ttl);
                self.cluster.update(|s| s.lease.renewed(sent, granted));
                self.lease_id = Some(id);
                self.last_renew = Some(sent);
                self.join().await?;
            }
            Some(id) => {
                if self
                    .last_renew
                    .is_some_and(|t| t.elapsed() < renew_every(self.ttl))
                {
                    return Ok(());
                }
                let sent = Instant::now();
                match etcd.keep_alive(id).await? {
                    Some(granted) => {
                        self.last_renew = Some(sent);
                        self.cluster.update(|s| s.lease.renewed(sent, granted));
                    }
                    None => {
                        self.cluster.update(|s| s.lease.lost());
                        return Err("etcd no longer knows this node's lease".into());
                    }
                }
            }
        }
        Ok(())
    }

    /// Puts this node's member key (under its lease) and its name among the known members.
    async fn join(&mut self) -> Result<(), String> {
        let c = &self.cluster;
        let me = Member {
            name: c.node.clone(),
            api: c.api_url.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_hash: c.config_hash(),
            started_at: self.started_at,
        };
        self.joined_hash = me.config_hash.clone();
        let body = serde_json::to_vec(&me).unwrap_or_default();
        let name = c.node.clone();
        let lease = self.lease_id.unwrap_or(0);
        let etcd = self.etcd.as_mut().expect("etcd");
        etcd.put(&format!("members/{name}"), &body, lease).await?;
        etcd.put(&format!("known/{name}"), b"", 0).await?;
        // What was published before is published again from scratch.
        self.published.clear();
        self.cleaned = false;
        Ok(())
    }

    fn lease_lost(&mut self) {
        if let Some(old) = self.lease_id.take() {
            self.stale_lease = Some(old);
        }
        self.last_renew = None;
        let was_leader = self.leader_rev.take().is_some();
        let role = self.cluster.update(|s| {
            let r = s.role;
            s.role = Role::Joining;
            r
        });
        if was_leader || role == Role::Leader {
            self.core.note(
                "cluster_leader",
                format!(
                    "node {} stopped paging: its lease could not be renewed in time",
                    self.cluster.node
                ),
            );
        }
    }

    /// One look at the cluster with a valid lease.
    async fn round(&mut self) -> Result<(), String> {
        // What the daemon wrote (deliveries, an ended escalation) lands before anything is read.
        self.drain();
        self.flush().await;
        if self.joined_hash != self.cluster.config_hash() {
            self.join().await?;
        }
        self.campaign().await?;
        self.publish().await?;
        let etcd = self.etcd.as_mut().expect("etcd");
        let members = etcd.list("members/").await?;
        let known = etcd.list("known/").await?;
        let records = etcd.list("alerts/").await?;
        let acks = etcd.list("acks/").await?;
        let silences = etcd.list("silences/").await?;
        let members: Vec<Member> = members
            .iter()
            .filter_map(|e| serde_json::from_slice(&e.value).ok())
            .collect();
        let live: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
        let down: Vec<String> = known
            .iter()
            .map(|e| e.key.trim_start_matches("known/").to_string())
            .filter(|n| !live.contains(n))
            .collect();
        let drift = drifted(&members);
        let records = parse_records(&records);
        let quorum = self.core.quorum_probes();
        let mut merged = view::merge(&records, &live, &quorum);
        let acks = parse_acks(&acks);
        apply_acks(&mut merged, &acks);
        self.cluster.update(|s| {
            s.members = members;
            s.down = down.clone();
            s.drift = drift.clone();
            s.view = merged.clone();
            s.last_error = None;
        });
        let up: Vec<String> = known
            .iter()
            .map(|e| e.key.trim_start_matches("known/").to_string())
            .filter(|n| live.contains(n))
            .collect();
        self.core.cluster_health(&down, &up, &drift);
        self.core.acknowledge_own(&acks);
        self.core.merge_silences(
            silences
                .iter()
                .filter_map(|e| serde_json::from_slice(&e.value).ok())
                .collect(),
        );
        if self.leader_rev.is_some() {
            self.lead(merged, &acks).await?;
        }
        self.drain();
        self.flush().await;
        Ok(())
    }

    /// Takes the leader key when it is free; notes who leads.
    async fn campaign(&mut self) -> Result<(), String> {
        let lease = self.lease_id.unwrap_or(0);
        let name = self.cluster.node.clone();
        let settling = self.settle_until.is_some_and(|t| Instant::now() < t);
        let etcd = self.etcd.as_mut().expect("etcd");
        if !settling {
            etcd.create("leader", name.as_bytes(), lease).await?;
        }
        let leader: Option<Entry> = etcd.list("leader").await?.into_iter().next();
        let (holder, rev) = match &leader {
            Some(e) if e.key == "leader" => (
                Some(String::from_utf8_lossy(&e.value).to_string()),
                (e.lease == lease).then_some(e.create_revision),
            ),
            _ => (None, None),
        };
        let before = self.cluster.update(|s| {
            let before = (s.role, s.leader.clone());
            s.role = if rev.is_some() {
                Role::Leader
            } else {
                Role::Follower
            };
            s.leader = holder.clone();
            before
        });
        if before.1 != holder
            && let Some(h) = &holder
        {
            let lead = if rev.is_some() {
                format!(
                    "node {name} leads the cluster: it runs the escalations and sends the pages (lease {})",
                    crate::model::format_duration(self.ttl.as_secs_f64())
                )
            } else {
                format!("node {h} leads the cluster (this is node {name})")
            };
            self.core.note("cluster_leader", lead);
        }
        if rev.is_some() && self.leader_rev.is_none() {
            self.leader_rev = rev;
            self.take_over().await?;
        }
        self.leader_rev = rev;
        Ok(())
    }

    /// A new leader resumes every escalation where it stood (see docs/cluster.md).
    async fn take_over(&mut self) -> Result<(), String> {
        let etcd = self.etcd.as_mut().expect("etcd");
        let escalations = etcd.list("escalations/").await?;
        let sent = etcd.list("sent/").await?;
        let keys: BTreeSet<String> = sent
            .iter()
            .map(|e| e.key.trim_start_matches("sent/").to_string())
            .collect();
        let list = parse_escalations(&escalations);
        self.paged_view = self.core.take_over_paging(list, &keys);
        Ok(())
    }

    /// The leader's share of a round: escalations other nodes wrote (after a fallback), then
    /// the events between the last view and this one.
    async fn lead(
        &mut self,
        merged: View,
        acks: &BTreeMap<String, (String, f64)>,
    ) -> Result<(), String> {
        let etcd = self.etcd.as_mut().expect("etcd");
        let stored = parse_escalations(&etcd.list("escalations/").await?);
        let adopted = self.core.adopt_escalations(stored);
        for (id, a) in adopted {
            self.paged_view.entry(id).or_insert(a);
        }
        let at = self.core.clock.now().wall;
        let events = view::diff(&self.paged_view, &merged, at);
        for ev in &events {
            if matches!(ev.kind, crate::alert::AlertEventKind::Resolved) {
                let id = ev.alert.id.clone();
                let etcd = self.etcd.as_mut().expect("etcd");
                etcd.delete_prefix(&format!("sent/{id}:")).await?;
                if acks.contains_key(&id) {
                    etcd.delete(&format!("acks/{id}")).await?;
                }
            }
        }
        self.paged_view = merged;
        self.core.page_cluster_events(events);
        Ok(())
    }

    /// Publishes this node's open alerts under `alerts/ID/NODE`; takes back resolved ones.
    async fn publish(&mut self) -> Result<(), String> {
        let name = self.cluster.node.clone();
        let now: BTreeMap<String, String> = self
            .core
            .open_alerts()
            .into_iter()
            .map(|a| (a.id.clone(), serde_json::to_string(&a).unwrap_or_default()))
            .collect();
        let etcd = self.etcd.as_mut().expect("etcd");
        if !self.cleaned {
            // A fresh start: take back whatever an earlier run left under this node's name.
            for e in etcd.list("alerts/").await? {
                if e.key.ends_with(&format!("/{name}"))
                    && let Some(id) = e.key.split('/').nth(1)
                    && !now.contains_key(id)
                {
                    etcd.delete(&e.key).await?;
                }
            }
        }
        for (id, body) in &now {
            if self.published.get(id) != Some(body) {
                etcd.put(&format!("alerts/{id}/{name}"), body.as_bytes(), 0)
                    .await?;
                self.published.insert(id.clone(), body.clone());
            }
        }
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|id| !now.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            etcd.delete(&format!("alerts/{id}/{name}")).await?;
            self.published.remove(&id);
        }
        self.cleaned = true;
        Ok(())
    }

    /// Writes what the daemon queued, oldest first; keeps what etcd did not take.
    async fn flush(&mut self) {
        let valid = self.cluster.update(|s| s.lease.valid(Instant::now()));
        if !valid || self.etcd.is_none() {
            return;
        }
        let node = self.cluster.node.clone();
        while let Some(w) = self.pending.pop_front() {
            let etcd = self.etcd.as_mut().expect("etcd");
            let done = match &w {
                Write::Ack { id, by, at } => {
                    let body = serde_json::json!({"by": by, "at": at, "node": node}).to_string();
                    etcd.put(&format!("acks/{id}"), body.as_bytes(), 0).await
                }
                Write::Silence { id, body } => {
                    etcd.put(&format!("silences/{id}"), body.as_bytes(), 0)
                        .await
                }
                Write::Delivered(key) => {
                    let body = serde_json::json!({"node": node}).to_string();
                    etcd.put(&format!("sent/{key}"), body.as_bytes(), 0).await
                }
                Write::Escalation { id, body } => match self.leader_rev {
                    Some(rev) => {
                        let key = format!("escalations/{id}");
                        let r = etcd
                            .put_guarded(&key, body.as_deref().map(str::as_bytes), "leader", rev)
                            .await;
                        if r.is_ok() && body.is_none() {
                            let _ = etcd.delete_prefix(&format!("sent/esc:{id}@")).await;
                        }
                        r.map(|_| ())
                    }
                    // Not the leader (any more): the leader's own copy stands.
                    None => Ok(()),
                },
            };
            if let Err(e) = done {
                self.pending.push_front(w);
                self.failed(e);
                return;
            }
        }
    }

    /// Without a lease for a whole TTL: falls back to paging this node's own critical alerts,
    /// unless a peer still reaches etcd (then this node is the one cut off, and stays quiet).
    async fn maybe_fall_back(&mut self) {
        if self.cluster.fallback() || self.last_valid.elapsed() < self.ttl {
            return;
        }
        if self
            .last_peer_check
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_peer_check = Some(Instant::now());
        let peers: Vec<Member> = self
            .cluster
            .state()
            .members
            .into_iter()
            .filter(|m| m.name != self.cluster.node)
            .collect();
        let state = self.cluster.state();
        let known = (state.members.len() + state.down.len()).max(1);
        let asked = ask_peers(&peers, self.deadline()).await;
        if let Some(peer) = &asked.with_lease {
            self.note_quiet(format!(
                "node {} cannot reach etcd but node {peer} can: this node stays quiet (its alerts reach nobody until it is back; the leader pages lookout_node_down)",
                self.cluster.node
            ));
            return;
        }
        // Falling back takes a majority of the known nodes (this one included) that all lost
        // etcd: a node cut off from everything is a minority and never pages.
        let agreeing = 1 + asked.without_lease;
        if agreeing * 2 <= known {
            self.note_quiet(format!(
                "node {} reaches neither etcd nor most of its peers ({agreeing} of {known} nodes agree that etcd is gone): this node stays quiet, a partitioned minority never pages",
                self.cluster.node
            ));
            return;
        }
        let why = self
            .cluster
            .state()
            .last_error
            .unwrap_or_else(|| "no lease".into());
        self.core.enter_cluster_fallback(&why);
    }

    /// etcd is back after a fallback: hands this node's escalations to etcd where they are
    /// further along than what etcd holds, and its delivered keys; waits one TTL before it
    /// campaigns, so every node has done the same before a leader takes over.
    /// Says once per cut-off why this node does not page.
    fn note_quiet(&mut self, message: String) {
        if !self.told_isolated {
            self.told_isolated = true;
            self.core.note("cluster_isolated", message);
        }
    }

    async fn leave_fallback(&mut self) {
        let escalations = self.core.leave_cluster_fallback();
        self.settle_until = Some(Instant::now() + self.ttl);
        self.drain();
        self.flush().await;
        let etcd = self.etcd.as_mut().expect("etcd");
        let Ok(stored) = etcd.list("escalations/").await else {
            return;
        };
        for e in escalations {
            let key = format!("escalations/{}", e.id);
            let theirs: Option<crate::escalation::Escalation> = stored
                .iter()
                .find(|s| s.key == key)
                .and_then(|s| serde_json::from_slice(&s.value).ok());
            if theirs.is_none_or(|t| further(&e, &t)) {
                let body = serde_json::to_string(&e).unwrap_or_default();
                let _ = etcd.put(&key, body.as_bytes(), 0).await;
            }
        }
    }

    /// A clean stop: gives up the lead and the lease at once, so another node takes over
    /// without waiting for the TTL (the node stays known: the leader pages it as down).
    async fn leave(&mut self) {
        self.flush().await;
        if let (Some(etcd), Some(id)) = (self.etcd.as_mut(), self.lease_id) {
            let _ = etcd.revoke(id).await;
        }
    }
}

/// What peers said when asked whether they hold a lease.
#[derive(Default)]
struct Asked {
    /// The first peer that holds one.
    with_lease: Option<String>,
    /// Peers that answered without one.
    without_lease: usize,
}

/// Asks peers (by their API, each under `deadline`) whether they hold a lease.
async fn ask_peers(peers: &[Member], deadline: Duration) -> Asked {
    let mut asked = Asked::default();
    let Ok(client) = crate::http::client(deadline) else {
        return asked;
    };
    for p in peers {
        let url = format!("{}/api/v1/cluster", p.api.trim_end_matches('/'));
        let Ok(Ok(r)) = tokio::time::timeout(deadline, client.get(&url).send()).await else {
            continue;
        };
        let Ok(Ok(v)) = tokio::time::timeout(deadline, r.json::<serde_json::Value>()).await else {
            continue;
        };
        match v["lease_valid"].as_bool() {
            Some(true) => {
                asked.with_lease.get_or_insert_with(|| p.name.clone());
            }
            Some(false) => asked.without_lease += 1,
            None => {}
        }
    }
    asked
}

/// Whether `mine` is further along than `theirs` (the same escalation run on two nodes during a
/// fallback: same start; a later epoch, step or repeat, or acknowledged).
fn further(mine: &crate::escalation::Escalation, theirs: &crate::escalation::Escalation) -> bool {
    if mine.started_wall != theirs.started_wall {
        return false;
    }
    let acked = |e: &crate::escalation::Escalation| e.acked_by.is_some();
    (mine.epoch, acked(mine), mine.step, mine.repeat)
        > (theirs.epoch, acked(theirs), theirs.step, theirs.repeat)
}
