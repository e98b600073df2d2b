//! Disk rules: `disk_full` (time until full, plus floors on what is left) and
//! `disk_inodes_low`, all on the view of an unprivileged writer.

use super::forecast::{Forecast, ForecastParams, Point, forecast, window_filling};
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
    /// What it takes for a forecast that raised `disk_full` to stand down.
    pub release: Release,
}

/// Hysteresis of a firing forecast: lack of data never clears it (a forecast that cannot be
/// made keeps the last one); evidence does — the trend is gone (not filling, or full further
/// away than `margin × warning_within`) for `runs` runs in a row, or space was freed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Release {
    /// Consecutive runs with the trend gone before the forecast stands down.
    pub runs: u32,
    /// The ETA must be beyond `warning_within` times this to count as "trend gone".
    pub margin: f64,
    /// Space freed (above the lowest point seen while the forecast held), as a fraction of
    /// the users' capacity, that stands the forecast down at once.
    pub freed_fraction: f64,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            runs: 3,
            margin: 1.25,
            freed_fraction: 0.02,
        }
    }
}

/// A forecast that raised `disk_full`, held until evidence clears it.
#[derive(Clone, Debug)]
struct Held {
    /// The severity the forecast gave.
    severity: Severity,
    /// Its ETA (seconds) …
    eta: f64,
    /// … as of this monotonic time.
    at: f64,
    /// The least `avail` seen while held.
    min_avail: f64,
    /// Consecutive runs with the trend gone.
    clear_runs: u32,
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
            release: Release::default(),
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
    held: BTreeMap<Labels, Held>,
}

impl DiskRules {
    /// Rules with these thresholds and no history yet.
    pub fn new(params: DiskRuleParams) -> DiskRules {
        DiskRules {
            params,
            history: BTreeMap::new(),
            first_seen: BTreeMap::new(),
            held: BTreeMap::new(),
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

    /// The severity the forecast itself gives (ETA within the thresholds).
    fn forecast_severity(&self, eta: Option<f64>) -> Option<Severity> {
        let p = &self.params;
        match eta {
            Some(eta) if eta <= p.critical_within => Some(Severity::Critical),
            Some(eta) if eta <= p.warning_within => Some(Severity::Warning),
            _ => None,
        }
    }

    /// Applies the hysteresis of a firing forecast: returns the forecast's severity, or the
    /// held one with a note when this forecast is no evidence that the fill stopped.
    fn hold(
        &mut self,
        labels: &Labels,
        fs: &Fs,
        fc: &Forecast,
        now: f64,
    ) -> (Option<Severity>, Option<f64>, Option<String>) {
        let eta = fc.eta_seconds();
        let still_filling = self
            .history
            .get_mut(labels)
            .is_some_and(|h| window_filling(h.make_contiguous(), now, &self.params.forecast));
        let fresh = self.forecast_severity(eta);
        let r = self.params.release;
        let capacity = fs.size - fs.reserved;
        if let Some(severity) = fresh {
            let min_avail = self
                .held
                .get(labels)
                .map_or(fs.avail, |h| h.min_avail.min(fs.avail));
            let held = Held {
                severity,
                eta: eta.unwrap_or(0.0),
                at: now,
                min_avail,
                clear_runs: 0,
            };
            self.held.insert(labels.clone(), held);
            return (fresh, eta, None);
        }
        let Some(h) = self.held.get_mut(labels) else {
            return (None, eta, None);
        };
        h.min_avail = h.min_avail.min(fs.avail);
        let freed = fs.avail - h.min_avail;
        if capacity > 0.0 && freed >= r.freed_fraction * capacity {
            self.held.remove(labels);
            return (None, eta, None);
        }
        let trend_gone = match fc {
            // A pause between bursts is not the end of a fill: the whole window must agree.
            Forecast::NotFilling { .. } => !still_filling,
            Forecast::Filling { eta_seconds, .. } => {
                *eta_seconds > r.margin * self.params.warning_within
            }
            // Lack of data is not evidence: it neither clears nor counts.
            Forecast::NotEnoughHistory { .. } | Forecast::Full => false,
        };
        if trend_gone {
            h.clear_runs += 1;
        } else if matches!(fc, Forecast::Filling { .. }) {
            h.clear_runs = 0; // within the margin: still a fill worth watching
        }
        if h.clear_runs >= r.runs.max(1) {
            self.held.remove(labels);
            return (None, eta, None);
        }
        let left = (h.eta - (now - h.at)).max(0.0);
        let note = format!(
            "the last forecast (full in {} as of {} ago) stands until the fill is seen to stop",
            format_duration(h.eta),
            format_duration(now - h.at)
        );
        (Some(h.severity), Some(left), Some(note))
    }

    fn full_condition(&mut self, labels: &Labels, fs: &Fs, fc: &Forecast, now: f64) -> Condition {
        let (mut severity, eta, held) = self.hold(labels, fs, fc, now);
        let p = &self.params;
        let capacity = fs.size - fs.reserved;
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
        if let Some(note) = held {
            message.push_str("; ");
            message.push_str(&note);
        }
        Condition {
            rule: RULE_FULL.into(),
            labels: labels.clone(),
            severity,
            message,
            value: eta,
            started_at: None,
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
            started_at: None,
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
            let full = self.full_condition(&labels, &fs, &fc, now.mono);
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
#[path = "disk_tests.rs"]
mod tests;
