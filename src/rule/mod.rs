//! Rules turn observations and sample history into alert conditions. Pure: no I/O.
//!
//! Every probe gets the [`status`] rule (its own status as an alert); a probe kind may add a
//! [`RuleSet`] of its own (the disk kind adds `disk_full` and `disk_inodes_low`).

pub mod alertmanager;
pub mod disk;
pub mod forecast;
pub mod heartbeat;
pub mod status;

use crate::model::{Labels, Moment, Observation, Sample, Severity};

/// One alert condition produced by a rule for one label set.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The rule's name, e.g. `disk_full`.
    pub rule: String,
    /// Labels that tell this condition's series apart, e.g. `{mount="/"}`.
    pub labels: Labels,
    /// `Some` while the condition holds, with how bad it is.
    pub severity: Option<Severity>,
    /// A sentence for people: what is wrong and what to look at.
    pub message: String,
    /// The number the rule looked at (for `disk_full`: seconds until full).
    pub value: Option<f64>,
    /// Unix seconds when the condition began, when its source knows (Alertmanager's
    /// `startsAt`); `None` means when lookout sees it.
    pub started_at: Option<f64>,
}

impl Condition {
    /// A condition that holds.
    pub fn active(
        rule: &str,
        labels: Labels,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            rule: rule.into(),
            labels,
            severity: Some(severity),
            message: message.into(),
            value: None,
            started_at: None,
        }
    }

    /// The same condition, known to have begun at `started_at` (unix seconds).
    pub fn since(mut self, started_at: Option<f64>) -> Self {
        self.started_at = started_at;
        self
    }

    /// A condition that does not hold.
    pub fn clear(rule: &str, labels: Labels, message: impl Into<String>) -> Self {
        Condition {
            rule: rule.into(),
            labels,
            severity: None,
            message: message.into(),
            value: None,
            started_at: None,
        }
    }
}

/// The kind-specific rules of one probe, with whatever history they keep.
pub trait RuleSet: Send {
    /// Evaluates one observation: returns conditions, may add derived samples to the
    /// observation and raise its status or rewrite its message.
    fn evaluate(&mut self, obs: &mut Observation, now: Moment) -> Vec<Condition>;

    /// Feeds history recorded before a restart (`wall` unix seconds, sample).
    fn seed(&mut self, _history: &[(f64, Sample)], _now: Moment) {}
}

/// A rule set with no rules, for kinds whose status says it all.
pub struct NoRules;

impl RuleSet for NoRules {
    fn evaluate(&mut self, _obs: &mut Observation, _now: Moment) -> Vec<Condition> {
        Vec::new()
    }
}
