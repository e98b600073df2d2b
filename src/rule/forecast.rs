//! "Time until full" from a filesystem's sample history. Pure: no I/O, no clock reads.
//!
//! The method (documented at length in `docs/forecast.md`):
//! 1. A filesystem whose unprivileged free space is (almost) gone is `Full`, whatever the rate.
//! 2. Too little history is `NotEnoughHistory`: no ETA is invented.
//! 3. Least-squares lines over three nested windows ending now (the whole window, its last
//!    third, its last twelfth) give three consumption rates. The *sustained* rate is the smaller
//!    of the long and middle ones, so a burst that started minutes ago, or a sawtooth whose
//!    drops fall inside the window, does not drive the estimate.
//! 4. When the rates rise steadily from the long to the short window and the older half of the
//!    window was already filling, growth is accelerating (WAL behind a dead replica under rising
//!    load): a quadratic fit over the window is solved for the crossing instead, which is earlier
//!    than any straight line.
//! 5. A trend that is not significant against the scatter of the samples is `NotFilling`.

use serde::Serialize;

/// One history point: monotonic seconds and bytes available to unprivileged users.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Monotonic seconds.
    pub t: f64,
    /// Bytes available to unprivileged users (`f_bavail × f_frsize`).
    pub avail: f64,
}

/// Tuning of the forecaster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForecastParams {
    /// How far back the fit looks (seconds).
    pub window: f64,
    /// Less history than this gives no ETA (seconds).
    pub min_history: f64,
    /// Fewer points than this gives no ETA.
    pub min_points: usize,
    /// Below this fraction of the unprivileged capacity the filesystem counts as full.
    pub full_fraction: f64,
    /// No ETA further ahead than this many times the time the series has been observed.
    pub max_lookahead: f64,
}

impl Default for ForecastParams {
    fn default() -> Self {
        ForecastParams {
            window: 6.0 * 3600.0,
            min_history: 30.0 * 60.0,
            min_points: 5,
            full_fraction: 0.001,
            max_lookahead: 2.0,
        }
    }
}

/// What the forecaster concluded.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Forecast {
    /// Nothing (or nearly nothing) is left for unprivileged writers.
    Full,
    /// Too little history to say anything honest.
    NotEnoughHistory {
        /// Seconds of history available.
        have_seconds: f64,
        /// Seconds of history needed.
        need_seconds: f64,
    },
    /// Usage is flat, shrinking, or the trend is lost in noise.
    NotFilling {
        /// Sustained consumption rate in bytes per second (≤ 0, or not significant).
        rate_bytes_per_second: f64,
    },
    /// Filling: the estimated time until unprivileged writes fail.
    Filling {
        /// Seconds until full.
        eta_seconds: f64,
        /// Current consumption rate in bytes per second.
        rate_bytes_per_second: f64,
        /// Whether the accelerating (quadratic) model gave the ETA.
        accelerating: bool,
    },
}

impl Forecast {
    /// Seconds until full: `Some(0)` when full, `None` when there is no honest estimate.
    pub fn eta_seconds(&self) -> Option<f64> {
        match self {
            Forecast::Full => Some(0.0),
            Forecast::Filling { eta_seconds, .. } => Some(*eta_seconds),
            _ => None,
        }
    }

    /// The consumption rate, when one was estimated.
    pub fn rate(&self) -> Option<f64> {
        match self {
            Forecast::NotFilling {
                rate_bytes_per_second,
            }
            | Forecast::Filling {
                rate_bytes_per_second,
                ..
            } => Some(*rate_bytes_per_second),
            _ => None,
        }
    }
}

/// A least-squares line through points, centred on the mean time.
#[derive(Clone, Copy, Debug)]
struct Line {
    slope: f64,
    slope_std_err: f64,
}

fn fit_line(points: &[Point]) -> Option<Line> {
    let n = points.len() as f64;
    if points.len() < 3 {
        return None;
    }
    let mean_t = points.iter().map(|p| p.t).sum::<f64>() / n;
    let mean_a = points.iter().map(|p| p.avail).sum::<f64>() / n;
    let (mut stt, mut sta) = (0.0, 0.0);
    for p in points {
        let dt = p.t - mean_t;
        stt += dt * dt;
        sta += dt * (p.avail - mean_a);
    }
    if stt <= 0.0 {
        return None;
    }
    let slope = sta / stt;
    let sse: f64 = points
        .iter()
        .map(|p| {
            let r = p.avail - (mean_a + slope * (p.t - mean_t));
            r * r
        })
        .sum();
    let slope_std_err = (sse / (n - 2.0) / stt).sqrt();
    Some(Line {
        slope,
        slope_std_err,
    })
}

/// A least-squares parabola `avail ≈ c0 + c1·τ + c2·τ²` with `τ = t − now`.
#[derive(Clone, Copy, Debug)]
struct Quadratic {
    #[cfg_attr(not(test), allow(dead_code))] // the tests check the whole fit
    c0: f64,
    c1: f64,
    c2: f64,
    /// Standard error of `c2` (from the residual scatter).
    c2_std_err: f64,
}

impl Quadratic {
    /// Consumption rate (bytes per second) at `τ`.
    fn rate_at(&self, tau: f64) -> f64 {
        -(self.c1 + 2.0 * self.c2 * tau)
    }
}

/// Least-squares `avail ≈ c0 + c1·τ + c2·τ²` with `τ = t − now`, with the standard error of
/// the curvature.
fn fit_quadratic(points: &[Point], now: f64) -> Option<Quadratic> {
    if points.len() < 5 {
        return None;
    }
    // Scale τ to hours to keep the normal equations well conditioned.
    let scale = 3600.0;
    let mut s = [0.0f64; 5];
    let mut r = [0.0f64; 3];
    for p in points {
        let x = (p.t - now) / scale;
        let mut xp = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += xp;
            if k < 3 {
                r[k] += xp * p.avail;
            }
            xp *= x;
        }
    }
    let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let c = solve3(m, r)?;
    let sse: f64 = points
        .iter()
        .map(|p| {
            let x = (p.t - now) / scale;
            let e = p.avail - (c[0] + c[1] * x + c[2] * x * x);
            e * e
        })
        .sum();
    // Var(c2) = σ² · (MᵀM)⁻¹[2][2], the cofactor of the corner over the determinant.
    let corner = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det3(&m);
    let sigma2 = sse / (points.len() as f64 - 3.0);
    Some(Quadratic {
        c0: c[0],
        c1: c[1] / scale,
        c2: c[2] / (scale * scale),
        c2_std_err: (sigma2 * corner).max(0.0).sqrt() / (scale * scale),
    })
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Solves a 3×3 linear system by Cramer's rule.
fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = det3;
    let d = det(&m);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut out = [0.0; 3];
    for (col, o) in out.iter_mut().enumerate() {
        let mut mc = m;
        for row in 0..3 {
            mc[row][col] = r[row];
        }
        *o = det(&mc) / d;
    }
    Some(out)
}

/// The points at or after `since`.
fn tail(points: &[Point], since: f64) -> &[Point] {
    let start = points.partition_point(|p| p.t < since);
    &points[start..]
}

/// Whether the whole window still fills significantly (slope more than 3 standard errors):
/// the slow view on which a held forecast is released. Writes in bursts (16 MiB WAL segments,
/// a job that flushes every few seconds) make the short windows read "not filling" in every
/// pause; the whole window does not.
pub fn window_filling(points: &[Point], now: f64, params: &ForecastParams) -> bool {
    fit_line(tail(points, now - params.window))
        .is_some_and(|l| -l.slope > 0.0 && -l.slope > 3.0 * l.slope_std_err)
}

/// Forecasts when unprivileged free space runs out.
///
/// `points` must be sorted by time; `capacity` is the unprivileged capacity (size minus the
/// root reserve) used for the "full" floor; `observed_for` is how long the series has been
/// watched (it may exceed the window), which bounds how far ahead an ETA may reach.
pub fn forecast(
    points: &[Point],
    capacity: f64,
    now: f64,
    observed_for: f64,
    params: &ForecastParams,
) -> Forecast {
    let f = forecast_unbounded(points, capacity, now, params);
    match f {
        Forecast::Filling { eta_seconds, .. }
            if eta_seconds > params.max_lookahead * observed_for =>
        {
            Forecast::NotEnoughHistory {
                have_seconds: observed_for,
                need_seconds: eta_seconds / params.max_lookahead,
            }
        }
        f => f,
    }
}

fn forecast_unbounded(
    points: &[Point],
    capacity: f64,
    now: f64,
    params: &ForecastParams,
) -> Forecast {
    let Some(latest) = points.last() else {
        return Forecast::NotEnoughHistory {
            have_seconds: 0.0,
            need_seconds: params.min_history,
        };
    };
    if latest.avail <= capacity.max(0.0) * params.full_fraction {
        return Forecast::Full;
    }
    let window = tail(points, now - params.window);
    let span =
        window.last().map(|l| l.t).unwrap_or(now) - window.first().map(|f| f.t).unwrap_or(now);
    if window.len() < params.min_points || span < params.min_history {
        return Forecast::NotEnoughHistory {
            have_seconds: span.max(0.0),
            need_seconds: params.min_history,
        };
    }
    let end = latest.t;
    let pick = |len: f64| {
        let part = tail(window, end - len);
        if part.len() >= params.min_points {
            part
        } else {
            window
        }
    };
    let (Some(long), Some(mid), Some(short)) = (
        fit_line(window),
        fit_line(pick(span / 3.0)),
        fit_line(pick(span / 12.0)),
    ) else {
        return Forecast::NotEnoughHistory {
            have_seconds: span,
            need_seconds: params.min_history,
        };
    };
    let (r_long, r_mid, r_short) = (-long.slope, -mid.slope, -short.slope);
    let significant = |l: &Line| -l.slope > 3.0 * l.slope_std_err;

    // A forecast needs growth that has lasted: the older half of the window must be filling
    // too. A burst after a calm (a backup, an upgrade) is not a trend yet.
    let older = &window[..window.partition_point(|p| p.t < end - span / 2.0)];
    let established = older.len() >= 3 && fit_line(older).is_some_and(|o| significant(&o));
    if !established {
        return Forecast::NotFilling {
            rate_bytes_per_second: r_long.min(r_mid),
        };
    }
    if let Some(f) = accelerating(window, latest, end, span, (r_long, r_mid, r_short), params)
        && significant(&long)
    {
        return f;
    }
    // The net change across the window: releases inside it (log rotation, a cleaned tmp dir)
    // cancel the growth before them, so a sawtooth does not read as a trend.
    let sustained = r_long.min(r_mid).min(net_rate(window, span));
    if sustained <= 0.0 || !significant(&long) || !significant(&mid) {
        return Forecast::NotFilling {
            rate_bytes_per_second: sustained,
        };
    }
    Forecast::Filling {
        eta_seconds: latest.avail / sustained,
        rate_bytes_per_second: sustained,
        accelerating: false,
    }
}

/// Consumption rate from the mean of the first sixth of the window to the mean of the last.
fn net_rate(window: &[Point], span: f64) -> f64 {
    let (start, end) = (window[0].t, window[window.len() - 1].t);
    let mean = |pts: &[Point]| {
        let n = pts.len().max(1) as f64;
        (
            pts.iter().map(|p| p.t).sum::<f64>() / n,
            pts.iter().map(|p| p.avail).sum::<f64>() / n,
        )
    };
    let head = &window[..window.partition_point(|p| p.t <= start + span / 6.0)];
    let tail = &window[window.partition_point(|p| p.t < end - span / 6.0)..];
    if head.is_empty() || tail.is_empty() {
        return f64::INFINITY;
    }
    let ((t0, a0), (t1, a1)) = (mean(head), mean(tail));
    if t1 <= t0 {
        f64::INFINITY
    } else {
        (a0 - a1) / (t1 - t0)
    }
}

/// The accelerating-growth estimate, when the rates say growth is speeding up.
fn accelerating(
    window: &[Point],
    latest: &Point,
    end: f64,
    span: f64,
    (r_long, r_mid, r_short): (f64, f64, f64),
    params: &ForecastParams,
) -> Option<Forecast> {
    if !(r_short >= r_mid && r_mid >= r_long * 1.1 && r_long > 0.0) {
        return None;
    }
    // The older half must already have been filling: otherwise this is a burst after a calm.
    let older = &window[..window.partition_point(|p| p.t < end - span / 2.0)];
    if older.len() < params.min_points {
        return None;
    }
    let old = fit_line(older)?;
    let r_old = -old.slope;
    if r_old <= 0.0 || r_old < 3.0 * old.slope_std_err || r_old < 0.25 * r_long {
        return None;
    }
    // The curvature must be real, not the scatter of the samples (16 MiB WAL segments, a
    // log flushed in blocks): significant over the whole window …
    let whole = fit_quadratic(window, end)?;
    if !curving_up(&whole, span, 1.1) {
        return None;
    }
    // … and still going on in its recent half: a steady fill that started inside the window
    // (a kink between a calm and a new steady rate) bends the whole-window parabola, but its
    // recent half is a straight line, and its ETA is that line's.
    if !speeding_up_recently(window, end, span) {
        return None;
    }
    let (c1, c2) = (whole.c1, whole.c2);
    // Solve latest.avail + c1·τ + c2·τ² = 0 for the positive root (c2 < 0, so it exists).
    let a = latest.avail;
    let disc = c1 * c1 - 4.0 * c2 * a;
    let tau = (-c1 - disc.sqrt()) / (2.0 * c2);
    (tau.is_finite() && tau > 0.0).then_some(Forecast::Filling {
        eta_seconds: tau,
        rate_bytes_per_second: -c1,
        accelerating: true,
    })
}

/// Whether consumption still speeds up in the recent half of the window, beyond what steps in
/// the data could fake: the half is cut into three blocks of `span / 6`; the net rate between
/// the means of the last two must exceed the one between the first two by 5 %, and by more
/// than twice the jumpiness of the samples (largest drop between two samples minus the median
/// drop: 16 MiB for WAL written in segments, about 0 for a smooth fill) per block length.
fn speeding_up_recently(window: &[Point], end: f64, span: f64) -> bool {
    let block = span / 6.0;
    let part = |from: f64, to: f64| {
        let pts: Vec<&Point> = window.iter().filter(|p| p.t >= from && p.t < to).collect();
        let n = pts.len() as f64;
        (pts.len() >= 2).then(|| {
            (
                pts.iter().map(|p| p.t).sum::<f64>() / n,
                pts.iter().map(|p| p.avail).sum::<f64>() / n,
            )
        })
    };
    let (Some(d), Some(e), Some(f)) = (
        part(end - 3.0 * block, end - 2.0 * block),
        part(end - 2.0 * block, end - block),
        part(end - block, f64::INFINITY),
    ) else {
        return false;
    };
    if e.0 <= d.0 || f.0 <= e.0 {
        return false;
    }
    let (r1, r2) = ((d.1 - e.1) / (e.0 - d.0), (e.1 - f.1) / (f.0 - e.0));
    let mut drops: Vec<f64> = window.windows(2).map(|w| w[0].avail - w[1].avail).collect();
    drops.sort_by(f64::total_cmp);
    let jumpiness = match (drops.last(), drops.get(drops.len() / 2)) {
        (Some(max), Some(median)) => (max - median).max(0.0),
        _ => 0.0,
    };
    r1 > 0.0 && r2 >= 1.05 * r1 && (r2 - r1) * (f.0 - e.0).min(e.0 - d.0) > 2.0 * jumpiness
}

/// Whether a parabola fitted over the last `len` seconds says consumption speeds up: curvature
/// more than 3 standard errors from zero, and the rate now at least `ratio` times the rate
/// `len` ago.
fn curving_up(q: &Quadratic, len: f64, ratio: f64) -> bool {
    let (start_rate, end_rate) = (q.rate_at(-len), q.rate_at(0.0));
    q.c2 < 0.0
        && -q.c2 > 3.0 * q.c2_std_err
        && q.c1 < 0.0
        && end_rate > 0.0
        && end_rate >= ratio * start_rate
}

#[cfg(test)]
#[path = "forecast_tests.rs"]
mod tests;
