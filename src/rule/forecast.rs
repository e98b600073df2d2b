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

/// Least-squares `avail ≈ c0 + c1·τ + c2·τ²` with `τ = t − now`; returns `(c0, c1, c2)`.
fn fit_quadratic(points: &[Point], now: f64) -> Option<(f64, f64, f64)> {
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
    Some((c[0], c[1] / scale, c[2] / (scale * scale)))
}

/// Solves a 3×3 linear system by Cramer's rule.
fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
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
    let (_, c1, c2) = fit_quadratic(window, end)?;
    if c1 >= 0.0 || c2 >= 0.0 {
        return None;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    const H: f64 = 3600.0;

    /// Samples every minute over `hours`, avail given by `f(t)` with t in seconds from start.
    fn trace(hours: f64, f: impl Fn(f64) -> f64) -> Vec<Point> {
        let n = (hours * 60.0) as usize;
        (0..=n)
            .map(|i| {
                let t = i as f64 * 60.0;
                Point {
                    t,
                    avail: f(t).max(0.0),
                }
            })
            .collect()
    }

    fn run(points: &[Point], capacity: f64) -> Forecast {
        let now = points.last().unwrap().t;
        forecast(
            points,
            capacity,
            now,
            7.0 * 86_400.0,
            &ForecastParams::default(),
        )
    }

    #[test]
    fn steady_growth_is_accurate() {
        // 100 GiB free, 2 GiB/h: after 12 h, 76 GiB left → 38 h.
        let pts = trace(12.0, |t| 100.0 * GIB - 2.0 * GIB * t / H);
        let eta = run(&pts, 200.0 * GIB).eta_seconds().unwrap();
        assert!((eta / H - 38.0).abs() < 0.1, "eta {}", eta / H);
    }

    #[test]
    fn accelerating_growth_is_earlier_than_a_straight_line() {
        // Rate grows from 1 GiB/h by 0.5 GiB/h every hour.
        let f = |t: f64| {
            let h = t / H;
            60.0 * GIB - (1.0 * h + 0.25 * h * h) * GIB
        };
        let pts = trace(8.0, f);
        let fc = run(&pts, 100.0 * GIB);
        let Forecast::Filling {
            eta_seconds,
            accelerating,
            ..
        } = fc
        else {
            panic!("{fc:?}")
        };
        assert!(accelerating);
        // True crossing: 0.25h² + h − 60 = 0 → h ≈ 13.62, i.e. ≈ 5.62 h from now.
        assert!(
            (eta_seconds / H - 5.62).abs() < 0.3,
            "eta {}",
            eta_seconds / H
        );
        // A straight line over 6 h would say far later.
        let line = fit_line(tail(&pts, 2.0 * H)).unwrap();
        let linear_eta = pts.last().unwrap().avail / -line.slope;
        assert!(eta_seconds < linear_eta * 0.8);
    }

    #[test]
    fn sawtooth_that_is_freed_again_is_not_filling() {
        // Fills 3 GiB in 50 min, freed every hour, on a disk with 10 GiB free.
        let pts = trace(12.0, |t| {
            10.0 * GIB - 3.0 * GIB * ((t % H) / (50.0 * 60.0)).min(1.0)
        });
        let fc = run(&pts, 100.0 * GIB);
        let eta = fc.eta_seconds();
        assert!(eta.is_none() || eta.unwrap() > 24.0 * H, "{fc:?}");
    }

    #[test]
    fn a_fresh_burst_after_a_calm_does_not_predict_doom() {
        // Flat for 10 h, then 2 GiB written in the last 20 minutes.
        let pts = trace(10.0 + 1.0 / 3.0, |t| {
            if t < 10.0 * H {
                20.0 * GIB
            } else {
                20.0 * GIB - 2.0 * GIB * (t - 10.0 * H) / (H / 3.0)
            }
        });
        let fc = run(&pts, 100.0 * GIB);
        let eta = fc.eta_seconds();
        assert!(eta.is_none() || eta.unwrap() > 24.0 * H, "{fc:?}");
    }

    #[test]
    fn noise_without_trend_is_not_filling() {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let pts: Vec<Point> = (0..720)
            .map(|i| Point {
                t: i as f64 * 60.0,
                avail: 10.0 * GIB + rnd() * GIB,
            })
            .collect();
        assert!(matches!(
            run(&pts, 100.0 * GIB),
            Forecast::NotFilling { .. }
        ));
    }

    #[test]
    fn a_full_disk_stays_full_even_with_zero_rate() {
        let pts = trace(6.0, |_| 0.0);
        assert_eq!(run(&pts, 100.0 * GIB), Forecast::Full);
        assert_eq!(run(&pts, 100.0 * GIB).eta_seconds(), Some(0.0));
    }

    #[test]
    fn short_history_is_said_not_guessed() {
        let pts = trace(0.2, |t| 10.0 * GIB - t * 1000.0);
        assert!(matches!(
            run(&pts, 100.0 * GIB),
            Forecast::NotEnoughHistory { .. }
        ));
        assert!(matches!(
            forecast(&[], 1.0, 0.0, 0.0, &ForecastParams::default()),
            Forecast::NotEnoughHistory { .. }
        ));
    }

    #[test]
    fn no_eta_further_ahead_than_twice_the_observed_history() {
        // 40 min of a steep ramp: 3.5 h to full is further than 2 × 40 min.
        let pts = trace(40.0 / 60.0, |t| 21.0 * GIB - 6.0 * GIB * t / H);
        let now = pts.last().unwrap().t;
        let fc = forecast(&pts, 100.0 * GIB, now, now, &ForecastParams::default());
        assert!(matches!(fc, Forecast::NotEnoughHistory { .. }), "{fc:?}");
        // The same numbers watched for a day (history kept beyond the window) give the ETA.
        let fc = forecast(&pts, 100.0 * GIB, now, 86_400.0, &ForecastParams::default());
        assert!(matches!(fc, Forecast::Filling { .. }), "{fc:?}");
    }

    #[test]
    fn quadratic_fit_recovers_coefficients() {
        let pts: Vec<Point> = (0..50)
            .map(|i| {
                let t = i as f64 * 600.0;
                let tau = t - 29_400.0;
                Point {
                    t,
                    avail: 5.0 + 2.0 * tau - 0.001 * tau * tau,
                }
            })
            .collect();
        let (c0, c1, c2) = fit_quadratic(&pts, 29_400.0).unwrap();
        assert!((c0 - 5.0).abs() < 1e-3 && (c1 - 2.0).abs() < 1e-6 && (c2 + 0.001).abs() < 1e-9);
    }
}
