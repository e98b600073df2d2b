//! The bridge rules: each direction on its own (delivery and latency), and the homeserver's
//! ping to the bridge. Pure functions of the probe's samples plus a few counters.
//!
//! | rule | labels | fires when |
//! |---|---|---|
//! | `bridge_delivery` | `direction` | `failed_rounds` consecutive rounds without the token arriving (critical) |
//! | `bridge_latency` | `direction` | the token arrived, slower than `latency_warning` / `latency_critical` |
//! | `bridge_appservice_ping` | — | `failed_rounds` consecutive failed homeserver→bridge pings (critical) |
//!
//! The first delivered round after a failed one is not judged for latency: its token was in
//! flight across the failure (sent while the direction was stuck, delivered on release), so its
//! latency measures the outage, not the bridge. The next round is judged as usual.
//!
//! While a failure is being confirmed (fewer than `failed_rounds` failed rounds or pings), the
//! probe's status reads `warning` and the failing part of its message says "failed round 1 of 2;
//! confirming"; no alert is raised yet.

use crate::model::{Labels, Moment, Observation, Severity, Status, format_duration, labels};
use crate::rule::{Condition, RuleSet};
use std::collections::BTreeMap;

/// Sample names written by the probe.
pub mod samples {
    /// Per `direction`: 1 when this round's token arrived within the deadline, else 0.
    pub const DELIVERED: &str = "bridge.delivered";
    /// Per `direction`: seconds from sending the token to seeing it on the other side.
    pub const LATENCY: &str = "bridge.latency_seconds";
    /// 1 when the homeserver's appservice ping reached the bridge, else 0.
    pub const PING_OK: &str = "bridge.appservice_ping_ok";
    /// The `duration_ms` the homeserver reported for its ping, in seconds.
    pub const PING: &str = "bridge.appservice_ping_seconds";
}

/// Rule names.
pub mod rule_names {
    /// A direction delivers nothing.
    pub const DELIVERY: &str = "bridge_delivery";
    /// A direction delivers slowly.
    pub const LATENCY: &str = "bridge_latency";
    /// The homeserver cannot reach the bridge.
    pub const PING: &str = "bridge_appservice_ping";
}

/// The two directions, as (label value, words).
pub const DIRECTIONS: [(&str, &str); 2] = [
    ("matrix_to_irc", "Matrix→IRC"),
    ("irc_to_matrix", "IRC→Matrix"),
];

/// Thresholds of the bridge rules.
#[derive(Clone, Debug)]
pub struct Thresholds {
    /// Consecutive undelivered rounds (or failed pings) before the alert holds.
    pub failed_rounds: u32,
    /// Latency that warns, seconds.
    pub latency_warning: f64,
    /// Latency that is critical, seconds.
    pub latency_critical: Option<f64>,
}

#[derive(Default, Clone)]
struct Streak {
    /// Consecutive failed rounds.
    failed: u32,
    /// When the last good round was evaluated (else the first failed one): "for how long".
    since: Option<f64>,
    /// When the last good round was evaluated.
    last_ok: Option<f64>,
    last_latency: Option<f64>,
    /// The last round was delivered right after this many failed ones: its token was in flight
    /// across the failure.
    after_failed: Option<u32>,
}

/// The bridge rules with their counters.
pub struct BridgeRules {
    t: Thresholds,
    dirs: BTreeMap<&'static str, Streak>,
    ping: Streak,
    ping_seen: bool,
}

impl BridgeRules {
    /// Rules with these thresholds.
    pub fn new(t: Thresholds) -> BridgeRules {
        BridgeRules {
            t,
            dirs: BTreeMap::new(),
            ping: Streak::default(),
            ping_seen: false,
        }
    }
}

/// The part of the probe's message about one direction (`"Matrix→IRC: …"`), if present.
fn detail<'a>(message: &'a str, words: &str) -> Option<&'a str> {
    message
        .split("; ")
        .find_map(|part| part.strip_prefix(words)?.strip_prefix(": "))
}

fn how_long(streak: &Streak, now: f64) -> String {
    match streak.since {
        Some(since) if now > since => format!(" ({})", format_duration(now - since)),
        _ => String::new(),
    }
}

impl RuleSet for BridgeRules {
    fn evaluate(&mut self, obs: &mut Observation, now: Moment) -> Vec<Condition> {
        let mut measured = false;
        for (dir, _) in DIRECTIONS {
            let l = labels([("direction", dir)]);
            let Some(delivered) = obs.sample(samples::DELIVERED, &l) else {
                continue;
            };
            measured = true;
            let s = self.dirs.entry(dir).or_default();
            if delivered >= 1.0 {
                s.after_failed = (s.failed > 0).then_some(s.failed);
                s.failed = 0;
                s.since = None;
                s.last_ok = Some(now.mono);
                s.last_latency = obs.sample(samples::LATENCY, &l);
            } else {
                s.failed += 1;
                s.after_failed = None;
                let from = s.last_ok.unwrap_or(now.mono);
                s.since.get_or_insert(from);
                s.last_latency = None;
            }
        }
        let need = self.t.failed_rounds.max(1);
        let state = |d: &str, dirs: &BTreeMap<&str, Streak>| -> String {
            let words = DIRECTIONS
                .iter()
                .find(|(k, _)| *k == d)
                .map(|x| x.1)
                .unwrap_or(d);
            match dirs.get(d) {
                None => format!("{words} not measured yet"),
                Some(s) if s.failed == 0 => match s.last_latency {
                    Some(l) => format!("{words} fine ({})", format_duration(l)),
                    None => format!("{words} fine"),
                },
                Some(s) => format!(
                    "{words} also failing ({} round{})",
                    s.failed,
                    if s.failed == 1 { "" } else { "s" }
                ),
            }
        };
        let mut out = Vec::new();
        let mut worst = Status::Ok;
        if !self.dirs.is_empty() {
            for (i, (dir, words)) in DIRECTIONS.iter().enumerate() {
                let other = DIRECTIONS[1 - i].0;
                let l = labels([("direction", dir)]);
                let s = self.dirs.get(dir).cloned().unwrap_or_default();
                let last = detail(&obs.message, words)
                    .map(|d| format!("; last round: {d}"))
                    .unwrap_or_default();
                if s.failed > 0 && s.failed < need {
                    worst = worst.max(Status::Warning);
                    obs.message = confirming(&obs.message, words, "failed round", s.failed, need);
                }
                let delivery = if s.failed >= need {
                    worst = worst.max(Status::Critical);
                    Condition::active(
                        rule_names::DELIVERY,
                        l.clone(),
                        Severity::Critical,
                        format!(
                            "{words}: nothing delivered for {} rounds{}; {}{last}",
                            s.failed,
                            how_long(&s, now.mono),
                            state(other, &self.dirs)
                        ),
                    )
                } else if s.failed > 0 {
                    Condition::clear(
                        rule_names::DELIVERY,
                        l.clone(),
                        format!(
                            "{words}: failed round {} of {need}, confirming; {}",
                            s.failed,
                            state(other, &self.dirs)
                        ),
                    )
                } else {
                    Condition::clear(
                        rule_names::DELIVERY,
                        l.clone(),
                        format!("{words}: delivering; {}", state(other, &self.dirs)),
                    )
                };
                let mut delivery = delivery;
                delivery.value = Some(s.failed as f64);
                out.push(delivery);
                let latency = match s.last_latency {
                    Some(lat) if s.after_failed.is_some() => Condition::clear(
                        rule_names::LATENCY,
                        l.clone(),
                        format!(
                            "{words}: delivered again in {} after {} failed round{}; not judged (the token was in flight across the failure)",
                            format_duration(lat),
                            s.after_failed.unwrap_or(0),
                            if s.after_failed == Some(1) { "" } else { "s" }
                        ),
                    ),
                    Some(lat)
                        if self.t.latency_critical.is_some_and(|c| lat >= c)
                            || lat >= self.t.latency_warning =>
                    {
                        let (sev, limit, st) = match self.t.latency_critical {
                            Some(c) if lat >= c => (Severity::Critical, c, Status::Critical),
                            _ => (Severity::Warning, self.t.latency_warning, Status::Warning),
                        };
                        worst = worst.max(st);
                        let mut c = Condition::active(
                            rule_names::LATENCY,
                            l.clone(),
                            sev,
                            format!(
                                "{words}: slow, {} (limit {}); {}",
                                format_duration(lat),
                                format_duration(limit),
                                state(other, &self.dirs)
                            ),
                        );
                        c.value = Some(lat);
                        c
                    }
                    _ => Condition::clear(
                        rule_names::LATENCY,
                        l.clone(),
                        format!("{words}: latency within limits"),
                    ),
                };
                out.push(latency);
            }
        }
        let ping_now = obs.sample(samples::PING_OK, &Labels::new());
        if let Some(ok) = ping_now {
            self.ping_seen = true;
            if ok >= 1.0 {
                self.ping = Streak {
                    last_ok: Some(now.mono),
                    ..Streak::default()
                };
            } else {
                self.ping.failed += 1;
                let from = self.ping.last_ok.unwrap_or(now.mono);
                self.ping.since.get_or_insert(from);
            }
        }
        if self.ping_seen {
            let last = detail(&obs.message, "appservice ping")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            if ping_now.is_some() && self.ping.failed > 0 && self.ping.failed < need {
                worst = worst.max(Status::Warning);
                obs.message = confirming(
                    &obs.message,
                    "appservice ping",
                    "failed ping",
                    self.ping.failed,
                    need,
                );
            }
            if self.ping.failed >= need {
                worst = worst.max(Status::Critical);
                out.push(Condition::active(
                    rule_names::PING,
                    Labels::new(),
                    Severity::Critical,
                    format!(
                        "the homeserver cannot reach the bridge ({} failed pings{}{last})",
                        self.ping.failed,
                        how_long(&self.ping, now.mono)
                    ),
                ));
            } else {
                out.push(Condition::clear(
                    rule_names::PING,
                    Labels::new(),
                    "the homeserver reaches the bridge",
                ));
            }
        }
        // A round that measured nothing (a timeout, a failed login) keeps its own status: the
        // counts are old news, not this round's finding.
        if (measured || ping_now.is_some()) && worst > obs.status {
            obs.status = worst;
        }
        out
    }
}

/// `message` with "(failed round 1 of 2; confirming)" after the part about `words`.
fn confirming(message: &str, words: &str, what: &str, n: u32, need: u32) -> String {
    let head = format!("{words}: ");
    message
        .split("; ")
        .map(|part| {
            if part.starts_with(&head) {
                format!("{part} ({what} {n} of {need}; confirming)")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;

    fn round(m2i: Option<f64>, i2m: Option<f64>) -> Observation {
        let mut o = Observation::new(Status::Ok, "Matrix→IRC: x; IRC→Matrix: y");
        for ((dir, _), lat) in DIRECTIONS.iter().zip([m2i, i2m]) {
            let l = labels([("direction", dir)]);
            o.samples.push(Sample::new(
                samples::DELIVERED,
                &l,
                if lat.is_some() { 1.0 } else { 0.0 },
            ));
            if let Some(lat) = lat {
                o.samples.push(Sample::new(samples::LATENCY, &l, lat));
            }
        }
        o
    }

    fn rules() -> BridgeRules {
        BridgeRules::new(Thresholds {
            failed_rounds: 2,
            latency_warning: 10.0,
            latency_critical: None,
        })
    }

    fn find<'a>(c: &'a [Condition], rule: &str, dir: &str) -> &'a Condition {
        c.iter()
            .find(|c| c.rule == rule && c.labels.get("direction").map(String::as_str) == Some(dir))
            .unwrap()
    }

    #[test]
    fn one_direction_fails_alone_after_failed_rounds() {
        let mut r = rules();
        let mut t = 0.0;
        let mut step = |r: &mut BridgeRules, o: Option<f64>| {
            t += 30.0;
            let mut obs = round(o, Some(0.18));
            let c = r.evaluate(&mut obs, Moment::replayed(t));
            (obs, c)
        };
        let (_, c) = step(&mut r, Some(0.05));
        assert!(
            find(&c, rule_names::DELIVERY, "matrix_to_irc")
                .severity
                .is_none()
        );
        let (obs, c) = step(&mut r, None);
        assert!(
            find(&c, rule_names::DELIVERY, "matrix_to_irc")
                .severity
                .is_none()
        );
        // Not confirmed yet, but not "ok" either.
        assert_eq!(obs.status, Status::Warning);
        assert_eq!(
            obs.message,
            "Matrix→IRC: x (failed round 1 of 2; confirming); IRC→Matrix: y"
        );
        step(&mut r, None);
        let (obs, c) = step(&mut r, None);
        let m2i = find(&c, rule_names::DELIVERY, "matrix_to_irc");
        assert_eq!(m2i.severity, Some(Severity::Critical));
        assert!(
            m2i.message.starts_with(
                "Matrix→IRC: nothing delivered for 3 rounds (1m30s); IRC→Matrix fine (180ms)"
            ),
            "{}",
            m2i.message
        );
        assert!(m2i.message.ends_with("last round: x"), "{}", m2i.message);
        assert!(
            find(&c, rule_names::DELIVERY, "irc_to_matrix")
                .severity
                .is_none()
        );
        assert_eq!(obs.status, Status::Critical);
        let (_, c) = step(&mut r, Some(0.04));
        assert!(
            find(&c, rule_names::DELIVERY, "matrix_to_irc")
                .severity
                .is_none()
        );
    }

    #[test]
    fn slow_is_a_latency_warning_not_a_wedge() {
        let mut r = rules();
        let mut obs = round(Some(12.0), Some(0.2));
        let c = r.evaluate(&mut obs, Moment::replayed(1.0));
        let lat = find(&c, rule_names::LATENCY, "matrix_to_irc");
        assert_eq!(lat.severity, Some(Severity::Warning));
        assert!(
            lat.message.starts_with("Matrix→IRC: slow, 12s (limit 10s)"),
            "{}",
            lat.message
        );
        assert!(
            find(&c, rule_names::DELIVERY, "matrix_to_irc")
                .severity
                .is_none()
        );
        assert_eq!(obs.status, Status::Warning);
    }

    #[test]
    fn a_round_in_flight_across_a_failure_is_not_judged_for_latency() {
        // Issue 9 #19: the wedge is released while a token is in flight; it arrives 6 s late,
        // inside the deadline. That measures the outage, not the bridge: no latency alert.
        let mut r = BridgeRules::new(Thresholds {
            failed_rounds: 2,
            latency_warning: 3.0,
            latency_critical: Some(5.0),
        });
        let mut t = 0.0;
        let mut step = |r: &mut BridgeRules, i2m: Option<f64>| {
            t += 10.0;
            let mut obs = round(Some(0.05), i2m);
            let c = r.evaluate(&mut obs, Moment::replayed(t));
            (obs, c)
        };
        step(&mut r, Some(0.2));
        step(&mut r, None);
        let (_, c) = step(&mut r, None);
        assert!(
            find(&c, rule_names::DELIVERY, "irc_to_matrix")
                .severity
                .is_some()
        );
        let (obs, c) = step(&mut r, Some(6.0));
        let lat = find(&c, rule_names::LATENCY, "irc_to_matrix");
        assert_eq!(lat.severity, None, "{}", lat.message);
        assert!(
            lat.message
                .starts_with("IRC→Matrix: delivered again in 6s after 2 failed rounds; not judged"),
            "{}",
            lat.message
        );
        assert!(
            find(&c, rule_names::DELIVERY, "irc_to_matrix")
                .severity
                .is_none()
        );
        assert_eq!(obs.status, Status::Ok);
        // A bridge that stays slow is judged by the next round.
        let (obs, c) = step(&mut r, Some(6.0));
        let lat = find(&c, rule_names::LATENCY, "irc_to_matrix");
        assert_eq!(lat.severity, Some(Severity::Critical), "{}", lat.message);
        assert_eq!(obs.status, Status::Critical);
        // One failed round (not yet an alert) counts as a failure just the same.
        step(&mut r, Some(0.2));
        step(&mut r, None);
        let (_, c) = step(&mut r, Some(4.0));
        assert!(
            find(&c, rule_names::LATENCY, "irc_to_matrix")
                .severity
                .is_none()
        );
        let (_, c) = step(&mut r, Some(4.0));
        assert_eq!(
            find(&c, rule_names::LATENCY, "irc_to_matrix").severity,
            Some(Severity::Warning)
        );
    }

    #[test]
    fn a_round_without_measurements_keeps_the_counts() {
        let mut r = rules();
        r.evaluate(&mut round(None, Some(0.1)), Moment::replayed(1.0));
        let mut setup_failed = Observation::new(Status::Critical, "cannot reach the homeserver");
        let c = r.evaluate(&mut setup_failed, Moment::replayed(2.0));
        assert_eq!(
            find(&c, rule_names::DELIVERY, "matrix_to_irc").value,
            Some(1.0)
        );
        let c = r.evaluate(&mut round(None, Some(0.1)), Moment::replayed(3.0));
        assert!(
            find(&c, rule_names::DELIVERY, "matrix_to_irc")
                .severity
                .is_some()
        );
    }

    #[test]
    fn failed_pings_say_the_homeserver_cannot_reach_the_bridge() {
        let mut r = rules();
        for t in 1..=2 {
            let mut o = round(Some(0.05), Some(0.2));
            o.message.push_str("; appservice ping: timed out");
            o.samples
                .push(Sample::new(samples::PING_OK, &Labels::new(), 0.0));
            let c = r.evaluate(&mut o, Moment::replayed(t as f64));
            let p = c.iter().find(|c| c.rule == rule_names::PING).unwrap();
            assert_eq!(p.severity.is_some(), t == 2);
            if t == 1 {
                // The first failed ping is not "ok" while it is confirmed.
                assert_eq!(o.status, Status::Warning);
                assert_eq!(
                    o.message,
                    "Matrix→IRC: x; IRC→Matrix: y; appservice ping: timed out (failed ping 1 of 2; confirming)"
                );
            } else {
                assert_eq!(o.status, Status::Critical);
                assert_eq!(
                    p.message,
                    "the homeserver cannot reach the bridge (2 failed pings (1s): timed out)"
                );
            }
        }
    }
}
