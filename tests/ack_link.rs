//! Acknowledgement links (docs/notifiers.md, docs/paging.md): every page of a firing alert —
//! ntfy, email (a real aiosmtpd), Slack, webhook, PagerDuty — carries a signed link to the real
//! daemon; a GET shows a confirmation page and acknowledges nothing; a POST acknowledges and
//! stops the escalation; changed, expired and foreign links are refused with 403; the API token
//! never appears in a page.

mod kit;

use kit::fake::{ALWAYS_CRITICAL, Contract, Fake, Request, wait_alert};
use kit::smtp::Smtp;
use kit::{Daemon, Sink, free_port};
use lookout::notify::ack_link::{LinkKey, LinkToken, sign};
use serde_json::Value;
use std::time::{Duration, Instant};

const API_TOKEN: &str = "test-api-token-0b7d";

/// One HTTP request as a browser or the ntfy app would make it: (status, body).
fn request(method: &str, url: &str, form: Option<&str>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(10)).unwrap();
        let mut req = c.request(method.parse().unwrap(), url);
        if let Some(f) = form {
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(f.to_string());
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

fn state_of(d: &Daemon, id: &str) -> Value {
    d.get("/api/v1/alerts?all=true")
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("alert {id} is gone"))
}

/// The link in a plain-text page body (`Acknowledge: URL`).
fn link_in_text(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("Acknowledge: "))
        .unwrap_or_else(|| panic!("no `Acknowledge: ` line in:\n{body}"))
        .trim()
        .to_string()
}

/// The same link with one character of its signature changed.
fn tampered(url: &str) -> String {
    let mut b = url.as_bytes().to_vec();
    let last = b.len() - 1;
    b[last] = if b[last] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

struct Receivers {
    hook: Sink,
    later: Sink,
    ntfy: Fake,
    slack: Fake,
    pd: Fake,
    smtp: Smtp,
}

impl Receivers {
    fn start() -> Receivers {
        Receivers {
            hook: Sink::start(),
            later: Sink::start(),
            ntfy: Fake::start(Contract::Ntfy),
            slack: Fake::start(Contract::Slack),
            pd: Fake::start(Contract::PagerDuty),
            smtp: Smtp::start(),
        }
    }

    /// Every notifier on step 1 of one policy; step 2 (`later`) after 10 s without an ack.
    fn config(&self, dir: &std::path::Path, api: &str) -> std::path::PathBuf {
        kit::write_config(
            dir,
            "lookout.toml",
            &format!(
                r#"
[api]
token = "{API_TOKEN}"
{api}
{ALWAYS_CRITICAL}
[[notifier]]
id = "hook"
kind = "webhook"
url = "{hook}"

[[notifier]]
id = "later"
kind = "webhook"
url = "{later}"

[[notifier]]
id = "phone"
kind = "ntfy"
server = "{ntfy}"
topic = "lookout-ops"

[[notifier]]
id = "chat"
kind = "slack"
url = "{slack}"

[[notifier]]
id = "pd"
kind = "pagerduty"
routing_key = "R0UT1NGKEY000000000000000000000A"
url = "{pd}"

[[notifier]]
id = "mail"
kind = "email"
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "lookout <lookout@example.org>"
to = ["ops@example.org"]

[[policy]]
id = "page"
repeat_interval = "0s"
[[policy.step]]
targets = ["hook", "phone", "chat", "pd", "mail"]
ack_timeout = "10s"
[[policy.step]]
targets = ["later"]
ack_timeout = "10s"

[[route]]
policy = "page"
"#,
                hook = self.hook.url,
                later = self.later.url,
                ntfy = self.ntfy.url(),
                slack = self.slack.url(),
                pd = self.pd.url(),
                smtp = self.smtp.port,
            ),
        )
    }
}

fn firing(r: &Value) -> bool {
    r["event"] == "firing" && r["alert"]["rule"] == "disk_full"
}

#[test]
fn every_page_carries_a_link_a_get_confirms_and_a_post_acknowledges() {
    let r = Receivers::start();
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let config = r.config(work.path(), &format!("public_url = \"{public}/\""));
    let state = work.path().join("state");
    let d = Daemon::start_with(Some(&config), &state, work.path(), port);
    let alert = wait_alert(&d, "disk_full", Duration::from_secs(15), |a| {
        a["rule"] == "disk_full" && a["state"] == "firing"
    });
    let id = alert["id"].as_str().unwrap().to_string();
    let fired = Instant::now();
    let prefix = format!("{public}/ack/{id}.");
    let within = Duration::from_secs(15);

    // The link of every channel, each under public_url.
    let hook = r.hook.wait_for("the webhook page", within, firing);
    let hook_link = hook.body["ack_link"]["url"].as_str().unwrap().to_string();
    assert!(
        hook.body["ack_link"]["expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let about = |q: &Request| {
        q.body.contains(&id) || q.header("title").is_some_and(|t| t.contains("disk_full"))
    };
    let n = r.ntfy.wait_for("the ntfy page", 1, within, about)[0].clone();
    let actions: Value =
        serde_json::from_str(n.header("actions").expect("an Actions header")).unwrap();
    assert_eq!(actions[0]["action"], "http");
    assert_eq!(actions[0]["method"], "POST");
    assert_eq!(actions[1]["action"], "view");
    let ntfy_link = actions[0]["url"].as_str().unwrap().to_string();
    assert_eq!(actions[1]["url"], ntfy_link.as_str());
    assert_eq!(
        n.header("click"),
        Some(ntfy_link.as_str()),
        "tapping opens the confirmation page"
    );
    let sl = r.slack.wait_for("the Slack page", 1, within, about)[0].clone();
    let text = sl.json["text"].as_str().unwrap();
    let slack_link = text
        .split('<')
        .nth(1)
        .and_then(|t| t.split_once("|Acknowledge>"))
        .map(|(u, _)| u.to_string())
        .unwrap_or_else(|| panic!("no <URL|Acknowledge> in {text}"));
    let p = r.pd.wait_for("the PagerDuty trigger", 1, within, |q| {
        q.json["event_action"] == "trigger" && q.json["dedup_key"] == id.as_str()
    })[0]
        .clone();
    let pd_link = p.json["payload"]["custom_details"]["acknowledge_link"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(p.json["links"][0]["href"], pd_link.as_str());
    let mail = r.smtp.wait_for("the mail page", within, |m| {
        m["body"].as_str().unwrap_or("").contains(&id)
    });
    let mail_link = link_in_text(mail["body"].as_str().unwrap());
    for (channel, link) in [
        ("webhook", &hook_link),
        ("ntfy", &ntfy_link),
        ("slack", &slack_link),
        ("pagerduty", &pd_link),
        ("email", &mail_link),
    ] {
        assert!(
            link.starts_with(&prefix),
            "{channel}: {link} is not under {prefix}"
        );
    }
    r.ntfy.assert_contract_kept();
    r.slack.assert_contract_kept();
    r.pd.assert_contract_kept();

    // The API token is in no page, header or body.
    let mut seen = vec![hook.body.to_string(), mail.to_string()];
    for f in [&r.ntfy, &r.slack, &r.pd] {
        for q in f.all() {
            seen.push(format!("{:?} {}", q.headers, q.body));
        }
    }
    for s in &seen {
        assert!(
            !s.contains(API_TOKEN),
            "the API token leaked into a page: {s}"
        );
    }

    // The status page has an anchor per open alert (ntfy's `click = ".../#alert-{id}"`) and no
    // link: it needs no token to read.
    let status_page = kit::http_get(&format!("{}/", d.url()));
    assert!(
        status_page.contains(&format!("id=\"alert-{id}\"")),
        "{status_page}"
    );
    assert!(!status_page.contains("/ack/"), "{status_page}");

    // A GET (a mail scanner, a chat preview, a person) shows what would be acknowledged and
    // acknowledges nothing.
    for _ in 0..2 {
        let (status, html) = request("GET", &mail_link, None);
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Acknowledge this alert?"), "{html}");
        assert!(html.contains("<form method=post>"), "{html}");
        assert!(html.contains("disk_full on root"), "{html}");
        assert!(!html.contains(API_TOKEN), "{html}");
    }
    assert_eq!(state_of(&d, &id)["state"], "firing", "a GET acknowledged");

    // Changed, expired, foreign and earlier-episode links are refused and change nothing.
    let key = LinkKey::load_or_create(&state).unwrap();
    let generation: u64 = mail_link
        .rsplit('/')
        .next()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |k: &LinkKey, generation: u64, expires: u64| {
        let t = LinkToken {
            alert_id: id.clone(),
            generation,
            expires,
        };
        format!("{public}/ack/{}", sign(k, &t))
    };
    let expired = signed(&key, generation, now - 60);
    let foreign = signed(&LinkKey::from_bytes([9; 32]), generation, now + 3600);
    let later_expiry = {
        let parts: Vec<&str> = mail_link.rsplit('/').next().unwrap().split('.').collect();
        format!(
            "{public}/ack/{}.{}.{}.{}",
            parts[0],
            parts[1],
            now + 86_400 * 365,
            parts[3]
        )
    };
    for (what, url, status, words) in [
        ("tampered", tampered(&mail_link), 403, "not valid"),
        ("a later expiry", later_expiry, 403, "not valid"),
        ("another lookout's key", foreign, 403, "not valid"),
        ("expired", expired, 403, "has expired"),
        (
            "an earlier episode",
            signed(&key, generation - 1000, now + 3600),
            410,
            "earlier episode",
        ),
    ] {
        for method in ["GET", "POST"] {
            let (got, html) = request(method, &url, Some("by=mallory"));
            assert_eq!(got, status, "{method} of a link with {what}: {html}");
            assert!(
                html.contains(words),
                "{method} of a link with {what}: {html}"
            );
            assert!(
                html.starts_with("<!doctype html>"),
                "a page for a person: {html}"
            );
        }
    }
    assert_eq!(
        state_of(&d, &id)["state"],
        "firing",
        "a refused link acknowledged"
    );

    // The POST (the page's button, with a name) acknowledges, as `alice (by link)`.
    let (status, html) = request("POST", &mail_link, Some("by=alice"));
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Acknowledged as <b>alice (by link)</b>"),
        "{html}"
    );
    let acked = Instant::now();
    let a = state_of(&d, &id);
    assert_eq!(a["state"], "acknowledged");
    assert_eq!(a["acked_by"], "alice (by link)");
    // ntfy's button afterwards: nothing more to do, and it says so (2xx, so the app shows no error).
    let (status, html) = request("POST", &ntfy_link, None);
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Already acknowledged") && html.contains("alice (by link)"),
        "{html}"
    );

    // Everyone paged hears who answered; PagerDuty acknowledges its incident; step 2 never pages.
    r.hook.wait_for("the ACK page", within, |b| {
        b["event"] == "acknowledged"
            && b["summary"]
                .as_str()
                .is_some_and(|s| s.contains("ACK by alice (by link)"))
    });
    assert!(
        r.hook
            .all()
            .iter()
            .all(|q| q.body["event"] != "acknowledged" || q.body.get("ack_link").is_none())
    );
    r.pd.wait_for("the PagerDuty acknowledge", 1, within, |q| {
        q.json["event_action"] == "acknowledge" && q.json["dedup_key"] == id.as_str()
    });
    let timeline = d.get("/api/v1/timeline");
    assert!(
        timeline.as_array().unwrap().iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("alice (by link) acknowledged disk_full on root"))),
        "{timeline:#}"
    );
    assert!(
        acked.duration_since(fired) < Duration::from_secs(9),
        "the test took too long to acknowledge before step 2 ({:?}); the machine is overloaded",
        acked.duration_since(fired)
    );
    std::thread::sleep(Duration::from_secs(12).saturating_sub(fired.elapsed()));
    assert!(
        r.later.all().iter().all(|q| q.body["event"] != "firing"),
        "step 2 paged after the acknowledgement: {:?}",
        r.later
            .all()
            .iter()
            .map(|q| q.body["summary"].to_string())
            .collect::<Vec<_>>()
    );
    d.terminate(Duration::from_secs(5));
}

#[test]
fn without_public_url_links_point_at_the_listen_address_and_config_check_says_so() {
    let r = Receivers::start();
    let work = tempfile::tempdir().unwrap();
    let config = r.config(work.path(), "");
    let out = std::process::Command::new(kit::lookout_bin())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("no public_url: acknowledgement links in pages will point at the address lookout listens on (http://127.0.0.1:9330, or the one --listen gives) and will only work on this host"),
        "{text}"
    );

    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let page = r
        .hook
        .wait_for("the webhook page", Duration::from_secs(15), firing);
    let link = page.body["ack_link"]["url"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/ack/", d.url())), "{link}");
    let (status, html) = request("GET", link, None);
    assert_eq!(status, 200, "{html}");
    // ntfy's http action: a bare POST, no body.
    let (status, html) = request("POST", link, None);
    assert_eq!(status, 200, "{html}");
    let id = page.body["alert"]["id"].as_str().unwrap();
    assert_eq!(state_of(&d, id)["acked_by"], "someone (by link)");
    d.terminate(Duration::from_secs(5));
}
