//! Tests of `engine`.
use super::*;
use crate::alert::{AlertEventKind, AlertState};
use crate::model::labels;
use crate::rule::NoRules;

fn spec(id: &str, deps: &[&str]) -> ProbeSpec {
    ProbeSpec {
        id: id.into(),
        kind: "command".into(),
        depends_on: deps.iter().map(|s| s.to_string()).collect(),
        policy: AlertPolicy::default(),
        unknown_severity: Severity::Critical,
        labels: Default::default(),
        recover_within: 60.0,
        did_not_recover_severity: Severity::Critical,
    }
}

fn at(t: f64) -> Moment {
    Moment {
        mono: t,
        wall: 2_000_000.0 + t,
    }
}

#[test]
fn dependants_of_a_failing_probe_are_suppressed() {
    let mut e = Engine::new();
    e.set_probe(spec("postgres", &[]), Box::new(NoRules));
    e.set_probe(spec("synapse", &["postgres"]), Box::new(NoRules));
    e.set_probe(spec("bridge", &["synapse"]), Box::new(NoRules));
    let down = || Observation::new(Status::Critical, "down");
    let (_, ev) = e.ingest("postgres", down(), at(0.0));
    assert_eq!(ev[0].kind, AlertEventKind::Firing);
    let (_, ev) = e.ingest("synapse", down(), at(1.0));
    assert_eq!(ev[0].kind, AlertEventKind::Suppressed);
    let (_, ev) = e.ingest("bridge", down(), at(1.0));
    assert_eq!(ev[0].kind, AlertEventKind::Suppressed, "transitive");
    let notified = e.alerts().filter(|a| a.state == AlertState::Firing).count();
    assert_eq!(notified, 1, "one page for postgres down, not three");
}

#[test]
fn a_vanished_series_resolves_its_alert() {
    let mut e = Engine::new();
    e.set_probe(
        spec("disks", &[]),
        Box::new(crate::rule::disk::DiskRules::new(Default::default())),
    );
    let l = labels([("mount", "/mnt")]);
    let full = crate::rule::disk::observation_from_raw(&l, 100.0, 0.0, 5.0);
    let (obs, ev) = e.ingest("disks", full, at(0.0));
    assert_eq!(obs.status, Status::Critical);
    assert_eq!(ev.len(), 1);
    let (_, ev) = e.ingest(
        "disks",
        Observation::new(Status::Ok, "nothing mounted"),
        at(1.0),
    );
    assert_eq!(ev[0].kind, AlertEventKind::Resolved);
}

/// A probe with one labelled series rule: `slot_full{slot=…}` fires for each sample
/// `slot.bytes{slot=…}` above 100 and clears below.
struct SlotRules;

impl crate::rule::RuleSet for SlotRules {
    fn evaluate(&mut self, obs: &mut Observation, _now: Moment) -> Vec<Condition> {
        obs.samples
            .iter()
            .filter(|s| s.name == "slot.bytes")
            .map(|s| {
                let msg = format!("slot holds {}", s.value);
                if s.value > 100.0 {
                    Condition::active("slot_full", s.labels.clone(), Severity::Critical, msg)
                } else {
                    Condition::clear("slot_full", s.labels.clone(), msg)
                }
            })
            .collect()
    }
}

fn slots(values: &[(&str, f64)]) -> Observation {
    let mut o = Observation::new(Status::Ok, "primary");
    for (slot, v) in values {
        o.samples
            .push(Sample::new("slot.bytes", &labels([("slot", slot)]), *v));
    }
    o
}

fn slot_alert(e: &Engine) -> Alert {
    e.alerts().find(|a| a.rule == "slot_full").unwrap().clone()
}

#[test]
fn a_series_that_cannot_be_read_stays_firing_marked_stale_once() {
    let mut e = Engine::new();
    let policy = AlertPolicy {
        recover_after: 2,
        ..Default::default()
    };
    e.set_probe(
        ProbeSpec {
            policy,
            ..spec("db1", &[])
        },
        Box::new(SlotRules),
    );
    let (_, ev) = e.ingest("db1", slots(&[("node2", 390.0)]), at(0.0));
    assert_eq!(ev[0].kind, AlertEventKind::Firing);
    // The server goes away: probe_status fires, the slot alert does not resolve.
    for (i, t) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        let down = Observation::failed(Status::Critical, "127.0.0.1:5432: connection refused");
        let (obs, ev) = e.ingest("db1", down, at(t));
        assert!(
            ev.iter().all(|e| e.alert.rule == "probe_status"),
            "only probe_status changes: {ev:?}"
        );
        let a = slot_alert(&e);
        assert_eq!(a.state, AlertState::Firing);
        assert_eq!(a.message, "slot holds 390", "the last known evidence stays");
        let stale = a.stale.expect("marked stale");
        assert_eq!(stale.since, at(10.0).wall, "since the first failed run");
        assert_eq!(
            stale.reason,
            "db1 failed: 127.0.0.1:5432: connection refused"
        );
        // The note goes to the timeline once, not every run.
        let notes: Vec<&String> = obs.events.iter().filter(|m| m.contains("stale")).collect();
        if i == 0 {
            assert_eq!(notes.len(), 1, "{:?}", obs.events);
            assert!(notes[0].starts_with("slot_full {slot=node2} stays firing, marked stale"));
            assert_eq!(e.take_touched().len(), 1, "the marker is persisted");
        } else {
            assert!(notes.is_empty(), "{:?}", obs.events);
            assert!(e.take_touched().is_empty());
        }
    }
    // A timeout is unreadable evidence too.
    let (_, ev) = e.ingest(
        "db1",
        Observation::timed_out(std::time::Duration::from_secs(5)),
        at(35.0),
    );
    assert!(ev.iter().all(|e| e.alert.rule == "probe_status"), "{ev:?}");
    assert_eq!(slot_alert(&e).state, AlertState::Firing);
    // Fresh evidence: still full → still firing, marker gone, no event for the slot.
    let (obs, ev) = e.ingest("db1", slots(&[("node2", 400.0)]), at(40.0));
    assert!(ev.iter().all(|e| e.alert.rule == "probe_status"), "{ev:?}");
    assert!(slot_alert(&e).stale.is_none());
    assert!(
        obs.events
            .iter()
            .any(|m| m.contains("fresh evidence again")),
        "{:?}",
        obs.events
    );
    // Fresh evidence that the slot emptied resolves it (after recover_after runs).
    e.ingest("db1", slots(&[("node2", 0.0)]), at(50.0));
    let (_, ev) = e.ingest("db1", slots(&[("node2", 0.0)]), at(60.0));
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, AlertEventKind::Resolved);
    assert_eq!(ev[0].alert.lasted_seconds, Some(60.0));
}

#[test]
fn a_series_missing_from_a_complete_observation_resolves_with_one_suffix() {
    let mut e = Engine::new();
    let policy = AlertPolicy {
        recover_after: 3,
        ..Default::default()
    };
    e.set_probe(
        ProbeSpec {
            policy,
            ..spec("db1", &[])
        },
        Box::new(SlotRules),
    );
    e.ingest("db1", slots(&[("node2", 390.0)]), at(0.0));
    // Stale first, then the server answers without the slot (it was dropped).
    e.ingest(
        "db1",
        Observation::failed(Status::Critical, "down"),
        at(1.0),
    );
    let mut last = Vec::new();
    for t in 2..5 {
        last = e.ingest("db1", slots(&[]), at(t as f64)).1;
    }
    let resolved = last
        .iter()
        .find(|e| e.alert.rule == "slot_full")
        .expect("resolved");
    assert_eq!(resolved.kind, AlertEventKind::Resolved);
    assert_eq!(
        resolved.alert.message,
        "slot holds 390 (no longer reported)"
    );
    assert!(resolved.alert.stale.is_none());
}

#[test]
fn an_unknown_observation_without_samples_counts_as_unreadable() {
    let mut e = Engine::new();
    e.set_probe(spec("db1", &[]), Box::new(SlotRules));
    e.ingest("db1", slots(&[("node2", 390.0)]), at(0.0));
    let (_, ev) = e.ingest(
        "db1",
        Observation::new(Status::Unknown, "cannot tell"),
        at(1.0),
    );
    assert!(ev.iter().all(|e| e.alert.rule == "probe_status"), "{ev:?}");
    assert!(slot_alert(&e).stale.is_some());
}

#[test]
fn a_disk_forecast_names_the_cause_another_probe_published() {
    let mut e = Engine::new();
    let disk = crate::rule::disk::DiskRuleParams {
        forecast: crate::rule::forecast::ForecastParams {
            window: 60.0,
            min_history: 5.0,
            ..Default::default()
        },
        warning_within: 3600.0,
        critical_within: 60.0,
        ..Default::default()
    };
    e.set_probe(
        spec("disks", &[]),
        Box::new(crate::rule::disk::DiskRules::new(disk)),
    );
    e.set_probe(spec("db1", &[]), Box::new(NoRules));
    let mib = 1024.0 * 1024.0;
    let cause = labels([
        ("mount", "/db"),
        ("cause", "WAL retained by inactive slot node2"),
    ]);
    let mut pg = Observation::new(Status::Ok, "primary");
    pg.samples
        .push(Sample::new(disk_samples::CAUSE_BYTES, &cause, 600.0 * mib));
    pg.samples
        .push(Sample::new(disk_samples::CAUSE_GROWTH, &cause, mib));
    e.ingest("db1", pg, at(0.0));
    let l = labels([("mount", "/db")]);
    let mut last = None;
    for i in 0..=20 {
        let avail = 60.0 * mib - 2.0 * i as f64 * mib;
        let obs = crate::rule::disk::observation_from_raw(&l, 1024.0 * mib, avail, avail);
        last = Some(e.ingest("disks", obs, at(i as f64)));
    }
    let (obs, _) = last.unwrap();
    let alert = e
        .alerts()
        .find(|a| a.rule == "disk_full")
        .expect("disk_full fires");
    assert!(
        alert.message.contains(
            "; WAL retained by inactive slot node2 (600.0 MiB, +3.5 GiB/h) is the main consumer"
        ),
        "{}",
        alert.message
    );
    assert!(obs.message.contains("slot node2"), "{}", obs.message);
    // Another filesystem gets no note.
    let other = labels([("mount", "/")]);
    let obs = crate::rule::disk::observation_from_raw(&other, 100.0 * mib, 0.0, 0.0);
    let (obs, _) = e.ingest("disks", obs, at(21.0));
    assert!(!obs.message.contains("slot"), "{}", obs.message);
}

#[test]
fn acknowledge_by_prefix_and_errors_in_words() {
    let mut e = Engine::new();
    e.set_probe(spec("p", &[]), Box::new(NoRules));
    e.ingest("p", Observation::new(Status::Critical, "down"), at(0.0));
    let id = e.alerts().next().unwrap().id.clone();
    assert!(e.acknowledge(&id[..6], "alice", at(1.0)).is_ok());
    assert!(
        e.acknowledge(&id, "bob", at(2.0))
            .unwrap_err()
            .contains("not firing")
    );
    assert!(
        e.acknowledge("zzzz", "bob", at(2.0))
            .unwrap_err()
            .contains("no alert")
    );
}

#[test]
fn internal_conditions_fire_and_resolve() {
    let mut e = Engine::new();
    let c = Condition::active(
        "store_failing",
        Default::default(),
        Severity::Critical,
        "disk full",
    );
    assert_eq!(e.set_internal(c, at(0.0))[0].kind, AlertEventKind::Firing);
    let c = Condition::clear("store_failing", Default::default(), "ok");
    assert_eq!(e.set_internal(c, at(1.0))[0].kind, AlertEventKind::Resolved);
}

#[test]
fn external_alerts_fire_once_resolve_and_survive_a_reload() {
    let mut e = Engine::new();
    e.add_source("alertmanager");
    let l = labels([("instance", "db1")]);
    let firing = || Condition::active("DiskFull", l.clone(), Severity::Critical, "disk full");
    let ev = e.set_external("alertmanager", firing(), at(0.0));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, AlertEventKind::Firing);
    assert_eq!(ev[0].alert.probe, "alertmanager");
    assert_eq!(ev[0].alert.rule, "DiskFull");
    // Alertmanager resends firing groups: no second announcement.
    assert!(
        e.set_external("alertmanager", firing(), at(60.0))
            .is_empty()
    );
    // A reload that keeps no probe leaves external alerts alone.
    assert!(e.retain_probes(&BTreeSet::new(), at(61.0)).is_empty());
    let ev = e.set_external(
        "alertmanager",
        Condition::clear("DiskFull", l.clone(), "resolved"),
        at(62.0),
    );
    assert_eq!(ev[0].kind, AlertEventKind::Resolved);
    // A resolution of an alert never seen is ignored.
    let other = Condition::clear("Other", l, "resolved");
    assert!(e.set_external("alertmanager", other, at(63.0)).is_empty());
}

#[test]
fn external_alerts_are_keyed_apart_from_probes_of_other_names() {
    let mut e = Engine::new();
    let c = || Condition::active("x", Default::default(), Severity::Warning, "m");
    e.set_external("alertmanager", c(), at(0.0));
    e.set_external("heartbeat", c(), at(0.0));
    assert_eq!(e.alerts().count(), 2);
}

/// db down, app down, db back: the app's alerts stay suppressed through the grace, then
/// `did_not_recover` fires in their place, survives db failing again, and resolves only when
/// the app reads ok.
#[test]
fn a_dependant_that_does_not_recover_raises_did_not_recover() {
    let mut e = Engine::new();
    e.set_probe(spec("db", &[]), Box::new(NoRules));
    e.set_probe(spec("app", &["db"]), Box::new(NoRules));
    let down = || Observation::new(Status::Critical, "HTTP 503: database connection lost");
    let up = || Observation::new(Status::Ok, "ok");
    e.ingest("db", down(), at(0.0));
    let (_, ev) = e.ingest("app", down(), at(1.0));
    assert_eq!(ev[0].kind, AlertEventKind::Suppressed);
    let (obs, ev) = e.ingest("db", up(), at(100.0));
    assert_eq!(ev[0].kind, AlertEventKind::Resolved, "db's own alert");
    assert!(
        obs.events[0].starts_with("recovered at ") && obs.events[0].contains("app has 1m00s"),
        "{:?}",
        obs.events
    );
    let (_, ev) = e.ingest("app", down(), at(130.0));
    assert!(ev.is_empty(), "grace: still suppressed, {ev:?}");
    let (_, ev) = e.ingest("app", down(), at(160.0));
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, AlertEventKind::Firing);
    let a = &ev[0].alert;
    assert_eq!(
        (a.rule.as_str(), a.probe.as_str()),
        ("did_not_recover", "app")
    );
    assert_eq!(a.labels.get("dependency").map(String::as_str), Some("db"));
    assert_eq!(a.severity, Severity::Critical);
    assert!(
        a.message
            .starts_with("app still failing 1m00s after db recovered at ")
            && a.message
                .contains("; app did not recover within 1m00s: HTTP 503"),
        "{}",
        a.message
    );
    let own = |e: &Engine| {
        e.alerts()
            .find(|a| a.probe == "app" && a.rule == "probe_status")
            .map(|a| a.state)
    };
    assert_eq!(
        own(&e),
        Some(AlertState::Suppressed),
        "replaced, not doubled"
    );
    // db fails again: nothing resolves; back to suppressed; did_not_recover stays open.
    let (obs, _) = e.ingest("db", down(), at(170.0));
    assert!(obs.events[0].contains("stays open"), "{:?}", obs.events);
    assert!(e.ingest("app", down(), at(175.0)).1.is_empty());
    e.ingest("db", up(), at(180.0));
    assert!(
        e.ingest("app", down(), at(250.0)).1.is_empty(),
        "no second page"
    );
    // Missing data never resolves it.
    let failed = Observation::failed(Status::Unknown, "timed out after 5s");
    assert!(e.ingest("app", failed, at(255.0)).1.is_empty());
    let (_, ev) = e.ingest("app", up(), at(260.0));
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, AlertEventKind::Resolved);
    assert_eq!(ev[0].alert.rule, "did_not_recover");
    assert_eq!(own(&e), Some(AlertState::Resolved), "quietly");
}

#[test]
fn a_dependant_that_recovers_within_the_grace_pages_nothing() {
    let mut e = Engine::new();
    e.set_probe(spec("db", &[]), Box::new(NoRules));
    e.set_probe(spec("app", &["db"]), Box::new(NoRules));
    e.ingest("db", Observation::new(Status::Critical, "down"), at(0.0));
    e.ingest("app", Observation::new(Status::Critical, "503"), at(1.0));
    e.ingest("db", Observation::new(Status::Ok, "ok"), at(10.0));
    e.ingest("app", Observation::new(Status::Critical, "503"), at(20.0));
    let (obs, ev) = e.ingest("app", Observation::new(Status::Ok, "ok"), at(30.0));
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(
        obs.events,
        vec!["recovered by itself 20s after db recovered"]
    );
    // A later, unrelated failure of the app is its own alert again.
    let (_, ev) = e.ingest("app", Observation::new(Status::Critical, "503"), at(500.0));
    assert_eq!(ev[0].kind, AlertEventKind::Firing);
    assert_eq!(ev[0].alert.rule, "probe_status");
}

#[test]
fn an_open_did_not_recover_survives_a_restart() {
    let mut e = Engine::new();
    e.set_probe(spec("db", &[]), Box::new(NoRules));
    e.set_probe(spec("app", &["db"]), Box::new(NoRules));
    e.ingest("db", Observation::new(Status::Critical, "down"), at(0.0));
    e.ingest("app", Observation::new(Status::Critical, "503"), at(1.0));
    e.ingest("db", Observation::new(Status::Ok, "ok"), at(10.0));
    e.ingest("app", Observation::new(Status::Critical, "503"), at(80.0));
    let saved: Vec<Alert> = e.alerts().cloned().collect();
    let mut e = Engine::new();
    e.set_probe(spec("db", &[]), Box::new(NoRules));
    e.set_probe(spec("app", &["db"]), Box::new(NoRules));
    e.restore(saved, at(90.0));
    e.ingest("db", Observation::new(Status::Ok, "ok"), at(91.0));
    let (_, ev) = e.ingest("app", Observation::new(Status::Critical, "503"), at(92.0));
    assert!(ev.is_empty(), "still one page: {ev:?}");
    let (_, ev) = e.ingest("app", Observation::new(Status::Ok, "ok"), at(93.0));
    assert_eq!(ev[0].alert.rule, "did_not_recover");
    assert_eq!(ev[0].kind, AlertEventKind::Resolved);
}

/// db → api → app: the app's grace starts only when api (its last failing dependency) is ok
/// again, and its did_not_recover names api; api's own did_not_recover names db.
#[test]
fn the_grace_starts_when_the_last_dependency_recovers_transitively() {
    let mut e = Engine::new();
    e.set_probe(spec("db", &[]), Box::new(NoRules));
    e.set_probe(spec("api", &["db"]), Box::new(NoRules));
    e.set_probe(spec("app", &["api"]), Box::new(NoRules));
    let down = || Observation::new(Status::Critical, "down");
    let up = || Observation::new(Status::Ok, "ok");
    e.ingest("db", down(), at(0.0));
    e.ingest("api", down(), at(1.0));
    e.ingest("app", down(), at(1.0));
    let (obs, _) = e.ingest("db", up(), at(10.0));
    assert_eq!(
        obs.events.len(),
        1,
        "only api's grace starts: {:?}",
        obs.events
    );
    assert!(obs.events[0].contains("api has 1m00s"), "{:?}", obs.events);
    assert!(
        e.ingest("app", down(), at(80.0)).1.is_empty(),
        "api still fails"
    );
    let (_, ev) = e.ingest("api", down(), at(80.0));
    assert_eq!(ev[0].alert.rule, "did_not_recover");
    assert_eq!(ev[0].alert.labels["dependency"], "db");
    let (obs, ev) = e.ingest("api", up(), at(90.0));
    assert_eq!(ev[0].kind, AlertEventKind::Resolved);
    assert!(obs.events[0].contains("app has 1m00s"), "{:?}", obs.events);
    assert!(
        e.ingest("app", down(), at(149.0)).1.is_empty(),
        "in its grace"
    );
    let (_, ev) = e.ingest("app", down(), at(150.0));
    assert_eq!(ev[0].alert.rule, "did_not_recover");
    assert_eq!(ev[0].alert.labels["dependency"], "api");
}

#[test]
fn an_alert_suppressed_again_after_it_resolved_starts_a_new_episode() {
    let mut e = Engine::new();
    e.set_probe(spec("db", &[]), Box::new(NoRules));
    e.set_probe(spec("app", &["db"]), Box::new(NoRules));
    let down = || Observation::new(Status::Critical, "HTTP 503: database connection lost");
    let up = || Observation::new(Status::Ok, "ok");
    let own = |e: &Engine| {
        e.alerts()
            .find(|a| a.probe == "app" && a.rule == "probe_status")
            .cloned()
            .unwrap()
    };
    // First episode: suppressed at +1s, over when app reads ok at +20s.
    e.ingest("db", down(), at(0.0));
    let (_, ev) = e.ingest("app", down(), at(1.0));
    assert_eq!(ev[0].kind, AlertEventKind::Suppressed);
    assert_eq!(own(&e).started_at, Some(2_000_001.0));
    e.ingest("db", up(), at(10.0));
    e.ingest("app", up(), at(20.0));
    assert_eq!(own(&e).state, AlertState::Resolved);
    assert_eq!(crate::api::alert_since(&own(&e)), None);
    // Second episode: db fails again, app is suppressed again at +31s; `since` is then.
    e.ingest("db", down(), at(30.0));
    let (_, ev) = e.ingest("app", down(), at(31.0));
    assert_eq!(ev[0].kind, AlertEventKind::Suppressed);
    let a = own(&e);
    assert_eq!(a.state, AlertState::Suppressed);
    assert_eq!(
        a.started_at,
        Some(2_000_031.0),
        "not the first episode's start"
    );
    assert_eq!(crate::api::alert_since(&a), Some(2_000_031.0));
}
