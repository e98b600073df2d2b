//! The outbound dead-man's switch (`[deadman]`).
//!
//! Every interval a watchdog message travels lookout's own paging path: the engine must answer,
//! the probes must have run recently, no channel may be failing, and the watchdog's delivery
//! record must be committed to the notification log. Only then is the outside monitor's URL
//! pinged. When any link is broken the ping stops (and `fail_url`, if set, is hit at once), so the
//! outside monitor pages when lookout, its store or its notifiers die — the case where lookout
//! itself can no longer tell anybody.

use super::core::Core;
use crate::alert::{AlertState, INTERNAL_PROBE};
use crate::config::DeadmanConfig;
use crate::daemon::clock::unix_now;
use crate::model::{Labels, Severity};
use crate::rule::Condition;
use crate::store::Delivery;
use crate::store::writer::StoreOp;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Warning raised while the dead-man's switch URL cannot be reached.
pub const DEADMAN_RULE: &str = "deadman_ping_failing";

/// Internal alerts that mean the paging path is broken: while one is open, no ping goes out.
const BLOCKING_RULES: &[&str] = &[
    crate::notify::dispatch::NOTIFIER_FAILING_RULE,
    super::internal::STORE_RULE,
    super::internal::NO_NOTIFIER_RULE,
];

/// Runs the switch until the task is aborted (with the probe tasks, at reload or stop).
pub async fn run(core: Arc<Core>, config: DeadmanConfig, longest_probe_interval: Duration) {
    let client = match crate::http::client(config.timeout.0) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the dead-man's switch cannot start its HTTP client");
            return;
        }
    };
    let stalled_after = config
        .stalled_after
        .map(|d| d.0)
        .unwrap_or_else(|| (longest_probe_interval * 3).max(config.interval.0 * 3));
    let mut progress = Progress::new(core.counters.probe_runs.load(Ordering::Relaxed));
    // The first check waits a moment, so the start-up self-checks (no notifier?) have run.
    let mut tick =
        tokio::time::interval_at(Instant::now() + Duration::from_secs(1), config.interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut paused: Option<String> = None;
    loop {
        tick.tick().await;
        let runs = core.counters.probe_runs.load(Ordering::Relaxed);
        let stalled = progress.update(runs, Instant::now(), stalled_after);
        let verdict = pipeline_verdict(&core, stalled, config.timeout.0).await;
        match verdict {
            Ok(delivery) => {
                if let Some(reason) = paused.take() {
                    core.note(
                        "deadman_resumed",
                        format!("dead-man's switch pings resume: the paging path works again (it was paused because {reason})"),
                    );
                }
                ping_ok(&core, &client, &config, delivery).await;
            }
            Err(reason) => {
                if paused.as_deref() != Some(reason.as_str()) {
                    tracing::error!(%reason, "dead-man's switch paused: the outside monitor will page");
                    core.note(
                        "deadman_paused",
                        format!(
                            "dead-man's switch pings stop so the outside monitor pages: {reason}"
                        ),
                    );
                }
                if let Some(fail) = &config.fail_url {
                    let body = format!("lookout's paging path is broken: {reason}");
                    if let Err(e) = client.post(fail.expose()).body(body).send().await {
                        tracing::warn!(error = %crate::http::describe(&e), "cannot reach the dead-man's switch fail URL");
                    }
                }
                paused = Some(reason);
            }
        }
    }
}

/// When the probe-run counter last moved.
struct Progress {
    runs: u64,
    since: Instant,
}

impl Progress {
    fn new(runs: u64) -> Progress {
        Progress {
            runs,
            since: Instant::now(),
        }
    }

    /// Takes the counter's value now; `Some(idle time)` when it has not moved for too long.
    fn update(&mut self, runs: u64, now: Instant, limit: Duration) -> Option<Duration> {
        if runs != self.runs {
            self.runs = runs;
            self.since = now;
        }
        let idle = now.duration_since(self.since);
        (idle > limit).then_some(idle)
    }
}

/// Checks every link of the paging path; on success the watchdog's committed delivery record.
async fn pipeline_verdict(
    core: &Arc<Core>,
    stalled: Option<Duration>,
    deadline: Duration,
) -> Result<Delivery, String> {
    if let Some(idle) = stalled {
        return Err(format!(
            "no probe has run for {}",
            crate::model::format_duration(idle.as_secs_f64())
        ));
    }
    let c = core.clone();
    let check = tokio::task::spawn_blocking(move || {
        // The engine answers (its lock is not stuck) and no blocking internal alert is open.
        let blockers: Vec<String> = c.with_engine(|e| {
            e.alerts()
                .filter(|a| a.probe == INTERNAL_PROBE && BLOCKING_RULES.contains(&a.rule.as_str()))
                .filter(|a| matches!(a.state, AlertState::Firing | AlertState::Acknowledged))
                .map(|a| a.message.lines().next().unwrap_or(&a.rule).to_string())
                .collect()
        });
        if !blockers.is_empty() {
            return Err(blockers.join("; "));
        }
        // The watchdog's delivery record must reach the disk, as every page's does.
        let now = unix_now();
        let delivery = Delivery {
            dedup_key: format!("watchdog:{}:deadman", now as u64),
            alert_id: "watchdog".into(),
            notifier: "deadman".into(),
            event: "watchdog".into(),
            outcome: "pending".into(),
            attempts: 0,
            latency: None,
            error: None,
            payload: "{}".into(),
            created_at: now,
            updated_at: now,
        };
        c.store.send(StoreOp::Delivery(delivery.clone()));
        let committed = c.store.flush(Duration::from_secs(5));
        let health = c.store.health();
        if !committed || !health.ok {
            return Err(format!(
                "the notification log cannot be written ({})",
                health
                    .error
                    .unwrap_or_else(|| "the store did not answer within 5 s".into())
            ));
        }
        Ok(delivery)
    });
    match tokio::time::timeout(deadline.max(Duration::from_secs(6)), check).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("the pipeline check failed: {e}")),
        Err(_) => Err("the engine or the store did not answer in time".into()),
    }
}

/// Pings the URL and records the outcome on the delivery and as the `deadman_ping_failing` alert.
async fn ping_ok(
    core: &Core,
    client: &reqwest::Client,
    config: &DeadmanConfig,
    mut delivery: Delivery,
) {
    let Some(url) = &config.url else { return };
    let started = std::time::Instant::now();
    let body = serde_json::json!({
        "source": "lookout",
        "event": "watchdog",
        "open_alerts": core.alerts().iter().filter(|a| a.state.is_open()).count(),
    });
    let outcome = crate::http::classify(client.post(url.expose()).json(&body).send().await).await;
    delivery.attempts = 1;
    delivery.updated_at = unix_now();
    let cond = match outcome {
        crate::notify::Outcome::Delivered => {
            delivery.outcome = "delivered".into();
            delivery.latency = Some(started.elapsed().as_secs_f64());
            Condition::clear(
                DEADMAN_RULE,
                Labels::new(),
                "the dead-man's switch URL answers",
            )
        }
        crate::notify::Outcome::Retryable(e) | crate::notify::Outcome::Permanent(e) => {
            tracing::warn!(error = %e, "the dead-man's switch ping failed");
            delivery.outcome = "failed".into();
            delivery.error = Some(e.clone());
            Condition::active(
                DEADMAN_RULE,
                Labels::new(),
                Severity::Warning,
                format!(
                    "cannot ping the dead-man's switch URL: {e}; the outside monitor will page when its grace time runs out"
                ),
            )
        }
    };
    core.store.send(StoreOp::Delivery(delivery));
    core.set_internal(cond);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reports_a_stall_only_after_the_limit() {
        let t0 = Instant::now();
        let mut p = Progress { runs: 5, since: t0 };
        let limit = Duration::from_secs(30);
        assert_eq!(p.update(5, t0 + Duration::from_secs(29), limit), None);
        assert!(p.update(5, t0 + Duration::from_secs(31), limit).is_some());
        assert_eq!(p.update(6, t0 + Duration::from_secs(32), limit), None);
        assert_eq!(p.update(6, t0 + Duration::from_secs(61), limit), None);
        assert!(p.update(6, t0 + Duration::from_secs(63), limit).is_some());
    }
}
