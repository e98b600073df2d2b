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
        entry.last_status = Some(obs.status);
        let policy = entry.spec.policy;
        self.publish_causes(probe, &obs, now);
        self.attach_causes(&mut obs, &mut conditions, now);
        let suppressed = self.dependency_failing(probe);
        let events = self.apply(probe, &conditions, &policy, suppressed, now);
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

    fn apply(
        &mut self,
        probe: &str,
        conditions: &[Condition],
        policy: &AlertPolicy,
        suppressed: bool,
        now: Moment,
    ) -> Vec<AlertEvent> {
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
            events.extend(alert.observe(cond, policy, suppressed, now));
        }
        // Series that vanished from this probe's output count as clear.
        for alert in self
            .alerts
            .values_mut()
            .filter(|a| a.probe == probe && !seen.contains(&a.id))
        {
            let clear = Condition::clear(
                &alert.rule,
                alert.labels.clone(),
                format!("{} (no longer reported)", alert.message),
            );
            events.extend(alert.observe(&clear, policy, suppressed, now));
        }
        events
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertEventKind, AlertState};
    use crate::model::labels;
    use crate::rule::NoRules;

    fn spec(id: &str, deps: &[&str]) -> ProbeSpec {
        ProbeSpec {
            id: id.into(),
            kind: "command".into(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            policy: AlertPolicy::default(),
            unknown_severity: Severity::Critical,
            labels: Default::default(),
        }
    }

    fn at(t: f64) -> Moment {
        Moment {
            mono: t,
            wall: 2_000_000.0 + t,
        }
    }

    #[test]
    fn dependants_of_a_failing_probe_are_suppressed() {
        let mut e = Engine::new();
        e.set_probe(spec("postgres", &[]), Box::new(NoRules));
        e.set_probe(spec("synapse", &["postgres"]), Box::new(NoRules));
        e.set_probe(spec("bridge", &["synapse"]), Box::new(NoRules));
        let down = || Observation::new(Status::Critical, "down");
        let (_, ev) = e.ingest("postgres", down(), at(0.0));
        assert_eq!(ev[0].kind, AlertEventKind::Firing);
        let (_, ev) = e.ingest("synapse", down(), at(1.0));
        assert_eq!(ev[0].kind, AlertEventKind::Suppressed);
        let (_, ev) = e.ingest("bridge", down(), at(1.0));
        assert_eq!(ev[0].kind, AlertEventKind::Suppressed, "transitive");
        let notified = e.alerts().filter(|a| a.state == AlertState::Firing).count();
        assert_eq!(notified, 1, "one page for postgres down, not three");
    }

    #[test]
    fn a_vanished_series_resolves_its_alert() {
        let mut e = Engine::new();
        e.set_probe(
            spec("disks", &[]),
            Box::new(crate::rule::disk::DiskRules::new(Default::default())),
        );
        let l = labels([("mount", "/mnt")]);
        let full = crate::rule::disk::observation_from_raw(&l, 100.0, 0.0, 5.0);
        let (obs, ev) = e.ingest("disks", full, at(0.0));
        assert_eq!(obs.status, Status::Critical);
        assert_eq!(ev.len(), 1);
        let (_, ev) = e.ingest(
            "disks",
            Observation::new(Status::Ok, "nothing mounted"),
            at(1.0),
        );
        assert_eq!(ev[0].kind, AlertEventKind::Resolved);
    }

    #[test]
    fn a_disk_forecast_names_the_cause_another_probe_published() {
        let mut e = Engine::new();
        let disk = crate::rule::disk::DiskRuleParams {
            forecast: crate::rule::forecast::ForecastParams {
                window: 60.0,
                min_history: 5.0,
                ..Default::default()
            },
            warning_within: 3600.0,
            critical_within: 60.0,
            ..Default::default()
        };
        e.set_probe(
            spec("disks", &[]),
            Box::new(crate::rule::disk::DiskRules::new(disk)),
        );
        e.set_probe(spec("db1", &[]), Box::new(NoRules));
        let mib = 1024.0 * 1024.0;
        let cause = labels([
            ("mount", "/db"),
            ("cause", "WAL retained by inactive slot node2"),
        ]);
        let mut pg = Observation::new(Status::Ok, "primary");
        pg.samples
            .push(Sample::new(disk_samples::CAUSE_BYTES, &cause, 600.0 * mib));
        pg.samples
            .push(Sample::new(disk_samples::CAUSE_GROWTH, &cause, mib));
        e.ingest("db1", pg, at(0.0));
        let l = labels([("mount", "/db")]);
        let mut last = None;
        for i in 0..=20 {
            let avail = 60.0 * mib - 2.0 * i as f64 * mib;
            let obs = crate::rule::disk::observation_from_raw(&l, 1024.0 * mib, avail, avail);
            last = Some(e.ingest("disks", obs, at(i as f64)));
        }
        let (obs, _) = last.unwrap();
        let alert = e
            .alerts()
            .find(|a| a.rule == "disk_full")
            .expect("disk_full fires");
        assert!(
            alert.message.contains(
                "; WAL retained by inactive slot node2 (600.0 MiB, +3.5 GiB/h) is the main consumer"
            ),
            "{}",
            alert.message
        );
        assert!(obs.message.contains("slot node2"), "{}", obs.message);
        // Another filesystem gets no note.
        let other = labels([("mount", "/")]);
        let obs = crate::rule::disk::observation_from_raw(&other, 100.0 * mib, 0.0, 0.0);
        let (obs, _) = e.ingest("disks", obs, at(21.0));
        assert!(!obs.message.contains("slot"), "{}", obs.message);
    }

    #[test]
    fn acknowledge_by_prefix_and_errors_in_words() {
        let mut e = Engine::new();
        e.set_probe(spec("p", &[]), Box::new(NoRules));
        e.ingest("p", Observation::new(Status::Critical, "down"), at(0.0));
        let id = e.alerts().next().unwrap().id.clone();
        assert!(e.acknowledge(&id[..6], "alice", at(1.0)).is_ok());
        assert!(
            e.acknowledge(&id, "bob", at(2.0))
                .unwrap_err()
                .contains("not firing")
        );
        assert!(
            e.acknowledge("zzzz", "bob", at(2.0))
                .unwrap_err()
                .contains("no alert")
        );
    }

    #[test]
    fn internal_conditions_fire_and_resolve() {
        let mut e = Engine::new();
        let c = Condition::active(
            "store_failing",
            Default::default(),
            Severity::Critical,
            "disk full",
        );
        assert_eq!(e.set_internal(c, at(0.0))[0].kind, AlertEventKind::Firing);
        let c = Condition::clear("store_failing", Default::default(), "ok");
        assert_eq!(e.set_internal(c, at(1.0))[0].kind, AlertEventKind::Resolved);
    }

    #[test]
    fn external_alerts_fire_once_resolve_and_survive_a_reload() {
        let mut e = Engine::new();
        e.add_source("alertmanager");
        let l = labels([("instance", "db1")]);
        let firing = || Condition::active("DiskFull", l.clone(), Severity::Critical, "disk full");
        let ev = e.set_external("alertmanager", firing(), at(0.0));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, AlertEventKind::Firing);
        assert_eq!(ev[0].alert.probe, "alertmanager");
        assert_eq!(ev[0].alert.rule, "DiskFull");
        // Alertmanager resends firing groups: no second announcement.
        assert!(
            e.set_external("alertmanager", firing(), at(60.0))
                .is_empty()
        );
        // A reload that keeps no probe leaves external alerts alone.
        assert!(e.retain_probes(&BTreeSet::new(), at(61.0)).is_empty());
        let ev = e.set_external(
            "alertmanager",
            Condition::clear("DiskFull", l.clone(), "resolved"),
            at(62.0),
        );
        assert_eq!(ev[0].kind, AlertEventKind::Resolved);
        // A resolution of an alert never seen is ignored.
        let other = Condition::clear("Other", l, "resolved");
        assert!(e.set_external("alertmanager", other, at(63.0)).is_empty());
    }

    #[test]
    fn external_alerts_are_keyed_apart_from_probes_of_other_names() {
        let mut e = Engine::new();
        let c = || Condition::active("x", Default::default(), Severity::Warning, "m");
        e.set_external("alertmanager", c(), at(0.0));
        e.set_external("heartbeat", c(), at(0.0));
        assert_eq!(e.alerts().count(), 2);
    }
}
