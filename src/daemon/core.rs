//! The daemon's shared state: the engine, the latest observations, the store handle and the
//! dispatcher. Probe results enter through [`Core::record`]; nothing here waits on the store.

use super::clock::Clock;
use crate::alert::{Alert, AlertEvent, AlertEventKind, Engine};
use crate::config::{HeartbeatConfig, IntakeConfig, Secret};
use crate::model::Moment;
use crate::model::{Observation, format_duration};
use crate::notify::ack_link::AckLinks;
use crate::notify::dispatch::Dispatcher;
use crate::rule::Condition;
use crate::rule::heartbeat::{self, HeartbeatSpec, Heartbeats};
use crate::store::writer::{StoreHandle, StoreOp};
use crate::store::{TimelineEntry, TimelineRow};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The latest result of one probe.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeSnapshot {
    /// Probe id.
    pub id: String,
    /// Probe kind.
    pub kind: String,
    /// The latest observation, as enriched by the rules.
    pub observation: Observation,
    /// Unix seconds of the run.
    pub at: f64,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Probe runs.
    pub probe_runs: AtomicU64,
    /// Probe runs that timed out.
    pub probe_timeouts: AtomicU64,
    /// The same per probe id.
    per_probe: Mutex<BTreeMap<String, ProbeCounts>>,
}

/// Runs of one probe, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeCounts {
    /// Runs.
    pub runs: u64,
    /// Runs that timed out.
    pub timeouts: u64,
}

impl Counters {
    /// Counts one run of `probe`.
    fn count_run(&self, probe: &str, timed_out: bool) {
        self.probe_runs.fetch_add(1, Ordering::Relaxed);
        if timed_out {
            self.probe_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        let mut per = self.per_probe.lock().expect("counters lock");
        let c = per.entry(probe.to_string()).or_default();
        c.runs += 1;
        c.timeouts += u64::from(timed_out);
    }

    /// The counts of every probe that ran.
    pub fn per_probe(&self) -> BTreeMap<String, ProbeCounts> {
        self.per_probe.lock().expect("counters lock").clone()
    }
}

/// Shared state of the running daemon.
pub struct Core {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    engine: Mutex<Engine>,
    latest: Mutex<BTreeMap<String, ProbeSnapshot>>,
    kinds: RwLock<BTreeMap<String, String>>,
    /// The store's writer.
    pub store: StoreHandle,
    dispatcher: RwLock<Dispatcher>,
    recent: Mutex<VecDeque<TimelineRow>>,
    /// The sequence number of the next timeline entry.
    timeline_seq: AtomicI64,
    /// Counters.
    pub counters: Counters,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Bearer token of mutating API endpoints.
    pub api_token: Secret,
    /// Inbound heartbeats and when they last beat.
    heartbeats: Mutex<Heartbeats>,
    /// Per-heartbeat bearer tokens (name → token) and the Alertmanager intake token.
    intake_tokens: RwLock<IntakeTokens>,
    /// Escalations, silences and maintenance windows.
    pub(super) paging: super::paging::PagingState,
    /// How acknowledgement links are made and checked; `None` while they are turned off.
    ack_links: RwLock<Option<Arc<AckLinks>>>,
    /// `[[action]]`: bindings, guards, runs and proposals (see [`super::actions`]).
    pub(super) actions: super::actions::ActionsState,
    /// The scheduled probes, to run one now (post-checks), and the shared run limit.
    on_demand: RwLock<OnDemand>,
    /// Alert events and probe results, for watchers such as drills ([`Core::subscribe`]).
    observed: tokio::sync::broadcast::Sender<Observed>,
    /// `[[drill]]`: the configured drills, their runs and last results.
    pub drills: crate::drill::Drills,
    /// `[cluster]`: this node's membership, when configured (see [`crate::cluster`]).
    pub(super) cluster: RwLock<Option<Arc<crate::cluster::Cluster>>>,
    /// Probes with `observers`, by id: their alerts page by quorum (cluster mode).
    pub(super) quorum: RwLock<BTreeMap<String, crate::cluster::view::Observers>>,
}

/// What the daemon observed, sent to every [`Core::subscribe`]r as it happens.
#[derive(Clone, Debug)]
pub enum Observed {
    /// An alert event.
    Alert {
        /// The event.
        event: Box<AlertEvent>,
        /// Monotonic seconds when it was handled.
        mono: f64,
    },
    /// A probe result.
    Probe {
        /// Probe id.
        id: String,
        /// Its status.
        status: crate::model::Status,
        /// Its message.
        message: String,
        /// Monotonic seconds when it was recorded.
        mono: f64,
    },
}

/// The scheduled probes by id, runnable on demand, with the scheduler's run limit.
type OnDemand = (
    BTreeMap<String, Arc<super::scheduler::Scheduled>>,
    Arc<tokio::sync::Semaphore>,
);

/// The bearer tokens and settings of the intake endpoints, replaced on reload.
#[derive(Clone, Debug, Default)]
pub struct IntakeTokens {
    /// `[intake] alertmanager_token`.
    pub alertmanager: Option<Secret>,
    /// `[intake.alertmanager_severities]` over the built-in conventions.
    pub alertmanager_severities: crate::rule::alertmanager::SeverityMap,
    /// `[[heartbeat]] token`, by heartbeat name.
    pub heartbeats: BTreeMap<String, Secret>,
}

const RECENT_TIMELINE: usize = 2000;

impl Core {
    /// Shared state around an engine that already knows its probes.
    pub fn new(
        clock: Arc<dyn Clock>,
        engine: Engine,
        store: StoreHandle,
        dispatcher: Dispatcher,
        state_dir: PathBuf,
        api_token: Secret,
    ) -> Core {
        Core {
            clock,
            engine: Mutex::new(engine),
            latest: Mutex::default(),
            kinds: RwLock::default(),
            store,
            dispatcher: RwLock::new(dispatcher),
            recent: Mutex::default(),
            timeline_seq: AtomicI64::new(1),
            counters: Counters::default(),
            state_dir,
            api_token,
            heartbeats: Mutex::default(),
            intake_tokens: RwLock::default(),
            paging: Default::default(),
            ack_links: RwLock::default(),
            actions: Default::default(),
            on_demand: RwLock::new((BTreeMap::new(), Arc::new(tokio::sync::Semaphore::new(1)))),
            observed: tokio::sync::broadcast::channel(4096).0,
            drills: Default::default(),
            cluster: RwLock::default(),
            quorum: RwLock::default(),
        }
    }

    /// Alert events and probe results from now on (a slow receiver sees `Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Observed> {
        self.observed.subscribe()
    }

    /// Sends to the subscribers, if any.
    fn publish(&self, what: impl FnOnce() -> Observed) {
        if self.observed.receiver_count() > 0 {
            let _ = self.observed.send(what());
        }
    }

    /// Sets the probes [`Core::run_probe_now`] can run (the scheduler's, at start and reload).
    pub fn set_on_demand(
        &self,
        probes: Vec<Arc<super::scheduler::Scheduled>>,
        permits: Arc<tokio::sync::Semaphore>,
    ) {
        *self.on_demand.write().expect("on-demand lock") = (
            probes.into_iter().map(|p| (p.id.clone(), p)).collect(),
            permits,
        );
    }

    /// Runs a scheduled probe once now, within its timeout and the shared run limit, and
    /// records the result like a scheduled run; `None` when no probe has that id.
    pub async fn run_probe_now(&self, id: &str) -> Option<Observation> {
        let (p, permits) = {
            let od = self.on_demand.read().expect("on-demand lock");
            (od.0.get(id)?.clone(), od.1.clone())
        };
        let obs = super::scheduler::run_once(&p, &permits).await;
        self.record(id, obs.clone());
        Some(obs)
    }

    /// The interval of a scheduled probe.
    pub fn probe_interval(&self, id: &str) -> Option<std::time::Duration> {
        let od = self.on_demand.read().expect("on-demand lock");
        od.0.get(id).map(|p| p.interval)
    }

    /// Sets how acknowledgement links are made and checked (start and reload).
    pub fn set_ack_links(&self, links: Option<Arc<AckLinks>>) {
        *self.ack_links.write().expect("ack links lock") = links;
    }

    /// How acknowledgement links are made and checked, while they are on.
    pub fn ack_links(&self) -> Option<Arc<AckLinks>> {
        self.ack_links.read().expect("ack links lock").clone()
    }

    /// Applies `[intake]` and `[[heartbeat]]` of a (re)loaded configuration.
    pub fn set_intake(&self, intake: &IntakeConfig, heartbeats: &[HeartbeatConfig]) {
        let specs = heartbeats
            .iter()
            .map(|h| HeartbeatSpec {
                name: h.name.clone(),
                period: h.period.secs(),
                grace: h.grace().secs(),
                severity: h.severity(),
            })
            .collect();
        *self.intake_tokens.write().expect("intake lock") = IntakeTokens {
            alertmanager: intake.alertmanager_token.clone(),
            alertmanager_severities: crate::rule::alertmanager::SeverityMap::new(
                &intake.alertmanager_severities,
            ),
            heartbeats: heartbeats
                .iter()
                .filter_map(|h| h.token.clone().map(|t| (h.name.clone(), t)))
                .collect(),
        };
        self.with_heartbeats(|h, now| ((), h.configure(specs, now)));
    }

    /// The bearer tokens of the intake endpoints.
    pub fn intake_tokens(&self) -> IntakeTokens {
        self.intake_tokens.read().expect("intake lock").clone()
    }

    /// Runs `f` on the inbound heartbeats and files the conditions it returns, all under the
    /// heartbeat lock, so a ping and the overdue check cannot overtake each other.
    pub fn with_heartbeats<T>(
        &self,
        f: impl FnOnce(&mut Heartbeats, Moment) -> (T, Vec<Condition>),
    ) -> T {
        let now = self.clock.now();
        let (out, events) = {
            let mut beats = self.heartbeats.lock().expect("heartbeat lock");
            let (out, conds) = f(&mut beats, now);
            let events = self.with_engine(|e| {
                conds
                    .into_iter()
                    .flat_map(|c| e.set_external(heartbeat::SOURCE, c, now))
                    .collect::<Vec<_>>()
            });
            (out, events)
        };
        self.handle(events);
        out
    }

    /// Files conditions that come from outside the probes (e.g. Alertmanager) under the
    /// pseudo probe `source`; returns the events they caused.
    pub fn set_external(&self, source: &str, conds: Vec<Condition>) -> Vec<AlertEvent> {
        let now = self.clock.now();
        let events = self.with_engine(|e| {
            conds
                .into_iter()
                .flat_map(|c| e.set_external(source, c, now))
                .collect::<Vec<_>>()
        });
        self.handle(events.clone());
        events
    }

    /// Runs `f` with the engine locked (briefly; never across an await).
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        f(&mut self.engine.lock().expect("engine lock"))
    }

    /// Sets the probe kinds (for snapshots) after a (re)load.
    pub fn set_kinds(&self, kinds: BTreeMap<String, String>) {
        let keep: Vec<String> = kinds.keys().cloned().collect();
        self.latest
            .lock()
            .expect("latest lock")
            .retain(|k, _| keep.contains(k));
        *self.kinds.write().expect("kinds lock") = kinds;
    }

    /// Replaces the dispatcher (after a reload); its delivery counters carry over.
    pub fn set_dispatcher(&self, mut d: Dispatcher) {
        if let Some(c) = self.cluster() {
            d = d.with_gate(c);
        }
        let mut current = self.dispatcher.write().expect("dispatcher lock");
        d.counters = current.counters.clone();
        *current = d;
    }

    /// The current dispatcher.
    pub fn dispatcher(&self) -> Dispatcher {
        self.dispatcher.read().expect("dispatcher lock").clone()
    }

    /// Takes one probe result: rules, alerts, store, notifications.
    pub fn record(&self, probe: &str, obs: Observation) {
        let now = self.clock.now();
        self.counters
            .count_run(probe, obs.message.starts_with("timed out after"));
        let (mut obs, events, touched) = self.with_engine(|e| {
            let (obs, events) = e.ingest(probe, obs, now);
            (obs, events, e.take_touched())
        });
        for alert in touched {
            self.refresh_paged_alert(&alert);
            self.store.send(StoreOp::Alert(alert));
        }
        for message in std::mem::take(&mut obs.events) {
            tracing::warn!(probe, "{message}");
            self.timeline(TimelineEntry {
                ts: now.wall,
                kind: "probe_event".into(),
                probe: Some(probe.to_string()),
                alert_id: None,
                severity: None,
                actor: None,
                message: format!("{probe}: {message}"),
            });
        }
        let kind = self
            .kinds
            .read()
            .expect("kinds lock")
            .get(probe)
            .cloned()
            .unwrap_or_default();
        let previous = self.latest.lock().expect("latest lock").insert(
            probe.to_string(),
            ProbeSnapshot {
                id: probe.to_string(),
                kind,
                observation: obs.clone(),
                at: now.wall,
            },
        );
        self.actions.observe(probe, &obs, now.mono);
        self.publish(|| Observed::Probe {
            id: probe.to_string(),
            status: obs.status,
            message: obs.message.clone(),
            mono: now.mono,
        });
        if previous.is_none_or(|p| p.observation.status != obs.status) {
            self.store.send(StoreOp::Status {
                ts: now.wall,
                probe: probe.to_string(),
                status: obs.status,
                message: obs.message.clone(),
                duration: obs.duration_seconds,
            });
        }
        if !obs.samples.is_empty() {
            self.store.send(StoreOp::Samples {
                ts: now.wall,
                probe: probe.to_string(),
                samples: obs.samples,
            });
        }
        self.handle(events);
    }

    /// Sets a condition about lookout itself.
    pub fn set_internal(&self, mut cond: Condition) {
        if let Some(c) = self.cluster()
            && !cond.labels.contains_key("node")
        {
            cond.labels.insert("node".into(), c.node.clone());
        }
        let now = self.clock.now();
        let events = self.with_engine(|e| e.set_internal(cond, now));
        self.handle(events);
    }

    /// Acknowledges an alert (id or unique prefix) on behalf of `by`.
    pub fn acknowledge(&self, id: &str, by: &str) -> Result<Alert, String> {
        let now = self.clock.now();
        let event = match self.with_engine(|e| e.acknowledge(id, by, now)) {
            Ok(ev) => ev,
            // In a cluster the alert may be another node's: the acknowledgement goes through etcd.
            Err(local) => match self.cluster() {
                Some(c) => return self.acknowledge_remote(&c, id, by, local),
                None => return Err(local),
            },
        };
        let alert = event.alert.clone();
        if let Some(c) = self.cluster() {
            c.send(crate::cluster::Write::Ack {
                id: alert.id.clone(),
                by: by.to_string(),
                at: now.wall,
            });
        }
        self.handle(vec![event]);
        Ok(alert)
    }

    /// Records alert events: store, timeline, notifications.
    pub fn handle(&self, events: Vec<AlertEvent>) {
        let dispatcher = self.dispatcher();
        for ev in events {
            let mono = self.clock.now().mono;
            self.publish(|| Observed::Alert {
                event: Box::new(ev.clone()),
                mono,
            });
            self.store.send(StoreOp::Alert(ev.alert.clone()));
            let a = &ev.alert;
            let labels = if a.labels.is_empty() {
                String::new()
            } else {
                format!(
                    " {{{}}}",
                    a.labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let first = a.message.lines().next().unwrap_or("");
            let (kind, message, actor) = match &ev.kind {
                AlertEventKind::Firing => (
                    "alert_firing",
                    format!(
                        "{} on {}{labels} fired ({}): {first}",
                        a.rule, a.probe, a.severity
                    ),
                    None,
                ),
                AlertEventKind::SeverityChanged { from } => (
                    "alert_severity",
                    format!(
                        "{} on {}{labels} went from {from} to {}: {first}",
                        a.rule, a.probe, a.severity
                    ),
                    None,
                ),
                AlertEventKind::Resolved => {
                    let lasted = a
                        .lasted_seconds
                        .map(|s| format!(" after {}", format_duration(s)))
                        .unwrap_or_default();
                    (
                        "alert_resolved",
                        format!(
                            "{} on {}{labels} resolved{lasted}: {first}",
                            a.rule, a.probe
                        ),
                        None,
                    )
                }
                AlertEventKind::Acknowledged { by } => (
                    "alert_acknowledged",
                    format!("{by} acknowledged {} on {}{labels}", a.rule, a.probe),
                    Some(by.clone()),
                ),
                AlertEventKind::Suppressed => (
                    "alert_suppressed",
                    format!(
                        "{} on {}{labels} suppressed: a probe it depends on is failing",
                        a.rule, a.probe
                    ),
                    None,
                ),
            };
            self.timeline(TimelineEntry {
                ts: ev.at,
                kind: kind.into(),
                probe: Some(a.probe.clone()),
                alert_id: Some(a.id.clone()),
                severity: Some(a.severity.as_str().into()),
                actor,
                message,
            });
            if self.pages_here(&ev) {
                self.notify(&ev, &dispatcher);
            }
            self.actions.offer(&ev);
        }
    }

    /// Sets the sequence number of the next timeline entry (one past the stored ones).
    pub fn set_timeline_seq(&self, next: i64) {
        self.timeline_seq.store(next, Ordering::SeqCst);
    }

    /// Appends to the timeline (memory and store), numbered in the order things happen.
    pub fn timeline(&self, entry: TimelineEntry) {
        let row = {
            let mut recent = self.recent.lock().expect("timeline lock");
            // Numbered under the lock, so memory holds the entries in sequence order.
            let row = TimelineRow {
                seq: self.timeline_seq.fetch_add(1, Ordering::SeqCst),
                entry,
            };
            recent.push_back(row.clone());
            while recent.len() > RECENT_TIMELINE {
                recent.pop_front();
            }
            row
        };
        self.store.send(StoreOp::Timeline(row));
    }

    /// A timeline entry about the daemon itself.
    pub fn note(&self, kind: &str, message: impl Into<String>) {
        self.timeline(TimelineEntry {
            ts: self.clock.now().wall,
            kind: kind.into(),
            probe: None,
            alert_id: None,
            severity: None,
            actor: None,
            message: message.into(),
        });
    }

    /// Recent timeline entries kept in memory (used when the store cannot be read).
    pub fn recent_timeline(&self, since: f64) -> Vec<TimelineEntry> {
        self.recent_timeline_rows(since)
            .into_iter()
            .map(|r| r.entry)
            .collect()
    }

    /// Recent timeline entries kept in memory with their sequence numbers, in order.
    pub fn recent_timeline_rows(&self, since: f64) -> Vec<TimelineRow> {
        self.recent
            .lock()
            .expect("timeline lock")
            .iter()
            .filter(|e| e.entry.ts >= since)
            .cloned()
            .collect()
    }

    /// Every alert in memory.
    pub fn alerts(&self) -> Vec<Alert> {
        self.with_engine(|e| e.alerts().cloned().collect())
    }

    /// Configured probes (id → kind), whether or not they have run yet.
    pub fn probe_kinds(&self) -> BTreeMap<String, String> {
        self.kinds.read().expect("kinds lock").clone()
    }

    /// The latest result of every probe.
    pub fn snapshots(&self) -> Vec<ProbeSnapshot> {
        self.latest
            .lock()
            .expect("latest lock")
            .values()
            .cloned()
            .collect()
    }
}
