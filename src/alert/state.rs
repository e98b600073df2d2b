use crate::model::{Labels, Moment, Severity};
use crate::rule::Condition;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds but not yet for long enough (`for`, `fail_after`).
    Pending,
    /// Announced; people are being told.
    Firing,
    /// Someone said they are on it.
    Acknowledged,
    /// The condition cleared.
    Resolved,
    /// Would fire, but a probe it depends on is failing: the dependency's alert speaks for it.
    Suppressed,
}

impl AlertState {
    /// The snake_case name used in output and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
            AlertState::Suppressed => "suppressed",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<AlertState> {
        Some(match s {
            "pending" => AlertState::Pending,
            "firing" => AlertState::Firing,
            "acknowledged" => AlertState::Acknowledged,
            "resolved" => AlertState::Resolved,
            "suppressed" => AlertState::Suppressed,
            _ => return None,
        })
    }

    /// Firing or acknowledged: announced and not over.
    pub fn is_open(self) -> bool {
        matches!(self, AlertState::Firing | AlertState::Acknowledged)
    }
}

/// How eagerly an alert fires and how reluctantly it resolves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlertPolicy {
    /// Consecutive failing results before the alert is pending.
    pub fail_after: u32,
    /// Consecutive passing results before a firing alert resolves.
    pub recover_after: u32,
    /// Seconds the condition must hold (while pending) before firing.
    pub for_seconds: f64,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            fail_after: 1,
            recover_after: 1,
            for_seconds: 0.0,
        }
    }
}

/// One alert, keyed by a stable fingerprint of rule, probe and labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable fingerprint (16 hex digits): the alert's id everywhere.
    pub id: String,
    /// The rule that raised it.
    pub rule: String,
    /// The probe it is about.
    pub probe: String,
    /// Labels of the series it is about.
    pub labels: Labels,
    /// Current state.
    pub state: AlertState,
    /// Current severity.
    pub severity: Severity,
    /// The latest message from the rule.
    pub message: String,
    /// The latest value the rule looked at (e.g. seconds until full).
    pub value: Option<f64>,
    /// Unix seconds when it started firing (or was first suppressed); unchanged by restarts.
    pub started_at: Option<f64>,
    /// Unix seconds of the last state change.
    pub changed_at: f64,
    /// Unix seconds when it resolved.
    pub resolved_at: Option<f64>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// Unix seconds of the acknowledgement.
    pub acked_at: Option<f64>,
    /// Unix seconds since when the condition has held while pending.
    pub pending_since: Option<f64>,
    /// Consecutive results in which the condition held.
    pub active_streak: u32,
    /// Consecutive results in which it did not.
    pub inactive_streak: u32,
    /// Counts notifiable events of this alert; part of every notification's dedup key.
    pub sequence: u64,
    /// How long it lasted (monotonic seconds from firing to resolving, so a wall-clock step
    /// does not stretch it); set when it resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lasted_seconds: Option<f64>,
    /// Set while the evidence of this alert cannot be read (its probe failed): the alert keeps
    /// its state until a fresh observation decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<Staleness>,
    #[serde(skip)]
    pending_since_mono: Option<f64>,
    /// Monotonic seconds when it started firing in this process (durations are measured on
    /// the monotonic clock, so a wall-clock step does not stretch them).
    #[serde(skip)]
    started_mono: Option<f64>,
}

/// Why and since when an alert's evidence cannot be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Staleness {
    /// Unix seconds of the first observation that could not read it.
    pub since: f64,
    /// The probe's own words, e.g. `127.0.0.1:5432: connection refused`.
    pub reason: String,
}

impl Staleness {
    /// `stale since 2026-11-25T02:50:03Z: 127.0.0.1:5432: connection refused`.
    pub fn describe(&self) -> String {
        format!(
            "stale since {}: {}",
            crate::model::format_utc(self.since),
            self.reason
        )
    }
}

/// What happened to an alert, to be notified, recorded and shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum AlertEventKind {
    /// It started firing.
    Firing,
    /// Its severity changed while open.
    SeverityChanged {
        /// The severity before.
        from: Severity,
    },
    /// It resolved.
    Resolved,
    /// Someone acknowledged it.
    Acknowledged {
        /// Who.
        by: String,
    },
    /// It would have fired but a dependency is failing.
    Suppressed,
}

impl AlertEventKind {
    /// Whether people should be told about this event.
    pub fn notifies(&self) -> bool {
        !matches!(self, AlertEventKind::Suppressed)
    }
}

/// An event with the alert as it is after the event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEvent {
    /// What happened.
    pub kind: AlertEventKind,
    /// The alert after it happened.
    pub alert: Alert,
    /// Unix seconds when it happened.
    pub at: f64,
}

/// The stable id of an alert: a SHA-256 of rule, probe and sorted labels, 16 hex digits.
pub fn fingerprint(rule: &str, probe: &str, labels: &Labels) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(probe.as_bytes());
    for (k, v) in labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(v.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

impl Alert {
    /// A new, not yet pending alert for a condition of a probe.
    pub fn new(probe: &str, cond: &Condition, now: Moment) -> Alert {
        Alert {
            id: fingerprint(&cond.rule, probe, &cond.labels),
            rule: cond.rule.clone(),
            probe: probe.to_string(),
            labels: cond.labels.clone(),
            state: AlertState::Resolved,
            severity: cond.severity.unwrap_or(Severity::Warning),
            message: cond.message.clone(),
            value: cond.value,
            started_at: None,
            changed_at: now.wall,
            resolved_at: None,
            acked_by: None,
            acked_at: None,
            pending_since: None,
            active_streak: 0,
            inactive_streak: 0,
            sequence: 0,
            lasted_seconds: None,
            stale: None,
            pending_since_mono: None,
            started_mono: None,
        }
    }

    /// Re-anchors a restored alert's timers on this process's monotonic clock.
    pub fn restore(mut self, now: Moment) -> Alert {
        self.pending_since_mono = self.pending_since.map(|w| now.mono_of_wall(w));
        self.started_mono = self.started_at.map(|w| now.mono_of_wall(w));
        self
    }

    fn event(&mut self, kind: AlertEventKind, now: Moment) -> AlertEvent {
        if kind.notifies() {
            self.sequence += 1;
        }
        AlertEvent {
            kind,
            alert: self.clone(),
            at: now.wall,
        }
    }

    fn set_state(&mut self, state: AlertState, now: Moment) {
        self.state = state;
        self.changed_at = now.wall;
    }

    /// Feeds one evaluation of the alert's condition; returns what happened.
    ///
    /// `suppressed` says a dependency of the probe is failing.
    pub fn observe(
        &mut self,
        cond: &Condition,
        policy: &AlertPolicy,
        suppressed: bool,
        now: Moment,
    ) -> Option<AlertEvent> {
        self.message = cond.message.clone();
        self.value = cond.value;
        match cond.severity {
            Some(severity) => {
                self.observe_active(severity, cond.started_at, policy, suppressed, now)
            }
            None => self.observe_clear(policy, now),
        }
    }

    fn observe_active(
        &mut self,
        severity: Severity,
        began: Option<f64>,
        policy: &AlertPolicy,
        suppressed: bool,
        now: Moment,
    ) -> Option<AlertEvent> {
        self.active_streak = self.active_streak.saturating_add(1);
        self.inactive_streak = 0;
        match self.state {
            AlertState::Resolved | AlertState::Pending | AlertState::Suppressed => {
                self.severity = severity;
                if self.active_streak < policy.fail_after.max(1) {
                    return None;
                }
                if self.state == AlertState::Resolved {
                    self.set_state(AlertState::Pending, now);
                    self.pending_since = Some(now.wall);
                    self.pending_since_mono = Some(now.mono);
                    self.resolved_at = None;
                    self.acked_by = None;
                    self.acked_at = None;
                }
                let since = self.pending_since_mono.unwrap_or(now.mono);
                if now.mono - since < policy.for_seconds {
                    return None;
                }
                if suppressed {
                    if self.state == AlertState::Suppressed {
                        return None;
                    }
                    // Only a pending alert gets here: a new episode, even when an earlier one
                    // (resolved since) left its start behind.
                    self.set_state(AlertState::Suppressed, now);
                    self.start_episode(began, now);
                    self.lasted_seconds = None;
                    return Some(self.event(AlertEventKind::Suppressed, now));
                }
                self.set_state(AlertState::Firing, now);
                self.start_episode(began, now);
                self.lasted_seconds = None;
                Some(self.event(AlertEventKind::Firing, now))
            }
            AlertState::Firing | AlertState::Acknowledged => {
                if severity == self.severity {
                    return None;
                }
                let from = std::mem::replace(&mut self.severity, severity);
                if severity > from && self.state == AlertState::Acknowledged {
                    // Worse than what was acknowledged: page again.
                    self.set_state(AlertState::Firing, now);
                    self.acked_by = None;
                    self.acked_at = None;
                }
                Some(self.event(AlertEventKind::SeverityChanged { from }, now))
            }
        }
    }

    /// Starts the firing episode now, or at `began` when the source knows the condition began
    /// earlier (never later than now: a source's clock ahead of ours does not move it ahead).
    fn start_episode(&mut self, began: Option<f64>, now: Moment) {
        let wall = began.map_or(now.wall, |b| b.min(now.wall));
        self.started_at = Some(wall);
        self.started_mono = Some(now.mono_of_wall(wall));
    }

    fn observe_clear(&mut self, policy: &AlertPolicy, now: Moment) -> Option<AlertEvent> {
        self.inactive_streak = self.inactive_streak.saturating_add(1);
        self.active_streak = 0;
        match self.state {
            AlertState::Resolved => None,
            AlertState::Pending => {
                // Never began: it quietly goes away, and the last episode's end and length
                // stay as they were.
                self.set_state(AlertState::Resolved, now);
                self.pending_since = None;
                self.pending_since_mono = None;
                None
            }
            AlertState::Suppressed => {
                // Never announced: it quietly goes away.
                self.resolve(now);
                None
            }
            AlertState::Firing | AlertState::Acknowledged => {
                if self.inactive_streak < policy.recover_after.max(1) {
                    return None;
                }
                self.resolve(now);
                Some(self.event(AlertEventKind::Resolved, now))
            }
        }
    }

    /// Marks an alert that is not resolved as stale: its probe could not read the evidence.
    /// The state stays as it is. Returns whether the marker is new (it keeps its first `since`).
    pub fn mark_stale(&mut self, reason: &str, now: Moment) -> bool {
        if self.state == AlertState::Resolved || self.stale.is_some() {
            return false;
        }
        self.stale = Some(Staleness {
            since: now.wall,
            reason: reason.to_string(),
        });
        true
    }

    /// Takes the stale marker away (fresh evidence came); returns the marker it had.
    pub fn mark_fresh(&mut self) -> Option<Staleness> {
        self.stale.take()
    }

    fn resolve(&mut self, now: Moment) {
        self.set_state(AlertState::Resolved, now);
        self.pending_since = None;
        self.pending_since_mono = None;
        self.resolved_at = Some(now.wall);
        self.stale = None;
        self.lasted_seconds = self.started_mono.map(|m| (now.mono - m).max(0.0));
    }

    /// Records an acknowledgement; `None` when there is nothing open to acknowledge.
    pub fn acknowledge(&mut self, by: &str, now: Moment) -> Option<AlertEvent> {
        if self.state != AlertState::Firing {
            return None;
        }
        self.set_state(AlertState::Acknowledged, now);
        self.acked_by = Some(by.to_string());
        self.acked_at = Some(now.wall);
        Some(self.event(AlertEventKind::Acknowledged { by: by.to_string() }, now))
    }

    /// Takes back an expired acknowledgement: an acknowledged alert fires again (no event; the
    /// escalation that expired it pages). Returns whether it changed.
    pub fn reopen(&mut self, now: Moment) -> bool {
        if self.state != AlertState::Acknowledged {
            return false;
        }
        self.set_state(AlertState::Firing, now);
        self.acked_by = None;
        self.acked_at = None;
        true
    }

    /// Resolves an open alert whose probe no longer exists.
    pub fn retire(&mut self, now: Moment) -> Option<AlertEvent> {
        let was_open = self.state.is_open();
        self.resolve(now);
        self.message = format!("{} (probe removed from the configuration)", self.message);
        was_open.then(|| self.event(AlertEventKind::Resolved, now))
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
