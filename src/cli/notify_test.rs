//! `lookout notify test TARGET…`: sends a real test page through configured notifiers, one hop
//! at a time, and reports how each hop ended and how long it took — before a real incident
//! finds out that a token expired.

use crate::alert::{Alert, AlertEvent, AlertEventKind};
use crate::config::Config;
use crate::model::{Labels, Moment, Severity};
use crate::notify::{Notification, Outcome};
use crate::rule::Condition;
use anyhow::{Result, bail};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Deadline of one hop, whatever the notifier's own timeout says.
const HOP_DEADLINE: Duration = Duration::from_secs(60);

/// Sends one test page to each target (notifier ids; `all` for every notifier).
pub async fn run(config: &Config, targets: &[String]) -> Result<ExitCode> {
    let ids = resolve(config, targets)?;
    let message = test_message();
    let mut failed = 0;
    for id in &ids {
        let n = config
            .notifiers
            .iter()
            .find(|n| &n.id == id)
            .expect("resolved above");
        let started = Instant::now();
        let outcome = match crate::notify::build(n) {
            Err(e) => Outcome::Permanent(format!("cannot build the notifier: {e:#}")),
            Ok(notifier) => tokio::time::timeout(HOP_DEADLINE, notifier.send(&message))
                .await
                .unwrap_or_else(|_| {
                    Outcome::Retryable(format!("no answer within {HOP_DEADLINE:?}"))
                }),
        };
        let ms = started.elapsed().as_millis();
        match outcome {
            Outcome::Delivered => println!("{id} ({}): delivered in {ms} ms", n.kind.name()),
            Outcome::Retryable(e) => {
                failed += 1;
                println!(
                    "{id} ({}): FAILED after {ms} ms (retryable): {e}",
                    n.kind.name()
                )
            }
            Outcome::Permanent(e) => {
                failed += 1;
                println!(
                    "{id} ({}): FAILED after {ms} ms (permanent): {e}",
                    n.kind.name()
                )
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn resolve(config: &Config, targets: &[String]) -> Result<Vec<String>> {
    if config.notifiers.is_empty() {
        bail!("no notifier is configured in {}", config.origin());
    }
    if targets.iter().any(|t| t == "all") {
        return Ok(config.notifiers.iter().map(|n| n.id.clone()).collect());
    }
    let known: Vec<&str> = config.notifiers.iter().map(|n| n.id.as_str()).collect();
    for t in targets {
        if !known.contains(&t.as_str()) {
            bail!(
                "no notifier {t:?} in {} (known: {}, or `all`)",
                config.origin(),
                known.join(", ")
            );
        }
    }
    Ok(targets.to_vec())
}

/// The test page: a real notification with `event = "test"`, severity info, about lookout itself.
pub fn test_message() -> Notification {
    let now = crate::daemon::clock::unix_now();
    let moment = Moment {
        mono: now,
        wall: now,
    };
    let cond = Condition::active(
        "test_page",
        Labels::new(),
        Severity::Info,
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
    n.summary = format!("[TEST] lookout test page from {}", hostname());
    n.dedup_key = format!("test:{}", now as u64);
    n
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
