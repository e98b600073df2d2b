//! The pagerduty, ntfy and slack notifiers through the real daemon, against local servers that
//! speak each service's request contract: delivery in the right shape, retries of 500s,
//! permanent 400s raising `notifier_failing` through the other channels, and hangs that cost
//! one timeout per attempt.

mod kit;

use kit::fake::{ALWAYS_CRITICAL, Contract, Fake, HANG, Request, failing, mentions, wait_alert};
use kit::{Daemon, write_config};
use std::time::{Duration, Instant};

const ROUTING_KEY: &str = "R0UT1NGKEY000000000000000000000A";
const NTFY_TOKEN: &str = "tk_ntfytokenvalue";

struct Services {
    pd: Fake,
    ntfy: Fake,
    slack: Fake,
}

impl Services {
    fn start() -> Services {
        Services {
            pd: Fake::start(Contract::PagerDuty),
            ntfy: Fake::start(Contract::Ntfy),
            slack: Fake::start(Contract::Slack),
        }
    }

    fn get(&self, c: Contract) -> &Fake {
        match c {
            Contract::PagerDuty => &self.pd,
            Contract::Ntfy => &self.ntfy,
            Contract::Slack => &self.slack,
        }
    }

    /// The config: the always-critical probe and one notifier per service.
    fn config(&self, dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
        write_config(
            dir,
            "lookout.toml",
            &format!(
                r#"
[api]
token = "test-api-token"
{ALWAYS_CRITICAL}
[[notifier]]
id = "pd"
kind = "pagerduty"
routing_key = "{ROUTING_KEY}"
url = "{pd}"
source = "test-host"
{extra}

[[notifier]]
id = "phone"
kind = "ntfy"
server = "{ntfy}"
topic = "lookout-ops"
token = "{NTFY_TOKEN}"
tags = ["disk"]
click = "https://status.example/alerts/{{id}}"
{extra}

[[notifier]]
id = "chat"
kind = "slack"
url = "{slack}"
{extra}
"#,
                pd = self.pd.url(),
                ntfy = self.ntfy.url(),
                slack = self.slack.url(),
            ),
        )
    }

    fn assert_contracts_kept(&self) {
        self.pd.assert_contract_kept();
        self.ntfy.assert_contract_kept();
        self.slack.assert_contract_kept();
    }
}

fn id_of(c: Contract) -> &'static str {
    match c {
        Contract::PagerDuty => "pd",
        Contract::Ntfy => "phone",
        Contract::Slack => "chat",
    }
}

/// Whether a request to service `c` is about the disk alert (any event).
fn about_disk(c: Contract, r: &Request) -> bool {
    match c {
        Contract::PagerDuty => {
            r.json["payload"]["group"] == "disk_full" || r.body.contains("disk_full")
        }
        _ => mentions(r, "disk_full on root"),
    }
}

/// Whether a request to service `c` announces notifier `id`'s failure.
fn about_failure_of(c: Contract, r: &Request, id: &str) -> bool {
    let needle = format!("notifier {id} cannot deliver");
    match c {
        Contract::PagerDuty => {
            r.json["payload"]["group"] == "notifier_failing"
                && r.json["payload"]["custom_details"]["labels"]["notifier"] == id
        }
        _ => mentions(r, &needle) && mentions(r, "notifier_failing"),
    }
}

fn delivered(r: &Request) -> bool {
    (200..300).contains(&r.answered)
}

#[test]
fn a_critical_alert_reaches_each_service_in_its_shape_and_an_ack_follows() {
    let s = Services::start();
    let work = tempfile::tempdir().unwrap();
    let config = s.config(work.path(), "");
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let alert = wait_alert(&d, "disk_full", Duration::from_secs(15), |a| {
        a["rule"] == "disk_full" && a["state"] == "firing"
    });
    let id = alert["id"].as_str().unwrap().to_string();
    let message = alert["message"].as_str().unwrap().to_string();
    // Every channel's title/summary starts with the finding (the message's first line), then
    // names the alert: the problem is what a phone's lock screen shows.
    let title = format!(
        "[CRITICAL] {} | disk_full on root",
        message.lines().next().unwrap()
    );

    // PagerDuty: one trigger, deduplicated on the alert id, with the documented payload.
    let pd = &s.pd.wait_for("trigger", 1, Duration::from_secs(15), |r| {
        r.json["event_action"] == "trigger" && r.json["dedup_key"] == id.as_str()
    })[0];
    let p = &pd.json["payload"];
    assert_eq!(pd.json["routing_key"], ROUTING_KEY);
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "test-host");
    assert_eq!(p["component"], "root");
    assert_eq!(p["group"], "disk_full");
    assert!(p["summary"].as_str().unwrap().starts_with(&title), "{p}");
    assert!(p["timestamp"].as_str().unwrap().ends_with('Z'), "{p}");
    assert_eq!(p["custom_details"]["labels"]["mount"], "/");
    assert_eq!(p["custom_details"]["message"], message.as_str());
    assert_eq!(pd.answered, 202);

    // ntfy: priority 5, title, tags, click, bearer token; the body carries the details.
    let n = &s
        .ntfy
        .wait_for("publish", 1, Duration::from_secs(15), |r| mentions(r, &id))[0];
    assert_eq!(n.path, "/lookout-ops");
    assert_eq!(n.header("priority"), Some("5"));
    assert!(n.header("title").unwrap().starts_with(&title), "{n:?}");
    assert_eq!(n.header("tags"), Some("rotating_light,disk"));
    assert_eq!(
        n.header("click"),
        Some(format!("https://status.example/alerts/{id}").as_str())
    );
    assert_eq!(
        n.header("authorization"),
        Some(format!("Bearer {NTFY_TOKEN}").as_str())
    );
    assert!(n.body.contains(&format!("lookout ack {id}")), "{}", n.body);
    assert!(n.body.contains("mount=/"), "{}", n.body);

    // Slack: {"text": …} with the summary and the details.
    let sl = &s
        .slack
        .wait_for("message", 1, Duration::from_secs(15), |r| mentions(r, &id))[0];
    let text = sl.json["text"].as_str().unwrap();
    assert!(text.starts_with(&format!("*{title}")), "{text}");
    assert!(text.contains(&format!("lookout ack {id}")), "{text}");

    // An acknowledgement acknowledges the same PagerDuty incident and tells the others.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        lookout::http::client(Duration::from_secs(10))
            .unwrap()
            .post(format!("{}/api/v1/alerts/{id}/ack", d.url()))
            .bearer_auth("test-api-token")
            .json(&serde_json::json!({"by": "alice"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");
    s.pd.wait_for("acknowledge", 1, Duration::from_secs(15), |r| {
        r.json["event_action"] == "acknowledge" && r.json["dedup_key"] == id.as_str()
    });
    let n = &s.ntfy.wait_for("ack", 1, Duration::from_secs(15), |r| {
        mentions(r, "[ACK by alice]")
    })[0];
    assert_eq!(n.header("priority"), Some("3"));
    assert_eq!(n.header("tags"), Some("eyes,disk"));
    s.slack.wait_for("ack", 1, Duration::from_secs(15), |r| {
        mentions(r, "[ACK by alice]")
    });

    // Each event was sent once per service.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.pd.matching(|r| r.json["dedup_key"] == id.as_str()).len(),
        2
    );
    assert_eq!(s.ntfy.matching(|r| mentions(r, &id)).len(), 2);
    assert_eq!(s.slack.matching(|r| mentions(r, &id)).len(), 2);
    s.assert_contracts_kept();
    d.terminate(Duration::from_secs(5));
}

#[test]
fn a_500_is_retried_until_the_service_recovers() {
    let s = Services::start();
    for c in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        s.get(c).respond_with(500);
    }
    let work = tempfile::tempdir().unwrap();
    let config = s.config(work.path(), "max_attempts = 8\ntimeout = \"2s\"");
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    for c in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        s.get(c)
            .wait_for("two failed attempts", 2, Duration::from_secs(20), |r| {
                about_disk(c, r) && r.answered == 500
            });
    }
    for c in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        s.get(c).respond_with(200);
    }
    for c in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        let f = s.get(c);
        f.wait_for(
            "a delivery after recovery",
            1,
            Duration::from_secs(20),
            |r| about_disk(c, r) && delivered(r),
        );
        let tries = f.matching(|r| about_disk(c, r));
        assert!(tries.len() >= 3, "{c:?}: {tries:#?}");
        assert!(
            tries.iter().all(|r| r.body == tries[0].body),
            "retries resend the same message"
        );
        assert_eq!(tries.iter().filter(|r| delivered(r)).count(), 1);
    }
    let alerts = d.get("/api/v1/alerts").to_string();
    assert!(
        !alerts.contains("notifier_failing"),
        "retried, not failed: {alerts}"
    );
    assert!(d.log_text().contains("retrying"), "{}", d.log_text());
    s.assert_contracts_kept();
    d.terminate(Duration::from_secs(5));
}

/// A 400 from `bad` fails for good at once; its `notifier_failing` alert goes out through the
/// other two services and not through `bad` itself.
fn a_400_is_permanent_and_reported_through_the_others(bad: Contract) {
    let s = Services::start();
    s.get(bad).respond_with(400);
    let work = tempfile::tempdir().unwrap();
    let config = s.config(work.path(), "max_attempts = 5");
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let bad_id = id_of(bad);
    let meta = wait_alert(&d, "notifier_failing", Duration::from_secs(20), |a| {
        failing(a, bad_id)
    });
    let msg = meta["message"].as_str().unwrap();
    assert!(msg.contains("400"), "{msg}");
    if bad == Contract::PagerDuty {
        assert!(
            msg.contains("Event object is invalid"),
            "PagerDuty's own words: {msg}"
        );
    }
    for other in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        if other == bad {
            continue;
        }
        s.get(other)
            .wait_for("the meta-alert", 1, Duration::from_secs(15), |r| {
                about_failure_of(other, r, bad_id) && delivered(r)
            });
    }
    std::thread::sleep(Duration::from_secs(3)); // room for a wrong retry to show up
    let tries = s.get(bad).matching(|r| about_disk(bad, r));
    assert_eq!(tries.len(), 1, "a 400 is not retried: {tries:#?}");
    assert!(
        s.get(bad)
            .matching(|r| about_failure_of(bad, r, bad_id))
            .is_empty(),
        "a channel's own failure is not sent through it"
    );
    s.assert_contracts_kept();
    d.terminate(Duration::from_secs(5));
}

#[test]
fn a_400_from_pagerduty_is_permanent_and_reported_through_the_others() {
    a_400_is_permanent_and_reported_through_the_others(Contract::PagerDuty);
}

#[test]
fn a_400_from_ntfy_is_permanent_and_reported_through_the_others() {
    a_400_is_permanent_and_reported_through_the_others(Contract::Ntfy);
}

#[test]
fn a_400_from_slack_is_permanent_and_reported_through_the_others() {
    a_400_is_permanent_and_reported_through_the_others(Contract::Slack);
}

#[test]
fn a_hanging_service_costs_one_timeout_per_attempt() {
    let s = Services::start();
    for c in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        s.get(c).respond_with(HANG);
    }
    let work = tempfile::tempdir().unwrap();
    let config = s.config(work.path(), "max_attempts = 3\ntimeout = \"1s\"");
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    for c in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        let tries = s
            .get(c)
            .wait_for("three attempts", 3, Duration::from_secs(20), |r| {
                about_disk(c, r)
            });
        // Attempt n+1 starts one timeout (1 s) plus the backoff (1 s, then 2 s) after attempt n.
        let gap = |a: &Request, b: &Request| b.at.duration_since(a.at).as_secs_f64();
        let (g1, g2) = (gap(&tries[0], &tries[1]), gap(&tries[1], &tries[2]));
        assert!((1.9..3.0).contains(&g1), "{c:?}: first gap {g1:.2}s");
        assert!((2.9..4.0).contains(&g2), "{c:?}: second gap {g2:.2}s");
    }
    // The daemon's API stays quick while every channel hangs.
    let started = Instant::now();
    d.get("/api/v1/alerts");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for c in [Contract::PagerDuty, Contract::Ntfy, Contract::Slack] {
        let meta = wait_alert(&d, "notifier_failing", Duration::from_secs(10), |a| {
            failing(a, id_of(c))
        });
        assert!(
            meta["message"].as_str().unwrap().contains("timed out"),
            "{meta}"
        );
        assert_eq!(
            s.get(c).matching(|r| about_disk(c, r)).len(),
            3,
            "{c:?}: max_attempts bounds the tries"
        );
    }
    s.assert_contracts_kept();
    d.terminate(Duration::from_secs(5));
}

/// The page's first line is the problem: for an http probe answered 500, a tcp probe refused
/// and a process that is not running, the ntfy Title, the PagerDuty summary, the Slack text and
/// the webhook summary start with the finding, and name the alert after it.
#[test]
fn every_page_starts_with_the_finding() {
    let s = Services::start();
    let hook = kit::Sink::start();
    hook.respond_with(200);
    let web = kit::Sink::start();
    web.respond_with(500);
    let refused = kit::free_port();
    let work = tempfile::tempdir().unwrap();
    let probes = format!(
        r#"
[[notifier]]
id = "hook"
kind = "webhook"
url = "{hook}"

[[probe]]
id = "shop"
kind = "http"
url = "{web}"
method = "POST"
interval = "1s"

[[probe]]
id = "queue"
kind = "tcp"
host = "127.0.0.1"
port = {refused}
interval = "1s"

[[probe]]
id = "mailer"
kind = "process"
name = "no-such-mailerd"
interval = "1s"
"#,
        hook = hook.url,
        web = web.url,
    );
    let config = s.config(work.path(), "");
    let text = std::fs::read_to_string(&config).unwrap() + &probes;
    std::fs::write(&config, text).unwrap();
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let web_target = format!("POST {}", web.url);
    for (probe, finding) in [
        (
            "shop",
            "HTTP 500 Internal Server Error, expected 2xx".to_string(),
        ),
        (
            "queue",
            format!("cannot connect to 127.0.0.1:{refused}: Connection refused"),
        ),
        ("mailer", "no-such-mailerd is not running".to_string()),
    ] {
        let first = format!("[CRITICAL] {finding}");
        let named = format!("| probe_status on {probe}");
        let page = hook.wait_for(probe, Duration::from_secs(15), |b| {
            b["event"] == "firing" && b["alert"]["probe"] == probe
        });
        let summary = page.body["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(&first) && summary.contains(&named),
            "{summary}"
        );
        let title = &s.ntfy.wait_for(probe, 1, Duration::from_secs(5), |r| {
            r.header("title").is_some_and(|t| t.contains(&named))
        })[0];
        assert!(
            title.header("title").unwrap().starts_with(&first),
            "{title:?}"
        );
        let pd = &s.pd.wait_for(probe, 1, Duration::from_secs(5), |r| {
            r.json["payload"]["component"] == probe
        })[0];
        let pd_summary = pd.json["payload"]["summary"].as_str().unwrap();
        assert!(pd_summary.starts_with(&first), "{pd_summary}");
        let sl = &s.slack.wait_for(probe, 1, Duration::from_secs(5), |r| {
            r.json["text"].as_str().is_some_and(|t| t.contains(&named))
        })[0];
        let text = sl.json["text"].as_str().unwrap();
        assert!(text.starts_with(&format!("*{first}")), "{text}");
        // The context follows the finding (the request, for the http probe).
        if probe == "shop" {
            assert!(summary.contains(&web_target), "{summary}");
        }
    }
    drop(d);
}
