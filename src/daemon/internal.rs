//! lookout's checks on itself: its store, its notifiers, its configuration, and the systemd
//! watchdog. They raise alerts through the same engine as every probe.

use super::core::Core;
use crate::model::{Labels, Severity, labels};
use crate::notify::dispatch::{ChannelHealth, NOTIFIER_FAILING_RULE};
use crate::rule::Condition;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

/// Alert raised while the store fails.
pub const STORE_RULE: &str = "store_failing";
/// Standing warning while no notifier is configured.
pub const NO_NOTIFIER_RULE: &str = "no_notifier";
/// Warning while the configuration watches nothing (no probe, heartbeat or intake).
pub const WATCHING_NOTHING_RULE: &str = "watching_nothing";
/// Warning while a reload was refused.
pub const CONFIG_RULE: &str = "config_invalid";

/// Warning while `lookout lint net` finds problems in the host's network configuration.
pub const NET_LINT_RULE: &str = "net_lint";

/// Runs the network-configuration lint once (at start), bounded by 10 s, and
/// raises or clears the `net_lint` warning.
pub async fn lint_network(core: &Core) {
    let findings = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(|| crate::lint::net::lint(&[])),
    )
    .await;
    let cond = match findings {
        Ok(Ok(f)) if f.is_empty() => Condition::clear(
            NET_LINT_RULE,
            Labels::new(),
            "network configuration lint found nothing",
        ),
        Ok(Ok(f)) => Condition::active(
            NET_LINT_RULE,
            Labels::new(),
            Severity::Warning,
            format!(
                "the network configuration has {} problem(s) that can break routes at the next renewal or reboot (`lookout lint net`):\n{}",
                f.len(),
                f.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ),
        _ => {
            tracing::warn!("the network configuration lint did not finish within 10 s");
            return;
        }
    };
    core.set_internal(cond);
}

/// The `config_invalid` condition: active with the errors, or clear.
pub fn config_condition(errors: Option<&str>) -> Condition {
    match errors {
        Some(e) => Condition::active(
            CONFIG_RULE,
            Labels::new(),
            Severity::Warning,
            format!(
                "the configuration was not reloaded, the previous one is still in force: {}{}\n{e}",
                first_problem(e),
                match e.lines().filter(|l| !l.starts_with(' ')).count() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                }
            ),
        ),
        None => Condition::clear(CONFIG_RULE, Labels::new(), "configuration valid"),
    }
}

/// The first problem of a `config check` report, on one line (the timeline and the first line
/// of a page show only that).
fn first_problem(report: &str) -> &str {
    report
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Raises or clears the standing "nobody would be paged" warning.
pub fn announce_notifiers(core: &Core) {
    let cond = if core.dispatcher().has_targets() {
        Condition::clear(NO_NOTIFIER_RULE, Labels::new(), "notifiers configured")
    } else {
        tracing::warn!(
            "NO NOTIFIER IS CONFIGURED: alerts are only logged and shown on the status page; nobody would be paged"
        );
        Condition::active(
            NO_NOTIFIER_RULE,
            Labels::new(),
            Severity::Warning,
            "no notifier is configured: alerts are only logged and shown, nobody would be paged (add a [[notifier]])",
        )
    };
    core.set_internal(cond);
}

/// Raises or clears the standing "nothing is watched" warning for `config`.
pub fn announce_watching(core: &Core, config: &crate::config::Config) {
    let cond = if crate::config::host::watches_nothing(config) {
        tracing::warn!("WATCHING NOTHING: {}", crate::config::WATCHING_NOTHING);
        Condition::active(
            WATCHING_NOTHING_RULE,
            Labels::new(),
            Severity::Warning,
            format!(
                "{} (remove `[host] watch = false`, or add a [[probe]] or [[heartbeat]])",
                crate::config::WATCHING_NOTHING
            ),
        )
    } else {
        Condition::clear(
            WATCHING_NOTHING_RULE,
            Labels::new(),
            crate::config::host::summary(config),
        )
    };
    core.set_internal(cond);
}

/// Runs the self-checks every second until `stop` turns true.
pub async fn run(
    core: Arc<Core>,
    mut feedback: UnboundedReceiver<ChannelHealth>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watchdog = watchdog_interval();
    let mut last_watchdog = tokio::time::Instant::now();
    // Overdue heartbeats are looked for four times a second: an alert comes at most 250 ms
    // after period + grace.
    let mut beats = tokio::time::interval(Duration::from_millis(250));
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beats.tick() => {
                core.with_heartbeats(|h, now| ((), h.check(now)));
                core.tick_paging();
            }
            _ = tick.tick() => {
                check_store(&core);
                if let Some(w) = watchdog
                    && last_watchdog.elapsed() >= w {
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                        last_watchdog = tokio::time::Instant::now();
                    }
                let cutoff = core.clock.now().wall - 86_400.0;
                core.with_engine(|e| e.prune_resolved(cutoff));
            }
            Some(h) = feedback.recv() => channel_health(&core, h),
            _ = stop.changed() => return,
        }
    }
}

fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

fn check_store(core: &Core) {
    let h = core.store.health();
    let cond = if h.ok && h.dropped == 0 {
        Condition::clear(STORE_RULE, Labels::new(), "the store works")
    } else if h.ok {
        Condition::clear(
            STORE_RULE,
            Labels::new(),
            format!(
                "the store works ({} writes were dropped earlier)",
                h.dropped
            ),
        )
    } else {
        Condition::active(
            STORE_RULE,
            Labels::new(),
            Severity::Critical,
            format!(
                "lookout's own store fails: {}; {} writes held in memory, {} dropped; alerts are still evaluated and sent",
                h.error.as_deref().unwrap_or("unknown error"),
                h.backlog,
                h.dropped
            ),
        )
    };
    core.set_internal(cond);
}

fn channel_health(core: &Core, h: ChannelHealth) {
    if h.error.is_some() {
        core.delivery_failed(&h.dedup_key);
    }
    let l = labels([("notifier", h.notifier.as_str())]);
    let cond = match h.error {
        None => Condition::clear(
            NOTIFIER_FAILING_RULE,
            l,
            format!("notifier {} delivers again", h.notifier),
        ),
        Some(e) => Condition::active(
            NOTIFIER_FAILING_RULE,
            l,
            Severity::Critical,
            format!("notifier {} cannot deliver: {e}", h.notifier),
        ),
    };
    core.set_internal(cond);
}
