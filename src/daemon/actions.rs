//! The action runner: binds firing alerts to `[[action]]`s whose `on` matches, walks the
//! guards ([`crate::action::guard`]) for each, runs, post-checks, proposes and records every
//! decision on the timeline. Every pursuit and every run is its own task: nothing here blocks
//! the scheduler. One run and its post-check are in `action_exec.rs`; manual runs and
//! approvals in [`super::action_runs`].

use super::core::Core;
use crate::action::Action;
use crate::action::guard::{self, Decision, Guards, History, Inputs, Precondition};
use crate::alert::{Alert, AlertEvent, AlertEventKind, AlertState};
use crate::config::Config;
use crate::config::actions::ActionConfig;
use crate::model::{Labels, Observation, Status};
use crate::rule::Condition;
use crate::store::TimelineEntry;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

/// Critical: a run failed, or its post-check did (the message has the output tail).
pub const ACTION_FAILED_RULE: &str = "action_failed";
/// Critical: `max_runs` reached in the window and the alert still fires; the action stops. It
/// resolves with that alert, or when a run is allowed again.
pub const REMEDIATION_EXHAUSTED_RULE: &str = "remediation_exhausted";
/// A proposed run waits for approval (`mode = "ask"`): the page carries what would run and
/// how to approve.
pub const ACTION_PROPOSAL_RULE: &str = "action_proposal";

/// The actor of what lookout decides by itself.
pub const LOOKOUT: &str = "lookout";

/// The runner's state, held by [`Core`].
#[derive(Default)]
pub struct ActionsState {
    pub(super) inner: Mutex<Inner>,
    tx: Mutex<Option<UnboundedSender<Alert>>>,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) actions: BTreeMap<String, Entry>,
    /// Probe id → its `depends_on` (the default preconditions).
    depends_on: BTreeMap<String, Vec<String>>,
    /// Probe id → since when it is ok (monotonic), or why it is not.
    ok_since: BTreeMap<String, Result<f64, String>>,
    /// (action, alert id) pairs being pursued.
    pub(super) pursuits: BTreeSet<(String, String)>,
    pub(super) proposals: BTreeMap<String, Proposal>,
}

pub(super) struct Entry {
    pub(super) config: ActionConfig,
    pub(super) action: Arc<dyn Action>,
    pub(super) history: History,
    pub(super) run_lock: Arc<tokio::sync::Mutex<()>>,
    pub(super) last: Option<LastRun>,
    /// What the action is doing, in words (`idle`, `waiting: …`, `running`, `exhausted`).
    pub(super) state: String,
    /// The alerts whose pursuit stopped at `max_runs` (their `remediation_exhausted` page
    /// resolves when the last of them does).
    pub(super) exhausted_for: BTreeSet<String>,
}

/// The latest run of an action.
#[derive(Clone, Debug, Serialize)]
pub struct LastRun {
    /// Unix seconds of its start.
    pub at: f64,
    /// Whether it (and its post-check) succeeded.
    pub ok: bool,
    /// One line.
    pub summary: String,
    /// Who ran it (`lookout`, or the person).
    pub by: String,
}

/// A run waiting for approval.
#[derive(Clone, Debug, Serialize)]
pub struct ProposalInfo {
    /// 16 hex digits.
    pub id: String,
    /// The action.
    pub action: String,
    /// The alert that triggered it.
    pub alert_id: String,
    /// Its rule and probe.
    pub alert: String,
    /// What would run, one line (secrets as `<secret>`).
    pub would_run: String,
    /// Unix seconds.
    pub created_at: f64,
    /// Unix seconds at which it expires unanswered.
    pub deadline: f64,
    /// The id of the `action_proposal` alert that pages it.
    pub page_alert_id: String,
}

pub(super) struct Proposal {
    pub(super) info: ProposalInfo,
    pub(super) approve: Option<oneshot::Sender<String>>,
}

impl ActionsState {
    /// Notes a probe result for the preconditions (called by [`Core::record`]).
    pub fn observe(&self, probe: &str, obs: &Observation, mono: f64) {
        let mut inner = self.inner.lock().expect("actions lock");
        let next = if obs.status == Status::Ok {
            match inner.ok_since.get(probe) {
                Some(Ok(since)) => Ok(*since),
                _ => Ok(mono),
            }
        } else {
            Err(format!(
                "{}: {}",
                obs.status.as_str(),
                obs.message.lines().next().unwrap_or("")
            ))
        };
        inner.ok_since.insert(probe.to_string(), next);
    }

    /// Hands a firing alert to the runner (called by [`Core::handle`]; never blocks).
    pub fn offer(&self, ev: &AlertEvent) {
        if matches!(ev.kind, AlertEventKind::Firing)
            && let Some(tx) = self.tx.lock().expect("actions tx lock").as_ref()
        {
            let _ = tx.send(ev.alert.clone());
        }
    }
}

impl Core {
    /// Applies `[[action]]` of a (re)loaded configuration; the run history of an action that
    /// keeps its name carries over.
    pub fn set_actions(&self, config: &Config) {
        let mut inner = self.actions.inner.lock().expect("actions lock");
        let mut old = std::mem::take(&mut inner.actions);
        for c in &config.actions {
            let kept = old.remove(&c.name);
            inner.actions.insert(
                c.name.clone(),
                Entry {
                    config: c.clone(),
                    action: crate::action::build(c),
                    history: kept.as_ref().map(|k| k.history.clone()).unwrap_or_default(),
                    run_lock: kept
                        .as_ref()
                        .map(|k| k.run_lock.clone())
                        .unwrap_or_default(),
                    last: kept.as_ref().and_then(|k| k.last.clone()),
                    exhausted_for: kept
                        .as_ref()
                        .map(|k| k.exhausted_for.clone())
                        .unwrap_or_default(),
                    state: kept.map_or_else(|| "idle".into(), |k| k.state),
                },
            );
        }
        inner.depends_on = config
            .probes
            .iter()
            .map(|p| (p.id.clone(), p.spec().depends_on.clone()))
            .collect();
    }

    /// Rebuilds each action's runs in its window from the stored timeline (at start), so a
    /// crash loop cannot run an action more than `max_runs` per window.
    pub fn restore_action_runs(&self, state_dir: &std::path::Path) {
        let now = self.clock.now();
        let Ok(conn) = crate::store::open_read_only(state_dir) else {
            return;
        };
        let mut inner = self.actions.inner.lock().expect("actions lock");
        let longest = inner
            .actions
            .values()
            .map(|e| {
                e.config
                    .common
                    .window
                    .secs()
                    .max(e.config.common.cooldown.secs())
            })
            .fold(0.0, f64::max);
        let Ok(rows) = crate::store::load_timeline(&conn, now.wall - longest, 100_000) else {
            return;
        };
        for (name, e) in inner.actions.iter_mut() {
            // A run about an alert is lookout's own (a pursuit's or an approved proposal's)
            // and counts against max_runs; a manual run has no alert and only starts the
            // cooldown.
            let started: Vec<(f64, bool)> = rows
                .iter()
                .filter(|r| r.entry.kind == "action_started")
                .filter(|r| r.entry.message.split_once(": ").map(|x| x.0) == Some(name))
                .map(|r| {
                    (
                        now.mono - (now.wall - r.entry.ts),
                        r.entry.alert_id.is_some(),
                    )
                })
                .collect();
            if !started.is_empty() {
                let counted: Vec<f64> = started.iter().filter(|r| r.1).map(|r| r.0).collect();
                let last = started.iter().map(|r| r.0).fold(f64::MIN, f64::max);
                tracing::info!(action = %name, runs = counted.len(), "runs in the window taken back from the timeline");
                e.history = History::with_runs(counted, Some(last));
            }
            if e.last.is_none() {
                e.last = last_run_of(name, &rows);
            }
        }
    }

    /// An action's timeline entry: `NAME: message`, about the triggering alert when there is
    /// one, with its actor.
    pub(super) fn action_note(
        &self,
        kind: &str,
        name: &str,
        alert: Option<&Alert>,
        actor: &str,
        message: impl std::fmt::Display,
    ) {
        self.timeline(TimelineEntry {
            ts: self.clock.now().wall,
            kind: kind.into(),
            probe: alert.map(|a| a.probe.clone()),
            alert_id: alert.map(|a| a.id.clone()),
            severity: alert.map(|a| a.severity.as_str().to_string()),
            actor: Some(actor.to_string()),
            message: format!("{name}: {message}"),
        });
    }

    /// Changes a configured action's entry under the runner's lock (unknown names: nothing).
    pub(super) fn with_action(&self, name: &str, change: impl FnOnce(&mut Entry)) {
        if let Some(e) = self
            .actions
            .inner
            .lock()
            .expect("actions lock")
            .actions
            .get_mut(name)
        {
            change(e);
        }
    }

    pub(super) fn set_action_state(&self, name: &str, state: impl Into<String>) {
        let state = state.into();
        self.with_action(name, |e| e.state = state);
    }

    /// Whether the action may run again as far as `max_runs` goes (unknown actions: yes).
    pub(super) fn has_room(&self, name: &str) -> bool {
        let now = self.clock.now().mono;
        let inner = self.actions.inner.lock().expect("actions lock");
        inner.actions.get(name).is_none_or(|e| {
            let g = Guards::of(&e.config.common);
            e.history.runs_in_window(&g, now) < g.max_runs
        })
    }

    /// Whether the alert is still firing (acknowledged counts: someone looks, it is not fixed).
    pub(super) fn still_firing(&self, id: &str) -> bool {
        self.with_engine(|e| {
            e.alerts().any(|a| {
                a.id == id && matches!(a.state, AlertState::Firing | AlertState::Acknowledged)
            })
        })
    }

    /// The precondition verdict of an action for a triggering probe.
    pub(super) fn preconditions_of(
        &self,
        name: &str,
        probe: Option<&str>,
        g: &Guards,
    ) -> Precondition {
        let now = self.clock.now().mono;
        let inner = self.actions.inner.lock().expect("actions lock");
        let Some(e) = inner.actions.get(name) else {
            return Precondition::Met;
        };
        let probes: Vec<String> = match (&e.config.common.require_ok, probe) {
            (Some(r), _) => r.clone(),
            (None, Some(p)) => inner.depends_on.get(p).cloned().unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        let states: Vec<(String, Result<f64, String>)> = probes
            .into_iter()
            .map(|p| {
                let s = inner
                    .ok_since
                    .get(&p)
                    .cloned()
                    .unwrap_or_else(|| Err("no result yet".into()));
                (p, s)
            })
            .collect();
        guard::preconditions(&states, g, now)
    }

    /// Runs `decide` on an action's guards and history, counting the run when it says run.
    pub(super) fn decide_action(
        &self,
        name: &str,
        inputs: &Inputs,
        force: bool,
    ) -> Option<(Decision, Guards)> {
        let mut inner = self.actions.inner.lock().expect("actions lock");
        let e = inner.actions.get_mut(name)?;
        let g = Guards::of(&e.config.common);
        e.history.prune(&g, inputs.now);
        let d = if force {
            if g.mode == crate::config::actions::ActionMode::DryRun && !inputs.manual {
                Decision::DryRun
            } else {
                Decision::Run
            }
        } else {
            guard::decide(&g, &e.history, inputs)
        };
        Some((d, g))
    }
}

/// Starts the runner: firing alerts handed over by [`ActionsState::offer`] start a pursuit
/// for every action whose `on` matches.
pub fn start(core: &Arc<Core>) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // What a restart left behind: proposals are not kept (their pages are withdrawn); an
    // exhausted action with room in its window again may run; an alert still firing is taken
    // up again (its delay and every guard apply anew, the runs in the window were rebuilt).
    for a in core.alerts() {
        if a.probe != crate::alert::INTERNAL_PROBE || !a.state.is_open() {
            continue;
        }
        let action = a.labels.get("action").cloned().unwrap_or_default();
        if a.rule == ACTION_PROPOSAL_RULE {
            core.set_internal(Condition::clear(
                ACTION_PROPOSAL_RULE,
                a.labels.clone(),
                "proposal withdrawn: lookout restarted; the action is proposed again if the alert still fires",
            ));
        } else if a.rule == REMEDIATION_EXHAUSTED_RULE {
            if core.has_room(&action) {
                core.set_internal(Condition::clear(
                    REMEDIATION_EXHAUSTED_RULE,
                    a.labels.clone(),
                    format!("action {action} may run again"),
                ));
            } else if !core.binds_a_firing_alert(&action) {
                core.set_internal(Condition::clear(
                    REMEDIATION_EXHAUSTED_RULE,
                    a.labels.clone(),
                    format!("no alert action {action} answers is firing any more"),
                ));
            }
        }
    }
    for a in core.alerts() {
        if matches!(a.state, AlertState::Firing | AlertState::Acknowledged) {
            let _ = tx.send(a);
        }
    }
    *core.actions.tx.lock().expect("actions tx lock") = Some(tx);
    tokio::spawn(super::action_pursuit::bind(core.clone(), rx))
}

impl Core {
    /// Whether some firing (or acknowledged) alert matches the action's `on`.
    fn binds_a_firing_alert(&self, name: &str) -> bool {
        let on = {
            let inner = self.actions.inner.lock().expect("actions lock");
            match inner.actions.get(name) {
                Some(e) => e.config.common.on.clone(),
                None => return false,
            }
        };
        !on.is_empty()
            && self.alerts().iter().any(|a| {
                matches!(a.state, AlertState::Firing | AlertState::Acknowledged) && binds(&on, a)
            })
    }

    /// What a run of the action would do, one line.
    pub fn describe_action(&self, name: &str) -> Option<String> {
        let inner = self.actions.inner.lock().expect("actions lock");
        inner.actions.get(name).map(|e| e.action.describe())
    }
}

/// The latest finished run of an action on the stored timeline: its start, whether it (and a
/// post-check that followed it) succeeded, its summary and its actor.
fn last_run_of(name: &str, rows: &[crate::store::TimelineRow]) -> Option<LastRun> {
    let prefix = format!("{name}: ");
    let mine = |kind: &'static str| -> Vec<&crate::store::TimelineRow> {
        rows.iter()
            .filter(|r| r.entry.kind == kind && r.entry.message.starts_with(&prefix))
            .collect()
    };
    let started = *mine("action_started").last()?;
    let finished = *mine("action_finished")
        .iter()
        .rfind(|r| r.seq > started.seq)?;
    let text = &finished.entry.message[name.len() + 2..];
    let post_failed = mine("action_postcheck")
        .iter()
        .any(|r| r.seq > finished.seq && r.entry.message.contains("post-check failed"));
    Some(LastRun {
        at: started.entry.ts,
        ok: text.starts_with("ok:") && !post_failed,
        summary: text.lines().next().unwrap_or("").to_string(),
        by: started
            .entry
            .actor
            .clone()
            .unwrap_or_else(|| LOOKOUT.into()),
    })
}

/// Whether an action's `on` matchers bind this alert.
pub(super) fn binds(on: &BTreeMap<String, String>, alert: &Alert) -> bool {
    let l: Labels = crate::escalation::policy::match_labels(alert);
    on.iter().all(|(k, v)| l.get(k) == Some(v))
}
