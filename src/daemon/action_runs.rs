//! What people do with actions: proposals and their approval (API, CLI, a ✅ on the Matrix
//! page of the proposal), manual runs (`lookout action run`), and the list with every guard.

use super::actions::{ACTION_PROPOSAL_RULE, LOOKOUT, Proposal, ProposalInfo};
use super::core::Core;
use crate::action::guard::span;
use crate::action::guard::{Decision, Guards, Inputs};
use crate::alert::Alert;
use crate::model::{format_utc, labels};
use crate::rule::Condition;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Why a request about an action was refused: an HTTP status and the message.
pub type Refusal = (u16, String);

/// Proposes a run and waits for its approval until `wait` (seconds) passes: the approver,
/// or `None` when it expired unanswered.
pub(super) async fn propose(
    core: &Arc<Core>,
    name: &str,
    alert: &Alert,
    wait: f64,
) -> Option<String> {
    let id = {
        use rand::Rng;
        hex::encode(rand::rng().random::<[u8; 8]>())
    };
    let now = core.clock.now();
    let would = core.describe_action(name)?;
    let deadline = now.wall + wait;
    let l = labels([("action", name), ("proposal", id.as_str())]);
    let how = format!(
        "approve with `lookout action approve {id}` (or POST /api/v1/actions/proposals/{id}/approve with the API token; in Matrix, react ✅ to this page)"
    );
    let message = format!(
        "action {name} proposes to run: {would}\nfor {} on {}: {}\nTo run it, {how}. It expires unanswered at {} ({}).",
        alert.rule,
        alert.probe,
        alert.message.lines().next().unwrap_or(""),
        format_utc(deadline),
        span(wait)
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let page_alert_id =
        crate::alert::fingerprint(ACTION_PROPOSAL_RULE, crate::alert::INTERNAL_PROBE, &l);
    let info = ProposalInfo {
        id: id.clone(),
        action: name.to_string(),
        alert_id: alert.id.clone(),
        alert: format!("{} on {}", alert.rule, alert.probe),
        would_run: would.clone(),
        created_at: now.wall,
        deadline,
        page_alert_id,
    };
    core.actions
        .inner
        .lock()
        .expect("actions lock")
        .proposals
        .insert(
            id.clone(),
            Proposal {
                info,
                approve: Some(tx),
            },
        );
    core.set_action_state(
        name,
        format!(
            "proposal {id} waits for approval until {}",
            format_utc(deadline)
        ),
    );
    core.action_note(
        "action_proposed",
        name,
        Some(alert),
        LOOKOUT,
        format!(
            "proposal {id}: would run {would}; {how}; expires at {}",
            format_utc(deadline)
        ),
    );
    core.set_internal(Condition::active(
        ACTION_PROPOSAL_RULE,
        l.clone(),
        alert.severity,
        message,
    ));
    // Approved, expired, or withdrawn when the alert resolves meanwhile (checked every second).
    let mut rx = rx;
    let expires = tokio::time::Instant::now() + Duration::from_secs_f64(wait.max(0.0));
    let answer = loop {
        tokio::select! {
            by = &mut rx => break by.ok(),
            _ = tokio::time::sleep_until(expires) => break None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if !core.still_firing(&alert.id) {
                    core.actions.inner.lock().expect("actions lock").proposals.remove(&id);
                    core.action_note(
                        "action_skipped",
                        name,
                        Some(alert),
                        LOOKOUT,
                        format!("skipped: proposal {id} withdrawn, the alert resolved before the run"),
                    );
                    core.set_internal(Condition::clear(
                        ACTION_PROPOSAL_RULE,
                        l,
                        format!("proposal {id} withdrawn: the alert resolved"),
                    ));
                    core.set_action_state(name, "idle");
                    return None;
                }
            }
        }
    };
    core.actions
        .inner
        .lock()
        .expect("actions lock")
        .proposals
        .remove(&id);
    match answer {
        Some(by) => {
            core.set_internal(Condition::clear(
                ACTION_PROPOSAL_RULE,
                l,
                format!("proposal {id} approved by {by}"),
            ));
            Some(by)
        }
        None => {
            core.action_note(
                "action_expired",
                name,
                Some(alert),
                LOOKOUT,
                format!(
                    "proposal {id} expired unanswered after {}; nothing ran",
                    span(wait)
                ),
            );
            core.set_internal(Condition::clear(
                ACTION_PROPOSAL_RULE,
                l,
                format!("proposal {id} expired unanswered"),
            ));
            core.set_action_state(name, "idle");
            None
        }
    }
}

/// An action's state as listed: an idle action with `max_runs` used up says until when.
fn shown_state(e: &super::actions::Entry, g: &Guards, now: crate::model::Moment) -> String {
    if e.state == "idle" && e.history.runs_in_window(g, now.mono) >= g.max_runs {
        let until = e.history.window_frees_at(g, now.mono);
        return format!(
            "exhausted: no automatic run before {}",
            format_utc(now.wall + (until - now.mono))
        );
    }
    if e.state == "idle"
        && let Some(last) = e.history.last_run()
        && now.mono - last < g.cooldown
    {
        return format!(
            "idle; cooldown until {}",
            format_utc(now.wall + (last + g.cooldown - now.mono))
        );
    }
    e.state.clone()
}

impl Core {
    /// Open proposals, oldest first.
    pub fn proposals(&self) -> Vec<ProposalInfo> {
        let inner = self.actions.inner.lock().expect("actions lock");
        let mut list: Vec<ProposalInfo> =
            inner.proposals.values().map(|p| p.info.clone()).collect();
        list.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        list
    }

    /// Approves a proposal by id or unique prefix, on behalf of `by`.
    pub fn approve_proposal(&self, id: &str, by: &str) -> Result<ProposalInfo, Refusal> {
        let (info, tx) = {
            let mut inner = self.actions.inner.lock().expect("actions lock");
            let ids: Vec<String> = inner
                .proposals
                .keys()
                .filter(|k| k.starts_with(id))
                .cloned()
                .collect();
            let key = match ids.as_slice() {
                [one] if !id.is_empty() => one.clone(),
                [] => {
                    return Err((
                        404,
                        format!(
                            "no open proposal {id:?} (it was approved, expired, or never made; see `lookout action list`)"
                        ),
                    ));
                }
                _ => {
                    return Err((
                        409,
                        format!(
                            "{id:?} matches {} proposals; give more of the id",
                            ids.len()
                        ),
                    ));
                }
            };
            let p = inner.proposals.get_mut(&key).expect("key exists");
            (p.info.clone(), p.approve.take())
        };
        let Some(tx) = tx else {
            return Err((409, format!("proposal {} is already approved", info.id)));
        };
        self.timeline(crate::store::TimelineEntry {
            ts: self.clock.now().wall,
            kind: "action_approved".into(),
            probe: info.alert.split(" on ").nth(1).map(str::to_string),
            alert_id: Some(info.alert_id.clone()),
            severity: None,
            actor: Some(by.to_string()),
            message: format!(
                "{}: proposal {} approved by {by}; running {}",
                info.action, info.id, info.would_run
            ),
        });
        let _ = tx.send(by.to_string());
        Ok(info)
    }

    /// A ✅ on the page of a proposal approves it: `Some` when `alert_id` is the page of an
    /// open proposal (the acknowledgement is then not applied as one).
    pub fn approve_by_page(
        &self,
        alert_id: &str,
        by: &str,
    ) -> Option<Result<ProposalInfo, Refusal>> {
        let id = {
            let inner = self.actions.inner.lock().expect("actions lock");
            inner
                .proposals
                .values()
                .find(|p| p.info.page_alert_id == alert_id)
                .map(|p| p.info.id.clone())?
        };
        Some(self.approve_proposal(&id, by))
    }

    /// Every configured action with its binding, guards, last run, runs in the window and state.
    pub fn actions_list(&self) -> Vec<Value> {
        let now = self.clock.now();
        let inner = self.actions.inner.lock().expect("actions lock");
        inner
            .actions
            .values()
            .map(|e| {
                let c = &e.config.common;
                let g = Guards::of(c);
                json!({
                    "name": e.config.name,
                    "kind": e.config.kind.name(),
                    "mode": c.mode.as_str(),
                    "on": c.on,
                    "would_run": e.action.describe(),
                    "guards": {
                        "delay": span(g.delay),
                        "require_ok": c.require_ok.clone().map_or(json!("the triggering probe's depends_on"), |r| json!(r)),
                        "require_ok_for": span(g.require_ok_for),
                        "cooldown": span(g.cooldown),
                        "max_runs": g.max_runs,
                        "window": span(g.window),
                        "post_check": c.post_check,
                        "post_check_within": span(c.post_check_within.secs()),
                        "ask_deadline": span(g.ask_deadline),
                        "timeout": span(e.config.timeout().secs()),
                    },
                    "last_run": e.last,
                    "runs_in_window": e.history.runs_in_window(&g, now.mono),
                    "state": shown_state(e, &g, now),
                })
            })
            .collect()
    }

    /// `lookout action run NAME`: runs through the guards (all but the delay) unless `force`;
    /// waits up to 8 s for the result, else answers that it runs (see the timeline).
    pub async fn run_action_by_hand(
        self: &Arc<Core>,
        name: &str,
        by: &str,
        dry_run: bool,
        force: bool,
    ) -> Result<Value, Refusal> {
        let Some(g) = ({
            let inner = self.actions.inner.lock().expect("actions lock");
            inner
                .actions
                .get(name)
                .map(|e| Guards::of(&e.config.common))
        }) else {
            return Err((
                404,
                format!("no action {name:?} is configured (see `lookout action list`)"),
            ));
        };
        let would = self.describe_action(name).unwrap_or_default();
        let inputs = Inputs {
            now: self.clock.now().mono,
            alert_firing: true,
            preconditions: self.preconditions_of(name, None, &g),
            manual: true,
        };
        let decision = if dry_run {
            Decision::DryRun
        } else {
            self.decide_action(name, &inputs, force)
                .map(|d| d.0)
                .unwrap_or(Decision::Resolved)
        };
        let refuse = |why: String| -> Result<Value, Refusal> {
            self.action_note(
                "action_skipped",
                name,
                None,
                by,
                format!("manual run refused: {why}"),
            );
            Err((409, format!("{name}: {why} (--force runs it anyway)")))
        };
        match decision {
            Decision::DryRun => {
                self.action_note(
                    "action_proposed",
                    name,
                    None,
                    by,
                    format!("dry run: would run {would}; nothing ran"),
                );
                Ok(json!({"action": name, "ran": false, "would_run": would}))
            }
            Decision::Cooldown { until } => refuse(format!(
                "cooldown: the last run was less than {} ago; next run allowed in {}",
                span(g.cooldown),
                span(until - inputs.now)
            )),
            Decision::Exhausted { runs, until, .. } => refuse(format!(
                "max_runs reached: {runs} runs in {}; next run allowed in {}",
                span(g.window),
                span(until - inputs.now)
            )),
            Decision::NotReady { why, .. } => refuse(format!("precondition not met: {why}")),
            Decision::Resolved | Decision::Propose { .. } | Decision::Run => {
                let core = self.clone();
                let n = name.to_string();
                let b = by.to_string();
                let task = tokio::spawn(async move { core.execute_action(&n, None, &b).await });
                match tokio::time::timeout(Duration::from_secs(8), task).await {
                    Ok(Ok(Some((o, _)))) => Ok(json!({
                        "action": name, "ran": true, "ok": o.ok, "summary": o.summary,
                        "output_tail": o.output_tail, "seconds": o.seconds,
                    })),
                    Ok(_) => Err((500, format!("{name}: the run did not finish"))),
                    Err(_) => Ok(json!({"action": name, "ran": true, "running": true,
                        "summary": "still running after 8 s; its result will be on the timeline"})),
                }
            }
        }
    }
}
