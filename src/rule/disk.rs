//! Disk rules: `disk_full` (time until full, plus floors on what is left) and
//! `disk_inodes_low`, all on the view of an unprivileged writer.

use super::forecast::{Forecast, ForecastParams, Point, forecast};
use super::{Condition, RuleSet};
use crate::model::{Labels, Moment, Observation, Sample, Severity, format_bytes, format_duration};
use std::collections::{BTreeMap, VecDeque};

/// Sample names written by the disk probe and read here.
pub mod samples {
    /// Total size (`f_blocks × f_frsize`).
    pub const SIZE: &str = "disk.size_bytes";
    /// Available to unprivileged users (`f_bavail × f_frsize`).
    pub const AVAIL: &str = "disk.avail_bytes";
    /// Free including the root reserve (`f_bfree × f_frsize`).
    pub const FREE: &str = "disk.free_bytes";
    /// Held back for root (`(f_bfree − f_bavail) × f_frsize`).
    pub const RESERVED: &str = "disk.reserved_bytes";
    /// Used (`size − free`).
    pub const USED: &str = "disk.used_bytes";
    /// Inodes in total.
    pub const INODES_TOTAL: &str = "disk.inodes_total";
    /// Inodes available to unprivileged users.
    pub const INODES_AVAIL: &str = "disk.inodes_avail";
    /// Seconds until full (derived by the rules).
    pub const ETA: &str = "disk.eta_seconds";
    /// Consumption rate in bytes per second (derived by the rules).
    pub const GROWTH: &str = "disk.growth_bytes_per_second";
    /// A cause note published by another probe: bytes that `{cause=…}` holds on `{mount=…}`
    /// (e.g. WAL retained by an inactive replication slot). The engine appends the largest
    /// note of a filesystem to its `disk_full` alert, see [`super::cause_sentence`].
    pub const CAUSE_BYTES: &str = "disk.cause_bytes";
    /// Growth of a cause note's bytes per second (same labels as [`CAUSE_BYTES`]).
    pub const CAUSE_GROWTH: &str = "disk.cause_growth_bytes_per_second";
}

/// One cause note for a filesystem: what holds space there, how much, how fast it grows.
#[derive(Clone, Debug, PartialEq)]
pub struct CauseNote {
    /// Plain words, e.g. `WAL retained by inactive slot node2`.
    pub cause: String,
    /// Bytes it holds.
    pub bytes: f64,
    /// Bytes per second it grows by, when known.
    pub growth: Option<f64>,
}

/// The sentence a `disk_full` alert gets for the largest cause on its filesystem:
/// "WAL retained by inactive slot node2 (38 GiB, +6 GiB/h) is the main consumer". `used` and
/// `disk_growth` (bytes, bytes per second, of the filesystem) decide "main consumer": it holds
/// at least half the used space or causes at least half the growth.
pub fn cause_sentence(note: &CauseNote, used: Option<f64>, disk_growth: Option<f64>) -> String {
    let rate = note
        .growth
        .filter(|g| *g > 0.0)
        .map(|g| format!(", +{}/h", format_bytes(g * 3600.0)))
        .unwrap_or_default();
    let by_bytes = used.is_some_and(|u| u > 0.0 && note.bytes >= 0.5 * u);
    let by_rate = match (note.growth, disk_growth) {
        (Some(g), Some(d)) => d > 0.0 && g >= 0.5 * d,
        _ => false,
    };
    let share = if by_bytes || by_rate {
        "is the main consumer".to_string()
    } else if let Some(u) = used.filter(|u| *u > 0.0) {
        format!("holds {:.0}% of the used space", 100.0 * note.bytes / u)
    } else {
        "is a consumer".to_string()
    };
    format!(
        "{} ({}{rate}) {share}",
        note.cause,
        format_bytes(note.bytes)
    )
}

/// The rule names.
pub const RULE_FULL: &str = "disk_full";
/// Inode exhaustion rule name.
pub const RULE_INODES: &str = "disk_inodes_low";

/// A floor on what is left: absolute bytes, or a percentage of the unprivileged capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Floor {
    /// Bytes (or inodes) left.
    Absolute(f64),
    /// Percent of capacity left.
    Percent(f64),
}

impl Floor {
    fn breached(&self, left: f64, capacity: f64) -> bool {
        match *self {
            Floor::Absolute(b) => left < b,
            Floor::Percent(p) => capacity > 0.0 && left < capacity * p / 100.0,
        }
    }
}

/// Thresholds of the disk rules.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskRuleParams {
    /// Forecaster tuning.
    pub forecast: ForecastParams,
    /// Warn when full within this many seconds.
    pub warning_within: f64,
    /// Critical when full within this many seconds.
    pub critical_within: f64,
    /// Warn when less than this is left for users.
    pub warning_floor: Floor,
    /// Critical when less than this is left for users.
    pub critical_floor: Floor,
    /// Warn when fewer inodes than this are left.
    pub inodes_warning_floor: Floor,
    /// Critical when fewer inodes than this are left.
    pub inodes_critical_floor: Floor,
}

impl Default for DiskRuleParams {
    fn default() -> Self {
        DiskRuleParams {
            forecast: ForecastParams::default(),
            warning_within: 24.0 * 3600.0,
            critical_within: 4.0 * 3600.0,
            warning_floor: Floor::Percent(5.0),
            critical_floor: Floor::Percent(3.0),
            inodes_warning_floor: Floor::Percent(5.0),
            inodes_critical_floor: Floor::Percent(3.0),
        }
    }
}

/// The numbers of one filesystem in one observation.
#[derive(Clone, Debug, Default)]
struct Fs {
    size: f64,
    avail: f64,
    reserved: f64,
    inodes_total: f64,
    inodes_avail: f64,
}

/// Disk rules with per-filesystem history.
pub struct DiskRules {
    params: DiskRuleParams,
    history: BTreeMap<Labels, VecDeque<Point>>,
    first_seen: BTreeMap<Labels, f64>,
}

impl DiskRules {
    /// Rules with these thresholds and no history yet.
    pub fn new(params: DiskRuleParams) -> DiskRules {
        DiskRules {
            params,
            history: BTreeMap::new(),
            first_seen: BTreeMap::new(),
        }
    }

    fn push(&mut self, labels: &Labels, point: Point) {
        let keep = self.params.forecast.window * 1.05 + 60.0;
        let first = self.first_seen.entry(labels.clone()).or_insert(point.t);
        *first = first.min(point.t);
        let h = self.history.entry(labels.clone()).or_default();
        if h.back().is_some_and(|last| point.t <= last.t) {
            return;
        }
        h.push_back(point);
        while h.front().is_some_and(|p| p.t < point.t - keep) {
            h.pop_front();
        }
    }

    fn forecast_for(&mut self, labels: &Labels, fs: &Fs, now: f64) -> Forecast {
        let points = self
            .history
            .get_mut(labels)
            .map(|h| h.make_contiguous().to_vec())
            .unwrap_or_default();
        let observed_for = now - self.first_seen.get(labels).copied().unwrap_or(now);
        forecast(
            &points,
            fs.size - fs.reserved,
            now,
            observed_for,
            &self.params.forecast,
        )
    }

    fn full_condition(&self, labels: &Labels, fs: &Fs, fc: &Forecast) -> Condition {
        let p = &self.params;
        let capacity = fs.size - fs.reserved;
        let mut severity = None;
        let eta = fc.eta_seconds();
        if let Some(eta) = eta {
            if eta <= p.critical_within {
                severity = Some(Severity::Critical);
            } else if eta <= p.warning_within {
                severity = Some(Severity::Warning);
            }
        }
        let floor = if p.critical_floor.breached(fs.avail, capacity) {
            Some(Severity::Critical)
        } else if p.warning_floor.breached(fs.avail, capacity) {
            Some(Severity::Warning)
        } else {
            None
        };
        severity = severity.max(floor);
        let mount = labels.get("mount").map(String::as_str).unwrap_or("?");
        let mut message = format!(
            "{mount}: {} of {} free for users ({:.1}%), {} more held back for root",
            format_bytes(fs.avail),
            format_bytes(capacity),
            if capacity > 0.0 {
                100.0 * fs.avail / capacity
            } else {
                0.0
            },
            format_bytes(fs.reserved),
        );
        message.push_str("; ");
        message.push_str(&describe(fc));
        Condition {
            rule: RULE_FULL.into(),
            labels: labels.clone(),
            severity,
            message,
            value: eta,
        }
    }

    fn inode_condition(&self, labels: &Labels, fs: &Fs) -> Option<Condition> {
        if fs.inodes_total <= 0.0 {
            return None; // btrfs and friends report no inode limit
        }
        let p = &self.params;
        let severity = if p
            .inodes_critical_floor
            .breached(fs.inodes_avail, fs.inodes_total)
        {
            Some(Severity::Critical)
        } else if p
            .inodes_warning_floor
            .breached(fs.inodes_avail, fs.inodes_total)
        {
            Some(Severity::Warning)
        } else {
            None
        };
        let mount = labels.get("mount").map(String::as_str).unwrap_or("?");
        Some(Condition {
            rule: RULE_INODES.into(),
            labels: labels.clone(),
            severity,
            message: format!(
                "{mount}: {} of {} inodes left",
                fs.inodes_avail, fs.inodes_total
            ),
            value: Some(fs.inodes_avail),
        })
    }
}

/// A plain-words summary of a forecast.
pub fn describe(fc: &Forecast) -> String {
    match fc {
        Forecast::Full => "FULL for unprivileged writers".into(),
        Forecast::NotEnoughHistory {
            have_seconds,
            need_seconds,
        } => format!(
            "not enough history for a forecast ({} of {})",
            format_duration(*have_seconds),
            format_duration(*need_seconds)
        ),
        Forecast::NotFilling { .. } => "not filling".into(),
        Forecast::Filling {
            eta_seconds,
            rate_bytes_per_second,
            accelerating,
        } => format!(
            "full in {} at {}/h{}",
            format_duration(*eta_seconds),
            format_bytes(rate_bytes_per_second * 3600.0),
            if *accelerating {
                " and accelerating"
            } else {
                ""
            }
        ),
    }
}

/// Groups the disk samples of an observation by label set.
fn filesystems(obs: &Observation) -> BTreeMap<Labels, Fs> {
    let mut out: BTreeMap<Labels, Fs> = BTreeMap::new();
    for s in &obs.samples {
        let fs = out.entry(s.labels.clone()).or_default();
        match s.name.as_str() {
            samples::SIZE => fs.size = s.value,
            samples::AVAIL => fs.avail = s.value,
            samples::RESERVED => fs.reserved = s.value,
            samples::INODES_TOTAL => fs.inodes_total = s.value,
            samples::INODES_AVAIL => fs.inodes_avail = s.value,
            _ => {}
        }
    }
    out.retain(|_, fs| fs.size > 0.0);
    out
}

impl RuleSet for DiskRules {
    fn evaluate(&mut self, obs: &mut Observation, now: Moment) -> Vec<Condition> {
        let mut conditions = Vec::new();
        let mut summary = Vec::new();
        for (labels, fs) in filesystems(obs) {
            self.push(
                &labels,
                Point {
                    t: now.mono,
                    avail: fs.avail,
                },
            );
            let fc = self.forecast_for(&labels, &fs, now.mono);
            if let Some(eta) = fc.eta_seconds() {
                obs.samples.push(Sample::new(samples::ETA, &labels, eta));
            }
            if let Some(rate) = fc.rate() {
                obs.samples
                    .push(Sample::new(samples::GROWTH, &labels, rate));
            }
            let full = self.full_condition(&labels, &fs, &fc);
            if let Some(sev) = full.severity {
                obs.status = obs.status.max(sev.into());
            }
            summary.push(full.message.clone());
            conditions.push(full);
            if let Some(inodes) = self.inode_condition(&labels, &fs) {
                if let Some(sev) = inodes.severity {
                    obs.status = obs.status.max(sev.into());
                    summary.push(inodes.message.clone());
                }
                conditions.push(inodes);
            }
        }
        if !summary.is_empty() {
            obs.message = summary.join("\n");
        }
        conditions
    }

    fn seed(&mut self, history: &[(f64, Sample)], now: Moment) {
        for (wall, s) in history {
            if s.name == samples::AVAIL {
                self.push(
                    &s.labels,
                    Point {
                        t: now.mono_of_wall(*wall),
                        avail: s.value,
                    },
                );
            }
        }
    }
}

/// Builds the observation the disk probe would make from the four raw numbers, for replay.
pub fn observation_from_raw(labels: &Labels, size: f64, avail: f64, free: f64) -> Observation {
    let mut obs = Observation::new(crate::model::Status::Ok, "");
    let reserved = (free - avail).max(0.0);
    for (name, v) in [
        (samples::SIZE, size),
        (samples::AVAIL, avail),
        (samples::FREE, free),
        (samples::RESERVED, reserved),
        (samples::USED, size - free),
    ] {
        obs.samples.push(Sample::new(name, labels, v));
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, labels};

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn cause_sentences() {
        const GIB: f64 = 1024.0 * MIB;
        let note = CauseNote {
            cause: "WAL retained by inactive slot node2".into(),
            bytes: 38.0 * GIB,
            growth: Some(6.0 * GIB / 3600.0),
        };
        assert_eq!(
            cause_sentence(&note, Some(60.0 * GIB), None),
            "WAL retained by inactive slot node2 (38.0 GiB, +6.0 GiB/h) is the main consumer"
        );
        assert_eq!(
            cause_sentence(&note, Some(400.0 * GIB), Some(7.0 * GIB / 3600.0)),
            "WAL retained by inactive slot node2 (38.0 GiB, +6.0 GiB/h) is the main consumer",
            "most of the growth"
        );
        assert_eq!(
            cause_sentence(&note, Some(380.0 * GIB), Some(60.0 * GIB / 3600.0)),
            "WAL retained by inactive slot node2 (38.0 GiB, +6.0 GiB/h) holds 10% of the used space"
        );
    }

    #[test]
    fn reserved_only_is_critical_even_though_root_could_still_write() {
        let mut rules = DiskRules::new(DiskRuleParams::default());
        let l = labels([("mount", "/db")]);
        let mut obs = observation_from_raw(&l, 100.0 * MIB, 0.0, 5.0 * MIB);
        let c = rules.evaluate(&mut obs, Moment::replayed(0.0));
        assert_eq!(c[0].severity, Some(Severity::Critical));
        assert_eq!(c[0].value, Some(0.0));
        assert!(c[0].message.contains("FULL"), "{}", c[0].message);
        assert!(
            c[0].message.contains("5.0 MiB more held back for root"),
            "{}",
            c[0].message
        );
        assert_eq!(obs.status, Status::Critical);
    }

    #[test]
    fn floors_apply_to_the_unprivileged_capacity() {
        let mut rules = DiskRules::new(DiskRuleParams::default());
        let l = labels([("mount", "/")]);
        // 100 MiB disk, 64 MiB reserved for root: 36 MiB capacity, 1.5 MiB left = 4.2 % → warning.
        let mut obs = observation_from_raw(&l, 100.0 * MIB, 1.5 * MIB, 65.5 * MIB);
        let c = rules.evaluate(&mut obs, Moment::replayed(0.0));
        assert_eq!(c[0].severity, Some(Severity::Warning), "{}", c[0].message);
    }

    #[test]
    fn a_healthy_disk_without_history_says_so() {
        let mut rules = DiskRules::new(DiskRuleParams::default());
        let l = labels([("mount", "/")]);
        let mut obs = observation_from_raw(&l, 100.0 * MIB, 60.0 * MIB, 65.0 * MIB);
        let c = rules.evaluate(&mut obs, Moment::replayed(0.0));
        assert_eq!(c[0].severity, None);
        assert!(
            c[0].message.contains("not enough history"),
            "{}",
            c[0].message
        );
        assert_eq!(obs.status, Status::Ok);
    }
}
