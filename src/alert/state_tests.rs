//! Tests of `state`.
use super::*;
use crate::model::labels;

fn cond(sev: Option<Severity>) -> Condition {
    Condition {
        rule: "disk_full".into(),
        labels: labels([("mount", "/")]),
        severity: sev,
        message: "m".into(),
        value: None,
        started_at: None,
    }
}

fn at(t: f64) -> Moment {
    Moment {
        mono: t,
        wall: 1_000_000.0 + t,
    }
}

fn kinds(events: Vec<Option<AlertEvent>>) -> Vec<AlertEventKind> {
    events.into_iter().flatten().map(|e| e.kind).collect()
}

#[test]
fn fingerprints_are_stable_and_label_sensitive() {
    let a = fingerprint("disk_full", "disks", &labels([("mount", "/")]));
    assert_eq!(
        a,
        fingerprint("disk_full", "disks", &labels([("mount", "/")]))
    );
    assert_ne!(
        a,
        fingerprint("disk_full", "disks", &labels([("mount", "/var")]))
    );
    assert_eq!(a.len(), 16);
}

#[test]
fn pending_waits_for_the_for_duration_then_fires_once() {
    let p = AlertPolicy {
        for_seconds: 10.0,
        ..Default::default()
    };
    let c = cond(Some(Severity::Warning));
    let mut a = Alert::new("disks", &c, at(0.0));
    let ev = kinds(vec![
        a.observe(&c, &p, false, at(0.0)),
        a.observe(&c, &p, false, at(5.0)),
    ]);
    assert!(ev.is_empty());
    assert_eq!(a.state, AlertState::Pending);
    let ev = kinds(vec![
        a.observe(&c, &p, false, at(10.0)),
        a.observe(&c, &p, false, at(11.0)),
    ]);
    assert_eq!(ev, vec![AlertEventKind::Firing]);
    assert_eq!(a.started_at, Some(1_000_010.0));
}

#[test]
fn pending_that_clears_goes_away_silently() {
    let p = AlertPolicy {
        for_seconds: 10.0,
        ..Default::default()
    };
    let mut a = Alert::new("disks", &cond(None), at(0.0));
    let ev = kinds(vec![
        a.observe(&cond(Some(Severity::Critical)), &p, false, at(0.0)),
        a.observe(&cond(None), &p, false, at(1.0)),
    ]);
    assert!(ev.is_empty());
    assert_eq!(a.state, AlertState::Resolved);
}

#[test]
fn hysteresis_needs_consecutive_results_both_ways() {
    let p = AlertPolicy {
        fail_after: 3,
        recover_after: 2,
        for_seconds: 0.0,
    };
    let on = cond(Some(Severity::Critical));
    let off = cond(None);
    let mut a = Alert::new("x", &on, at(0.0));
    let ev = kinds(vec![
        a.observe(&on, &p, false, at(1.0)),
        a.observe(&on, &p, false, at(2.0)),
        a.observe(&off, &p, false, at(3.0)),
        a.observe(&on, &p, false, at(4.0)),
        a.observe(&on, &p, false, at(5.0)),
    ]);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(
        kinds(vec![a.observe(&on, &p, false, at(6.0))]),
        vec![AlertEventKind::Firing]
    );
    assert!(
        kinds(vec![
            a.observe(&off, &p, false, at(7.0)),
            a.observe(&on, &p, false, at(8.0)),
            a.observe(&off, &p, false, at(9.0))
        ])
        .is_empty()
    );
    assert_eq!(
        kinds(vec![a.observe(&off, &p, false, at(10.0))]),
        vec![AlertEventKind::Resolved]
    );
    assert_eq!(a.resolved_at, Some(1_000_010.0));
}

#[test]
fn severity_changes_are_events_and_a_worse_one_reopens_an_ack() {
    let p = AlertPolicy::default();
    let warn = cond(Some(Severity::Warning));
    let crit = cond(Some(Severity::Critical));
    let mut a = Alert::new("x", &warn, at(0.0));
    a.observe(&warn, &p, false, at(0.0));
    assert!(a.acknowledge("alice", at(1.0)).is_some());
    assert_eq!(a.state, AlertState::Acknowledged);
    assert!(
        a.acknowledge("bob", at(1.5)).is_none(),
        "already acknowledged"
    );
    let e = a.observe(&crit, &p, false, at(2.0)).unwrap();
    assert_eq!(
        e.kind,
        AlertEventKind::SeverityChanged {
            from: Severity::Warning
        }
    );
    assert_eq!(a.state, AlertState::Firing);
    assert_eq!(a.acked_by, None);
    // Better again while acknowledged stays acknowledged.
    a.acknowledge("alice", at(3.0));
    a.observe(&warn, &p, false, at(4.0));
    assert_eq!(a.state, AlertState::Acknowledged);
}

#[test]
fn suppressed_alerts_do_not_notify_and_clear_quietly() {
    let p = AlertPolicy::default();
    let on = cond(Some(Severity::Critical));
    let mut a = Alert::new("x", &on, at(0.0));
    let e = a.observe(&on, &p, true, at(0.0)).unwrap();
    assert_eq!(e.kind, AlertEventKind::Suppressed);
    assert!(!e.kind.notifies());
    assert!(a.observe(&on, &p, true, at(1.0)).is_none());
    // Dependency recovers while the condition still holds: now it fires.
    assert_eq!(
        a.observe(&on, &p, false, at(2.0)).unwrap().kind,
        AlertEventKind::Firing
    );
    let mut b = Alert::new("x", &on, at(0.0));
    b.observe(&on, &p, true, at(0.0));
    assert!(b.observe(&cond(None), &p, true, at(1.0)).is_none());
    assert_eq!(b.state, AlertState::Resolved);
}

#[test]
fn a_restored_firing_alert_does_not_fire_again() {
    let p = AlertPolicy::default();
    let on = cond(Some(Severity::Critical));
    let mut a = Alert::new("x", &on, at(0.0));
    a.observe(&on, &p, false, at(0.0));
    let stored = serde_json::to_string(&a).unwrap();
    let mut back: Alert = serde_json::from_str::<Alert>(&stored)
        .unwrap()
        .restore(at(100.0));
    assert!(back.observe(&on, &p, false, at(100.0)).is_none());
    assert_eq!(back.started_at, a.started_at);
    assert_eq!(back.state, AlertState::Firing);
}

#[test]
fn a_restored_pending_alert_keeps_its_for_clock() {
    let p = AlertPolicy {
        for_seconds: 60.0,
        ..Default::default()
    };
    let on = cond(Some(Severity::Critical));
    let mut a = Alert::new("x", &on, at(0.0));
    a.observe(&on, &p, false, at(0.0));
    let stored = serde_json::to_string(&a).unwrap();
    // A new process: its monotonic clock starts elsewhere, the wall clock went on 50 s.
    let now = Moment {
        mono: 5.0,
        wall: 1_000_050.0,
    };
    let mut back: Alert = serde_json::from_str::<Alert>(&stored).unwrap().restore(now);
    assert!(back.observe(&on, &p, false, now).is_none());
    let later = Moment {
        mono: 15.0,
        wall: 1_000_060.0,
    };
    assert_eq!(
        back.observe(&on, &p, false, later).unwrap().kind,
        AlertEventKind::Firing
    );
}

#[test]
fn a_pending_alert_after_a_resolved_episode_is_since_its_pending_start() {
    let p = AlertPolicy {
        for_seconds: 10.0,
        ..Default::default()
    };
    let on = cond(Some(Severity::Warning));
    let off = cond(None);
    let mut a = Alert::new("disks", &on, at(0.0));
    a.observe(&on, &p, false, at(0.0));
    a.observe(&on, &p, false, at(10.0));
    assert_eq!(a.state, AlertState::Firing);
    a.observe(&off, &p, false, at(20.0));
    assert_eq!(a.state, AlertState::Resolved);
    a.observe(&on, &p, false, at(30.0));
    assert_eq!(a.state, AlertState::Pending);
    assert_eq!(crate::api::alert_since(&a), Some(1_000_030.0));
    // Suppressed from pending: the new episode starts then, not at the first one's start.
    a.observe(&on, &p, true, at(40.0));
    assert_eq!(a.state, AlertState::Suppressed);
    assert_eq!(a.started_at, Some(1_000_040.0));
    assert_eq!(crate::api::alert_since(&a), Some(1_000_040.0));
    // An open episode has no length yet (the last one's was 10 s).
    assert_eq!(a.lasted_seconds, None);
}

#[test]
fn a_pending_alert_that_clears_keeps_the_last_episodes_length() {
    let p = AlertPolicy {
        for_seconds: 10.0,
        ..Default::default()
    };
    let on = cond(Some(Severity::Warning));
    let off = cond(None);
    let mut a = Alert::new("disks", &on, at(0.0));
    a.observe(&on, &p, false, at(0.0));
    a.observe(&on, &p, false, at(10.0));
    a.observe(&off, &p, false, at(20.0));
    assert_eq!(a.lasted_seconds, Some(10.0));
    // Pending for a moment, then clear: no episode began, the last one stays as it was.
    a.observe(&on, &p, false, at(100.0));
    a.observe(&off, &p, false, at(105.0));
    assert_eq!(a.state, AlertState::Resolved);
    assert_eq!(a.lasted_seconds, Some(10.0));
}
