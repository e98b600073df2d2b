//! `lookout notify test TARGET…`: sends a real test page through configured notifiers, one hop
//! at a time, and reports how each hop ended and how long it took — before a real incident
//! finds out that a token expired.
//!
//! A target is a notifier id, `all` (every notifier), a person id (each of the person's
//! contacts in order) or a schedule id (whoever is on call now, then that person's contacts).
//! A person's contacts are sent in order, one right after the other: the output shows the delay
//! each would wait in a real page, but the test does not wait for it.
//!
//! The test page is critical unless `--severity` says otherwise, so it goes out as a real page
//! that must wake someone would (ntfy priority 5, PagerDuty `critical`): it proves the phone
//! breaks through do-not-disturb, not only that the channel works.

use crate::alert::{Alert, AlertEvent, AlertEventKind};
use crate::config::Config;
use crate::escalation::schedule::Schedule;
use crate::model::{Labels, Moment, Severity, format_duration};
use crate::notify::{Notification, Outcome};
use crate::rule::Condition;
use anyhow::{Result, bail};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Deadline of one hop, whatever the notifier's own timeout says.
const HOP_DEADLINE: Duration = Duration::from_secs(60);

/// One notifier to send the test page through.
#[derive(Clone, Debug, PartialEq)]
struct Hop {
    /// The notifier id.
    notifier: String,
    /// For a person's contact: (person, place 1-based, contacts in all, delay in seconds).
    contact: Option<(String, usize, usize, f64)>,
}

/// A group of hops and the line that introduces it (for people and schedules).
#[derive(Clone, Debug, PartialEq)]
struct Plan {
    header: Option<String>,
    hops: Vec<Hop>,
}

/// Sends one test page to each target and reports every hop; exit 1 if any hop failed or a
/// schedule has nobody on call.
pub async fn run(config: &Config, targets: &[String], severity: Severity) -> Result<ExitCode> {
    let now = crate::daemon::clock::unix_now();
    let plans = resolve(config, targets, now)?;
    let mut failed = 0;
    for plan in &plans {
        if let Some(h) = &plan.header {
            println!("{h}");
        }
        if plan.hops.is_empty() {
            failed += 1;
        }
        for hop in &plan.hops {
            if !send(config, hop, severity).await {
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Sends the test page through one hop and prints how it went; whether it was delivered.
async fn send(config: &Config, hop: &Hop, severity: Severity) -> bool {
    let n = config
        .notifiers
        .iter()
        .find(|n| n.id == hop.notifier)
        .expect("resolved against the configuration");
    let mut message = test_message(severity);
    let label = match &hop.contact {
        None => format!("{} ({})", n.id, n.kind.name()),
        Some((person, place, of, delay)) => {
            message.summary = format!("{} for {person} (contact {place} of {of})", message.summary);
            let when = if *delay > 0.0 {
                format!("after {} in a real page; sent now", format_duration(*delay))
            } else {
                "at once".to_string()
            };
            format!("  {place}. {} ({}, {when})", n.id, n.kind.name())
        }
    };
    let started = Instant::now();
    let outcome = match crate::notify::build(n) {
        Err(e) => Outcome::Permanent(format!("cannot build the notifier: {e:#}")),
        Ok(notifier) => tokio::time::timeout(HOP_DEADLINE, notifier.send(&message))
            .await
            .unwrap_or_else(|_| Outcome::Retryable(format!("no answer within {HOP_DEADLINE:?}"))),
    };
    let ms = started.elapsed().as_millis();
    match outcome {
        Outcome::Delivered => {
            println!("{label}: delivered in {ms} ms");
            true
        }
        Outcome::Retryable(e) => {
            println!("{label}: FAILED after {ms} ms (retryable): {e}");
            false
        }
        Outcome::Permanent(e) => {
            println!("{label}: FAILED after {ms} ms (permanent): {e}");
            false
        }
    }
}

/// A person's contacts as hops, in order.
fn person_hops(config: &Config, person: &str) -> Vec<Hop> {
    let Some(p) = config.people.iter().find(|p| p.id == person) else {
        return Vec::new();
    };
    let of = p.contacts.len();
    p.contacts
        .iter()
        .enumerate()
        .map(|(i, c)| Hop {
            notifier: c.notifier.clone(),
            contact: Some((
                person.to_string(),
                i + 1,
                of,
                c.delay.map(|d| d.secs()).unwrap_or(0.0),
            )),
        })
        .collect()
}

/// Turns targets into hops: notifiers as they are, people into their contacts, schedules into
/// the contacts of whoever is on call at `now` (unix seconds). Pure.
fn resolve(config: &Config, targets: &[String], now: f64) -> Result<Vec<Plan>> {
    if config.notifiers.is_empty() {
        bail!("no notifier is configured in {}", config.origin());
    }
    let plain = |id: &str| Plan {
        header: None,
        hops: vec![Hop {
            notifier: id.to_string(),
            contact: None,
        }],
    };
    if targets.iter().any(|t| t == "all") {
        return Ok(config.notifiers.iter().map(|n| plain(&n.id)).collect());
    }
    let mut plans = Vec::new();
    for t in targets {
        if config.notifiers.iter().any(|n| &n.id == t) {
            plans.push(plain(t));
        } else if let Some(p) = config.people.iter().find(|p| &p.id == t) {
            let hops = person_hops(config, &p.id);
            plans.push(Plan {
                header: Some(format!(
                    "person {t}: {} contact(s), sent in order now (a real page waits each delay)",
                    hops.len()
                )),
                hops,
            });
        } else if let Some(s) = config.schedules.iter().find(|s| &s.id == t) {
            let schedule = Schedule::compile(s)
                .map_err(|e| anyhow::anyhow!("schedule {t} does not compile: {e}"))?;
            match schedule.on_call_at(now) {
                Some(person) => {
                    let hops = person_hops(config, &person);
                    plans.push(Plan {
                        header: Some(format!(
                            "schedule {t}: {person} is on call now; {} contact(s), sent in order now (a real page waits each delay)",
                            hops.len()
                        )),
                        hops,
                    });
                }
                None => plans.push(Plan {
                    header: Some(format!(
                        "schedule {t}: FAILED: nobody is on call now; a page would reach nobody"
                    )),
                    hops: Vec::new(),
                }),
            }
        } else {
            let list = |ids: Vec<&str>| {
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            };
            bail!(
                "no notifier, person or schedule {t:?} in {} (notifiers: {}; people: {}; schedules: {}; or `all`)",
                config.origin(),
                list(config.notifiers.iter().map(|n| n.id.as_str()).collect()),
                list(config.people.iter().map(|p| p.id.as_str()).collect()),
                list(config.schedules.iter().map(|s| s.id.as_str()).collect()),
            );
        }
    }
    Ok(plans)
}

/// The test page: a real notification with `event = "test"` and this severity, about lookout
/// itself.
pub fn test_message(severity: Severity) -> Notification {
    let now = crate::daemon::clock::unix_now();
    let moment = Moment {
        mono: now,
        wall: now,
    };
    let cond = Condition::active(
        "test_page",
        Labels::new(),
        severity,
        "this is a test page sent by `lookout notify test`; no action is needed",
    );
    let mut alert = Alert::new(crate::alert::INTERNAL_PROBE, &cond, moment);
    alert.state = crate::alert::AlertState::Firing;
    alert.started_at = Some(now);
    let mut n = Notification::from_event(&AlertEvent {
        kind: AlertEventKind::Firing,
        at: now,
        alert,
    });
    n.event = "test".into();
    n.summary = format!("[TEST] lookout test page ({severity}) from {}", hostname());
    n.dedup_key = format!("test:{}", now as u64);
    n
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
[[notifier]]
id = "ntfy-alice"
kind = "webhook"
url = "http://127.0.0.1:9/a"
[[notifier]]
id = "phone-alice"
kind = "webhook"
url = "http://127.0.0.1:9/b"
[[notifier]]
id = "bob-hook"
kind = "webhook"
url = "http://127.0.0.1:9/c"
[[person]]
id = "alice"
contacts = [{ notifier = "ntfy-alice" }, { notifier = "phone-alice", delay = "2m" }]
[[person]]
id = "bob"
contacts = [{ notifier = "bob-hook" }]
[[schedule]]
id = "primary"
layers = [{ rotation = ["alice", "bob"], start = "2026-01-05T09:00", every = "1w" }]
[[schedule]]
id = "later"
layers = [{ rotation = ["bob"], start = "2030-01-01T00:00", every = "1d" }]
"#;

    fn hops(plans: &[Plan]) -> Vec<(String, Option<f64>)> {
        plans
            .iter()
            .flat_map(|p| p.hops.iter())
            .map(|h| (h.notifier.clone(), h.contact.as_ref().map(|c| c.3)))
            .collect()
    }

    #[test]
    fn people_and_schedules_become_their_contacts_in_order() {
        let c = crate::config::parse_str(Path::new("t.toml"), CONFIG).unwrap();
        let p = resolve(&c, &["alice".into()], 0.0).unwrap();
        assert_eq!(
            hops(&p),
            [
                ("ntfy-alice".to_string(), Some(0.0)),
                ("phone-alice".to_string(), Some(120.0))
            ]
        );
        assert!(p[0].header.as_ref().unwrap().starts_with("person alice: 2"));
        // 2026-01-05 09:00 UTC + 1 week: bob's turn.
        let bobs_week = 1_767_603_600.0 + 7.0 * 86400.0 + 60.0;
        let p = resolve(&c, &["primary".into(), "bob-hook".into()], bobs_week).unwrap();
        assert_eq!(
            hops(&p),
            [
                ("bob-hook".to_string(), Some(0.0)),
                ("bob-hook".to_string(), None)
            ]
        );
        assert!(
            p[0].header.as_ref().unwrap().contains("bob is on call now"),
            "{p:?}"
        );
        let p = resolve(&c, &["later".into()], bobs_week).unwrap();
        assert!(p[0].hops.is_empty());
        assert!(p[0].header.as_ref().unwrap().contains("nobody is on call"));
        let e = resolve(&c, &["carol".into()], 0.0).unwrap_err().to_string();
        assert!(
            e.contains("people: alice, bob") && e.contains("schedules: primary, later"),
            "{e}"
        );
    }
}
