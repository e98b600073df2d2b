//! Tests of `forecast`.
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

const MIB: f64 = 1024.0 * 1024.0;

/// A deterministic pseudo-random number in [0, 1).
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// Every forecast a daemon would make on `pts` (one per point from the second on), with
/// the series watched since the first point.
fn every_run(pts: &[Point], capacity: f64, params: &ForecastParams) -> Vec<(f64, Forecast)> {
    (2..=pts.len())
        .map(|n| {
            let now = pts[n - 1].t;
            (
                now,
                forecast(&pts[..n], capacity, now, now - pts[0].t, params),
            )
        })
        .collect()
}

/// WAL written in 16 MiB segments at a steady mean rate (pgbench): `rate` bytes per second
/// from `start` on, segment times jittered, sampled every `every` seconds until `until`.
fn wal_steps(free: f64, rate: f64, start: f64, every: f64, until: f64, seed: u64) -> Vec<Point> {
    let mut seed = seed;
    let seg = 16.0 * MIB;
    let mut next_seg = start + seg / rate * (0.5 + lcg(&mut seed));
    let mut avail = free;
    let mut out = Vec::new();
    let mut t = 0.0;
    while t <= until {
        while next_seg <= t {
            avail -= seg;
            next_seg += seg / rate * (0.5 + lcg(&mut seed));
        }
        out.push(Point {
            t,
            avail: avail.max(0.0),
        });
        t += every;
    }
    out
}

#[test]
fn a_steady_fill_in_16_mib_steps_is_never_accelerating_nor_early() {
    // 2.7 GiB/h of WAL on 600 MiB free, sampled every 2 s with a 5-minute window; three
    // seeds of segment timing.
    let rate = 2.7 * 1024.0 * MIB / H;
    let params = ForecastParams {
        window: 300.0,
        min_history: 60.0,
        ..Default::default()
    };
    for seed in [1, 2, 3] {
        let pts = wal_steps(600.0 * MIB, rate, 0.0, 2.0, 700.0, seed);
        for (now, fc) in every_run(&pts, 4096.0 * MIB, &params) {
            let Forecast::Filling {
                eta_seconds,
                accelerating,
                ..
            } = fc
            else {
                continue;
            };
            assert!(!accelerating, "seed {seed} at {now}s: {fc:?}");
            // True time to full at the mean rate (one segment of slack for the steps).
            let avail = pts.iter().find(|p| p.t == now).unwrap().avail;
            let truth = (avail - 16.0 * MIB) / rate;
            assert!(
                eta_seconds >= 0.8 * truth,
                "seed {seed} at {now}s: ETA {eta_seconds:.0}s, truth ≥ {truth:.0}s"
            );
        }
    }
}

#[test]
fn a_steady_fill_that_started_inside_the_window_is_not_accelerating() {
    // Quiet for 3 minutes, then a steady 4 MiB/s; 1 s samples, 60 s window (the real fill
    // test's settings): the kink between calm and fill bends a whole-window parabola.
    let params = ForecastParams {
        window: 60.0,
        min_history: 5.0,
        ..Default::default()
    };
    let pts: Vec<Point> = (0..=240)
        .map(|i| {
            let t = i as f64;
            Point {
                t,
                avail: 230.0 * MIB - 4.0 * MIB * (t - 180.0).max(0.0),
            }
        })
        .collect();
    for (now, fc) in every_run(&pts, 243.0 * MIB, &params) {
        if let Forecast::Filling {
            eta_seconds,
            accelerating,
            ..
        } = fc
        {
            assert!(!accelerating, "at {now}s: {fc:?}");
            let avail = pts.iter().find(|p| p.t == now).unwrap().avail;
            assert!(
                eta_seconds >= avail / (4.0 * MIB) - 1.0,
                "at {now}s: {fc:?}"
            );
        }
    }
}

#[test]
fn accelerating_wal_in_16_mib_steps_is_still_accelerating() {
    // The rate doubles every 10 minutes: 1 → 8 GiB/h over half an hour, in 16 MiB segments.
    let mut seed = 9u64;
    let mut pts = Vec::new();
    let (mut avail, mut t, mut next) = (4.0 * 1024.0 * MIB, 0.0, 0.0);
    let rate = |t: f64| 1024.0 * MIB / H * 2f64.powf(t / 600.0);
    while t <= 1800.0 {
        while next <= t {
            avail -= 16.0 * MIB;
            next += 16.0 * MIB / rate(next) * (0.5 + lcg(&mut seed));
        }
        pts.push(Point { t, avail });
        t += 10.0;
    }
    let params = ForecastParams {
        window: 1800.0,
        min_history: 300.0,
        ..Default::default()
    };
    let now = pts.last().unwrap().t;
    let fc = forecast(&pts, 100.0 * 1024.0 * MIB, now, now, &params);
    assert!(
        matches!(
            fc,
            Forecast::Filling {
                accelerating: true,
                ..
            }
        ),
        "{fc:?}"
    );
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
    let q = fit_quadratic(&pts, 29_400.0).unwrap();
    let (c0, c1, c2) = (q.c0, q.c1, q.c2);
    assert!((c0 - 5.0).abs() < 1e-3 && (c1 - 2.0).abs() < 1e-6 && (c2 + 0.001).abs() < 1e-9);
    assert!(q.c2_std_err < 1e-9, "an exact parabola: {q:?}");
}
