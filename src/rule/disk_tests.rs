//! Tests of `disk`.
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

fn fast() -> DiskRuleParams {
    DiskRuleParams {
        forecast: ForecastParams {
            window: 60.0,
            min_history: 5.0,
            ..Default::default()
        },
        warning_within: 60.0,
        critical_within: 20.0,
        warning_floor: Floor::Absolute(MIB),
        critical_floor: Floor::Absolute(0.5 * MIB),
        ..Default::default()
    }
}

/// The `disk_full` severities of every run over `(t, avail)` on a 256 MiB disk.
fn severities(rules: &mut DiskRules, series: &[(f64, f64)]) -> Vec<Option<Severity>> {
    let l = labels([("mount", "/db")]);
    series
        .iter()
        .map(|&(t, avail)| {
            let mut obs = observation_from_raw(&l, 2048.0 * MIB, avail, avail + 12.0 * MIB);
            let c = rules.evaluate(&mut obs, Moment::replayed(t));
            c[0].severity
        })
        .collect()
}

/// How often a run of active severities was interrupted by a clear one.
fn flaps(sev: &[Option<Severity>]) -> usize {
    sev.windows(2)
        .filter(|w| w[0].is_some() && w[1].is_none())
        .count()
}

#[test]
fn a_steady_fill_across_the_lookahead_edge_fires_once_and_never_clears() {
    // WAL in 16 MiB segments every 4–6.4 s (pgbench), sampled every second after 10 quiet
    // seconds, 1 GiB free, warning within 10 minutes: the ETA (≈ 4 min, jittering by
    // ±10 s) crosses twice the time watched, and a run on the wrong side of that bound
    // says "not enough history". Twenty segment timings.
    for seed in 1..=20u64 {
        let mut seed = seed;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut writes = Vec::new();
        let mut t = 10.0;
        while t < 250.0 {
            writes.push(t);
            t += 4.0 * (1.0 + 0.6 * rnd());
        }
        let series: Vec<(f64, f64)> = (0..250)
            .map(|i| {
                let t = i as f64;
                let written = writes.iter().filter(|w| **w <= t).count() as f64;
                (t, (1024.0 * MIB - 16.0 * MIB * written).max(0.0))
            })
            .collect();
        let params = DiskRuleParams {
            warning_within: 600.0,
            critical_within: 60.0,
            ..fast()
        };
        let sev = severities(&mut DiskRules::new(params), &series);
        assert!(sev.iter().any(Option::is_some), "{sev:?}");
        assert_eq!(flaps(&sev), 0, "{sev:?}");
    }
}

#[test]
fn a_fill_in_bursts_is_not_released_in_its_pauses() {
    // 16 MiB written, 1 s, 16 MiB, 9 s, … on 270 MiB free with a 30 s window: in every
    // long pause the short windows say "not filling"; the whole window still fills.
    let mut writes = Vec::new();
    let (mut t, mut i) = (5.0, 0);
    while t < 120.0 {
        writes.push(t);
        t += 0.3 + [1.0, 9.0][i % 2];
        i += 1;
    }
    let series: Vec<(f64, f64)> = (0..120)
        .map(|s| {
            let t = s as f64;
            let written = writes.iter().filter(|w| **w <= t).count() as f64;
            (t, 270.0 * MIB - 16.0 * MIB * written)
        })
        .take_while(|(_, avail)| *avail > 16.0 * MIB)
        .collect();
    let params = DiskRuleParams {
        forecast: ForecastParams {
            window: 30.0,
            ..fast().forecast
        },
        warning_within: 600.0,
        critical_within: 15.0,
        ..fast()
    };
    let sev = severities(&mut DiskRules::new(params), &series);
    assert!(sev.iter().any(Option::is_some), "{sev:?}");
    assert_eq!(flaps(&sev), 0, "{sev:?}");
}

#[test]
fn not_enough_history_keeps_a_firing_forecast_with_a_note() {
    let mut rules = DiskRules::new(fast());
    let fill: Vec<(f64, f64)> = (0..=25)
        .map(|i| (i as f64, 200.0 * MIB - 4.0 * MIB * i as f64))
        .collect();
    let sev = severities(&mut rules, &fill);
    assert_eq!(sev.last(), Some(&Some(Severity::Warning)), "{sev:?}");
    // A gap in the history (the probe was not run, the store was restored late): the
    // forecaster cannot say anything, which is no news.
    let l = labels([("mount", "/db")]);
    rules.history.clear();
    let mut obs = observation_from_raw(&l, 2048.0 * MIB, 96.0 * MIB, 108.0 * MIB);
    let c = rules.evaluate(&mut obs, Moment::replayed(26.0));
    assert_eq!(c[0].severity, Some(Severity::Warning), "{}", c[0].message);
    assert!(
        c[0].message.contains("not enough history")
            && c[0]
                .message
                .contains("the last forecast (full in 25s as of 1s ago) stands"),
        "{}",
        c[0].message
    );
    assert_eq!(c[0].value, Some(24.0), "the held ETA, counted down");
}

#[test]
fn a_held_forecast_needs_evidence_to_clear() {
    // The fill stops: flat for a while. The forecast stands down only after
    // `release.runs` runs with the trend gone, not at the first one.
    let mut rules = DiskRules::new(fast());
    let mut series: Vec<(f64, f64)> = (0..=30)
        .map(|i| (i as f64, 200.0 * MIB - 4.0 * MIB * i as f64))
        .collect();
    series.extend((31..=120).map(|i| (i as f64, 80.0 * MIB)));
    let sev = severities(&mut rules, &series);
    let cleared = sev.iter().rposition(Option::is_some).unwrap() + 1;
    assert!(cleared < series.len(), "the flat disk clears: {sev:?}");
    assert_eq!(flaps(&sev), 1, "{sev:?}");
    // Space freed clears at once (2 % of the users' capacity above the lowest point).
    let mut rules = DiskRules::new(fast());
    let fill: Vec<(f64, f64)> = (0..=30)
        .map(|i| (i as f64, 200.0 * MIB - 4.0 * MIB * i as f64))
        .collect();
    severities(&mut rules, &fill);
    let sev = severities(&mut rules, &[(31.0, 150.0 * MIB)]);
    assert_eq!(sev, vec![None]);
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
