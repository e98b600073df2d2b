//! The engine's side of "did not recover" (see [`super::recovery`]): which dependants a
//! probe's failure or recovery concerns, and the `did_not_recover` alert itself.

use super::Engine;
use crate::alert::recovery::{self, Outcome};
use crate::alert::{Alert, AlertEvent, AlertPolicy, AlertState, fingerprint};
use crate::model::{Moment, Observation, format_duration, format_utc};
use crate::rule::Condition;
use std::collections::BTreeSet;

impl Engine {
    /// Whether `probe` depends on `on`, directly or through other probes.
    fn depends_on(&self, probe: &str, on: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![probe];
        while let Some(p) = stack.pop() {
            if !seen.insert(p) {
                continue;
            }
            let Some(entry) = self.probes.get(p) else {
                continue;
            };
            for d in &entry.spec.depends_on {
                if d == on {
                    return true;
                }
                stack.push(d);
            }
        }
        false
    }

    /// The probes that depend on `probe` (transitively).
    fn dependants(&self, probe: &str) -> Vec<String> {
        self.probes
            .keys()
            .filter(|d| d.as_str() != probe && self.depends_on(d, probe))
            .cloned()
            .collect()
    }

    /// `probe` turned failing: every dependant enters (or stays in) a recovery episode.
    pub(super) fn dependency_turned_failing(&mut self, probe: &str, notes: &mut Vec<String>) {
        for d in self.dependants(probe) {
            if self
                .recovery
                .entry(d.clone())
                .or_default()
                .dependency_failed()
            {
                notes.push(format!(
                    "failing again while {} on {d} is open: it stays open, and only {d} \
                     reading ok resolves it",
                    recovery::RULE
                ));
            }
        }
    }

    /// `probe` recovered: every dependant whose dependencies are now all ok gets its grace.
    pub(super) fn dependency_recovered(
        &mut self,
        probe: &str,
        now: Moment,
        notes: &mut Vec<String>,
    ) {
        for d in self.dependants(probe) {
            if self.dependency_failing(&d) {
                continue;
            }
            let within = self.probes[&d].spec.recover_within;
            let Some(t) = self.recovery.get_mut(&d) else {
                continue;
            };
            if t.dependencies_recovered(probe, now, within) {
                notes.push(format!(
                    "recovered at {}; {d} has {} to recover (its alerts stay suppressed \
                     meanwhile, then {} fires if it still fails)",
                    format_utc(now.wall),
                    format_duration(within),
                    recovery::RULE
                ));
            }
        }
    }

    /// Feeds a fresh observation of a dependant to its episode.
    pub(super) fn observe_recovery(
        &mut self,
        probe: &str,
        obs: &Observation,
        dep_failing: bool,
        now: Moment,
    ) -> Outcome {
        if dep_failing {
            return Outcome::Nothing;
        }
        let own_open = self
            .alerts
            .values()
            .any(|a| a.probe == probe && a.rule != recovery::RULE && a.state.is_open());
        match self.recovery.get_mut(probe) {
            Some(t) => t.observed(obs.status.is_failing(), own_open, now),
            None => Outcome::Nothing,
        }
    }

    /// Turns an episode's outcome into `did_not_recover` events and timeline notes.
    pub(super) fn recovery_events(
        &mut self,
        probe: &str,
        obs: &Observation,
        outcome: Outcome,
        now: Moment,
        notes: &mut Vec<String>,
    ) -> Vec<AlertEvent> {
        let Some(spec) = self.probes.get(probe).map(|p| p.spec.clone()) else {
            return Vec::new();
        };
        match outcome {
            Outcome::Nothing => Vec::new(),
            Outcome::Recovered { dependency, after } => {
                notes.push(format!(
                    "recovered by itself {} after {dependency} recovered",
                    format_duration(after)
                ));
                Vec::new()
            }
            Outcome::AlreadyPaging => {
                notes.push(format!(
                    "still failing {} after its dependencies recovered; its own alert is \
                     already open, so no {}",
                    format_duration(spec.recover_within),
                    recovery::RULE
                ));
                Vec::new()
            }
            Outcome::DidNotRecover {
                dependency,
                recovered_wall,
                after,
            } => {
                let mut labels = spec.labels.clone();
                labels.insert("dependency".into(), dependency.clone());
                let message = recovery::message(
                    probe,
                    &dependency,
                    recovered_wall,
                    after,
                    spec.recover_within,
                    &obs.message,
                );
                let cond = Condition::active(
                    recovery::RULE,
                    labels,
                    spec.did_not_recover_severity,
                    message,
                );
                let id = fingerprint(recovery::RULE, probe, &cond.labels);
                let alert = self
                    .alerts
                    .entry(id)
                    .or_insert_with(|| Alert::new(probe, &cond, now));
                alert
                    .observe(&cond, &AlertPolicy::default(), false, now)
                    .into_iter()
                    .collect()
            }
            Outcome::Resolved { dependency } => {
                let first = obs.message.lines().next().unwrap_or("").trim().to_string();
                let mut events = Vec::new();
                for a in self.alerts.values_mut().filter(|a| {
                    a.probe == probe && a.rule == recovery::RULE && a.state != AlertState::Resolved
                }) {
                    let clear = Condition::clear(
                        recovery::RULE,
                        a.labels.clone(),
                        format!("{probe} recovered after {dependency} did: {first}"),
                    );
                    events.extend(a.observe(&clear, &AlertPolicy::default(), false, now));
                }
                events
            }
        }
    }
}
