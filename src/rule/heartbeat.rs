//! Inbound heartbeats (healthchecks.io convention): a job pings lookout at least every
//! `period`; a ping that does not come within `period + grace` raises `heartbeat_missing`, a
//! `/fail` ping raises `heartbeat_failed` at once, and the next success resolves both. Pure:
//! time comes in as a [`Moment`]; every deadline is on the monotonic clock.

use super::Condition;
use crate::model::{Labels, Moment, Severity, format_duration, format_utc, labels};
use std::collections::BTreeMap;

/// The pseudo probe heartbeat alerts are filed under.
pub const SOURCE: &str = "heartbeat";
/// No success within `period + grace` (or no success within `grace` of a `/start`).
pub const MISSING_RULE: &str = "heartbeat_missing";
/// The job reported a failure.
pub const FAILED_RULE: &str = "heartbeat_failed";

/// What one heartbeat should look like.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatSpec {
    /// The name in the URL.
    pub name: String,
    /// How often a success is expected (seconds).
    pub period: f64,
    /// Extra time after `period`, and after a `/start` (seconds).
    pub grace: f64,
    /// Severity of its alerts.
    pub severity: Severity,
}

/// A ping.
#[derive(Clone, Debug, PartialEq)]
pub enum Ping {
    /// The job succeeded (`/`, `/0`).
    Success,
    /// The job started (`/start`).
    Start,
    /// The job failed (`/fail`, or a non-zero exit code).
    Fail(Option<u8>),
}

impl Ping {
    /// Parses the URL suffix after the name: none, `start`, `fail` or an exit code 0–255.
    pub fn parse(suffix: Option<&str>) -> Option<Ping> {
        Some(match suffix {
            None | Some("") => Ping::Success,
            Some("start") => Ping::Start,
            Some("fail") => Ping::Fail(None),
            Some(code) => match code.parse::<u8>().ok()? {
                0 => Ping::Success,
                n => Ping::Fail(Some(n)),
            },
        })
    }

    /// `success`, `start` or `fail`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ping::Success => "success",
            Ping::Start => "start",
            Ping::Fail(_) => "fail",
        }
    }
}

#[derive(Debug)]
struct State {
    spec: HeartbeatSpec,
    /// Monotonic time of the last sign of life (a success or a failure report), or of the
    /// moment the heartbeat was configured.
    last_mono: f64,
    /// Wall time of the last ping, for messages.
    last_wall: Option<f64>,
    /// Monotonic time of a `/start` not yet followed by a result.
    started_mono: Option<f64>,
}

/// Every configured heartbeat and when it last beat.
#[derive(Debug, Default)]
pub struct Heartbeats {
    beats: BTreeMap<String, State>,
}

/// The labels of a heartbeat's alerts.
pub fn alert_labels(name: &str) -> Labels {
    labels([("heartbeat", name)])
}

impl Heartbeats {
    /// Sets the configured heartbeats. Ones that stay keep their state; new ones are given
    /// `period + grace` from `now`; removed ones are forgotten and their alerts cleared (the
    /// returned conditions).
    pub fn configure(&mut self, specs: Vec<HeartbeatSpec>, now: Moment) -> Vec<Condition> {
        let mut old = std::mem::take(&mut self.beats);
        for spec in specs {
            let state = match old.remove(&spec.name) {
                Some(mut s) => {
                    s.spec = spec;
                    s
                }
                None => State {
                    spec,
                    last_mono: now.mono,
                    last_wall: None,
                    started_mono: None,
                },
            };
            self.beats.insert(state.spec.name.clone(), state);
        }
        old.keys()
            .flat_map(|name| {
                let msg = format!("heartbeat {name} was removed from the configuration");
                [
                    Condition::clear(MISSING_RULE, alert_labels(name), msg.clone()),
                    Condition::clear(FAILED_RULE, alert_labels(name), msg),
                ]
            })
            .collect()
    }

    /// Whether a heartbeat of this name is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.beats.contains_key(name)
    }

    /// Records a ping; returns the conditions it settles, or `None` for an unknown name.
    pub fn ping(&mut self, name: &str, ping: &Ping, now: Moment) -> Option<Vec<Condition>> {
        let s = self.beats.get_mut(name)?;
        let l = alert_labels(name);
        let at = format_utc(now.wall);
        s.last_wall = Some(now.wall);
        Some(match ping {
            Ping::Start => {
                s.started_mono = Some(now.mono);
                Vec::new()
            }
            Ping::Success => {
                s.last_mono = now.mono;
                s.started_mono = None;
                let msg = format!("heartbeat {name} reported success at {at}");
                vec![
                    Condition::clear(MISSING_RULE, l.clone(), msg.clone()),
                    Condition::clear(FAILED_RULE, l, msg),
                ]
            }
            Ping::Fail(code) => {
                // A failure is a sign of life: the job ran. It is paged as a failure, not
                // also as a missing beat.
                s.last_mono = now.mono;
                s.started_mono = None;
                let how = code
                    .map(|c| format!("exit code {c}"))
                    .unwrap_or_else(|| "/fail".into());
                vec![
                    Condition::clear(
                        MISSING_RULE,
                        l.clone(),
                        format!("heartbeat {name} reported at {at}"),
                    ),
                    Condition::active(
                        FAILED_RULE,
                        l,
                        s.spec.severity,
                        format!("heartbeat {name} reported a failure ({how}) at {at}"),
                    ),
                ]
            }
        })
    }

    /// The `heartbeat_missing` conditions of every overdue heartbeat. Only active ones: a
    /// missing beat is cleared by the next ping, never by the passing of time, so an alert
    /// restored after a restart stays firing until the job pings again.
    pub fn check(&self, now: Moment) -> Vec<Condition> {
        let mut out = Vec::new();
        for (name, s) in &self.beats {
            let since = now.mono - s.last_mono;
            let last = s
                .last_wall
                .map(|w| format!("last ping at {}", format_utc(w)))
                .unwrap_or_else(|| {
                    "no ping since lookout started or the heartbeat was configured".into()
                });
            let message = if since > s.spec.period + s.spec.grace {
                format!(
                    "heartbeat {name}: no success for {} (period {} + grace {}); {last}",
                    format_duration(s.spec.period + s.spec.grace),
                    format_duration(s.spec.period),
                    format_duration(s.spec.grace)
                )
            } else if let Some(started) = s.started_mono
                && now.mono - started > s.spec.grace
            {
                format!(
                    "heartbeat {name}: started but reported no result within the grace time {}",
                    format_duration(s.spec.grace)
                )
            } else {
                continue;
            };
            let mut c =
                Condition::active(MISSING_RULE, alert_labels(name), s.spec.severity, message);
            c.value = Some(since);
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Moment {
        Moment {
            mono: t,
            wall: 1_000_000.0 + t,
        }
    }

    fn hb(name: &str) -> HeartbeatSpec {
        HeartbeatSpec {
            name: name.into(),
            period: 2.0,
            grace: 1.0,
            severity: Severity::Critical,
        }
    }

    fn active(c: &[Condition]) -> Vec<(&str, &str)> {
        c.iter()
            .filter(|c| c.severity.is_some())
            .map(|c| (c.rule.as_str(), c.labels["heartbeat"].as_str()))
            .collect()
    }

    #[test]
    fn a_quiet_heartbeat_is_missing_after_period_plus_grace() {
        let mut h = Heartbeats::default();
        h.configure(vec![hb("backup")], at(0.0));
        assert!(h.check(at(3.0)).is_empty(), "within period + grace");
        assert_eq!(
            active(&h.check(at(3.1))),
            vec![("heartbeat_missing", "backup")]
        );
        let settled = h.ping("backup", &Ping::Success, at(4.0)).unwrap();
        assert!(settled.iter().all(|c| c.severity.is_none()));
        assert_eq!(settled.len(), 2);
        assert!(h.check(at(6.9)).is_empty());
        assert_eq!(h.check(at(7.1)).len(), 1);
    }

    #[test]
    fn fail_raises_at_once_and_success_clears() {
        let mut h = Heartbeats::default();
        h.configure(vec![hb("backup")], at(0.0));
        let c = h.ping("backup", &Ping::Fail(Some(3)), at(1.0)).unwrap();
        assert_eq!(active(&c), vec![("heartbeat_failed", "backup")]);
        assert!(c[1].message.contains("exit code 3"), "{}", c[1].message);
        assert!(h.check(at(2.5)).is_empty(), "a failure is a sign of life");
        let c = h.ping("backup", &Ping::Success, at(2.6)).unwrap();
        assert!(active(&c).is_empty());
    }

    #[test]
    fn a_start_without_a_result_is_missing_after_grace() {
        let mut h = Heartbeats::default();
        h.configure(vec![hb("backup")], at(0.0));
        assert!(h.ping("backup", &Ping::Start, at(0.5)).unwrap().is_empty());
        assert!(h.check(at(1.4)).is_empty());
        let c = h.check(at(1.6));
        assert!(
            c[0].message.contains("started but reported no result"),
            "{}",
            c[0].message
        );
    }

    #[test]
    fn unknown_names_and_suffixes() {
        let mut h = Heartbeats::default();
        h.configure(vec![hb("backup")], at(0.0));
        assert!(h.ping("nope", &Ping::Success, at(1.0)).is_none());
        assert_eq!(Ping::parse(None), Some(Ping::Success));
        assert_eq!(Ping::parse(Some("0")), Some(Ping::Success));
        assert_eq!(Ping::parse(Some("start")), Some(Ping::Start));
        assert_eq!(Ping::parse(Some("fail")), Some(Ping::Fail(None)));
        assert_eq!(Ping::parse(Some("255")), Some(Ping::Fail(Some(255))));
        assert_eq!(Ping::parse(Some("256")), None);
        assert_eq!(Ping::parse(Some("log")), None);
    }

    #[test]
    fn reconfiguring_keeps_state_and_clears_removed_ones() {
        let mut h = Heartbeats::default();
        h.configure(vec![hb("a"), hb("b")], at(0.0));
        h.ping("a", &Ping::Success, at(2.0));
        let cleared = h.configure(vec![hb("a")], at(2.5));
        assert_eq!(cleared.len(), 2);
        assert!(
            cleared
                .iter()
                .all(|c| c.labels["heartbeat"] == "b" && c.severity.is_none())
        );
        assert!(h.check(at(4.9)).is_empty(), "a kept its last ping at 2.0");
        assert_eq!(h.check(at(5.1)).len(), 1);
        assert!(!h.contains("b"));
    }
}
