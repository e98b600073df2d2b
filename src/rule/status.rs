//! The rule every probe has: its own status, as an alert named `probe_status`.

use super::Condition;
use crate::model::{Labels, Observation, Severity, Status};

/// The rule's name.
pub const RULE: &str = "probe_status";

/// Maps the probe's own status (before kind rules raise it) to a condition.
pub fn evaluate(obs: &Observation, unknown_severity: Severity) -> Condition {
    let severity = match obs.status {
        Status::Ok => None,
        Status::Warning => Some(Severity::Warning),
        Status::Critical => Some(Severity::Critical),
        Status::Unknown => Some(unknown_severity),
    };
    Condition {
        rule: RULE.into(),
        labels: Labels::new(),
        severity,
        message: obs.message.clone(),
        value: None,
        started_at: None,
    }
}
