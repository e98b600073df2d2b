//! Unit tests of the postgres rules.
use super::*;
use crate::model::Status;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn at(t: f64) -> Moment {
    Moment {
        mono: t,
        wall: 1_700_000_000.0 + t,
    }
}

type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
type SlotCase = (bool, f64, WalStatus, f64, Option<Severity>, &'static str);

fn obs(samples: &[Row<'_>]) -> Observation {
    let mut o = Observation::new(Status::Ok, "");
    for (n, l, v) in samples {
        let labels: Labels = l
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        o.samples.push(Sample::new(n, &labels, *v));
    }
    o
}

fn find<'c>(c: &'c [Condition], rule: &str) -> &'c Condition {
    c.iter()
        .find(|c| c.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} in {c:#?}"))
}

#[test]
fn slot_table() {
    // (active, retained GiB, wal_status, growth GiB/h, expected severity, words)
    let cases: &[SlotCase] = &[
        (true, 0.01, WalStatus::Reserved, 0.0, None, "active"),
        (
            false,
            0.5,
            WalStatus::Reserved,
            0.0,
            Some(Severity::Warning),
            "no standby is using it",
        ),
        (
            false,
            11.0,
            WalStatus::Extended,
            0.0,
            Some(Severity::Critical),
            "over the critical",
        ),
        (
            false,
            2.0,
            WalStatus::Extended,
            6.0,
            Some(Severity::Critical),
            "reaches 10.0 GiB in 1h20m",
        ),
        (
            false,
            2.0,
            WalStatus::Extended,
            1.0,
            Some(Severity::Warning),
            "inactive",
        ),
        (
            true,
            1.0,
            WalStatus::Unreserved,
            0.0,
            Some(Severity::Critical),
            "will lose WAL at the next checkpoint",
        ),
        (
            false,
            0.0,
            WalStatus::Lost,
            0.0,
            Some(Severity::Critical),
            "re-clone the standby",
        ),
    ];
    for (active, gib, st, rate, sev, words) in cases {
        let rules = PgRules::new(PgRuleParams::default());
        let growth = (*rate > 0.0).then_some(rate * GIB / 3600.0);
        let c = rules.slot_condition("node2", *active, Some(gib * GIB), Some(*st), None, growth);
        assert_eq!(c.severity, *sev, "{c:?}");
        assert!(c.message.contains(words), "{words:?} not in {}", c.message);
        assert!(c.message.contains("node2"), "{}", c.message);
    }
}

#[test]
fn growth_comes_from_history_and_feeds_the_cause_note() {
    let mut r = PgRules::new(PgRuleParams::default());
    let mk = |retained: f64| {
        obs(&[
            (samples::SLOT_ACTIVE, &[("slot", "node2")], 0.0),
            (samples::SLOT_RETAINED, &[("slot", "node2")], retained),
            (samples::SLOT_WAL_STATUS, &[("slot", "node2")], 1.0),
            (samples::WAL_MOUNT, &[("mount", "/db")], 1.0),
        ])
    };
    let mut o = mk(1.0 * GIB);
    r.evaluate(&mut o, at(0.0));
    let mut o = mk(1.0 * GIB + 6.0 * GIB / 60.0);
    let c = r.evaluate(&mut o, at(60.0));
    let slot = find(&c, rule_names::SLOT);
    assert_eq!(slot.severity, Some(Severity::Critical), "{}", slot.message);
    assert!(slot.message.contains("+6.0 GiB/h"), "{}", slot.message);
    let cause: Labels = [
        ("mount".to_string(), "/db".to_string()),
        (
            "cause".to_string(),
            "WAL retained by inactive slot node2".to_string(),
        ),
    ]
    .into();
    assert!(o.sample(samples::CAUSE_BYTES, &cause).is_some());
    let g = o.sample(samples::CAUSE_GROWTH, &cause).unwrap();
    assert!((g * 3600.0 / GIB - 6.0).abs() < 1e-9);
    assert_eq!(o.status, Status::Critical);
}

#[test]
fn missing_standby_is_named_with_its_start() {
    let mut r = PgRules::new(PgRuleParams::default());
    let mut o = obs(&[
        (samples::STANDBY_CONNECTED, &[("standby", "node2")], 0.0),
        (
            samples::STANDBY_MISSING_SINCE,
            &[("standby", "node2")],
            1_700_000_000.0,
        ),
    ]);
    let c = r.evaluate(&mut o, at(125.0));
    let m = find(&c, rule_names::STANDBY_MISSING);
    assert_eq!(m.severity, Some(Severity::Critical));
    assert!(
        m.message.starts_with(
            "standby node2 is not connected (missing since 2023-11-14T22:13:20Z, 2m05s ago)"
        ),
        "{}",
        m.message
    );
}

#[test]
fn standby_receiver_paused_and_heartbeat() {
    let params = PgRuleParams {
        heartbeat_warning: 3.0,
        heartbeat_critical: 10.0,
        ..Default::default()
    };
    let mut r = PgRules::new(params);
    let mut o = obs(&[
        (samples::RECEIVER_UP, &[], 0.0),
        (samples::REPLAY_PAUSED, &[], 1.0),
        (samples::HEARTBEAT_AGE, &[], 4.2),
    ]);
    let c = r.evaluate(&mut o, at(0.0));
    assert_eq!(
        find(&c, rule_names::RECEIVER).severity,
        Some(Severity::Critical)
    );
    assert!(
        find(&c, rule_names::RECEIVER)
            .message
            .starts_with("WAL receiver is down")
    );
    assert_eq!(
        find(&c, rule_names::PAUSED).severity,
        Some(Severity::Warning)
    );
    let hb = find(&c, rule_names::HEARTBEAT);
    assert_eq!(hb.severity, Some(Severity::Warning), "{}", hb.message);
    let mut o = obs(&[(samples::HEARTBEAT_AGE, &[], 11.0)]);
    let c = r.evaluate(&mut o, at(1.0));
    assert_eq!(
        find(&c, rule_names::HEARTBEAT).severity,
        Some(Severity::Critical)
    );
    let mut o = obs(&[(samples::HEARTBEAT_AGE, &[], 1.0)]);
    let c = r.evaluate(&mut o, at(2.0));
    assert_eq!(find(&c, rule_names::HEARTBEAT).severity, None);
}

#[test]
fn too_few_standbys_by_count() {
    let mut r = PgRules::new(PgRuleParams::default());
    let mut o = obs(&[
        (samples::STANDBY_COUNT, &[], 1.0),
        (samples::STANDBY_EXPECTED, &[], 2.0),
    ]);
    let c = r.evaluate(&mut o, at(0.0));
    let t = find(&c, rule_names::TOO_FEW);
    assert_eq!(t.severity, Some(Severity::Critical));
    assert!(
        t.message.starts_with("only 1 of 2 expected standbys"),
        "{}",
        t.message
    );
}

#[test]
fn wal_status_codes_round_trip() {
    for w in ["reserved", "extended", "unreserved", "lost"] {
        let s = WalStatus::parse(w).unwrap();
        assert_eq!(WalStatus::from_code(s.code()), Some(s));
        assert_eq!(s.as_str(), w);
    }
    assert_eq!(WalStatus::parse("bogus"), None);
}

#[test]
fn slot_growth_reacts_to_a_new_steady_rate_within_two_intervals() {
    // A 30 s probe: 15 minutes flat, then 2.7 GiB/h. The estimate is the new rate after two
    // intervals (a 15-minute average read +117 MiB/h at this point in the field).
    let c: crate::probe::postgres::PostgresConfig = toml::from_str("").unwrap();
    let mut r = PgRules::new(c.rule_params(std::time::Duration::from_secs(30)));
    let rate = 2.7 * GIB / 3600.0;
    let mk = |retained: f64| {
        obs(&[
            (samples::SLOT_ACTIVE, &[("slot", "node2")], 0.0),
            (samples::SLOT_RETAINED, &[("slot", "node2")], retained),
        ])
    };
    let mut t = 0.0;
    while t <= 900.0 {
        r.evaluate(&mut mk(16.0e6), at(t));
        t += 30.0;
    }
    let growth = |o: &Observation| {
        o.sample(
            samples::SLOT_GROWTH,
            &[("slot".to_string(), "node2".to_string())].into(),
        )
    };
    let mut seen = Vec::new();
    for k in 1..=3 {
        let mut o = mk(16.0e6 + rate * 30.0 * k as f64);
        r.evaluate(&mut o, at(900.0 + 30.0 * k as f64));
        seen.push(growth(&o).unwrap());
    }
    assert!((seen[1] - rate).abs() < 1e-6 * rate, "{seen:?} vs {rate}");
    assert!((seen[2] - rate).abs() < 1e-6 * rate, "{seen:?} vs {rate}");
}

#[test]
fn role_mismatch_names_the_options_and_clears() {
    let c: crate::probe::postgres::PostgresConfig =
        toml::from_str("expected_standbys = [\"node2\"]\nwrite_check = true").unwrap();
    let mut r = PgRules::new(c.rule_params(std::time::Duration::from_secs(30)));
    let mut o = obs(&[(samples::IN_RECOVERY, &[], 1.0)]);
    let cs = r.evaluate(&mut o, at(0.0));
    let m = find(&cs, rule_names::ROLE_MISMATCH);
    assert_eq!(m.severity, Some(Severity::Critical));
    assert!(
        m.message
            .starts_with("role mismatch: this server is a standby")
            && m.message
                .contains("expected_standbys, write_check cannot apply"),
        "{}",
        m.message
    );
    let mut o = obs(&[(samples::IN_RECOVERY, &[], 0.0)]);
    let cs = r.evaluate(&mut o, at(1.0));
    assert_eq!(find(&cs, rule_names::ROLE_MISMATCH).severity, None);
    // No expectation: never a mismatch.
    let mut r = PgRules::new(PgRuleParams::default());
    let mut o = obs(&[(samples::IN_RECOVERY, &[], 1.0)]);
    assert_eq!(
        find(&r.evaluate(&mut o, at(0.0)), rule_names::ROLE_MISMATCH).severity,
        None
    );
}

#[test]
fn a_stale_heartbeat_names_the_primary_probes_write_failure_when_known() {
    let mut r = PgRules::new(PgRuleParams::default());
    let mut o = obs(&[(samples::HEARTBEAT_AGE, &[], 200.0)]);
    let c = r.evaluate(&mut o, at(1000.0));
    let m = &find(&c, rule_names::HEARTBEAT).message;
    assert!(m.contains("this standby is not replaying"), "{m}");
    let failure = "cannot write the heartbeat: permission denied for table lookout_heartbeat";
    let mut o = obs(&[
        (samples::HEARTBEAT_AGE, &[], 200.0),
        (
            samples::HEARTBEAT_WRITER_FAILING,
            &[("probe", "db1"), ("failure", failure)],
            1_700_000_800.0,
        ),
    ]);
    let c = r.evaluate(&mut o, at(1000.0));
    let h = find(&c, rule_names::HEARTBEAT);
    assert_eq!(h.severity, Some(Severity::Warning));
    assert!(
        h.message.starts_with(
            "replication heartbeat is 3m20s old: the primary's probe db1 has failed to write it \
             since "
        ) && h.message.contains(failure)
            && !h.message.contains("not replaying"),
        "{}",
        h.message
    );
}

#[test]
fn resolutions_say_what_is_true_now() {
    let mut r = PgRules::new(PgRuleParams::default());
    let mut o = obs(&[(samples::HEARTBEAT_AGE, &[], 200.0)]);
    let c = r.evaluate(&mut o, at(1000.0));
    assert!(find(&c, rule_names::HEARTBEAT).severity.is_some());
    let mut o = obs(&[(samples::HEARTBEAT_AGE, &[], 3.0)]);
    let c = r.evaluate(&mut o, at(1010.0));
    let h = find(&c, rule_names::HEARTBEAT);
    assert_eq!(h.severity, None);
    assert!(
        h.message
            .starts_with("replication heartbeat is fresh: 3s old")
            && !h.message.contains("not replaying"),
        "{}",
        h.message
    );
    // A primary (or a mismatched probe) does not evaluate the standby rules: their
    // resolution says why instead of repeating the firing text.
    let mut o = obs(&[(samples::IN_RECOVERY, &[], 0.0)]);
    let c = r.evaluate(&mut o, at(1020.0));
    let h = find(&c, rule_names::HEARTBEAT);
    assert_eq!(h.severity, None);
    assert_eq!(
        h.message,
        "replication heartbeat age: this server is a primary; it is watched on standbys only"
    );
    assert_eq!(
        find(&c, rule_names::ROLE_MISMATCH).message,
        "the server is a primary, as expected"
    );
    let mut r = PgRules::new(PgRuleParams {
        expected: super::super::role::Expected {
            role: super::super::role::RoleOption::Primary,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut o = obs(&[(samples::IN_RECOVERY, &[], 1.0)]);
    let c = r.evaluate(&mut o, at(1030.0));
    assert_eq!(
        find(&c, rule_names::RECEIVER).message,
        "WAL receiver: not checked while the role mismatches"
    );
}
