//! `lookout notify test`: a real test page per notifier, each hop reported with its outcome.

mod kit;

use kit::{Sink, lookout_bin, write_config};

#[test]
fn each_hop_is_reported_and_a_failing_one_sets_the_exit_code() {
    let work = tempfile::tempdir().unwrap();
    let good = Sink::start();
    let bad = Sink::start();
    bad.respond_with(401);
    let cfg = format!(
        r#"
[[notifier]]
id = "chat"
kind = "webhook"
url = "{}"

[[notifier]]
id = "phone"
kind = "webhook"
url = "{}"
"#,
        good.url, bad.url
    );
    let cfg = write_config(work.path(), "lookout.toml", &cfg);
    let run = |args: &[&str]| {
        std::process::Command::new(lookout_bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["notify", "test", "all"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("chat (webhook): delivered in"), "{stdout}");
    assert!(stdout.contains("phone (webhook): FAILED"), "{stdout}");
    assert!(stdout.contains("401"), "{stdout}");
    for url in [&good.url, &bad.url] {
        assert!(
            !stdout.contains(url.as_str()),
            "a URL in the output: {stdout}"
        );
    }
    let page = &good.all()[0].body;
    assert_eq!(page["event"], "test");
    assert!(page["summary"].as_str().unwrap().starts_with("[TEST]"));

    let out = run(&["notify", "test", "chat"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(good.all().len(), 2);

    let out = run(&["notify", "test", "pager"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no notifier, person or schedule \"pager\"")
            && stderr.contains("notifiers: chat, phone"),
        "{stderr}"
    );
}

#[test]
fn a_person_or_schedule_is_tested_contact_by_contact() {
    let work = tempfile::tempdir().unwrap();
    let ntfy = Sink::start();
    let phone = Sink::start();
    phone.respond_with(500);
    let bob = Sink::start();
    let cfg = format!(
        r#"
[[notifier]]
id = "ntfy-alice"
kind = "webhook"
url = "{}"
[[notifier]]
id = "phone-alice"
kind = "webhook"
url = "{}"
max_attempts = 1
[[notifier]]
id = "bob-hook"
kind = "webhook"
url = "{}"

[[person]]
id = "alice"
contacts = [{{ notifier = "ntfy-alice" }}, {{ notifier = "phone-alice", delay = "2m" }}]
[[person]]
id = "bob"
contacts = [{{ notifier = "bob-hook" }}]

[[schedule]]
id = "primary"
layers = [{{ rotation = ["bob"], start = "2020-01-06T09:00", every = "1w" }}]
[[schedule]]
id = "next-year"
layers = [{{ rotation = ["alice"], start = "2099-01-01T00:00", every = "1d" }}]
"#,
        ntfy.url, phone.url, bob.url
    );
    let cfg = write_config(work.path(), "lookout.toml", &cfg);
    let run = |args: &[&str]| {
        std::process::Command::new(lookout_bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };

    // A person: every contact in order, sent at once, each with the delay a real page waits.
    let started = std::time::Instant::now();
    let out = run(&["notify", "test", "alice"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "the phone fails: {stdout}");
    assert!(
        started.elapsed().as_secs() < 20,
        "the 2m delay is not waited for"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("person alice: 2 contact(s)"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("  1. ntfy-alice (webhook, at once): delivered in"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(
            "  2. phone-alice (webhook, after 2m00s in a real page; sent now): FAILED"
        ) && lines[2].contains("500"),
        "{stdout}"
    );
    let page = &ntfy.all()[0].body;
    assert_eq!(page["event"], "test");
    assert!(
        page["summary"]
            .as_str()
            .unwrap()
            .ends_with("for alice (contact 1 of 2)"),
        "{page:#}"
    );
    assert_eq!(phone.all().len(), 1);

    // A schedule: whoever is on call now, then their contacts.
    let out = run(&["notify", "test", "primary"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("schedule primary: bob is on call now; 1 contact(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("  1. bob-hook (webhook, at once): delivered in"));
    assert_eq!(bob.all().len(), 1);

    // Nobody on call is a failure: a page would reach nobody.
    let out = run(&["notify", "test", "next-year"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("nobody is on call now"), "{stdout}");

    let out = run(&["notify", "test", "carol"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("people: alice, bob") && stderr.contains("schedules: primary, next-year"),
        "{stderr}"
    );
}

#[test]
fn the_test_page_is_critical_by_default_so_ntfy_sends_it_at_priority_5() {
    // Issue 10, trap 10: the test page went out as info (ntfy priority 3), which proves
    // nothing about a phone breaking through do-not-disturb.
    use kit::fake::{Contract, Fake};
    let work = tempfile::tempdir().unwrap();
    let ntfy = Fake::start(Contract::Ntfy);
    let pd = Fake::start(Contract::PagerDuty);
    let cfg = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[notifier]]
id = "phone"
kind = "ntfy"
server = "{}"
topic = "oncall"

[[notifier]]
id = "pager"
kind = "pagerduty"
routing_key = "R0UT1NGKEY000000000000000000000A"
url = "{}"
"#,
            ntfy.url(),
            pd.url()
        ),
    );
    let run = |args: &[&str]| {
        std::process::Command::new(lookout_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["notify", "test"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["all"]);
    assert!(out.status.success(), "{out:?}");
    let sent = ntfy.all();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("priority"), Some("5"), "{:?}", sent[0]);
    assert_eq!(pd.all()[0].json["payload"]["severity"], "critical");

    let out = run(&["phone", "--severity", "warning"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(ntfy.all()[1].header("priority"), Some("4"));

    let out = run(&["phone", "--severity", "loud"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("use critical, warning or info"),
        "{out:?}"
    );
    ntfy.assert_contract_kept();
    pd.assert_contract_kept();
}
