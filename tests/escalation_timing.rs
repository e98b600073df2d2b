//! Escalation timing and wording through the real daemon and a real webhook receiver: steps and
//! repeats land at their nominal times however long the escalation runs (lateness ≤ one 250 ms
//! tick, never growing), and pages, the timeline and dedup keys say "step N, repeat R" alike.

mod escalation_kit;
mod kit;
mod matrix_kit; // escalation_kit reads Matrix rooms

use escalation_kit::*;
use kit::{Daemon, Sink, write_config};
use std::time::Duration;

/// One tick of the escalation timer.
const TICK: f64 = 0.25;
/// Delivery over loopback and scheduling on a loaded 2-core machine.
const MARGIN: f64 = 0.15;

#[test]
fn steps_and_repeats_arrive_at_their_nominal_times_and_lateness_does_not_grow() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flag = dir.path().join("disk-full");
    std::fs::write(&flag, "").unwrap();
    let sink = Sink::start();
    // Timeouts that are not multiples of the tick: an escalation that counted each step from
    // the tick that noticed it would fall ~0.15 s further behind at every step.
    let config = write_config(
        dir.path(),
        "lookout.toml",
        &format!(
            r#"
[api]
token = "{TOKEN}"
{probe}
[[notifier]]
id = "alice-hook"
kind = "webhook"
url = "{url}"
[[notifier]]
id = "bob-hook"
kind = "webhook"
url = "{url}"
[[person]]
id = "alice"
contacts = [{{ notifier = "alice-hook" }}]
[[person]]
id = "bob"
contacts = [{{ notifier = "bob-hook" }}]
[[policy]]
id = "critical"
repeat = 1
repeat_interval = "1100ms"
[[policy.step]]
targets = ["alice"]
ack_timeout = "1100ms"
[[policy.step]]
targets = ["bob"]
ack_timeout = "1300ms"
[[route]]
policy = "critical"
"#,
            probe = flag_probe(dir.path(), "db-disk", &flag),
            url = sink.url,
        ),
    );
    let d = Daemon::start(&config, &state, dir.path());
    // (nominal seconds after the first page, notifier, words on the page)
    let mut want = vec![
        (0.0, "alice-hook", "step 1 for alice"),
        (1.1, "bob-hook", "step 2 for bob"),
        (2.4, "alice-hook", "step 1, repeat 1 for alice"),
        (3.5, "bob-hook", "step 2, repeat 1 for bob"),
        // The first repeat of the last step waits its ack_timeout, the next repeat_interval.
        (4.8, "bob-hook", "step 2, repeat 2 for bob"),
    ];
    let mut t = 4.8;
    for r in 3..=12 {
        t += 1.1;
        want.push((
            t,
            "bob-hook",
            Box::leak(format!("step 2, repeat {r} for bob").into_boxed_str()),
        ));
    }
    let n = want.len();
    wait_until("every page", Duration::from_secs(30), || {
        sink.all()
            .iter()
            .filter(|r| firing_for(&r.body, "probe_status"))
            .count()
            >= n
    });
    let pages: Vec<_> = sink
        .all()
        .into_iter()
        .filter(|r| firing_for(&r.body, "probe_status"))
        .collect();
    let t0 = pages[0].at;
    let mut lateness = Vec::new();
    for (p, (nominal, notifier, words)) in pages.iter().zip(&want) {
        let key = p.body["dedup_key"].as_str().unwrap();
        let summary = p.body["summary"].as_str().unwrap();
        assert!(
            key.ends_with(&format!(":{notifier}")),
            "{key} for {summary}"
        );
        assert!(
            summary.ends_with(&format!("(escalation {words})")),
            "{summary}"
        );
        let late = secs(t0, p.at) - nominal;
        lateness.push(late);
        println!("{words}: nominal {nominal:.2}s, arrived {late:+.3}s");
    }
    for (late, (nominal, _, words)) in lateness.iter().zip(&want) {
        assert!(
            *late > -MARGIN && *late <= TICK + MARGIN,
            "{words} (due {nominal:.1}s after the first page) was {late:.3}s late: {lateness:?}"
        );
    }
    // It does not grow: the last pages are no later than the first ones allow.
    let early = lateness[1..4].iter().cloned().fold(f64::MIN, f64::max);
    let late = lateness[n - 4..].iter().cloned().fold(f64::MIN, f64::max);
    assert!(
        late <= early.max(0.0) + TICK,
        "lateness grows: {lateness:?}"
    );

    // The dedup keys and the timeline use the same words.
    let keys: Vec<&str> = pages
        .iter()
        .map(|p| p.body["dedup_key"].as_str().unwrap())
        .collect();
    assert!(keys[0].contains(":e0:step1:repeat0:alice-hook"), "{keys:?}");
    assert!(keys[2].contains(":e0:step1:repeat1:alice-hook"), "{keys:?}");
    let tl = d.get("/api/v1/timeline?since=10m").to_string();
    assert!(
        tl.contains("step 1, repeat 1: paging alice via alice-hook"),
        "{tl}"
    );
    assert!(tl.contains("step 2: paging bob via bob-hook"), "{tl}");
    assert!(!tl.contains("round"), "{tl}");
    let esc = d.get("/api/v1/escalations");
    assert!(esc[0]["repeat"].as_u64().unwrap() >= 12, "{esc:#}");
    assert!(esc[0].get("round").is_none(), "{esc:#}");
}

#[test]
fn a_failing_channel_is_told_to_the_people_being_paged_not_to_the_next_tier() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flag = dir.path().join("disk-full");
    let pd = kit::fake::Fake::start(kit::fake::Contract::PagerDuty);
    pd.respond_with(500);
    let (phone, chat, bob) = (Sink::start(), Sink::start(), Sink::start());
    // As docs/paging.md sets it up; `[paging] meta_route` left at its default ("paged").
    let config = write_config(
        dir.path(),
        "lookout.toml",
        &format!(
            r#"
[api]
token = "{TOKEN}"
{probe}
[[notifier]]
id = "pd-alice"
kind = "pagerduty"
routing_key = "R0UT1NGKEY000000000000000000000A"
url = "{pd}"
max_attempts = 2
[[notifier]]
id = "phone-alice"
kind = "webhook"
url = "{phone}"
[[notifier]]
id = "ops-chat"
kind = "webhook"
url = "{chat}"
[[notifier]]
id = "bob-hook"
kind = "webhook"
url = "{bob}"
[[person]]
id = "alice"
contacts = [{{ notifier = "pd-alice" }}, {{ notifier = "phone-alice", delay = "60s" }}]
[[person]]
id = "bob"
contacts = [{{ notifier = "bob-hook" }}]
[[policy]]
id = "critical"
[[policy.step]]
targets = ["alice", "ops-chat"]
ack_timeout = "8s"
[[policy.step]]
targets = ["bob"]
ack_timeout = "8s"
[[route]]
matchers = ["probe=db-disk"]
policy = "critical"
"#,
            probe = flag_probe(dir.path(), "db-disk", &flag),
            pd = pd.url(),
            phone = phone.url,
            chat = chat.url,
            bob = bob.url,
        ),
    );
    let d = Daemon::start(&config, &state, dir.path());
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(&flag, "").unwrap();
    let first = pd.wait_for("alice's PagerDuty", 1, Duration::from_secs(5), |r| {
        r.json["event_action"] == "trigger"
    })[0]
        .at;
    // PagerDuty answers 500 twice: alice's phone is used at once, and notifier_failing reaches
    // alice through the phone and the step's chat, not pd-alice itself.
    let meta = |b: &serde_json::Value| {
        firing_for(b, "notifier_failing") && b["alert"]["labels"]["notifier"] == "pd-alice"
    };
    let on_phone = phone.wait_for(
        "notifier_failing on alice's phone",
        Duration::from_secs(6),
        meta,
    );
    chat.wait_for(
        "notifier_failing in the step's chat",
        Duration::from_secs(2),
        meta,
    );
    phone.wait_for("the fallback page", Duration::from_secs(2), |b| {
        firing_for(b, "probe_status")
    });
    assert!(secs(first, on_phone.at) < 5.0);
    // Nothing for bob (step 2) before step 2's time: 8 s after the first page.
    while secs(first, std::time::Instant::now()) < 7.5 {
        assert!(bob.all().is_empty(), "bob paged early: {:#?}", bob.all());
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = bob.wait_for("step 2", Duration::from_secs(3), |b| {
        firing_for(b, "probe_status")
    });
    let at = secs(first, b.at);
    assert!((7.9..8.5).contains(&at), "step 2 after {at:.2}s");
    assert!(
        bob.all()
            .iter()
            .all(|r| r.body["alert"]["rule"] == "probe_status"),
        "{:#?}",
        bob.all()
    );
    let tl = d.get("/api/v1/timeline?since=10m").to_string();
    assert!(
        tl.contains("notifier_failing pd-alice: told the people being paged through it, by ops-chat, phone-alice"),
        "{tl}"
    );
}
