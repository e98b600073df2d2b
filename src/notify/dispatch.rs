//! Delivers alert events to every notifier that wants them: retries with backoff, a persisted
//! notification log with stable dedup keys, and feedback about failing channels.

use super::ack_link::{AckLink, AckLinks};
use super::{Notification, Notifier, Outcome};
use crate::alert::{AlertEvent, INTERNAL_PROBE};
use crate::config::NotifierConfig;
use crate::daemon::clock::unix_now;
use crate::escalation::{Page, PageKind};
use crate::store::Delivery;
use crate::store::writer::{StoreHandle, StoreOp};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// The rule of the internal alert raised when a notifier keeps failing.
pub const NOTIFIER_FAILING_RULE: &str = "notifier_failing";

/// A notifier and its configuration.
#[derive(Clone)]
pub struct Target {
    /// Its configuration.
    pub config: NotifierConfig,
    /// The channel.
    pub notifier: Arc<dyn Notifier>,
    /// Attempts for retryable failures.
    pub attempts: u32,
}

/// What the dispatcher learned about a channel.
#[derive(Clone, Debug)]
pub struct ChannelHealth {
    /// The notifier id.
    pub notifier: String,
    /// `None` when the last delivery worked, else the error.
    pub error: Option<String>,
    /// The delivery's dedup key (escalation fallback finds the page by it).
    pub dedup_key: String,
}

/// Delivery counts of one notifier, for `/metrics`.
#[derive(Clone, Copy, Default, Debug)]
pub struct NotifierCounts {
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// Deliveries that failed for good.
    pub failed: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
}

/// Delivery counters by notifier id, for `/metrics`.
#[derive(Default, Debug)]
pub struct DeliveryCounters {
    by_notifier: Mutex<BTreeMap<String, NotifierCounts>>,
}

impl DeliveryCounters {
    /// Updates the counts of `notifier`.
    fn count(&self, notifier: &str, f: impl FnOnce(&mut NotifierCounts)) {
        let mut by = self.by_notifier.lock().expect("counters lock");
        f(by.entry(notifier.to_string()).or_default());
    }

    /// The counts of every notifier that delivered or tried.
    pub fn per_notifier(&self) -> BTreeMap<String, NotifierCounts> {
        self.by_notifier.lock().expect("counters lock").clone()
    }
}

/// Sends events to targets.
#[derive(Clone)]
pub struct Dispatcher {
    targets: Arc<Vec<Target>>,
    store: StoreHandle,
    feedback: UnboundedSender<ChannelHealth>,
    sent: Arc<Mutex<HashSet<String>>>,
    /// Delivery counters.
    pub counters: Arc<DeliveryCounters>,
    base_backoff: Duration,
    /// Makes the acknowledgement link of each page of a firing alert; `None`: pages carry none.
    links: Option<Arc<AckLinks>>,
    /// Who may send now (cluster mode); `None`: always this node.
    gate: Option<Arc<dyn DeliveryGate>>,
}

/// Cluster mode's say over sending: only the leader (or a node in fallback) sends, and every
/// delivery is recorded where a new leader finds it.
pub trait DeliveryGate: Send + Sync {
    /// Whether this node may send now.
    fn may_send(&self) -> bool;
    /// A delivery with this dedup key went through.
    fn delivered(&self, dedup_key: &str);
    /// This node's name (put in every message).
    fn node(&self) -> &str;
    /// Whether this node pages on its own now (etcd gone for everyone): what it starts then,
    /// it finishes, even once one pager is back.
    fn on_its_own(&self) -> bool;
}

impl Dispatcher {
    /// A dispatcher over these targets.
    pub fn new(
        targets: Vec<Target>,
        store: StoreHandle,
        feedback: UnboundedSender<ChannelHealth>,
    ) -> Dispatcher {
        Dispatcher {
            targets: Arc::new(targets),
            store,
            feedback,
            sent: Arc::default(),
            counters: Arc::default(),
            base_backoff: Duration::from_secs(1),
            links: None,
            gate: None,
        }
    }

    /// Sends only while `gate` says so, and tells it about every delivery (cluster mode).
    pub fn with_gate(mut self, gate: Arc<dyn DeliveryGate>) -> Dispatcher {
        self.gate = Some(gate);
        self
    }

    /// Gives every page of a firing alert an acknowledgement link made by `links`.
    pub fn with_ack_links(mut self, links: Option<Arc<AckLinks>>) -> Dispatcher {
        self.links = links;
        self
    }

    /// The link for a page of an alert that fired (an escalation's page may carry a snapshot
    /// taken before an acknowledgement expired, so the state is not asked), when links are on.
    fn ack_link(&self, alert: &crate::alert::Alert) -> Option<AckLink> {
        let links = self.links.as_ref()?;
        (alert.started_at.is_some() && alert.state != crate::alert::AlertState::Resolved)
            .then(|| links.link(alert, unix_now()))
    }

    /// The configured targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Whether any notifier is configured.
    pub fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }

    /// Starts delivering an event to every target that wants it; returns at once.
    pub fn dispatch(&self, event: &AlertEvent) {
        self.dispatch_filtered(event, None);
    }

    /// Starts delivering an event to these notifiers only (whatever their `min_severity`).
    pub fn dispatch_to(&self, event: &AlertEvent, only: &std::collections::BTreeSet<String>) {
        self.dispatch_filtered(event, Some(only));
    }

    fn dispatch_filtered(
        &self,
        event: &AlertEvent,
        only: Option<&std::collections::BTreeSet<String>>,
    ) {
        if !event.kind.notifies() {
            return;
        }
        let mut message = Notification::from_event(event);
        if matches!(message.event.as_str(), "firing" | "severity_changed") {
            message.ack_link = self.ack_link(&event.alert);
        }
        let resolved = matches!(event.kind, crate::alert::AlertEventKind::Resolved);
        // Something went wrong: WARN; it got better or someone answered: INFO. Each delivery's
        // outcome is logged on its own (INFO delivered, WARN retried, ERROR failed).
        if matches!(
            event.kind,
            crate::alert::AlertEventKind::Firing
                | crate::alert::AlertEventKind::SeverityChanged { .. }
        ) {
            tracing::warn!(alert = %event.alert.id, event = %message.event, severity = %event.alert.severity, "{}", message.summary);
        } else {
            tracing::info!(alert = %event.alert.id, event = %message.event, severity = %event.alert.severity, "{}", message.summary);
        }
        for target in self.targets.iter() {
            let chosen = match only {
                Some(only) => only.contains(&target.config.id),
                None => target.config.wants(event.alert.severity),
            };
            if !chosen || (resolved && target.config.common.send_resolved == Some(false)) {
                continue;
            }
            // A channel's own failure alert goes out through the other channels only.
            if event.alert.probe == INTERNAL_PROBE
                && event.alert.rule == NOTIFIER_FAILING_RULE
                && event.alert.labels.get("notifier") == Some(&target.config.id)
            {
                continue;
            }
            let payload = serde_json::to_string(&message).unwrap_or_default();
            let delivery = Delivery {
                dedup_key: format!("{}:{}", message.dedup_key, target.config.id),
                alert_id: event.alert.id.clone(),
                notifier: target.config.id.clone(),
                event: message.event.clone(),
                outcome: "pending".into(),
                attempts: 0,
                latency: None,
                error: None,
                payload,
                created_at: unix_now(),
                updated_at: unix_now(),
            };
            self.start(target.clone(), message.clone(), delivery);
        }
    }

    /// Sends one escalation page to its notifier (at most once per dedup key, also across
    /// restarts once [`Dispatcher::seed_sent`] has the keys from the store).
    pub fn page(&self, page: &Page, at: f64) {
        let Some(target) = self.targets.iter().find(|t| t.config.id == page.notifier) else {
            tracing::warn!(notifier = %page.notifier, "a page names a notifier that is not configured");
            return;
        };
        let a = &page.alert;
        // A channel's own failure alert goes out through the other channels only.
        if a.probe == INTERNAL_PROBE
            && a.rule == NOTIFIER_FAILING_RULE
            && a.labels.get("notifier") == Some(&target.config.id)
        {
            return;
        }
        let resolved = page.kind == PageKind::Resolved;
        if resolved && target.config.common.send_resolved == Some(false) {
            return;
        }
        let who = page
            .person
            .as_deref()
            .map(|p| format!(" for {p}"))
            .unwrap_or_default();
        let (event, summary) = match &page.kind {
            PageKind::Trigger => (
                "firing",
                super::summary_line(
                    &a.severity.as_str().to_uppercase(),
                    a,
                    &format!(
                        " (escalation {}{who}{})",
                        crate::escalation::step_words(page.step, page.repeat),
                        if a.stale.is_some() {
                            "; evidence stale"
                        } else {
                            ""
                        }
                    ),
                ),
            ),
            PageKind::Acknowledged(by) => (
                "acknowledged",
                super::summary_line(&format!("ACK by {by}"), a, ""),
            ),
            PageKind::Resolved => ("resolved", super::summary_line("RESOLVED", a, "")),
        };
        let message = Notification {
            version: 1,
            event: event.into(),
            dedup_key: page.key.clone(),
            summary,
            at: crate::model::format_utc(at),
            alert: a.clone(),
            ack_link: match page.kind {
                PageKind::Trigger => self.ack_link(a),
                _ => None,
            },
            node: None,
        };
        // Sending is routine (the alert itself was logged when it fired); the delivery's
        // outcome says whether it worked.
        tracing::info!(alert = %a.id, notifier = %page.notifier, key = %page.key, "sending: {}", message.summary);
        let delivery = Delivery {
            dedup_key: page.key.clone(),
            alert_id: a.id.clone(),
            notifier: page.notifier.clone(),
            event: event.into(),
            outcome: "pending".into(),
            attempts: 0,
            latency: None,
            error: None,
            payload: serde_json::to_string(&message).unwrap_or_default(),
            created_at: unix_now(),
            updated_at: unix_now(),
        };
        self.start(target.clone(), message, delivery);
    }

    /// Marks dedup keys as already sent (escalation deliveries recorded by an earlier run).
    /// Keys written by an older version are read in today's form
    /// ([`crate::escalation::canonical_key`]), so an upgrade does not page a step twice.
    pub fn seed_sent(&self, keys: impl IntoIterator<Item = String>) {
        self.sent.lock().expect("sent lock").extend(
            keys.into_iter()
                .map(|k| crate::escalation::canonical_key(&k).into_owned()),
        );
    }

    /// Retries deliveries that were pending when the daemon last stopped.
    pub fn resume(&self, pending: Vec<Delivery>) {
        for d in pending {
            let Some(target) = self.targets.iter().find(|t| t.config.id == d.notifier) else {
                continue;
            };
            match serde_json::from_str::<Notification>(&d.payload) {
                Ok(message) => {
                    tracing::info!(dedup_key = %d.dedup_key, "resending a delivery left pending by the last run");
                    self.start(target.clone(), message, d);
                }
                Err(e) => {
                    tracing::warn!(dedup_key = %d.dedup_key, error = %e, "cannot resend a pending delivery")
                }
            }
        }
    }

    fn start(&self, target: Target, mut message: Notification, delivery: Delivery) {
        if let Some(g) = &self.gate {
            if !g.may_send() {
                tracing::info!(dedup_key = %delivery.dedup_key, "not sent: this node does not page now (another cluster node leads)");
                return;
            }
            message.node = Some(g.node().to_string());
        }
        let key = crate::escalation::canonical_key(&delivery.dedup_key).into_owned();
        if !self.sent.lock().expect("sent lock").insert(key) {
            return; // already delivered or under way in this process
        }
        self.store.send(StoreOp::Delivery(delivery.clone()));
        let this = self.clone();
        let own = self.gate.as_ref().is_some_and(|g| g.on_its_own());
        tokio::spawn(async move { this.deliver(target, message, delivery, own).await });
    }

    /// Delivers with retries; `own`: started while this node paged on its own (cluster
    /// fallback), so a lead elsewhere does not stop it.
    async fn deliver(
        &self,
        target: Target,
        message: Notification,
        mut delivery: Delivery,
        own: bool,
    ) {
        let mut backoff = self.base_backoff;
        loop {
            if let Some(g) = &self.gate
                && !own
                && !g.may_send()
            {
                // Deposed (or never leading): the new leader sends what was not delivered.
                delivery.outcome = "handed_over".into();
                let key = crate::escalation::canonical_key(&delivery.dedup_key).into_owned();
                self.sent.lock().expect("sent lock").remove(&key);
                tracing::warn!(dedup_key = %delivery.dedup_key, "not sent: this node stopped leading; the new leader sends it");
                break;
            }
            delivery.attempts += 1;
            let started = Instant::now();
            let outcome = target.notifier.send(&message).await;
            delivery.updated_at = unix_now();
            match outcome {
                Outcome::Delivered => {
                    delivery.outcome = "delivered".into();
                    delivery.latency = Some(started.elapsed().as_secs_f64());
                    delivery.error = None;
                    self.counters.count(&target.config.id, |c| c.delivered += 1);
                    tracing::info!(notifier = %target.config.id, dedup_key = %delivery.dedup_key, attempts = delivery.attempts, "delivered");
                    if let Some(g) = &self.gate {
                        g.delivered(&delivery.dedup_key);
                    }
                    let _ = self.feedback.send(ChannelHealth {
                        notifier: target.config.id.clone(),
                        error: None,
                        dedup_key: delivery.dedup_key.clone(),
                    });
                    break;
                }
                Outcome::Retryable(e) if delivery.attempts < target.attempts => {
                    tracing::warn!(notifier = %target.config.id, attempt = delivery.attempts, error = %e, "delivery failed; retrying in {:?}", backoff);
                    delivery.error = Some(e);
                    self.counters.count(&target.config.id, |c| c.retried += 1);
                    self.store.send(StoreOp::Delivery(delivery.clone()));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Outcome::Retryable(e) | Outcome::Permanent(e) => {
                    delivery.outcome = "failed".into();
                    tracing::error!(notifier = %target.config.id, attempts = delivery.attempts, error = %e, "delivery failed for good");
                    delivery.error = Some(e.clone());
                    self.counters.count(&target.config.id, |c| c.failed += 1);
                    let _ = self.feedback.send(ChannelHealth {
                        notifier: target.config.id.clone(),
                        error: Some(e),
                        dedup_key: delivery.dedup_key.clone(),
                    });
                    break;
                }
            }
        }
        self.store.send(StoreOp::Delivery(delivery));
    }
}
