//! Drills (`[[drill]]`): inject a declared fault, watch for the alerts that must follow within
//! T and the probes that must be ok again within R, restore, and report each measured time.
//!
//! [`Watch`] is the pure part: it is fed alert firings and probe results stamped with the
//! monotonic clock and decides when every expectation is met or missed. [`runner`] is the
//! daemon side (the fault, the feed, the schedule, the report, the `drill_failed` alert).

mod finish;
pub mod runner;

pub use runner::{DRILL_FAILED_RULE, Drills};

use crate::config::drills::DrillConfig;
use crate::model::Labels;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One expected alert: exact label matches (over the alert's labels plus `probe`, `rule`,
/// `alertname`, `severity`) and how soon after the fault's start it must fire.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// `probe_status on app-write`.
    pub what: String,
    /// Exact label matches.
    pub labels: Labels,
    /// Seconds after the fault's start.
    pub within: f64,
}

impl Expect {
    /// Whether an alert with these (match) labels is the one expected.
    pub fn matches(&self, alert_labels: &Labels) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| alert_labels.get(k) == Some(v))
    }
}

/// What a drill checks, taken from its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The alerts that must fire.
    pub expect: Vec<Expect>,
    /// The probes that must be ok again.
    pub recover: Vec<String>,
    /// Seconds after the later of the fault's end and the last expected alert.
    pub recover_within: f64,
}

impl Plan {
    /// The plan of a configured drill.
    pub fn of(d: &DrillConfig) -> Plan {
        Plan {
            expect: d
                .expect
                .iter()
                .map(|e| Expect {
                    what: e.get_ref().describe(),
                    labels: e.get_ref().labels.clone(),
                    within: e.get_ref().within().secs(),
                })
                .collect(),
            recover: d.recover.iter().map(|r| r.get_ref().clone()).collect(),
            recover_within: d.recover_within().secs(),
        }
    }

    /// The longest a watch can last after the fault's end.
    pub fn longest(&self) -> f64 {
        let t = self.expect.iter().map(|e| e.within).fold(0.0, f64::max);
        t + self.recover_within
    }
}

/// One checked step of a drill, as reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `precondition`, `fault`, `expect`, `recover` or `restore`.
    pub step: String,
    /// What was checked: `probe_status on app-write`, `app-write`, the action's name.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// Measured seconds after the fault's start (monotonic); for `fault` and `restore`, how
    /// long the action ran. `None` when it never happened.
    pub seconds: Option<f64>,
    /// The deadline, in seconds after the fault's start, where there is one.
    pub limit: Option<f64>,
    /// One line in words.
    pub message: String,
}

/// The state of one expected alert.
#[derive(Clone, Debug)]
struct ExpectState {
    spec: Expect,
    /// Seconds after the start when it fired.
    fired: Option<f64>,
}

/// The watch of one drill run: pure, fed with monotonic times.
#[derive(Clone, Debug)]
pub struct Watch {
    start: f64,
    fault_end: Option<f64>,
    expects: Vec<ExpectState>,
    recover: Vec<String>,
    recover_within: f64,
    /// Results of the recover probes since the start: (seconds after the start, ok, message).
    results: BTreeMap<String, Vec<(f64, bool, String)>>,
}

/// Results kept per recover probe (a drill is short; this only bounds a runaway probe).
const MAX_RESULTS: usize = 10_000;

impl Watch {
    /// A watch whose fault starts at `start` (monotonic seconds).
    pub fn new(plan: &Plan, start: f64) -> Watch {
        Watch {
            start,
            fault_end: None,
            expects: plan
                .expect
                .iter()
                .map(|e| ExpectState {
                    spec: e.clone(),
                    fired: None,
                })
                .collect(),
            recover: plan.recover.clone(),
            recover_within: plan.recover_within,
            results: plan
                .recover
                .iter()
                .map(|r| (r.clone(), Vec::new()))
                .collect(),
        }
    }

    /// The fault's action returned at `at`.
    pub fn fault_finished(&mut self, at: f64) {
        self.fault_end.get_or_insert(at - self.start);
    }

    /// An alert with these match labels fired at `at`; the first firing of each expected alert
    /// counts.
    pub fn alert_fired(&mut self, labels: &Labels, at: f64) {
        let t = at - self.start;
        for e in &mut self.expects {
            if e.fired.is_none() && t <= e.spec.within && e.spec.matches(labels) {
                e.fired = Some(t.max(0.0));
            }
        }
    }

    /// A probe result at `at`.
    pub fn probe_result(&mut self, probe: &str, ok: bool, message: &str, at: f64) {
        if let Some(list) = self.results.get_mut(probe)
            && list.len() < MAX_RESULTS
        {
            list.push((at - self.start, ok, message.to_string()));
        }
    }

    /// Seconds after the start from which the recover probes are judged, once known: the
    /// later of the fault's end and the last expected alert that fired (a missed one does not
    /// count, once its deadline passed). With it, the expected alert when one is that moment
    /// (`None`: the fault's end).
    fn reference(&self, now: f64) -> Option<(f64, Option<&ExpectState>)> {
        let end = self.fault_end?;
        let mut r = (end, None);
        for e in &self.expects {
            match e.fired {
                Some(t) if t > r.0 => r = (t, Some(e)),
                Some(_) => {}
                None if now - self.start > e.spec.within => {}
                None => return None,
            }
        }
        Some(r)
    }

    /// The next moment (monotonic) at which a deadline passes, for the caller's timer.
    pub fn next_deadline(&self, now: f64) -> Option<f64> {
        let mut next: Vec<f64> = self
            .expects
            .iter()
            .filter(|e| e.fired.is_none())
            .map(|e| self.start + e.spec.within)
            .collect();
        if let Some((r, _)) = self.reference(now) {
            next.push(self.start + r + self.recover_within);
        }
        next.into_iter()
            .filter(|t| *t >= now)
            .min_by(|a, b| a.total_cmp(b))
    }

    /// The checks once every expectation is decided at `now`, else `None`.
    pub fn verdict(&self, now: f64) -> Option<Vec<Check>> {
        let elapsed = now - self.start;
        let mut checks = Vec::new();
        for e in &self.expects {
            let limit = e.spec.within;
            checks.push(match e.fired {
                Some(t) => Check {
                    step: "expect".into(),
                    what: e.spec.what.clone(),
                    ok: true,
                    seconds: Some(t),
                    limit: Some(limit),
                    message: format!(
                        "{} fired {} after the fault (within {})",
                        e.spec.what,
                        secs(t),
                        secs(limit)
                    ),
                },
                None if elapsed > limit => Check {
                    step: "expect".into(),
                    what: e.spec.what.clone(),
                    ok: false,
                    seconds: None,
                    limit: Some(limit),
                    message: format!(
                        "expected {} within {} of the fault: it did not fire",
                        e.spec.what,
                        secs(limit)
                    ),
                },
                None => return None,
            });
        }
        let (reference, alert) = self.reference(now)?;
        let limit = reference + self.recover_within;
        // The words name the reference used.
        let since = match alert {
            Some(e) => format!(
                "of the last expected alert ({} at +{})",
                e.spec.what,
                secs(reference)
            ),
            None => "of the fault's end".to_string(),
        };
        for probe in &self.recover {
            let list = &self.results[probe];
            let ok_at = list.iter().find(|(t, ok, _)| *ok && *t >= reference);
            checks.push(match ok_at {
                Some((t, _, _)) if *t <= limit => Check {
                    step: "recover".into(),
                    what: probe.clone(),
                    ok: true,
                    seconds: Some(*t),
                    limit: Some(limit),
                    message: format!(
                        "{probe} ok {} after the fault, within {} {since}",
                        secs(*t),
                        secs(self.recover_within)
                    ),
                },
                _ if elapsed > limit => {
                    let last = list
                        .iter()
                        .rev()
                        .find(|(t, _, _)| *t <= limit)
                        .map(|(_, _, m)| format!("; its last result: {m}"))
                        .unwrap_or_else(|| "; it reported nothing since".into());
                    Check {
                        step: "recover".into(),
                        what: probe.clone(),
                        ok: false,
                        seconds: None,
                        limit: Some(limit),
                        message: format!(
                            "expected {probe} ok within {} {since}: it was not{last}",
                            secs(self.recover_within)
                        ),
                    }
                }
                _ => return None,
            });
        }
        Some(checks)
    }
}

/// `2.1s`.
pub fn secs(s: f64) -> String {
    format!("{s:.1}s")
}

/// The result of one drill run, as the API and `lookout status` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The drill.
    pub drill: String,
    /// The run's id (16 hex).
    pub run: String,
    /// Whether every check held.
    pub passed: bool,
    /// Who started it: the person (`by`) for a manual run, `lookout` for a scheduled one.
    pub by: String,
    /// Unix seconds of the start.
    pub started_at: f64,
    /// Unix seconds of the end.
    pub finished_at: f64,
    /// Monotonic seconds from the start to the end.
    pub seconds: f64,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// One line: `passed in 7.4s` or `failed: <the first failed expectation>`.
    pub summary: String,
}

impl Report {
    /// The first failed check.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;

    fn plan() -> Plan {
        Plan {
            expect: vec![Expect {
                what: "probe_status on app".into(),
                labels: labels([("rule", "probe_status"), ("probe", "app")]),
                within: 30.0,
            }],
            recover: vec!["app".into()],
            recover_within: 30.0,
        }
    }

    fn app_down() -> Labels {
        labels([
            ("rule", "probe_status"),
            ("probe", "app"),
            ("severity", "critical"),
        ])
    }

    #[test]
    fn the_alert_then_the_probe_ok_passes_with_the_measured_times() {
        let mut w = Watch::new(&plan(), 100.0);
        w.probe_result("app", true, "ok", 100.5);
        w.fault_finished(100.2);
        assert!(w.verdict(101.0).is_none());
        w.probe_result("app", false, "refused", 102.0);
        w.alert_fired(&app_down(), 103.0);
        assert!(w.verdict(103.0).is_none(), "the probe is not ok yet");
        assert_eq!(w.next_deadline(103.0), Some(133.0));
        w.probe_result("app", true, "HTTP 200", 105.5);
        let checks = w.verdict(105.5).unwrap();
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        assert_eq!(checks[0].seconds, Some(3.0));
        assert_eq!(checks[1].seconds, Some(5.5));
        assert_eq!(checks[1].limit, Some(33.0));
    }

    #[test]
    fn an_ok_result_before_the_alert_does_not_count_as_recovered() {
        let mut w = Watch::new(&plan(), 0.0);
        w.fault_finished(0.1);
        w.probe_result("app", true, "still up", 1.0);
        w.alert_fired(&app_down(), 4.0);
        assert!(w.verdict(5.0).is_none());
        w.probe_result("app", true, "back", 6.0);
        assert_eq!(w.verdict(6.0).unwrap()[1].seconds, Some(6.0));
    }

    #[test]
    fn an_alert_that_never_fires_fails_at_its_deadline_naming_it() {
        let mut w = Watch::new(&plan(), 0.0);
        w.fault_finished(0.0);
        w.alert_fired(&labels([("rule", "probe_status"), ("probe", "other")]), 1.0);
        w.probe_result("app", true, "fine", 2.0);
        assert!(w.verdict(29.0).is_none());
        assert_eq!(w.next_deadline(29.0), Some(30.0));
        // Missed at 30 s; the recovery is judged from the fault's end, and the probe was ok.
        let checks = w.verdict(30.5).unwrap();
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].message,
            "expected probe_status on app within 30.0s of the fault: it did not fire"
        );
        assert!(checks[1].ok);
        assert_eq!(
            checks[1].message, "app ok 2.0s after the fault, within 30.0s of the fault's end",
            "no expected alert fired: the words do not claim one"
        );
    }

    #[test]
    fn the_recover_words_name_the_reference_used() {
        // The alert before the fault's end: recovery counts from the fault's end.
        let mut w = Watch::new(&plan(), 0.0);
        w.alert_fired(&app_down(), 1.5);
        w.fault_finished(4.0);
        w.probe_result("app", true, "back", 6.0);
        let checks = w.verdict(6.0).unwrap();
        assert_eq!(checks[1].limit, Some(34.0));
        assert_eq!(
            checks[1].message,
            "app ok 6.0s after the fault, within 30.0s of the fault's end"
        );
        // The alert after the fault's end: recovery counts from it, and the words say which.
        let mut w = Watch::new(&plan(), 0.0);
        w.fault_finished(0.2);
        w.alert_fired(&app_down(), 4.9);
        w.probe_result("app", true, "back", 7.0);
        let checks = w.verdict(7.0).unwrap();
        assert_eq!(checks[1].limit, Some(34.9));
        assert_eq!(
            checks[1].message,
            "app ok 7.0s after the fault, within 30.0s of the last expected alert (probe_status on app at +4.9s)"
        );
    }

    #[test]
    fn a_late_alert_does_not_count() {
        let mut w = Watch::new(&plan(), 0.0);
        w.fault_finished(0.0);
        w.alert_fired(&app_down(), 31.0);
        assert!(!w.verdict(31.0).unwrap()[0].ok);
    }

    #[test]
    fn a_probe_that_stays_down_fails_after_r_with_its_last_result() {
        let mut w = Watch::new(&plan(), 0.0);
        w.fault_finished(0.5);
        w.alert_fired(&app_down(), 2.0);
        w.probe_result("app", false, "connection refused", 10.0);
        assert!(w.verdict(31.9).is_none());
        assert_eq!(w.next_deadline(20.0), Some(32.0));
        let checks = w.verdict(32.1).unwrap();
        assert!(checks[0].ok);
        assert!(!checks[1].ok);
        assert_eq!(
            checks[1].message,
            "expected app ok within 30.0s of the last expected alert (probe_status on app at +2.0s): it was not; its last result: connection refused"
        );
        // An ok result after the deadline does not rescue it.
        w.probe_result("app", true, "back", 33.0);
        assert!(!w.verdict(33.0).unwrap()[1].ok);
    }

    #[test]
    fn without_expectations_recovery_counts_from_the_fault_end() {
        let p = Plan {
            expect: vec![],
            recover: vec!["app".into()],
            recover_within: 10.0,
        };
        let mut w = Watch::new(&p, 0.0);
        w.probe_result("app", true, "before the fault ended", 1.0);
        assert!(w.verdict(1.0).is_none(), "the fault has not returned");
        w.fault_finished(2.0);
        assert!(w.verdict(2.5).is_none());
        w.probe_result("app", true, "fresh", 3.0);
        let c = w.verdict(3.0).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].seconds, Some(3.0));
        assert_eq!(
            c[0].message,
            "app ok 3.0s after the fault, within 10.0s of the fault's end"
        );
    }

    #[test]
    fn matching_is_exact_over_the_given_labels_only() {
        let e = &plan().expect[0];
        assert!(e.matches(&app_down()));
        assert!(!e.matches(&labels([("rule", "probe_status")])));
    }
}
