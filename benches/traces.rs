//! Disk traces for judging "time until full" rules, and the stock Prometheus rule emulated on
//! the same samples. Shared by `benches/forecast.rs` and `tests/forecast_traces.rs`.
#![allow(dead_code)]

use lookout::alert::AlertPolicy;
use lookout::replay::{DiskRow, Transition, replay_disk};
use lookout::rule::disk::DiskRuleParams;

pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const H: f64 = 3600.0;
const STEP: f64 = 60.0;
const T0: f64 = 1_494_000_000.0;

/// One named trace: what a disk's numbers did, sample by sample.
pub struct Trace {
    pub name: &'static str,
    pub what: &'static str,
    pub rows: Vec<DiskRow>,
}

impl Trace {
    /// Seconds from the start until unprivileged writes fail, if they do.
    pub fn full_at(&self) -> Option<f64> {
        self.rows.iter().find(|r| r.avail <= 0.0).map(|r| r.ts - T0)
    }
}

/// A deterministic pseudo-random source (xorshift), so traces are the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// Builds a trace from "used bytes of the unprivileged capacity at hour h".
fn build(
    name: &'static str,
    what: &'static str,
    days: f64,
    size: f64,
    reserve: f64,
    used_at: impl Fn(f64) -> f64,
) -> Trace {
    let capacity = size - reserve;
    let n = (days * 24.0 * H / STEP) as usize;
    let rows = (0..=n)
        .map(|i| {
            let ts = T0 + i as f64 * STEP;
            let used = used_at(i as f64 * STEP / H).clamp(0.0, capacity);
            let avail = capacity - used;
            DiskRow {
                ts,
                size,
                avail,
                free: avail + reserve,
            }
        })
        .collect();
    Trace { name, what, rows }
}

/// The trace set: several days each, one sample a minute.
pub fn traces() -> Vec<Trace> {
    let size = 200.0 * GIB;
    let reserve = 10.0 * GIB;
    let cap = size - reserve;
    let mut noise = Rng(42);
    let noisy: Vec<f64> = (0..=(6 * 24 * 60)).map(|_| noise.next()).collect();
    let mut jitter = Rng(7);
    let small: Vec<f64> = (0..=(6 * 24 * 60)).map(|_| jitter.next()).collect();
    let idx = |h: f64| ((h * 60.0).round() as usize).min(6 * 24 * 60);
    vec![
        build(
            "steady",
            "1 GiB/h from 100 GiB free",
            5.0,
            size,
            reserve,
            move |h| cap - 100.0 * GIB + h * GIB,
        ),
        build(
            "accelerating",
            "flat 1 day, then WAL behind a dead replica: rate +0.15 GiB/h every hour",
            3.0,
            size,
            reserve,
            move |h| {
                let t = (h - 24.0).max(0.0);
                cap - 80.0 * GIB + (0.2 * t + 0.075 * t * t) * GIB + small[idx(h)] * 0.05 * GIB
            },
        ),
        build(
            "sawtooth-daily",
            "logs grow 12 GiB a day on 30 GiB free, rotated at midnight",
            5.0,
            size,
            reserve,
            move |h| cap - 30.0 * GIB + 12.0 * GIB * (h % 24.0) / 24.0,
        ),
        build(
            "sawtooth-2h",
            "a job writes 8 GiB in 80 min every 2 h on 25 GiB free, then deletes it",
            5.0,
            size,
            reserve,
            move |h| {
                let p = h % 2.0;
                cap - 25.0 * GIB
                    + if p < 4.0 / 3.0 {
                        8.0 * GIB * p / (4.0 / 3.0)
                    } else {
                        0.0
                    }
            },
        ),
        build(
            "burst",
            "nightly backup: 20 GiB in 45 min at 02:00 on 35 GiB free, deleted at 03:00",
            5.0,
            size,
            reserve,
            move |h| {
                let d = h % 24.0;
                let b = if (2.0..2.75).contains(&d) {
                    20.0 * (d - 2.0) / 0.75
                } else if (2.75..3.0).contains(&d) {
                    20.0
                } else {
                    0.0
                };
                cap - 35.0 * GIB + b * GIB
            },
        ),
        build(
            "noisy",
            "40 GiB free, ±2 GiB of noise, no trend",
            5.0,
            size,
            reserve,
            move |h| cap - 40.0 * GIB + noisy[idx(h)] * 4.0 * GIB,
        ),
        build(
            "full",
            "2 GiB/h from 60 GiB free, then stays full for a day",
            2.5,
            size,
            reserve,
            move |h| cap - 60.0 * GIB + 2.0 * h * GIB,
        ),
        build(
            "reserved-only",
            "no space left for users from the start; root's reserve untouched",
            2.0,
            size,
            reserve,
            move |_| cap,
        ),
    ]
}

/// What a rule did on a trace.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Seconds between the first page (any severity) and the disk filling.
    pub lead_first: Option<f64>,
    /// Seconds between the first critical page and the disk filling.
    pub lead_critical: Option<f64>,
    /// Pages that resolved again without the disk filling.
    pub false_pages: usize,
    /// Whether an alert was firing at the end of the trace.
    pub firing_at_end: bool,
}

/// Judges a list of (unix seconds, firing?, critical?) transitions against a trace.
fn judge(trace: &Trace, transitions: &[(f64, bool, bool)]) -> Verdict {
    let full = trace.full_at().map(|s| s + T0);
    let mut v = Verdict::default();
    let mut open_since: Option<f64> = None;
    for &(at, firing, critical) in transitions {
        let before_full = full.is_none_or(|f| at <= f);
        if firing {
            if open_since.is_none() {
                open_since = Some(at);
            }
            if before_full && let Some(f) = full {
                v.lead_first.get_or_insert(f - at);
                if critical {
                    v.lead_critical.get_or_insert(f - at);
                }
            }
        } else if let Some(since) = open_since.take() {
            // Resolved: a false page unless the disk filled while it was open.
            if full.is_none_or(|f| !(since <= f && f <= at)) {
                v.false_pages += 1;
            }
        }
    }
    v.firing_at_end = open_since.is_some();
    v
}

/// lookout's default disk rules on a trace, through the daemon's replay code.
pub fn lookout_verdict(trace: &Trace) -> Verdict {
    let t: Vec<Transition> = replay_disk(&trace.rows, DiskRuleParams::default(), lookout_policy());
    let tr: Vec<(f64, bool, bool)> = t
        .iter()
        .map(|t| {
            (
                t.at,
                t.state == "firing",
                t.severity == lookout::model::Severity::Critical,
            )
        })
        .collect();
    judge(trace, &tr)
}

/// The disk probe's default alert policy.
pub fn lookout_policy() -> AlertPolicy {
    lookout::config::ProbeConfig::zero_config_disks().policy()
}

/// The stock rule `predict_linear(avail[6h], 4h) < 0 and avail/size < 20%` `for: 1h`, evaluated
/// every minute as Prometheus would (least squares over the window, intercept at eval time).
pub fn prometheus_verdict(trace: &Trace) -> Verdict {
    let rows = &trace.rows;
    let mut transitions = Vec::new();
    let mut pending_since: Option<f64> = None;
    let mut firing = false;
    let mut start = 0;
    for (i, r) in rows.iter().enumerate() {
        while rows[start].ts < r.ts - 6.0 * H {
            start += 1;
        }
        let w = &rows[start..=i];
        let cond =
            w.len() >= 2 && predict_linear(w, r.ts, 4.0 * H) < 0.0 && r.avail / r.size < 0.20;
        if cond {
            let since = *pending_since.get_or_insert(r.ts);
            if !firing && r.ts - since >= H {
                firing = true;
                transitions.push((r.ts, true, true));
            }
        } else {
            pending_since = None;
            if firing {
                firing = false;
                transitions.push((r.ts, false, false));
            }
        }
    }
    judge(trace, &transitions)
}

fn predict_linear(w: &[DiskRow], now: f64, ahead: f64) -> f64 {
    let n = w.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
    for r in w {
        let x = r.ts - now;
        sx += x;
        sy += r.avail;
        sxy += x * r.avail;
        sxx += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sxx - sx * sx / n;
    let slope = if var == 0.0 { 0.0 } else { cov / var };
    let intercept = sy / n - slope * sx / n;
    intercept + slope * ahead
}

/// A lead time in words.
pub fn lead(s: Option<f64>) -> String {
    s.map(lookout::model::format_duration)
        .unwrap_or_else(|| "—".into())
}
