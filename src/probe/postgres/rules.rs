//! The postgres rules: pure functions of the probe's samples (so `rules replay` works on
//! recorded samples), with the little history the slot growth rate needs.
//!
//! | rule | labels | fires when |
//! |---|---|---|
//! | `pg_standby_missing` | `standby` | an expected standby has no row in `pg_stat_replication` |
//! | `pg_standbys_too_few` | — | fewer standbys connected than `expected_standby_count` |
//! | `pg_slot` | `slot` | inactive slot retaining WAL (warning); retained ≥ critical size, or growth reaching it within the horizon, or `wal_status` `unreserved`/`lost` (critical) |
//! | `pg_wal_receiver_down` | — | a standby has no WAL receiver (critical) or one not streaming (warning) |
//! | `pg_replay_paused` | — | `pg_is_wal_replay_paused()` (warning) |
//! | `pg_heartbeat_age` | — | the replicated heartbeat row is older than the thresholds |
//! | `pg_role_mismatch` | — | the server's role is not the one the probe expects (critical) |

use crate::model::{Labels, Moment, Observation, Sample, Severity, format_bytes, format_duration};
use crate::rule::{Condition, RuleSet};
use std::collections::{BTreeMap, VecDeque};

/// Sample names written by the probe (and, for the derived ones, by these rules).
pub mod samples {
    /// 1 on a standby (in recovery), 0 on a primary.
    pub const IN_RECOVERY: &str = "pg.in_recovery";
    /// 1 when the probe's own session is encrypted (TLS, from `pg_stat_ssl`), 0 otherwise.
    pub const TLS: &str = "pg.tls";
    /// Per expected or present standby (`{standby=…}`): 1 connected, 0 missing.
    pub const STANDBY_CONNECTED: &str = "pg.standby.connected";
    /// Per missing standby: unix time (wall) it was first seen missing.
    pub const STANDBY_MISSING_SINCE: &str = "pg.standby.missing_since_unix";
    /// Per missing expected standby (`{standby, as}`) = 1: a connected standby whose
    /// `application_name` is `as` streams from the slot named like the expected one.
    pub const STANDBY_STREAMING_AS: &str = "pg.standby.streaming_as";
    /// Standbys connected (rows in `pg_stat_replication`).
    pub const STANDBY_COUNT: &str = "pg.standby.count";
    /// `expected_standby_count`, when configured.
    pub const STANDBY_EXPECTED: &str = "pg.standby.expected_count";
    /// Unix time the count first fell short of the expected count.
    pub const STANDBY_SHORT_SINCE: &str = "pg.standby.short_since_unix";
    /// Bytes not yet sent to the standby.
    pub const SEND_LAG: &str = "pg.standby.send_lag_bytes";
    /// Bytes not yet flushed by the standby.
    pub const FLUSH_LAG: &str = "pg.standby.flush_lag_bytes";
    /// Bytes not yet replayed by the standby.
    pub const REPLAY_LAG: &str = "pg.standby.replay_lag_bytes";
    /// `write_lag` in seconds.
    pub const WRITE_LAG_S: &str = "pg.standby.write_lag_seconds";
    /// `flush_lag` in seconds.
    pub const FLUSH_LAG_S: &str = "pg.standby.flush_lag_seconds";
    /// `replay_lag` in seconds.
    pub const REPLAY_LAG_S: &str = "pg.standby.replay_lag_seconds";
    /// Per slot (`{slot=…}`): 1 active, 0 inactive.
    pub const SLOT_ACTIVE: &str = "pg.slot.active";
    /// Per slot: WAL bytes retained (`current LSN − restart_lsn`).
    pub const SLOT_RETAINED: &str = "pg.slot.retained_bytes";
    /// Per slot: `safe_wal_size` (absent when retention is unlimited).
    pub const SLOT_SAFE: &str = "pg.slot.safe_wal_size_bytes";
    /// Per slot: `wal_status` as a code, see [`super::WalStatus`].
    pub const SLOT_WAL_STATUS: &str = "pg.slot.wal_status";
    /// Per slot: growth of the retained bytes (derived by the rules).
    pub const SLOT_GROWTH: &str = "pg.slot.retained_growth_bytes_per_second";
    /// Size of `pg_wal` (`pg_ls_waldir()`).
    pub const WAL_DIR: &str = "pg.wal.dir_bytes";
    /// `{mount=…}` = 1: the filesystem that holds `pg_wal`.
    pub const WAL_MOUNT: &str = "pg.wal.mount";
    /// 1 when a WAL receiver row exists (standby).
    pub const RECEIVER_UP: &str = "pg.receiver.up";
    /// 1 when that receiver is `streaming`.
    pub const RECEIVER_STREAMING: &str = "pg.receiver.streaming";
    /// 1 when replay is paused.
    pub const REPLAY_PAUSED: &str = "pg.replay_paused";
    /// Last received LSN, as a byte position.
    pub const RECEIVE_LSN: &str = "pg.receive_lsn_bytes";
    /// Last replayed LSN, as a byte position.
    pub const REPLAY_LSN: &str = "pg.replay_lsn_bytes";
    /// Received but not yet replayed (what stock exporters call lag; 0 when the stream is blocked).
    pub const REPLAY_PENDING: &str = "pg.replay_pending_bytes";
    /// `now() − pg_last_xact_replay_timestamp()`.
    pub const REPLAY_AGE: &str = "pg.replay_age_seconds";
    /// Age of the replicated heartbeat row on a standby.
    pub const HEARTBEAT_AGE: &str = "pg.heartbeat_age_seconds";
    /// On a standby, `{probe, failure}` = wall time since when: the primary's probe in this
    /// process fails to write the heartbeat (so the age alert names that failure).
    pub const HEARTBEAT_WRITER_FAILING: &str = "pg.heartbeat.writer_failing_since_unix";
    /// Seconds the write check took (present when it succeeded).
    pub const WRITE_SECONDS: &str = "pg.write_check_seconds";
    /// Cause note for the disk rules: bytes a cause holds on `{mount, cause}`.
    pub const CAUSE_BYTES: &str = crate::rule::disk::samples::CAUSE_BYTES;
    /// Cause note for the disk rules: growth of those bytes per second.
    pub const CAUSE_GROWTH: &str = crate::rule::disk::samples::CAUSE_GROWTH;
}

/// Rule names.
pub mod rule_names {
    /// An expected standby is not connected.
    pub const STANDBY_MISSING: &str = "pg_standby_missing";
    /// Fewer standbys than expected.
    pub const TOO_FEW: &str = "pg_standbys_too_few";
    /// A replication slot's retention.
    pub const SLOT: &str = "pg_slot";
    /// The standby's WAL receiver.
    pub const RECEIVER: &str = "pg_wal_receiver_down";
    /// Replay paused.
    pub const PAUSED: &str = "pg_replay_paused";
    /// End-to-end heartbeat age.
    pub const HEARTBEAT: &str = "pg_heartbeat_age";
    /// The server's role is not the expected one.
    pub const ROLE_MISMATCH: &str = "pg_role_mismatch";
}

/// `pg_replication_slots.wal_status`, with the code used in the `pg.slot.wal_status` sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalStatus {
    /// Within `max_wal_size` (code 0).
    Reserved,
    /// Kept beyond it by the slot (code 1).
    Extended,
    /// Will be removed at the next checkpoint (code 2).
    Unreserved,
    /// Gone; the slot is unusable (code 3).
    Lost,
}

impl WalStatus {
    /// Parses the column (`None` for NULL or an unknown word).
    pub fn parse(s: &str) -> Option<WalStatus> {
        Some(match s {
            "reserved" => WalStatus::Reserved,
            "extended" => WalStatus::Extended,
            "unreserved" => WalStatus::Unreserved,
            "lost" => WalStatus::Lost,
            _ => return None,
        })
    }

    /// The sample code.
    pub fn code(self) -> f64 {
        self as u8 as f64
    }

    /// From the sample code.
    pub fn from_code(v: f64) -> Option<WalStatus> {
        [
            WalStatus::Reserved,
            WalStatus::Extended,
            WalStatus::Unreserved,
            WalStatus::Lost,
        ]
        .into_iter()
        .find(|s| s.code() == v)
    }

    /// The word PostgreSQL uses.
    pub fn as_str(self) -> &'static str {
        match self {
            WalStatus::Reserved => "reserved",
            WalStatus::Extended => "extended",
            WalStatus::Unreserved => "unreserved",
            WalStatus::Lost => "lost",
        }
    }
}

/// Thresholds of the postgres rules (all seconds or bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct PgRuleParams {
    /// A slot retaining this much is critical.
    pub slot_retained_critical: f64,
    /// A slot whose growth reaches `slot_retained_critical` within this is critical.
    pub slot_growth_horizon: f64,
    /// History the growth rate is computed over (default two probe intervals, so a new
    /// steady rate shows within two runs).
    pub slot_growth_window: f64,
    /// Heartbeat age that warns.
    pub heartbeat_warning: f64,
    /// Heartbeat age that is critical.
    pub heartbeat_critical: f64,
    /// The role the server must have.
    pub expected: super::role::Expected,
}

impl Default for PgRuleParams {
    fn default() -> Self {
        PgRuleParams {
            slot_retained_critical: 10.0 * 1024.0 * 1024.0 * 1024.0,
            slot_growth_horizon: 4.0 * 3600.0,
            slot_growth_window: 60.0,
            heartbeat_warning: 90.0,
            heartbeat_critical: 300.0,
            expected: super::role::Expected::default(),
        }
    }
}

/// The rules with the slot history they keep.
pub struct PgRules {
    params: PgRuleParams,
    history: BTreeMap<String, VecDeque<(f64, f64)>>,
}

fn label(s: &Sample, key: &str) -> Option<String> {
    s.labels.get(key).cloned()
}

fn one(key: &str, value: &str) -> Labels {
    [(key.to_string(), value.to_string())].into()
}

/// Growth per second over the points (oldest to newest), if they span at least a second.
pub fn growth_rate(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let (t0, v0) = *points.front()?;
    let (t1, v1) = *points.back()?;
    (t1 - t0 >= 1.0).then(|| (v1 - v0) / (t1 - t0))
}

impl PgRules {
    /// Rules with these thresholds and no history.
    pub fn new(params: PgRuleParams) -> PgRules {
        PgRules {
            params,
            history: BTreeMap::new(),
        }
    }

    fn push(&mut self, slot: &str, t: f64, v: f64) {
        let h = self.history.entry(slot.to_string()).or_default();
        if h.back().is_some_and(|(last, _)| t <= *last) {
            return;
        }
        h.push_back((t, v));
        let keep = self.params.slot_growth_window;
        while h.len() > 2 && h.front().is_some_and(|(t0, _)| *t0 < t - keep) {
            h.pop_front();
        }
    }

    /// The condition of one slot.
    fn slot_condition(
        &self,
        slot: &str,
        active: bool,
        retained: Option<f64>,
        status: Option<WalStatus>,
        safe: Option<f64>,
        growth: Option<f64>,
    ) -> Condition {
        let p = &self.params;
        let mut severity: Option<Severity> = None;
        let mut why = Vec::new();
        let retained_v = retained.unwrap_or(0.0);
        let rate = growth
            .filter(|g| *g > 0.0)
            .map(|g| format!(", +{}/h", format_bytes(g * 3600.0)))
            .unwrap_or_default();
        let state = if active { "active" } else { "inactive" };
        let mut what = format!(
            "slot {slot} ({state}) retains {}{rate} of WAL",
            format_bytes(retained_v)
        );
        if let Some(safe) = safe.filter(|s| *s >= 0.0) {
            what.push_str(&format!(", {} until it is invalidated", format_bytes(safe)));
        }
        match status {
            Some(WalStatus::Lost) => {
                severity = Some(Severity::Critical);
                what = format!("slot {slot} has lost required WAL (wal_status lost)");
                why.push(
                    "the standby using it can no longer catch up: drop and recreate the slot \
                     (pg_drop_replication_slot, then pg_create_physical_replication_slot) and \
                     re-clone the standby with pg_basebackup"
                        .to_string(),
                );
            }
            Some(WalStatus::Unreserved) => {
                severity = Some(Severity::Critical);
                why.push(format!(
                    "slot {slot} will lose WAL at the next checkpoint (wal_status unreserved, \
                     beyond max_slot_wal_keep_size): get its standby streaming now or it must be \
                     re-cloned"
                ));
            }
            _ => {}
        }
        if retained_v >= p.slot_retained_critical {
            severity = Some(Severity::Critical);
            why.push(format!(
                "that is over the critical {}",
                format_bytes(p.slot_retained_critical)
            ));
        } else if let Some(g) = growth.filter(|g| *g > 0.0 && !active) {
            let eta = (p.slot_retained_critical - retained_v) / g;
            if eta <= p.slot_growth_horizon {
                severity = Some(Severity::Critical);
                why.push(format!(
                    "at this rate it reaches {} in {}",
                    format_bytes(p.slot_retained_critical),
                    format_duration(eta)
                ));
            }
        }
        if !active && retained_v > 0.0 && status != Some(WalStatus::Lost) {
            severity = severity.max(Some(Severity::Warning));
            why.push(format!(
                "no standby is using it: start or repair the standby that streams from slot \
                 {slot}, or drop the slot if that standby is gone, before pg_wal fills its disk"
            ));
        }
        let message = if why.is_empty() {
            what
        } else {
            format!("{what}; {}", why.join("; "))
        };
        Condition {
            rule: rule_names::SLOT.into(),
            labels: one("slot", slot),
            severity,
            message,
            value: retained,
            started_at: None,
        }
    }
}

/// The hint for an expected standby `name` whose slot a standby named `other` streams from:
/// most likely the same server, with `pg_basebackup -R`'s default `application_name`.
pub fn name_hint(name: &str, other: &str) -> String {
    format!(
        "a standby named {other} streams from slot {name}: it is probably {name} under another \
         application_name; set application_name={name} in primary_conninfo on that standby \
         (pg_basebackup -R writes application_name=walreceiver) and reload it, or expect {other}"
    )
}

/// The values of one label in the samples of a name.
fn by_label(obs: &Observation, name: &str, key: &str) -> BTreeMap<String, f64> {
    obs.samples
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| Some((label(s, key)?, s.value)))
        .collect()
}

fn plain(obs: &Observation, name: &str) -> Option<f64> {
    obs.sample(name, &Labels::new())
}

impl RuleSet for PgRules {
    fn evaluate(&mut self, obs: &mut Observation, now: Moment) -> Vec<Condition> {
        let mut out = Vec::new();
        // Primary: expected standbys.
        let missing_since = by_label(obs, samples::STANDBY_MISSING_SINCE, "standby");
        let streaming_as: BTreeMap<String, String> = obs
            .samples
            .iter()
            .filter(|s| s.name == samples::STANDBY_STREAMING_AS)
            .filter_map(|s| Some((label(s, "standby")?, label(s, "as")?)))
            .collect();
        for (standby, connected) in by_label(obs, samples::STANDBY_CONNECTED, "standby") {
            let l = one("standby", &standby);
            if connected > 0.0 {
                out.push(Condition::clear(
                    rule_names::STANDBY_MISSING,
                    l,
                    format!("standby {standby} is connected"),
                ));
                continue;
            }
            let since = missing_since
                .get(&standby)
                .map(|t| {
                    format!(
                        " (missing since {}, {} ago)",
                        crate::model::format_utc(*t),
                        format_duration((now.wall - t).max(0.0).round())
                    )
                })
                .unwrap_or_default();
            let message = match streaming_as.get(&standby) {
                Some(other) => format!(
                    "standby {standby} is not connected{since}: {}",
                    name_hint(&standby, other)
                ),
                None => format!(
                    "standby {standby} is not connected{since}: look at that standby's server \
                     and log, and the network between it and the primary; its slot keeps WAL \
                     on the primary meanwhile"
                ),
            };
            out.push(Condition::active(
                rule_names::STANDBY_MISSING,
                l,
                Severity::Critical,
                message,
            ));
        }
        if let (Some(count), Some(expected)) = (
            plain(obs, samples::STANDBY_COUNT),
            plain(obs, samples::STANDBY_EXPECTED),
        ) {
            let since = plain(obs, samples::STANDBY_SHORT_SINCE)
                .map(|t| format!(" since {}", crate::model::format_utc(t)))
                .unwrap_or_default();
            out.push(if count < expected {
                Condition::active(
                    rule_names::TOO_FEW,
                    Labels::new(),
                    Severity::Critical,
                    format!(
                        "only {count} of {expected} expected standbys are connected{since}: \
                         look at the standbys' servers and logs"
                    ),
                )
            } else {
                Condition::clear(
                    rule_names::TOO_FEW,
                    Labels::new(),
                    format!("{count} standbys connected"),
                )
            });
        }
        // Primary: slots.
        let active = by_label(obs, samples::SLOT_ACTIVE, "slot");
        let retained = by_label(obs, samples::SLOT_RETAINED, "slot");
        let status = by_label(obs, samples::SLOT_WAL_STATUS, "slot");
        let safe = by_label(obs, samples::SLOT_SAFE, "slot");
        let wal_mount = obs
            .samples
            .iter()
            .find(|s| s.name == samples::WAL_MOUNT)
            .and_then(|s| label(s, "mount"));
        for (slot, is_active) in &active {
            let r = retained.get(slot).copied();
            if let Some(r) = r {
                self.push(slot, now.mono, r);
            }
            let growth = self.history.get(slot).and_then(growth_rate);
            let l = one("slot", slot);
            if let Some(g) = growth {
                obs.samples.push(Sample::new(samples::SLOT_GROWTH, &l, g));
            }
            let is_active = *is_active > 0.0;
            let st = status.get(slot).copied().and_then(WalStatus::from_code);
            let c = self.slot_condition(slot, is_active, r, st, safe.get(slot).copied(), growth);
            // The cause note the disk rules append to the pg_wal filesystem's forecast.
            if let (Some(mount), Some(r)) = (&wal_mount, r)
                && !is_active
                && r > 0.0
            {
                let cl: Labels = [
                    ("mount".to_string(), mount.clone()),
                    (
                        "cause".to_string(),
                        format!("WAL retained by inactive slot {slot}"),
                    ),
                ]
                .into();
                obs.samples.push(Sample::new(samples::CAUSE_BYTES, &cl, r));
                if let Some(g) = growth {
                    obs.samples.push(Sample::new(samples::CAUSE_GROWTH, &cl, g));
                }
            }
            out.push(c);
        }
        self.history.retain(|slot, _| active.contains_key(slot));
        // Standby.
        if let Some(up) = plain(obs, samples::RECEIVER_UP) {
            let streaming = plain(obs, samples::RECEIVER_STREAMING).unwrap_or(0.0) > 0.0;
            out.push(if up <= 0.0 {
                Condition::active(
                    rule_names::RECEIVER,
                    Labels::new(),
                    Severity::Critical,
                    "WAL receiver is down: this standby receives nothing from the primary; look \
                     at the primary, primary_conninfo and this standby's log",
                )
            } else if !streaming {
                Condition::active(
                    rule_names::RECEIVER,
                    Labels::new(),
                    Severity::Warning,
                    "WAL receiver is running but not streaming: look at this standby's log",
                )
            } else {
                Condition::clear(
                    rule_names::RECEIVER,
                    Labels::new(),
                    "WAL receiver is streaming",
                )
            });
        }
        if let Some(paused) = plain(obs, samples::REPLAY_PAUSED) {
            out.push(if paused > 0.0 {
                Condition::active(
                    rule_names::PAUSED,
                    Labels::new(),
                    Severity::Warning,
                    "WAL replay is paused on this standby: SELECT pg_wal_replay_resume() \
                     resumes it",
                )
            } else {
                Condition::clear(rule_names::PAUSED, Labels::new(), "WAL replay is running")
            });
        }
        if let Some(age) = plain(obs, samples::HEARTBEAT_AGE) {
            let p = &self.params;
            let sev = if age >= p.heartbeat_critical {
                Some(Severity::Critical)
            } else if age >= p.heartbeat_warning {
                Some(Severity::Warning)
            } else {
                None
            };
            let mut c = Condition {
                rule: rule_names::HEARTBEAT.into(),
                labels: Labels::new(),
                severity: sev,
                message: format!(
                    "replication heartbeat is {}{} old (written on the primary at {}; warning \
                     at {}, critical at {})",
                    if sev.is_none() { "fresh: " } else { "" },
                    format_duration(age.round()),
                    crate::model::format_utc(now.wall - age),
                    format_duration(p.heartbeat_warning),
                    format_duration(p.heartbeat_critical)
                ),
                value: Some(age),
                started_at: None,
            };
            let writer = obs
                .samples
                .iter()
                .find(|s| s.name == samples::HEARTBEAT_WRITER_FAILING);
            match (sev, writer) {
                (None, _) => {}
                // The known cause: the primary's probe cannot write the row.
                (Some(_), Some(w)) => {
                    c.message = format!(
                        "replication heartbeat is {} old: the primary's probe {} has failed to \
                     write it since {}: {} (replication itself may be fine)",
                        format_duration(age.round()),
                        label(w, "probe").unwrap_or_default(),
                        crate::model::format_utc(w.value),
                        label(w, "failure").unwrap_or_default()
                    )
                }
                (Some(_), None) => c.message.push_str(
                    ": this standby is not replaying what the primary writes; look at the WAL \
                     receiver, the network, replay (paused? conflicts?) and the primary's \
                     heartbeat writes",
                ),
            }
            out.push(c);
        }
        if let Some(rec) = plain(obs, samples::IN_RECOVERY) {
            let l = Labels::new();
            let role = if rec > 0.0 { "standby" } else { "primary" };
            let mismatch = super::role::mismatch(&self.params.expected, rec > 0.0);
            out.push(match &mismatch {
                Some(m) => {
                    Condition::active(rule_names::ROLE_MISMATCH, l, Severity::Critical, m.clone())
                }
                None => Condition::clear(
                    rule_names::ROLE_MISMATCH,
                    l,
                    format!("the server is a {role}, as expected"),
                ),
            });
            // The standby rules this run did not evaluate: say why, so a resolution states
            // what is true now instead of repeating the firing text.
            let why = if mismatch.is_some() {
                "not checked while the role mismatches"
            } else {
                "this server is a primary; it is watched on standbys only"
            };
            if mismatch.is_some() || rec <= 0.0 {
                for (rule, what) in [
                    (rule_names::RECEIVER, "WAL receiver"),
                    (rule_names::PAUSED, "WAL replay"),
                    (rule_names::HEARTBEAT, "replication heartbeat age"),
                ] {
                    if !out.iter().any(|c| c.rule == rule) {
                        out.push(Condition::clear(
                            rule,
                            Labels::new(),
                            format!("{what}: {why}"),
                        ));
                    }
                }
            }
        }
        for c in &out {
            if let Some(sev) = c.severity {
                obs.status = obs.status.max(sev.into());
            }
        }
        out
    }

    fn seed(&mut self, history: &[(f64, Sample)], now: Moment) {
        for (wall, s) in history {
            if s.name == samples::SLOT_RETAINED
                && let Some(slot) = s.labels.get("slot")
            {
                let slot = slot.clone();
                self.push(&slot, now.mono_of_wall(*wall), s.value);
            }
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
