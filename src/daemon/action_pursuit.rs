//! One action's pursuit of one firing alert: the delay, then the guards in order, until it ran
//! and the post-check passed, the alert resolved, a proposal expired, or a dry run was noted.
//! Every wait ends as soon as the alert resolves.

use super::actions::{LOOKOUT, REMEDIATION_EXHAUSTED_RULE, binds};
use super::core::Core;
use crate::action::guard::span;
use crate::action::guard::{Decision, Guards, Inputs};
use crate::alert::Alert;
use crate::model::{Severity, format_utc, labels};
use crate::rule::Condition;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Takes firing alerts and starts a pursuit for every action whose `on` matches, unless one
/// for the same (action, alert) pair still runs.
pub(super) async fn bind(core: Arc<Core>, mut rx: UnboundedReceiver<Alert>) {
    while let Some(alert) = rx.recv().await {
        let names: Vec<String> = {
            let mut inner = core.actions.inner.lock().expect("actions lock");
            let names: Vec<String> = inner
                .actions
                .values()
                .filter(|e| !e.config.common.on.is_empty() && binds(&e.config.common.on, &alert))
                .map(|e| e.config.name.clone())
                .collect();
            names
                .into_iter()
                .filter(|n| inner.pursuits.insert((n.clone(), alert.id.clone())))
                .collect()
        };
        for name in names {
            let core = core.clone();
            let alert = alert.clone();
            tokio::spawn(async move {
                Pursuit::new(&core, &name, &alert).run().await;
                core.actions
                    .inner
                    .lock()
                    .expect("actions lock")
                    .pursuits
                    .remove(&(name.clone(), alert.id.clone()));
            });
        }
    }
}

/// Sleeps until the monotonic moment `until`, or less when the alert stops firing (looked at
/// every second).
async fn wait_while_firing(core: &Core, alert_id: &str, until: f64) {
    loop {
        let left = until - core.clock.now().mono;
        if left <= 0.0 || !core.still_firing(alert_id) {
            return;
        }
        tokio::time::sleep(Duration::from_secs_f64(left.min(1.0))).await;
    }
}

struct Pursuit<'a> {
    core: &'a Arc<Core>,
    name: &'a str,
    alert: &'a Alert,
    /// `RULE on PROBE` of the alert.
    on: String,
    /// The last reason said on the timeline, digits removed (each reason is said once).
    said: String,
    /// Runs this pursuit made.
    ran: u32,
    /// Whether `max_runs` stopped it at some point.
    stopped: bool,
}

impl<'a> Pursuit<'a> {
    fn new(core: &'a Arc<Core>, name: &'a str, alert: &'a Alert) -> Pursuit<'a> {
        Pursuit {
            core,
            name,
            alert,
            on: format!("{} on {}", alert.rule, alert.probe),
            said: String::new(),
            ran: 0,
            stopped: false,
        }
    }

    /// Notes a reason on the timeline unless it is the one said last (the same words with
    /// other numbers are the same reason).
    fn say(&mut self, kind: &str, what: String) {
        let key: String = what.chars().filter(|c| !c.is_ascii_digit()).collect();
        if key != self.said {
            self.core
                .action_note(kind, self.name, Some(self.alert), LOOKOUT, &what);
            self.said = key;
        }
    }

    fn guards(&self) -> Option<Guards> {
        let inner = self.core.actions.inner.lock().expect("actions lock");
        inner
            .actions
            .get(self.name)
            .map(|e| Guards::of(&e.config.common))
    }

    async fn run(mut self) {
        let core = self.core;
        let Some(g) = self.guards() else { return };
        core.set_action_state(self.name, format!("delay: {} fired", self.on));
        wait_while_firing(core, &self.alert.id, core.clock.now().mono + g.delay).await;
        while let Some(g) = self.guards() {
            if self.step(&g).await {
                break;
            }
        }
    }

    /// One turn of the guards; true when the pursuit is over.
    async fn step(&mut self, g: &Guards) -> bool {
        let core = self.core;
        let now = core.clock.now();
        let inputs = Inputs {
            now: now.mono,
            alert_firing: core.still_firing(&self.alert.id),
            preconditions: core.preconditions_of(self.name, Some(&self.alert.probe), g),
            manual: false,
        };
        // A pursuit ends as soon as its alert resolves, whatever guard it waits on.
        let decision = if inputs.alert_firing {
            match core.decide_action(self.name, &inputs, false) {
                Some((d, _)) => d,
                None => return true,
            }
        } else {
            Decision::Resolved
        };
        let wall = |mono: f64| format_utc(now.wall + (mono - now.mono));
        match decision {
            Decision::Cooldown { until } => {
                let why = format!(
                    "waiting: cooldown ({} between runs) until {}",
                    span(g.cooldown),
                    wall(until)
                );
                core.set_action_state(self.name, &why);
                self.say("action_skipped", why);
                wait_while_firing(core, &self.alert.id, until).await;
            }
            Decision::Exhausted { until, runs } => {
                self.exhausted(g, runs, &wall(until));
                wait_while_firing(core, &self.alert.id, until).await;
                self.exhaustion_over();
            }
            Decision::NotReady { why, retry_at } => {
                let why = format!("waiting: precondition not met: {why}");
                core.set_action_state(self.name, &why);
                self.say("action_skipped", why);
                wait_while_firing(core, &self.alert.id, retry_at.min(now.mono + 5.0)).await;
            }
            Decision::Resolved => {
                let why = if self.ran == 0 && !self.stopped {
                    format!("skipped: the alert resolved before the run ({})", self.on)
                } else {
                    format!("done: {} resolved", self.on)
                };
                self.say("action_skipped", why);
                self.resolve_failed();
                core.set_action_state(self.name, "idle");
                return true;
            }
            Decision::DryRun => {
                let would = core.describe_action(self.name).unwrap_or_default();
                let on = self.on.clone();
                self.say(
                    "action_proposed",
                    format!(
                        "dry run: would run {would} for {on}; nothing ran (mode = \"dry_run\")"
                    ),
                );
                core.set_action_state(self.name, "idle");
                return true;
            }
            Decision::Propose { deadline } => {
                let wait = deadline - now.mono;
                match super::action_runs::propose(core, self.name, self.alert, wait).await {
                    Some(by) if core.still_firing(&self.alert.id) => {
                        return self.run_and_check(&by).await;
                    }
                    Some(_) => {
                        let on = self.on.clone();
                        self.say(
                            "action_skipped",
                            format!("skipped: the alert resolved before the run ({on})"),
                        );
                        core.set_action_state(self.name, "idle");
                        return true;
                    }
                    None => return true,
                }
            }
            Decision::Run => return self.run_and_check(LOOKOUT).await,
        }
        false
    }

    /// Runs and post-checks; true when done (success, or the alert resolved meanwhile).
    async fn run_and_check(&mut self, by: &str) -> bool {
        self.ran += 1;
        match self
            .core
            .execute_action(self.name, Some(self.alert), by)
            .await
        {
            None => true,
            Some((o, post)) => {
                (o.ok && post != Some(false)) || !self.core.still_firing(&self.alert.id)
            }
        }
    }

    /// The alert this pursuit answered resolved: a failed run's page has nothing left to
    /// tell (the page says so when it resolves).
    fn resolve_failed(&self) {
        if self.ran > 0 || self.stopped {
            self.core.set_internal(Condition::clear(
                super::actions::ACTION_FAILED_RULE,
                labels([("action", self.name)]),
                format!("{} resolved", self.on),
            ));
        }
    }

    /// `max_runs` reached: says so, and pages `remediation_exhausted` with what this pursuit
    /// tried.
    fn exhausted(&mut self, g: &Guards, runs: u32, until: &str) {
        let core = self.core;
        let (name, on) = (self.name, self.on.clone());
        self.stopped = true;
        self.say(
            "action_skipped",
            format!(
                "stopped: max_runs reached ({runs} runs in {}); no further run before {until}",
                span(g.window)
            ),
        );
        core.set_action_state(name, format!("exhausted until {until}"));
        core.with_action(name, |e| {
            e.exhausted_for.insert(self.alert.id.clone());
        });
        let what = match self.ran {
            0 => format!(
                "action {name} already ran {runs} times in {} (max_runs {}) and cannot run for {on}",
                span(g.window),
                g.max_runs
            ),
            mine => format!(
                "action {name} ran {mine} time{} for {on} and it is still firing ({runs} runs in {}, max_runs {})",
                if mine == 1 { "" } else { "s" },
                span(g.window),
                g.max_runs
            ),
        };
        core.set_internal(Condition::active(
            REMEDIATION_EXHAUSTED_RULE,
            labels([("action", name)]),
            Severity::Critical,
            format!("{what}; lookout stops trying until {until} — a person must look"),
        ));
    }

    /// The wait after `max_runs` ended (the window freed, or the alert resolved): the page
    /// resolves unless another alert's pursuit of this action is still stopped.
    fn exhaustion_over(&self) {
        let core = self.core;
        let firing = core.still_firing(&self.alert.id);
        let others = {
            let mut inner = core.actions.inner.lock().expect("actions lock");
            inner.actions.get_mut(self.name).is_some_and(|e| {
                e.exhausted_for.remove(&self.alert.id);
                !e.exhausted_for.is_empty()
            })
        };
        if others && !core.has_room(self.name) {
            return;
        }
        let why = if firing {
            format!("action {} may run again", self.name)
        } else {
            format!("{} resolved", self.on)
        };
        core.set_internal(Condition::clear(
            REMEDIATION_EXHAUSTED_RULE,
            labels([("action", self.name)]),
            why,
        ));
    }
}
