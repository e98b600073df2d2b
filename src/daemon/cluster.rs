//! The daemon's side of cluster mode (`crate::cluster`): what the cluster loop asks of the
//! core — this node's open alerts, the leader's paging feed and take-over, acknowledgements
//! and silences from etcd, node-down and drift alerts, and the fallback when etcd is gone.

use super::core::Core;
use crate::alert::{Alert, AlertEvent, AlertEventKind, AlertState};
use crate::cluster::view::{Observers, View};
use crate::cluster::{Cluster, DRIFT_RULE, NODE_DOWN_RULE, UNAVAILABLE_RULE, Write};
use crate::escalation::Escalation;
use crate::escalation::silence::Silence;
use crate::model::Severity;
use crate::notify::dispatch::DeliveryGate;
use crate::rule::Condition;
use crate::store::TimelineEntry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl DeliveryGate for Cluster {
    fn may_send(&self) -> bool {
        self.may_page()
    }

    fn delivered(&self, dedup_key: &str) {
        self.send(Write::Delivered(
            crate::escalation::canonical_key(dedup_key).into_owned(),
        ));
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn on_its_own(&self) -> bool {
        self.fallback()
    }
}

impl Core {
    /// Joins a cluster: from now on only the leader (or a node in fallback) pages.
    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        // A new leader pages what its predecessor left due, late by up to TTL + 1 s: those
        // steps keep their nominal times, so the schedule does not slip with each take-over.
        let ttl = cluster.config.lease_ttl.0.as_secs_f64();
        self.paging
            .escalations
            .lock()
            .expect("escalations lock")
            .set_catch_up(ttl + 2.0);
        *self.cluster.write().expect("cluster lock") = Some(cluster);
        self.set_dispatcher(self.dispatcher());
    }

    /// This node's cluster membership, when `[cluster]` is configured.
    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster.read().expect("cluster lock").clone()
    }

    /// Probes with `observers` (their alerts page by a majority of live observers).
    pub fn set_quorum(&self, quorum: BTreeMap<String, Observers>) {
        *self.quorum.write().expect("quorum lock") = quorum;
    }

    /// See [`Core::set_quorum`].
    pub fn quorum_probes(&self) -> BTreeMap<String, Observers> {
        self.quorum.read().expect("quorum lock").clone()
    }

    /// Whether this node pages an alert event itself: always alone; in a cluster only in
    /// fallback, and then only critical alerts (and what follows them).
    pub(super) fn pages_here(&self, ev: &AlertEvent) -> bool {
        let Some(c) = self.cluster() else {
            return true;
        };
        c.fallback()
            && (ev.alert.severity == Severity::Critical
                || !matches!(
                    ev.kind,
                    AlertEventKind::Firing | AlertEventKind::SeverityChanged { .. }
                ))
    }

    /// Acknowledges another node's alert: written to etcd, where its owner and the leader
    /// pick it up.
    pub(super) fn acknowledge_remote(
        &self,
        c: &Cluster,
        id: &str,
        by: &str,
        local_error: String,
    ) -> Result<Alert, String> {
        let mut a = c.find_alert(id).map_err(|_| local_error)?;
        if a.state == AlertState::Acknowledged {
            return Err(format!(
                "alert {} is already acknowledged by {}",
                a.id,
                a.acked_by.as_deref().unwrap_or("someone")
            ));
        }
        let now = self.clock.now();
        c.send(Write::Ack {
            id: a.id.clone(),
            by: by.to_string(),
            at: now.wall,
        });
        a.state = AlertState::Acknowledged;
        a.acked_by = Some(by.to_string());
        a.acked_at = Some(now.wall);
        self.timeline(TimelineEntry {
            ts: now.wall,
            kind: "alert_acknowledged".into(),
            probe: Some(a.probe.clone()),
            alert_id: Some(a.id.clone()),
            severity: Some(a.severity.as_str().into()),
            actor: Some(by.to_string()),
            message: format!(
                "{by} acknowledged {} on {} (an alert of another node; sent through etcd)",
                a.rule, a.probe
            ),
        });
        Ok(a)
    }

    /// This node's open alerts (firing or acknowledged), as the cluster loop publishes them.
    pub fn open_alerts(&self) -> Vec<Alert> {
        self.alerts()
            .into_iter()
            .filter(|a| matches!(a.state, AlertState::Firing | AlertState::Acknowledged))
            .collect()
    }

    /// Raises and resolves `lookout_node_down{node}` and `cluster_config_drift` from the
    /// latest look at the members (every node does, so any leader pages them).
    pub fn cluster_health(&self, down: &[String], up: &[String], drift: &[String]) {
        for n in down {
            self.set_internal(Condition::active(
                NODE_DOWN_RULE,
                [("node".to_string(), n.clone())].into(),
                Severity::Critical,
                format!(
                    "lookout node {n} stopped renewing its cluster lease: it is down or cut off from etcd (the alerts it last published stay open until it is back)"
                ),
            ));
        }
        for n in up {
            let mut c = Condition::active(
                NODE_DOWN_RULE,
                [("node".to_string(), n.clone())].into(),
                Severity::Critical,
                format!("lookout node {n} is back in the cluster"),
            );
            c.severity = None;
            self.set_internal(c);
        }
        let labels: crate::model::Labels = [("node".to_string(), "cluster".to_string())].into();
        let mut c = Condition::active(
            DRIFT_RULE,
            labels,
            Severity::Warning,
            format!(
                "nodes {} run a different configuration from the other members (compare their files; `lookout cluster status` shows each hash)",
                drift.join(", ")
            ),
        );
        if drift.is_empty() {
            c.severity = None;
            c.message = "every member runs the same configuration".into();
        }
        self.set_internal(c);
    }

    /// Acknowledges this node's own alerts that someone acknowledged on another node.
    pub fn acknowledge_own(&self, acks: &BTreeMap<String, (String, f64)>) {
        let now = self.clock.now();
        let firing: BTreeSet<String> = self
            .alerts()
            .into_iter()
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| a.id)
            .collect();
        for (id, (by, _)) in acks {
            if firing.contains(id)
                && let Ok(ev) = self.with_engine(|e| e.acknowledge(id, by, now))
            {
                self.handle(vec![ev]);
            }
        }
    }

    /// Takes silences added or expired on other nodes.
    pub fn merge_silences(&self, remote: Vec<Silence>) {
        let mut changed = Vec::new();
        {
            let mut list = self.paging.silences.lock().expect("silences lock");
            for s in remote {
                match list.iter_mut().find(|l| l.id == s.id) {
                    Some(l) if *l == s => {}
                    Some(l) => {
                        *l = s.clone();
                        changed.push(s);
                    }
                    None => {
                        list.push(s.clone());
                        changed.push(s);
                    }
                }
            }
        }
        for s in changed {
            self.store.send(crate::store::writer::StoreOp::Silence {
                id: s.id.clone(),
                body: serde_json::to_string(&s).unwrap_or_default(),
                ends_at: s.ends_at,
            });
        }
    }

    /// A new leader takes the shared escalations, learns what was delivered, and re-sends
    /// what no node recorded as delivered. Answers the view the escalations stood for.
    pub fn take_over_paging(&self, list: Vec<Escalation>, delivered: &BTreeSet<String>) -> View {
        let now = self.clock.now();
        let view: Vec<Alert> = self
            .cluster()
            .map(|c| c.state().view.into_values().collect())
            .unwrap_or_default();
        let n = list.len();
        let before = escalation_alerts(&list);
        let unconfirmed = {
            let mut esc = self.paging.escalations.lock().expect("escalations lock");
            esc.replace(list, &view, now);
            esc.unconfirmed(delivered)
        };
        let dispatcher = self.dispatcher();
        dispatcher.seed_sent(delivered.iter().cloned());
        for p in &unconfirmed {
            self.escalation_note(
                now,
                &p.alert.id,
                "escalation",
                format!(
                    "re-sending {} to {}: no node recorded it as delivered before the lead changed",
                    crate::escalation::step_words(p.step, p.repeat),
                    p.notifier
                ),
            );
            dispatcher.page(p, now.wall);
        }
        self.note(
            "cluster_takeover",
            format!(
                "took over {n} escalation{} from etcd; {} page{} re-sent",
                if n == 1 { "" } else { "s" },
                unconfirmed.len(),
                if unconfirmed.len() == 1 { "" } else { "s" }
            ),
        );
        before
    }

    /// Takes in escalations another node wrote (after a fallback); answers their alerts.
    pub fn adopt_escalations(&self, list: Vec<Escalation>) -> View {
        let now = self.clock.now();
        let adopted = self
            .paging
            .escalations
            .lock()
            .expect("escalations lock")
            .adopt(list, now);
        for e in &adopted {
            self.note(
                "cluster_takeover",
                format!(
                    "adopted escalation {} (started by a node in fallback) at {}",
                    e.id,
                    crate::escalation::step_words(e.step, e.repeat)
                ),
            );
        }
        escalation_alerts(&adopted)
    }

    /// The leader pages the cluster's alert events (from the merged view).
    pub fn page_cluster_events(&self, events: Vec<AlertEvent>) {
        let dispatcher = self.dispatcher();
        for ev in events {
            self.notify(&ev, &dispatcher);
        }
    }

    /// etcd is gone for every node this one can ask: page this node's own critical alerts.
    pub fn enter_cluster_fallback(&self, why: &str) {
        let Some(c) = self.cluster() else {
            return;
        };
        c.update(|s| s.fallback = true);
        let critical: Vec<Alert> = self
            .open_alerts()
            .into_iter()
            .filter(|a| a.severity == Severity::Critical)
            .collect();
        let mine: BTreeSet<String> = critical.iter().map(|a| a.id.clone()).collect();
        self.paging
            .escalations
            .lock()
            .expect("escalations lock")
            .retain(|e| e.alerts.iter().any(|a| mine.contains(a)));
        self.note(
            "cluster_fallback",
            format!(
                "node {} reaches neither etcd nor a peer that does ({why}): it pages its own critical alerts directly until etcd is back (duplicates beat silence)",
                c.node
            ),
        );
        self.set_internal(Condition::active(
            UNAVAILABLE_RULE,
            Default::default(),
            Severity::Critical,
            format!(
                "cluster unavailable: node {} cannot reach etcd ({why}); every node pages its own critical alerts until etcd is back",
                c.node
            ),
        ));
        let dispatcher = self.dispatcher();
        let escalated: BTreeSet<String> = self
            .escalations()
            .into_iter()
            .flat_map(|e| e.alerts.into_iter())
            .collect();
        let at = self.clock.now().wall;
        for a in critical.into_iter().filter(|a| !escalated.contains(&a.id)) {
            let ev = AlertEvent {
                kind: AlertEventKind::Firing,
                alert: a,
                at,
            };
            self.notify(&ev, &dispatcher);
        }
    }

    /// etcd is back: one pager again. Answers this node's escalations for etcd, where the
    /// leader adopts them, and forgets them here.
    pub fn leave_cluster_fallback(&self) -> Vec<Escalation> {
        let Some(c) = self.cluster() else {
            return Vec::new();
        };
        // Resolved while still in fallback: its resolution goes out from this node, like
        // its firing did.
        let mut cond = Condition::active(
            UNAVAILABLE_RULE,
            Default::default(),
            Severity::Critical,
            "etcd is reachable again: one pager again".to_string(),
        );
        cond.severity = None;
        self.set_internal(cond);
        c.update(|s| s.fallback = false);
        let list = self.escalations();
        self.paging
            .escalations
            .lock()
            .expect("escalations lock")
            .retain(|_| false);
        self.note(
            "cluster_fallback",
            format!(
                "node {} reaches etcd again: one pager again ({} escalation{} handed to the leader)",
                c.node,
                list.len(),
                if list.len() == 1 { "" } else { "s" }
            ),
        );
        list
    }
}

/// The alerts escalations stand for (the lead alert under each member's id).
fn escalation_alerts(list: &[Escalation]) -> View {
    let mut view = View::new();
    for e in list {
        for id in &e.alerts {
            let mut a = e.lead.clone();
            a.id = id.clone();
            if e.acked_by.is_some() {
                a.state = AlertState::Acknowledged;
                a.acked_by = e.acked_by.clone();
            } else {
                a.state = AlertState::Firing;
            }
            view.insert(id.clone(), a);
        }
    }
    view
}

/// Shapes a loaded configuration for this node of a cluster: probes whose `observers` leave
/// this node out are dropped; every other probe's alerts carry `node = NAME`, except probes
/// with observers (their alerts are the cluster's, merged by quorum). Answers the quorum map.
/// Alone (no `[cluster]`) nothing changes.
pub(super) fn shape_for_node(config: &mut crate::config::Config) -> BTreeMap<String, Observers> {
    let Some(name) = config.cluster.as_ref().map(|c| c.node_name()) else {
        return BTreeMap::new();
    };
    let mut quorum = BTreeMap::new();
    config.probes.retain_mut(|p| match &p.common.observers {
        Some(o) => {
            let nodes = o.nodes();
            quorum.insert(p.id.clone(), nodes.clone());
            nodes.is_none_or(|n| n.contains(&name))
        }
        None => {
            p.common.labels.insert("node".into(), name.clone());
            true
        }
    });
    quorum
}

/// Starts cluster mode when `[cluster]` is configured: joins, and runs the cluster loop.
pub(super) fn start(
    core: &Arc<Core>,
    config: &crate::config::Config,
    config_hash: String,
    api_url: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let cc = config.cluster.clone()?;
    let (cluster, outbox) = Cluster::new(cc, config_hash, api_url);
    let cluster = Arc::new(cluster);
    tracing::info!(node = %cluster.node, endpoints = ?cluster.config.endpoints, "cluster mode: joining through etcd; only the leader pages");
    core.set_cluster(cluster.clone());
    Some(tokio::spawn(crate::cluster::node::run(
        cluster,
        core.clone(),
        outbox,
        stop,
    )))
}
