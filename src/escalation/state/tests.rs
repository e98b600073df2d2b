use super::*;
use crate::alert::AlertState;
use crate::model::labels;
use crate::rule::Condition;

const CONFIG: &str = r#"
[[notifier]]
id = "chat"
kind = "webhook"
url = "http://127.0.0.1:1/chat"
[[notifier]]
id = "ntfy-alice"
kind = "webhook"
url = "http://127.0.0.1:1/a"
[[notifier]]
id = "phone-alice"
kind = "webhook"
url = "http://127.0.0.1:1/a2"
[[notifier]]
id = "pd-bob"
kind = "webhook"
url = "http://127.0.0.1:1/b"
[[notifier]]
id = "sms-bob"
kind = "webhook"
url = "http://127.0.0.1:1/b2"

[[person]]
id = "alice"
contacts = [{ notifier = "ntfy-alice" }, { notifier = "phone-alice", delay = "2m" }]
[[person]]
id = "bob"
contacts = [{ notifier = "pd-bob" }, { notifier = "sms-bob", delay = "10m" }]

[[policy]]
id = "critical"
repeat = 1
repeat_interval = "1m"
ack_expiry = "30m"
[[policy.step]]
targets = ["alice", "chat"]
ack_timeout = "5m"
[[policy.step]]
targets = ["bob"]
ack_timeout = "5m"

[[policy]]
id = "chat-only"
repeat_interval = "0s"
[[policy.step]]
targets = ["chat"]

[[route]]
matchers = ["env=lab"]
policy = "chat-only"
[[route]]
severities = ["critical"]
policy = "critical"
group_by = ["host"]
[[route]]
policy = "chat-only"
group_wait = "10s"
"#;

fn paging() -> Paging {
    let c = crate::config::parse_str(std::path::Path::new("t.toml"), CONFIG).unwrap();
    Paging::from_config(&c).unwrap()
}

fn at(t: f64) -> Moment {
    Moment {
        mono: t,
        wall: 1_800_000_000.0 + t,
    }
}

fn alert(rule: &str, host: &str, sev: Severity, state: AlertState) -> Alert {
    let mut a = Alert::new(
        "disk",
        &Condition::active(rule, labels([("host", host)]), sev, "disk full"),
        at(0.0),
    );
    a.state = state;
    a
}

fn fire(e: &mut Escalations, p: &Paging, a: &Alert, t: f64) -> Tick {
    e.on_event(
        p,
        &AlertEvent {
            kind: AlertEventKind::Firing,
            alert: a.clone(),
            at: at(t).wall,
        },
        at(t),
    )
    .expect("routed")
}

fn sent(t: &Tick) -> Vec<String> {
    t.pages.iter().map(|p| p.notifier.clone()).collect()
}

#[test]
fn steps_delays_rounds_and_the_tail() {
    let p = paging();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    // group_wait defaults to 0 for critical: step 1 pages at once (alice's first contact + chat).
    let t = fire(&mut e, &p, &a, 0.0);
    assert_eq!(sent(&t), ["ntfy-alice", "chat"]);
    assert!(e.tick(&p, at(119.0)).pages.is_empty());
    assert_eq!(
        sent(&e.tick(&p, at(120.0))),
        ["phone-alice"],
        "per-person delay"
    );
    assert!(e.tick(&p, at(299.0)).pages.is_empty());
    let t = e.tick(&p, at(300.0));
    assert_eq!(sent(&t), ["pd-bob"], "step 2 after ack_timeout");
    assert_eq!(t.pages[0].step, 1);
    // bob's sms would come after 10m, but the step ends after 5m: round 2 starts at step 1.
    let t = e.tick(&p, at(600.0));
    assert_eq!(sent(&t), ["ntfy-alice", "chat"]);
    assert_eq!(t.pages[0].repeat, 1);
    assert_eq!(sent(&e.tick(&p, at(720.0))), ["phone-alice"]);
    let t = e.tick(&p, at(900.0));
    assert_eq!(sent(&t), ["pd-bob"]);
    // After repeat = 1 more round: the last step every repeat_interval (1m).
    assert!(e.tick(&p, at(1199.0)).pages.is_empty());
    let t = e.tick(&p, at(1200.0));
    assert_eq!(sent(&t), ["pd-bob"]);
    assert_eq!(t.pages[0].repeat, 2);
    let t = e.tick(&p, at(1260.0));
    assert_eq!(sent(&t), ["pd-bob"]);
    // Every key is unique.
    let mut keys = BTreeSet::new();
    let mut e2 = Escalations::default();
    for t in [fire(&mut e2, &p, &a, 0.0)]
        .into_iter()
        .chain((1..=30).map(|i| e2.tick(&p, at(i as f64 * 60.0))))
    {
        for pg in t.pages {
            assert!(keys.insert(pg.key.clone()), "duplicate key {}", pg.key);
        }
    }
}

#[test]
fn ack_stops_expires_and_resolution_tells_only_the_paged() {
    let p = paging();
    let mut e = Escalations::default();
    let mut a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    a.state = AlertState::Acknowledged;
    let t = e
        .on_event(
            &p,
            &AlertEvent {
                kind: AlertEventKind::Acknowledged { by: "alice".into() },
                alert: a.clone(),
                at: at(60.0).wall,
            },
            at(60.0),
        )
        .unwrap();
    assert_eq!(
        sent(&t),
        ["chat", "ntfy-alice"],
        "ack notice to the paged only"
    );
    assert!(matches!(t.pages[0].kind, PageKind::Acknowledged(ref by) if by == "alice"));
    // No step 2, no phone call.
    for s in [120.0, 300.0, 1000.0, 1859.0] {
        assert!(e.tick(&p, at(s)).pages.is_empty(), "at {s}");
    }
    // The acknowledgement expires after 30 min: step 1 again, alert re-opened.
    let t = e.tick(&p, at(1860.0));
    assert_eq!(sent(&t), ["ntfy-alice", "chat"]);
    assert_eq!(t.reopened, [a.id.clone()]);
    assert!(t.pages[0].key.contains(":e1:"), "{}", t.pages[0].key);
    // Resolution goes to the paged: chat and ntfy-alice, never bob.
    a.state = AlertState::Resolved;
    let t = e
        .on_event(
            &p,
            &AlertEvent {
                kind: AlertEventKind::Resolved,
                alert: a.clone(),
                at: at(1900.0).wall,
            },
            at(1900.0),
        )
        .unwrap();
    assert_eq!(sent(&t), ["chat", "ntfy-alice"]);
    assert!(t.pages.iter().all(|p| p.kind == PageKind::Resolved));
    assert!(t.changed.iter().any(|(_, e)| e.is_none()));
    assert!(e.tick(&p, at(5000.0)).pages.is_empty());
}

#[test]
fn group_by_folds_alerts_into_one_escalation() {
    let p = paging();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    let b = alert(
        "wal_retained",
        "db1",
        Severity::Critical,
        AlertState::Firing,
    );
    let c = alert("disk_full", "db2", Severity::Critical, AlertState::Firing);
    assert_eq!(sent(&fire(&mut e, &p, &a, 0.0)), ["ntfy-alice", "chat"]);
    assert!(
        fire(&mut e, &p, &b, 1.0).pages.is_empty(),
        "same host: folded"
    );
    assert_eq!(
        sent(&fire(&mut e, &p, &c, 2.0)),
        ["ntfy-alice", "chat"],
        "another host"
    );
    assert_eq!(e.list().count(), 2);
    // A page stands for its group: its dedup key names the group, whose alerts an ack covers.
    let key = fire(&mut e, &p, &a, 3.0).pages;
    assert!(key.is_empty(), "already open");
    let gid = e.group_of(&a.id).unwrap().to_string();
    assert_eq!(e.group_of(&b.id), Some(gid.as_str()));
    let mut members = e.group_alerts(&gid).unwrap();
    members.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(members, want);
    let page_key = e.list().find(|x| x.id == gid).unwrap().trigger_key("chat");
    assert_eq!(group_of_key(&page_key), Some(gid.as_str()));
    assert_eq!(group_of_key("0123:4:chat"), None);
    // Resolving one alert of the group says nothing; the last one ends it.
    let resolve = |e: &mut Escalations, x: &Alert, t: f64| {
        e.on_event(
            &p,
            &AlertEvent {
                kind: AlertEventKind::Resolved,
                alert: x.clone(),
                at: at(t).wall,
            },
            at(t),
        )
        .unwrap()
    };
    assert!(resolve(&mut e, &a, 10.0).pages.is_empty());
    assert_eq!(sent(&resolve(&mut e, &b, 11.0)), ["chat", "ntfy-alice"]);
}

#[test]
fn routes_first_match_severity_and_group_wait() {
    let p = paging();
    let mut lab = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    lab.labels.insert("env".into(), "lab".into());
    assert_eq!(
        p.route(&lab),
        Some(0),
        "first match wins over the critical route"
    );
    let warn = alert("disk_full", "db1", Severity::Warning, AlertState::Firing);
    assert_eq!(p.route(&warn), Some(2), "warnings go to chat only");
    let mut e = Escalations::default();
    assert!(
        fire(&mut e, &p, &warn, 0.0).pages.is_empty(),
        "group_wait 10s"
    );
    assert!(e.tick(&p, at(9.9)).pages.is_empty());
    assert_eq!(sent(&e.tick(&p, at(10.0))), ["chat"]);
    // repeat_interval = 0s: after the only step, nothing more.
    assert!(e.tick(&p, at(400.0)).pages.is_empty());
    assert!(e.tick(&p, at(4000.0)).pages.is_empty());
    assert_eq!(e.list().next().unwrap().phase, Phase::Exhausted);
}

#[test]
fn a_failed_contact_falls_back_to_the_next_at_once() {
    let p = paging();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    e.tick(&p, at(120.0));
    let t = e.tick(&p, at(300.0));
    let key = t.pages[0].key.clone();
    assert_eq!(t.pages[0].notifier, "pd-bob");
    let t = e.delivery_failed(&p, &key, at(303.0));
    assert_eq!(sent(&t), ["sms-bob"], "not after 10m: at once");
    assert!(
        e.delivery_failed(&p, "esc:nope", at(304.0))
            .pages
            .is_empty()
    );
}

#[test]
fn restore_waits_only_for_the_remaining_time() {
    let p = paging();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    e.tick(&p, at(200.0));
    // Persisted (as JSON) 200 s into step 1; the new process's monotonic clock starts at 5.
    let saved: Vec<Escalation> = e
        .list()
        .map(|x| serde_json::from_str(&serde_json::to_string(x).unwrap()).unwrap())
        .collect();
    let mut r = Escalations::default();
    let later = Moment {
        mono: 5.0,
        wall: at(260.0).wall,
    };
    r.restore(saved, &[], later);
    // 60 s of the 5 min wait passed while down: step 2 comes 40 s after the restart.
    assert!(
        r.tick(
            &p,
            Moment {
                mono: 44.0,
                wall: later.wall + 39.0
            }
        )
        .pages
        .is_empty()
    );
    let t = r.tick(
        &p,
        Moment {
            mono: 45.0,
            wall: later.wall + 40.0,
        },
    );
    assert_eq!(sent(&t), ["pd-bob"]);
    // The phone contact (due at 120 s) was already sent before the restart: not again.
    assert!(t.pages.iter().all(|p| p.notifier != "phone-alice"));
}

#[test]
fn no_routes_means_no_paging_config() {
    let c = crate::config::parse_str(
        std::path::Path::new("t.toml"),
        "[[notifier]]\nid = \"w\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n",
    )
    .unwrap();
    assert!(Paging::from_config(&c).is_none());
}

#[test]
fn bad_references_are_config_errors() {
    let src = r#"
[[notifier]]
id = "w"
kind = "webhook"
url = "http://127.0.0.1:1/"
[[person]]
id = "w"
contacts = [{ notifier = "nope" }]
[[policy]]
id = "p"
[[policy.step]]
targets = ["ghost"]
[[route]]
policy = "missing"
matchers = ["a=~("]
"#;
    let e = crate::config::parse_str(std::path::Path::new("t.toml"), src)
        .unwrap_err()
        .to_string();
    for needle in [
        "already used",
        "\"nope\", which is not configured",
        "names \"ghost\"",
        "policy \"missing\" is not configured",
        "bad regex",
    ] {
        assert!(e.contains(needle), "{needle} missing in {e}");
    }
}

fn change(e: &mut Escalations, p: &Paging, a: &Alert, from: Severity, t: f64) -> Option<Tick> {
    e.on_event(
        p,
        &AlertEvent {
            kind: AlertEventKind::SeverityChanged { from },
            alert: a.clone(),
            at: at(t).wall,
        },
        at(t),
    )
}

#[test]
fn a_warning_that_turns_critical_moves_to_the_paging_policy() {
    let p = paging();
    let mut e = Escalations::default();
    let mut a = alert("disk_full", "db1", Severity::Warning, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    assert_eq!(sent(&e.tick(&p, at(30.0))), ["chat"], "warning: chat only");
    a.severity = Severity::Critical;
    let t = change(&mut e, &p, &a, Severity::Warning, 40.0).unwrap();
    assert_eq!(
        sent(&t),
        ["ntfy-alice", "chat"],
        "critical: the paging policy"
    );
    assert_eq!(e.list().count(), 1, "the chat-only escalation ended");
    // A change within the same route pages nobody.
    a.severity = Severity::Critical;
    assert!(
        change(&mut e, &p, &a, Severity::Critical, 41.0)
            .unwrap()
            .pages
            .is_empty()
    );
}

#[test]
fn restore_keeps_an_ack_the_escalation_missed() {
    let p = paging();
    let mut e = Escalations::default();
    let mut a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    let saved: Vec<Escalation> = e.list().cloned().collect();
    // The crash came after the alert's ack was stored but before the escalation's.
    a.state = AlertState::Acknowledged;
    a.acked_by = Some("alice".into());
    a.acked_at = Some(at(10.0).wall);
    let mut r = Escalations::default();
    r.restore(saved, &[a], at(20.0));
    assert!(
        r.tick(&p, at(400.0)).pages.is_empty(),
        "no step 2 after an ack"
    );
    assert_eq!(r.list().next().unwrap().phase, Phase::Acknowledged);
}

#[test]
fn a_policy_removed_by_a_reload_hands_over_to_the_alerts_route() {
    let p = paging();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    let src = CONFIG
        .replace("id = \"critical\"", "id = \"critical2\"")
        .replace("policy = \"critical\"", "policy = \"critical2\"");
    let c = crate::config::parse_str(std::path::Path::new("t.toml"), &src).unwrap();
    let p2 = Paging::from_config(&c).unwrap();
    let t = e.tick(&p2, at(10.0));
    assert_eq!(sent(&t), ["ntfy-alice", "chat"], "the new policy's step 1");
    assert!(
        t.pages[0].key.contains(":e1:"),
        "a new epoch: {}",
        t.pages[0].key
    );
    assert_eq!(e.list().next().unwrap().policy, "critical2");
}

const TIMING: &str = r#"
[[notifier]]
id = "a"
kind = "webhook"
url = "http://127.0.0.1:1/a"
[[notifier]]
id = "b"
kind = "webhook"
url = "http://127.0.0.1:1/b"
[[policy]]
id = "p"
repeat = 1
repeat_interval = "1300ms"
[[policy.step]]
targets = ["a"]
ack_timeout = "1100ms"
[[policy.step]]
targets = ["b"]
ack_timeout = "2700ms"
[[route]]
policy = "p"
"#;

fn timing() -> Paging {
    let c = crate::config::parse_str(std::path::Path::new("t.toml"), TIMING).unwrap();
    Paging::from_config(&c).unwrap()
}

/// (nominal second, notifier, step, repeat) of the first pages of TIMING's policy.
fn nominal_pages(n: usize) -> Vec<(f64, &'static str, usize, u32)> {
    let mut out = vec![
        (0.0, "a", 0, 0),
        (1.1, "b", 1, 0),
        (3.8, "a", 0, 1),
        (4.9, "b", 1, 1),
        // The first repeat of the last step after the passes waits the step's ack_timeout...
        (7.6, "b", 1, 2),
    ];
    // ... the next ones repeat_interval each.
    let mut t = 7.6;
    let mut r = 2;
    while out.len() < n {
        t += 1.3;
        r += 1;
        out.push((t, "b", 1, r));
    }
    out
}

#[test]
fn steps_are_scheduled_from_their_nominal_time_so_lateness_never_adds_up() {
    let p = timing();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    // The alert fires between two ticks; ticks come every 250 ms, a little late each.
    let mut pages = Vec::new();
    for pg in fire(&mut e, &p, &a, 0.0).pages {
        pages.push((0.0, pg));
    }
    let mut t = 0.13;
    while t < 120.0 {
        for pg in e.tick(&p, at(t)).pages {
            pages.push((t, pg));
        }
        t += 0.25 + 0.003;
    }
    let want = nominal_pages(pages.len());
    assert!(pages.len() > 80, "{} pages", pages.len());
    for ((sent, pg), (nominal, notifier, step, repeat)) in pages.iter().zip(&want) {
        assert_eq!(
            (pg.notifier.as_str(), pg.step, pg.repeat),
            (*notifier, *step, *repeat)
        );
        let late = sent - nominal;
        assert!(
            (0.0..=0.253 + 1e-9).contains(&late),
            "step {} repeat {} due at {nominal:.2}s went out at {sent:.2}s ({late:.3}s late)",
            step + 1,
            repeat
        );
    }
}

#[test]
fn a_restart_keeps_nominal_times_and_a_long_stop_restarts_the_count() {
    let p = timing();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    // Step 2 is noticed 0.15 s late; its start stays at its nominal 1.1 s.
    assert_eq!(sent(&e.tick(&p, at(1.25))), ["b"]);
    let saved: Vec<Escalation> = e
        .list()
        .map(|x| serde_json::from_str(&serde_json::to_string(x).unwrap()).unwrap())
        .collect();
    assert!((saved[0].since_wall - at(1.1).wall).abs() < 1e-6);
    // A new process (monotonic clock at 7) 0.4 s later: the next step is due at 3.8 s.
    let mut r = Escalations::default();
    let base = 7.0 - 1.65;
    let m = |t: f64| Moment {
        mono: base + t,
        wall: at(t).wall,
    };
    r.restore(saved.clone(), &[], m(1.65));
    assert!(r.tick(&p, m(3.79)).pages.is_empty());
    assert_eq!(sent(&r.tick(&p, m(3.81))), ["a"]);
    // Stopped for a minute instead: the overdue step pages at once and counts from then,
    // rather than firing the steps it slept through in one burst.
    let mut r = Escalations::default();
    r.restore(saved, &[], m(61.0));
    let t = r.tick(&p, m(61.0));
    assert_eq!(sent(&t), ["a"]);
    assert_eq!((t.pages[0].step, t.pages[0].repeat), (0, 1));
    assert!(r.tick(&p, m(62.09)).pages.is_empty());
    assert_eq!(sent(&r.tick(&p, m(62.11))), ["b"]);
}

#[test]
fn one_vocabulary_for_repeats_on_pages_timeline_and_keys() {
    let p = timing();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    let t = fire(&mut e, &p, &a, 0.0);
    assert!(
        t.notes.iter().any(|(_, n)| n.ends_with("step 1: paging a")),
        "{t:?}"
    );
    assert!(
        t.pages[0].key.ends_with(":e0:step1:repeat0:a"),
        "{}",
        t.pages[0].key
    );
    e.tick(&p, at(1.1));
    let t = e.tick(&p, at(3.81));
    assert!(
        t.notes
            .iter()
            .any(|(_, n)| n.ends_with("step 1, repeat 1: paging a")),
        "{t:?}"
    );
    assert!(
        t.pages[0].key.ends_with(":e0:step1:repeat1:a"),
        "{}",
        t.pages[0].key
    );
    assert_eq!(step_words(1, 0), "step 2");
    assert_eq!(step_words(1, 3), "step 2, repeat 3");
    // Keys an older version wrote (0-based step, "round") read as today's.
    assert_eq!(
        canonical_key("esc:g0123@1800000000000:e2:s1:r3:pd-bob"),
        "esc:g0123@1800000000000:e2:step2:repeat3:pd-bob"
    );
    for same in [
        "esc:g0123@1800000000000:e2:step2:repeat3:pd-bob",
        "esc:g0123@1800000000000:ack2:pd-bob",
        "esc:g0123@1800000000000:resolved:pd-bob",
        "0123456789abcdef:4:hook",
    ] {
        assert_eq!(canonical_key(same), same);
    }
    // Escalation state persisted before the rename (`round`) still loads.
    let mut v = serde_json::to_value(e.list().next().unwrap()).unwrap();
    let r = v.as_object_mut().unwrap().remove("repeat").unwrap();
    v["round"] = r;
    let old: Escalation = serde_json::from_value(v).unwrap();
    assert_eq!(old.repeat, 1);
}

#[test]
fn a_failing_channel_is_told_to_the_current_step_only() {
    let p = paging();
    let mut e = Escalations::default();
    let a = alert("disk_full", "db1", Severity::Critical, AlertState::Firing);
    fire(&mut e, &p, &a, 0.0);
    // Step 1 paged alice's ntfy and the chat: alice's phone (not yet due) and the chat hear
    // that ntfy fails; bob (step 2) does not.
    let to: Vec<String> = e
        .channel_failure_recipients("ntfy-alice")
        .into_iter()
        .collect();
    assert_eq!(to, ["chat", "phone-alice"]);
    assert!(
        e.channel_failure_recipients("pd-bob").is_empty(),
        "not paged yet"
    );
    // In step 2, a failing pd-bob is told to bob's sms only.
    e.tick(&p, at(300.0));
    let to: Vec<String> = e.channel_failure_recipients("pd-bob").into_iter().collect();
    assert_eq!(to, ["sms-bob"]);
}
