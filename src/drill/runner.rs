//! The daemon side of drills: the configured drills, one task per run (the fault, the watch
//! fed by [`Core::subscribe`], the restore, the report), the optional schedule, the
//! `drill_failed` alert and the timeline entries `drill_started` / `drill_finished`.

use super::{Check, Plan, Report, Watch, secs};
use crate::action::Action;
use crate::alert::AlertEventKind;
use crate::config::Config;
use crate::config::drills::DrillConfig;
use crate::daemon::core::{Core, Observed};
use crate::escalation::policy::match_labels;
use crate::model::Status;
use crate::store::TimelineEntry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Raised (probe `lookout`, label `drill`) when a drill fails; a later pass resolves it.
pub const DRILL_FAILED_RULE: &str = "drill_failed";

/// An action a drill runs directly.
#[derive(Clone)]
pub(super) struct Step {
    pub(super) name: String,
    pub(super) action: Arc<dyn Action>,
    pub(super) timeout: Duration,
}

/// One configured drill and its actions.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) config: DrillConfig,
    pub(super) fault: Step,
    pub(super) restore: Option<Step>,
}

/// A run in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Running {
    /// The run's id.
    pub run: String,
    /// Who started it.
    pub by: String,
    /// Unix seconds of the start.
    pub started_at: f64,
}

#[derive(Default)]
pub(super) struct Inner {
    entries: BTreeMap<String, Entry>,
    pub(super) running: BTreeMap<String, Running>,
    pub(super) last: BTreeMap<String, Report>,
    /// Monotonic seconds of the next scheduled run, by drill.
    next: BTreeMap<String, f64>,
    schedules: Vec<tokio::task::JoinHandle<()>>,
    loaded: bool,
}

/// The configured drills, their runs and last results (held by [`Core`]).
#[derive(Default)]
pub struct Drills {
    inner: Mutex<Inner>,
}

/// One drill as `GET /api/v1/drills` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DrillView {
    /// Name.
    pub name: String,
    /// The fault's action and what it does.
    pub fault: String,
    /// The restore action, if any.
    pub restore: Option<String>,
    /// Expected alerts: what and within (seconds).
    pub expect: Vec<serde_json::Value>,
    /// Probes that must be ok again.
    pub recover: Vec<String>,
    /// Seconds.
    pub recover_within: f64,
    /// The schedule in seconds, if any.
    pub every: Option<f64>,
    /// Seconds until the next scheduled run.
    pub next_run_in: Option<f64>,
    /// Severity of `drill_failed`.
    pub severity: String,
    /// The run in progress.
    pub running: Option<Running>,
    /// The last result.
    pub last: Option<Report>,
}

/// Why a run did not start.
#[derive(Debug)]
pub enum StartError {
    /// No such drill.
    Unknown(String),
    /// It is running already (the run's id).
    Running(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Unknown(n) => write!(f, "no drill named {n:?}"),
            StartError::Running(r) => write!(f, "the drill is running already (run {r})"),
        }
    }
}

impl Drills {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("drills lock")
    }

    /// Every configured drill with its run in progress and last result.
    pub fn list(&self, now_mono: f64) -> Vec<DrillView> {
        let inner = self.lock();
        inner
            .entries
            .values()
            .map(|e| {
                let c = &e.config;
                DrillView {
                    name: c.name.clone(),
                    fault: format!("{} ({})", e.fault.name, e.fault.action.describe()),
                    restore: e.restore.as_ref().map(|r| r.name.clone()),
                    expect: Plan::of(c)
                        .expect
                        .iter()
                        .map(|x| serde_json::json!({"what": x.what, "labels": x.labels, "within": x.within}))
                        .collect(),
                    recover: c.recover.iter().map(|r| r.get_ref().clone()).collect(),
                    recover_within: c.recover_within().secs(),
                    every: c.every.as_ref().map(|d| d.get_ref().secs()),
                    next_run_in: inner.next.get(&c.name).map(|t| (t - now_mono).max(0.0)),
                    severity: c.severity().as_str().into(),
                    running: inner.running.get(&c.name).cloned(),
                    last: inner.last.get(&c.name).cloned(),
                }
            })
            .collect()
    }

    /// The last result of every configured drill (`"drills"` of `/api/v1/status`).
    pub fn last_results(&self) -> Vec<serde_json::Value> {
        let inner = self.lock();
        inner
            .entries
            .keys()
            .map(|n| {
                serde_json::json!({
                    "name": n,
                    "running": inner.running.contains_key(n),
                    "last": inner.last.get(n),
                })
            })
            .collect()
    }
}

/// Applies the `[[drill]]` of a (re)loaded configuration: the drills, their actions and
/// their schedules (restarted; a run in progress goes on). Must run inside the runtime.
pub fn apply(core: &Arc<Core>, config: &Config) {
    let actions: BTreeMap<&str, Step> = config
        .actions
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                Step {
                    name: a.name.clone(),
                    action: crate::action::build(a),
                    timeout: a.timeout().0,
                },
            )
        })
        .collect();
    let mut entries = BTreeMap::new();
    for d in &config.drills {
        // Validation made sure the actions exist.
        let Some(fault) = actions.get(d.fault.get_ref().as_str()).cloned() else {
            continue;
        };
        let restore = d
            .restore
            .as_ref()
            .and_then(|r| actions.get(r.get_ref().as_str()).cloned());
        entries.insert(
            d.name.clone(),
            Entry {
                config: d.clone(),
                fault,
                restore,
            },
        );
    }
    let stored = {
        let inner = core.drills.lock();
        (!inner.loaded).then(|| super::finish::load(&core.state_dir))
    };
    let mut inner = core.drills.lock();
    if let Some(stored) = stored {
        inner.last = stored.last;
        inner.loaded = true;
        // Runs a stop of lookout cut short: restore, and report them.
        for (name, r) in stored.running {
            if let Some(e) = entries.get(&name) {
                inner.running.insert(name, r.clone());
                tokio::spawn(super::finish::interrupted(core.clone(), e.clone(), r));
            }
        }
    }
    inner.schedules.drain(..).for_each(|h| h.abort());
    inner.next.clear();
    let now = core.clock.now().mono;
    for (name, e) in &entries {
        if let Some(every) = &e.config.every {
            let period = every.get_ref().0;
            inner.next.insert(name.clone(), now + period.as_secs_f64());
            inner
                .schedules
                .push(tokio::spawn(schedule(core.clone(), name.clone(), period)));
        }
    }
    inner.entries = entries;
}

/// Runs a drill every `period` (monotonic), the first one period from now.
async fn schedule(core: Arc<Core>, name: String, period: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let next = core.clock.now().mono + period.as_secs_f64();
        core.drills.lock().next.insert(name.clone(), next);
        match start(&core, &name, "lookout") {
            Ok(_) => {}
            Err(e) => tracing::info!(drill = %name, "scheduled run skipped: {e}"),
        }
    }
}

/// What `start` answers.
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    /// The drill.
    pub drill: String,
    /// The run's id.
    pub run: String,
    /// The longest the run can take, in seconds (the fault's and the restore's timeouts, the
    /// precondition wait, every `within` and `recover_within`), for a client's deadline.
    pub max_seconds: f64,
}

/// Starts a run of drill `name` on behalf of `by` in its own task.
pub fn start(core: &Arc<Core>, name: &str, by: &str) -> Result<Started, StartError> {
    let entry = {
        let mut inner = core.drills.lock();
        let Some(entry) = inner.entries.get(name).cloned() else {
            return Err(StartError::Unknown(name.to_string()));
        };
        if let Some(r) = inner.running.get(name) {
            return Err(StartError::Running(r.run.clone()));
        }
        let run = {
            use rand::Rng;
            hex::encode(rand::rng().random::<[u8; 8]>())
        };
        inner.running.insert(
            name.to_string(),
            Running {
                run: run.clone(),
                by: by.to_string(),
                started_at: core.clock.now().wall,
            },
        );
        (entry, run)
    };
    super::finish::save(core);
    let (entry, run) = entry;
    let plan = Plan::of(&entry.config);
    let max_seconds = entry.fault.timeout.as_secs_f64()
        + entry
            .restore
            .as_ref()
            .map_or(0.0, |r| r.timeout.as_secs_f64())
        + plan.recover_within.max(10.0)
        + plan.longest()
        + 10.0;
    let started = Started {
        drill: name.to_string(),
        run: run.clone(),
        max_seconds,
    };
    tokio::spawn(run_drill(core.clone(), entry, run, by.to_string()));
    Ok(started)
}

/// One run: precondition, fault and watch, restore, report.
async fn run_drill(core: Arc<Core>, entry: Entry, run: String, by: String) {
    let name = entry.config.name.clone();
    let plan = Plan::of(&entry.config);
    let begin = core.clock.now();
    core.timeline(TimelineEntry {
        ts: begin.wall,
        kind: "drill_started".into(),
        probe: None,
        alert_id: None,
        severity: None,
        actor: Some(by.clone()),
        message: format!(
            "drill {name} started by {by} (run {run}): fault {} ({}), {}",
            entry.fault.name,
            entry.fault.action.describe(),
            expectations(&plan)
        ),
    });
    let mut checks = Vec::new();
    let mut injected = false;
    match precondition(&core, &plan).await {
        Err(c) => checks.push(c),
        Ok(()) => {
            injected = true;
            checks.extend(watch(&core, &plan, &entry.fault).await);
        }
    }
    if injected && let Some(r) = &entry.restore {
        let out = r.action.run(r.timeout).await;
        checks.push(Check {
            step: "restore".into(),
            what: r.name.clone(),
            ok: out.ok,
            seconds: Some(out.seconds),
            limit: None,
            message: action_message("restore", &r.name, &out),
        });
    }
    let end = core.clock.now();
    let passed = checks.iter().all(|c| c.ok);
    let took = end.mono - begin.mono;
    let mut report = Report {
        drill: name.clone(),
        run,
        passed,
        by,
        started_at: begin.wall,
        finished_at: end.wall,
        seconds: took,
        checks,
        summary: String::new(),
    };
    report.summary = match report.first_failure() {
        None => format!("passed in {}", secs(took)),
        Some(c) => format!("failed: {}", c.message),
    };
    super::finish::finish(&core, &entry.config, report);
}

/// `expecting probe_status on app-write within 30s, then app-write ok within 30s`.
fn expectations(plan: &Plan) -> String {
    let mut parts = Vec::new();
    if !plan.expect.is_empty() {
        parts.push(format!(
            "expecting {}",
            plan.expect
                .iter()
                .map(|e| format!("{} within {}", e.what, secs(e.within)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !plan.recover.is_empty() {
        parts.push(format!(
            "then {} ok within {}",
            plan.recover.join(", "),
            secs(plan.recover_within)
        ));
    }
    parts.join(", ")
}

fn action_message(step: &str, name: &str, out: &crate::action::RunOutcome) -> String {
    let tail = out.output_tail.trim();
    let tail = match tail.lines().last() {
        Some(l) if !out.ok => format!(" ({l})"),
        _ => String::new(),
    };
    format!(
        "{step} {name} {}: {}{tail}",
        if out.ok { "ran" } else { "failed" },
        out.summary
    )
}

/// A drill starts from a healthy state: every recover probe has reported ok and no expected
/// alert is firing already (it could not be told from the fault's). Waits for that at most
/// `recover_within` (at least 10 s).
async fn precondition(core: &Core, plan: &Plan) -> Result<(), Check> {
    let deadline = core.clock.now().mono + plan.recover_within.max(10.0);
    loop {
        let snaps = core.snapshots();
        let not_ok: Vec<String> = plan
            .recover
            .iter()
            .filter_map(|p| match snaps.iter().find(|s| &s.id == p) {
                Some(s) if s.observation.status == Status::Ok => None,
                Some(s) => Some(format!(
                    "{p} is {}: {}",
                    s.observation.status.as_str(),
                    s.observation.message
                )),
                None => Some(format!("{p} has not reported yet")),
            })
            .collect();
        let alerts = core.alerts();
        let firing: Vec<String> = plan
            .expect
            .iter()
            .filter(|e| {
                alerts
                    .iter()
                    .any(|a| a.state.is_open() && e.matches(&match_labels(a)))
            })
            .map(|e| format!("{} is firing already", e.what))
            .collect();
        if not_ok.is_empty() && firing.is_empty() {
            return Ok(());
        }
        if core.clock.now().mono > deadline {
            let why = [not_ok, firing].concat().join("; ");
            return Err(Check {
                step: "precondition".into(),
                what: "healthy before the fault".into(),
                ok: false,
                seconds: None,
                limit: None,
                message: format!(
                    "not started from a healthy state, the fault was not injected: {why}"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Injects the fault and watches until every expectation is decided.
async fn watch(core: &Core, plan: &Plan, fault: &Step) -> Vec<Check> {
    let mut rx = core.subscribe();
    let start = core.clock.now().mono;
    let mut w = Watch::new(plan, start);
    let action = fault.action.clone();
    let timeout = fault.timeout;
    let mut fault_run = Box::pin(async move { action.run(timeout).await });
    let mut fault_check: Option<Check> = None;
    // A bound the watch cannot pass even if the fault's action overstays its timeout.
    let hard = start + timeout.as_secs_f64() + 5.0 + plan.longest();
    loop {
        let now = core.clock.now().mono;
        if let Some(fc) = &fault_check {
            if !fc.ok {
                return vec![fc.clone()];
            }
            if let Some(v) = w.verdict(now) {
                return [vec![fc.clone()], v].concat();
            }
        }
        if now > hard {
            let mut out: Vec<Check> = fault_check.into_iter().collect();
            out.push(Check {
                step: "fault".into(),
                what: fault.name.clone(),
                ok: false,
                seconds: None,
                limit: Some(hard - start),
                message: format!("fault {} did not return in time", fault.name),
            });
            return out;
        }
        let wake = w
            .next_deadline(now)
            .map(|d| d - now + 0.05)
            .unwrap_or(1.0)
            .clamp(0.05, 1.0);
        tokio::select! {
            out = &mut fault_run, if fault_check.is_none() => {
                w.fault_finished(core.clock.now().mono);
                fault_check = Some(Check {
                    step: "fault".into(),
                    what: fault.name.clone(),
                    ok: out.ok,
                    seconds: Some(out.seconds),
                    limit: None,
                    message: action_message("fault", &fault.name, &out),
                });
            }
            msg = rx.recv() => match msg {
                Ok(Observed::Alert { event, mono }) => {
                    if matches!(event.kind, AlertEventKind::Firing) {
                        w.alert_fired(&match_labels(&event.alert), mono);
                    }
                }
                Ok(Observed::Probe { id, status, message, mono }) => {
                    w.probe_result(&id, status == Status::Ok, &message, mono);
                }
                Err(RecvError::Lagged(n)) => {
                    // Missed events: take the current state as of now.
                    tracing::warn!(missed = n, "a drill fell behind the daemon's events");
                    let now = core.clock.now().mono;
                    for a in core.alerts().iter().filter(|a| a.state.is_open()) {
                        w.alert_fired(&match_labels(a), now);
                    }
                    for s in core.snapshots() {
                        w.probe_result(&s.id, s.observation.status == Status::Ok, &s.observation.message, now);
                    }
                }
                Err(RecvError::Closed) => tokio::time::sleep(Duration::from_secs_f64(wake)).await,
            },
            _ = tokio::time::sleep(Duration::from_secs_f64(wake)) => {}
        }
    }
}
