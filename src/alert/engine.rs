use super::recovery::{self, Tracker};
use super::state::{Alert, AlertEvent, AlertPolicy, fingerprint};
use crate::model::{Moment, Observation, Sample, Severity, Status};
use crate::rule::disk::{CauseNote, cause_sentence, samples as disk_samples};
use crate::rule::{Condition, RuleSet, status};
use std::collections::{BTreeMap, BTreeSet};

/// The probe id under which lookout reports on itself (store, config, notifiers).
pub const INTERNAL_PROBE: &str = "lookout";

/// What the engine needs to know about a configured probe.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    /// The probe's id.
    pub id: String,
    /// The probe's kind, e.g. `disk`.
    pub kind: String,
    /// Probes whose failure suppresses this probe's alerts.
    pub depends_on: Vec<String>,
    /// Firing and resolving behaviour of its alerts.
    pub policy: AlertPolicy,
    /// The severity of `probe_status` when the probe cannot tell (timeout, error).
    pub unknown_severity: Severity,
    /// Extra labels added to every alert and sample of the probe.
    pub labels: crate::model::Labels,
    /// Seconds the probe has, after its dependencies recovered, before `did_not_recover`.
    pub recover_within: f64,
    /// The severity of its `did_not_recover` alert.
    pub did_not_recover_severity: Severity,
}

struct ProbeEntry {
    spec: ProbeSpec,
    rules: Box<dyn RuleSet>,
    last_status: Option<Status>,
}

/// Turns observations into alert events: runs the rules, keeps every alert's state machine and
/// applies dependency suppression. Pure: time comes in as an argument.
#[derive(Default)]
pub struct Engine {
    probes: BTreeMap<String, ProbeEntry>,
    alerts: BTreeMap<String, Alert>,
    /// Cause notes per mount point, published by probes (`disk.cause_bytes{mount,cause}`):
    /// mount → (publishing probe, cause) → (note, monotonic time published).
    causes: BTreeMap<String, CauseNotes>,
    /// Pseudo probes whose alerts come from outside the probe scheduler (Alertmanager intake,
    /// inbound heartbeats): a reload never retires their alerts.
    sources: BTreeSet<String>,
    /// Ids of alerts whose stale marker changed without an event (see [`Engine::take_touched`]).
    touched: Vec<String>,
    /// Recovery episodes of probes with `depends_on` (see [`recovery`]).
    recovery: BTreeMap<String, Tracker>,
}

/// One observation's input to [`Engine::apply`].
struct Run {
    conditions: Vec<Condition>,
    policy: AlertPolicy,
    /// A probe this one depends on is failing.
    suppressed: bool,
    /// The probe could not read its evidence: why, in its words.
    failed: Option<String>,
    now: Moment,
}

/// Appended (once) to the message of an alert whose series a complete observation lacks.
const NO_LONGER_REPORTED: &str = " (no longer reported)";

/// `pg_slot {slot=node2} on db1`, for timeline notes.
fn describe(a: &Alert) -> String {
    let labels = if a.labels.is_empty() {
        String::new()
    } else {
        let l: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(" {{{}}}", l.join(", "))
    };
    format!("{}{labels}", a.rule)
}

/// The cause notes of one mount point: (publishing probe, cause) → (note, monotonic time).
type CauseNotes = BTreeMap<(String, String), (CauseNote, f64)>;

/// How long a cause note counts after its probe last published it (seconds, monotonic).
pub const CAUSE_NOTE_TTL: f64 = 1800.0;

impl Engine {
    /// An engine with no probes and no alerts.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Adds or replaces a probe and its rules (history in the old rules is dropped).
    pub fn set_probe(&mut self, spec: ProbeSpec, rules: Box<dyn RuleSet>) {
        let last_status = self.probes.get(&spec.id).and_then(|p| p.last_status);
        self.probes.insert(
            spec.id.clone(),
            ProbeEntry {
                spec,
                rules,
                last_status,
            },
        );
    }

    /// Feeds history recorded before a restart to a probe's rules.
    pub fn seed(&mut self, probe: &str, history: &[(f64, Sample)], now: Moment) {
        if let Some(p) = self.probes.get_mut(probe) {
            p.rules.seed(history, now);
        }
    }

    /// Drops probes not in `keep` and resolves their open alerts.
    pub fn retain_probes(&mut self, keep: &BTreeSet<String>, now: Moment) -> Vec<AlertEvent> {
        self.probes.retain(|id, _| keep.contains(id));
        self.recovery.retain(|id, _| keep.contains(id));
        self.alerts
            .values_mut()
            .filter(|a| {
                a.probe != INTERNAL_PROBE
                    && !self.sources.contains(&a.probe)
                    && !keep.contains(&a.probe)
            })
            .filter_map(|a| a.retire(now))
            .collect()
    }

    /// Restores alerts loaded from the store (only those not resolved matter).
    pub fn restore(&mut self, alerts: Vec<Alert>, now: Moment) {
        for a in alerts {
            if a.rule == recovery::RULE && a.state.is_open() {
                let dep = a.labels.get("dependency").cloned().unwrap_or_default();
                self.recovery.insert(a.probe.clone(), Tracker::open(&dep));
            }
            self.alerts.insert(a.id.clone(), a.restore(now));
        }
    }

    /// Whether a probe or anything it depends on (transitively) is failing.
    fn dependency_failing(&self, probe: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = self
            .probes
            .get(probe)
            .map(|p| p.spec.depends_on.iter().map(String::as_str).collect())
            .unwrap_or_default();
        while let Some(dep) = stack.pop() {
            if !seen.insert(dep) {
                continue;
            }
            if let Some(p) = self.probes.get(dep) {
                if p.last_status.is_some_and(Status::is_failing) {
                    return true;
                }
                stack.extend(p.spec.depends_on.iter().map(String::as_str));
            }
        }
        false
    }

    /// Runs one observation of a probe through its rules and alerts. Returns the observation
    /// as enriched by the rules (derived samples, raised status) and the alert events.
    pub fn ingest(
        &mut self,
        probe: &str,
        mut obs: Observation,
        now: Moment,
    ) -> (Observation, Vec<AlertEvent>) {
        let Some(entry) = self.probes.get_mut(probe) else {
            return (obs, Vec::new());
        };
        // Configured labels go on every sample before the rules see them, and on every alert.
        for (k, v) in &entry.spec.labels {
            for s in &mut obs.samples {
                s.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let mut conditions = vec![status::evaluate(&obs, entry.spec.unknown_severity)];
        conditions.extend(entry.rules.evaluate(&mut obs, now));
        for c in &mut conditions {
            for (k, v) in &entry.spec.labels {
                c.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let was_failing = entry.last_status.is_some_and(Status::is_failing);
        entry.last_status = Some(obs.status);
        let policy = entry.spec.policy;
        self.publish_causes(probe, &obs, now);
        self.attach_causes(&mut obs, &mut conditions, now);
        let mut notes = Vec::new();
        let mut events = Vec::new();
        if obs.status.is_failing() && !was_failing {
            self.dependency_turned_failing(probe, &mut notes);
        } else if was_failing && !obs.status.is_failing() {
            self.dependency_recovered(probe, now, &mut notes);
        }
        let dep_failing = self.dependency_failing(probe);
        let outcome = self.observe_recovery(probe, &obs, dep_failing, now);
        let held = self.recovery.get(probe).is_some_and(Tracker::holds);
        let run = Run {
            suppressed: dep_failing || held,
            failed: obs.unreadable().then(|| {
                let first = obs.message.lines().next().unwrap_or("").trim();
                format!("{probe} failed: {first}")
            }),
            conditions,
            policy,
            now,
        };
        events.extend(self.apply(probe, &run, &mut notes));
        events.extend(self.recovery_events(probe, &obs, outcome, now, &mut notes));
        obs.events.extend(notes);
        (obs, events)
    }

    /// Replaces the cause notes `probe` published with those in `obs` (an observation without
    /// samples, e.g. a timeout, keeps the previous notes until they expire).
    fn publish_causes(&mut self, probe: &str, obs: &Observation, now: Moment) {
        if obs.samples.is_empty() {
            return;
        }
        for notes in self.causes.values_mut() {
            notes.retain(|(p, _), _| p != probe);
        }
        for s in obs
            .samples
            .iter()
            .filter(|s| s.name == disk_samples::CAUSE_BYTES)
        {
            let (Some(mount), Some(cause)) = (s.labels.get("mount"), s.labels.get("cause")) else {
                continue;
            };
            let growth = obs.sample(disk_samples::CAUSE_GROWTH, &s.labels);
            let note = CauseNote {
                cause: cause.clone(),
                bytes: s.value,
                growth,
            };
            self.causes
                .entry(mount.clone())
                .or_default()
                .insert((probe.to_string(), cause.clone()), (note, now.mono));
        }
        self.causes.retain(|_, notes| !notes.is_empty());
    }

    /// Appends the largest fresh cause note of a filesystem to its active `disk_full`
    /// condition (and to the observation's message), so the forecast names the cause.
    fn attach_causes(&self, obs: &mut Observation, conditions: &mut [Condition], now: Moment) {
        for c in conditions.iter_mut() {
            if c.rule != crate::rule::disk::RULE_FULL || c.severity.is_none() {
                continue;
            }
            let Some(notes) = c.labels.get("mount").and_then(|m| self.causes.get(m)) else {
                continue;
            };
            let Some((note, _)) = notes
                .values()
                .filter(|(_, t)| now.mono - t <= CAUSE_NOTE_TTL)
                .max_by(|a, b| a.0.bytes.total_cmp(&b.0.bytes))
            else {
                continue;
            };
            let used = obs.sample(disk_samples::USED, &c.labels);
            let growth = obs.sample(disk_samples::GROWTH, &c.labels);
            let sentence = cause_sentence(note, used, growth);
            let line = c.message.clone();
            c.message = format!("{line}; {sentence}");
            if obs.message.contains(&line) {
                obs.message = obs.message.replacen(&line, &c.message, 1);
            }
        }
    }

    /// Sets a condition of lookout itself (store health, configuration, notifiers).
    pub fn set_internal(&mut self, cond: Condition, now: Moment) -> Vec<AlertEvent> {
        self.set_external(INTERNAL_PROBE, cond, now)
    }

    /// Declares a pseudo probe fed by [`Engine::set_external`] (e.g. `alertmanager`), so that
    /// a reload, which retires the alerts of removed probes, leaves its alerts alone.
    pub fn add_source(&mut self, source: &str) {
        self.sources.insert(source.to_string());
    }

    /// Sets a condition that comes from outside the probe scheduler: `source` is the pseudo
    /// probe (`alertmanager`, `heartbeat`). The alert is keyed like any other (rule, source,
    /// labels) and goes through the same state machine with the default policy: an active
    /// condition fires at once, a repeat of a firing one is silent, a clear one resolves it,
    /// and a clear condition for an unknown alert is ignored.
    pub fn set_external(&mut self, source: &str, cond: Condition, now: Moment) -> Vec<AlertEvent> {
        if source != INTERNAL_PROBE && !self.sources.contains(source) {
            self.sources.insert(source.to_string());
        }
        let id = fingerprint(&cond.rule, source, &cond.labels);
        if cond.severity.is_none() && !self.alerts.contains_key(&id) {
            return Vec::new();
        }
        let alert = self
            .alerts
            .entry(id)
            .or_insert_with(|| Alert::new(source, &cond, now));
        alert
            .observe(&cond, &AlertPolicy::default(), false, now)
            .into_iter()
            .collect()
    }

    /// Feeds the conditions of one observation to the probe's alerts. A series the probe no
    /// longer reports resolves when the observation is complete; when the probe could not read
    /// its evidence (`failed`, with the probe's words) the alert keeps its state and is marked
    /// stale instead (once; the note goes to `notes`), until a fresh observation decides.
    fn apply(&mut self, probe: &str, run: &Run, notes: &mut Vec<String>) -> Vec<AlertEvent> {
        let Run {
            conditions,
            policy,
            suppressed,
            failed,
            now,
        } = run;
        let (policy, suppressed, now) = (*policy, *suppressed, *now);
        let mut events = Vec::new();
        let mut seen = BTreeSet::new();
        for cond in conditions {
            let id = fingerprint(&cond.rule, probe, &cond.labels);
            seen.insert(id.clone());
            if cond.severity.is_none() && !self.alerts.contains_key(&id) {
                continue;
            }
            let alert = self
                .alerts
                .entry(id)
                .or_insert_with(|| Alert::new(probe, cond, now));
            if let Some(was) = alert.mark_fresh() {
                notes.push(format!(
                    "{} has fresh evidence again (it was {})",
                    describe(alert),
                    was.describe()
                ));
                self.touched.push(alert.id.clone());
            }
            events.extend(alert.observe(cond, &policy, suppressed, now));
        }
        for alert in self
            .alerts
            .values_mut()
            .filter(|a| a.probe == probe && a.rule != recovery::RULE && !seen.contains(&a.id))
        {
            match failed {
                // Unknown, not gone: keep the state, say so once.
                Some(reason) => {
                    if alert.mark_stale(reason, now) {
                        notes.push(format!(
                            "{} stays {}, marked stale: its evidence cannot be read ({reason}); \
                             only a fresh observation resolves it",
                            describe(alert),
                            alert.state.as_str()
                        ));
                        self.touched.push(alert.id.clone());
                    }
                }
                // A complete observation without the series: it is gone (a dropped slot, an
                // unmounted filesystem), which clears it.
                None => {
                    alert.mark_fresh();
                    let message = if alert.message.ends_with(NO_LONGER_REPORTED) {
                        alert.message.clone()
                    } else {
                        format!("{}{NO_LONGER_REPORTED}", alert.message)
                    };
                    let clear = Condition::clear(&alert.rule, alert.labels.clone(), message);
                    events.extend(alert.observe(&clear, &policy, suppressed, now));
                }
            }
        }
        events
    }

    /// Alerts whose stale marker changed since the last call (to persist them).
    pub fn take_touched(&mut self) -> Vec<Alert> {
        let ids = std::mem::take(&mut self.touched);
        ids.iter()
            .filter_map(|id| self.alerts.get(id).cloned())
            .collect()
    }

    /// Acknowledges an alert by id (or a unique id prefix).
    pub fn acknowledge(&mut self, id: &str, by: &str, now: Moment) -> Result<AlertEvent, String> {
        let matches: Vec<&String> = self.alerts.keys().filter(|k| k.starts_with(id)).collect();
        let key = match matches.as_slice() {
            [one] => (*one).clone(),
            [] => return Err(format!("no alert with id {id}")),
            _ => {
                return Err(format!(
                    "alert id {id} is ambiguous ({} alerts start with it)",
                    matches.len()
                ));
            }
        };
        let alert = self.alerts.get_mut(&key).expect("key was just found");
        alert.acknowledge(by, now).ok_or_else(|| {
            format!(
                "alert {key} is {}, not firing: nothing to acknowledge",
                alert.state.as_str()
            )
        })
    }

    /// Re-opens an acknowledged alert whose acknowledgement expired; the alert after it.
    pub fn reopen(&mut self, id: &str, now: Moment) -> Option<Alert> {
        let alert = self.alerts.get_mut(id)?;
        alert.reopen(now).then(|| alert.clone())
    }

    /// Every alert the engine knows, resolved ones included.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// Forgets resolved alerts that resolved before `before` (unix seconds).
    pub fn prune_resolved(&mut self, before: f64) {
        self.alerts.retain(|_, a| {
            a.resolved_at.is_none_or(|r| r >= before)
                || a.state != crate::alert::AlertState::Resolved
        });
    }

    /// The last status of every probe that has run.
    pub fn probe_statuses(&self) -> BTreeMap<String, Status> {
        self.probes
            .iter()
            .filter_map(|(id, p)| p.last_status.map(|s| (id.clone(), s)))
            .collect()
    }
}

#[path = "engine_recovery.rs"]
mod engine_recovery;

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
