//! One run of an action: the run itself (its own task), the timeline entries, the
//! `action_failed` page, and the post-check that re-runs the triggering probe.

use super::actions::{ACTION_FAILED_RULE, LOOKOUT, LastRun};
use super::core::Core;
use crate::action::RunOutcome;
use crate::action::guard::{Guards, span};
use crate::alert::Alert;
use crate::model::{Severity, Status, labels};
use crate::rule::Condition;
use std::sync::Arc;
use std::time::Duration;

impl Core {
    /// Runs an action once now (its own task), then post-checks the triggering probe; pages
    /// `action_failed` when either fails. Returns the outcome and the post-check result.
    pub(super) async fn execute_action(
        self: &Arc<Core>,
        name: &str,
        alert: Option<&Alert>,
        by: &str,
    ) -> Option<(RunOutcome, Option<bool>)> {
        let (action, config, lock) = {
            let inner = self.actions.inner.lock().expect("actions lock");
            let e = inner.actions.get(name)?;
            (e.action.clone(), e.config.clone(), e.run_lock.clone())
        };
        let _running = lock.lock().await;
        let now = self.clock.now();
        let g = Guards::of(&config.common);
        // A run about an alert is lookout's own (a pursuit's, an approved proposal's) and
        // counts against max_runs; a manual run only starts the cooldown.
        let counted = alert.is_some();
        let runs = {
            let mut inner = self.actions.inner.lock().expect("actions lock");
            let e = inner.actions.get_mut(name)?;
            e.history.record_run(now.mono, counted);
            e.state = "running".into();
            e.history.runs_in_window(&g, now.mono)
        };
        let count = if counted {
            format!(
                "run {runs} of at most {} per {}",
                g.max_runs,
                span(g.window)
            )
        } else {
            format!(
                "by hand: not counted in max_runs; {runs} of {} automatic runs per {} used",
                g.max_runs,
                span(g.window)
            )
        };
        self.action_note(
            "action_started",
            name,
            alert,
            by,
            format!(
                "started {} ({count}, timeout {})",
                action.describe(),
                span(config.timeout().secs())
            ),
        );
        let timeout = config.timeout().0;
        let task = tokio::spawn(async move { action.run(timeout).await });
        let outcome = task
            .await
            .unwrap_or_else(|e| RunOutcome::failed(format!("the run panicked: {e}"), 0.0));
        let tail = if outcome.output_tail.trim().is_empty() {
            String::new()
        } else {
            format!("\noutput:\n{}", outcome.output_tail.trim_end())
        };
        self.action_note(
            "action_finished",
            name,
            alert,
            by,
            format!(
                "{}: {}{tail}",
                if outcome.ok { "ok" } else { "failed" },
                outcome.summary
            ),
        );
        let fail_labels = labels([("action", name)]);
        if !outcome.ok {
            self.set_internal(Condition::active(
                ACTION_FAILED_RULE,
                fail_labels,
                Severity::Critical,
                format!("action {name} failed: {}{tail}", outcome.summary),
            ));
            self.finish_run(name, now.wall, false, &outcome.summary, by);
            return Some((outcome, None));
        }
        let probe = alert
            .map(|a| a.probe.clone())
            .filter(|p| config.common.post_check && self.probe_interval(p).is_some());
        let Some(probe) = probe else {
            self.set_internal(Condition::clear(
                ACTION_FAILED_RULE,
                fail_labels,
                format!("action {name} succeeded"),
            ));
            self.finish_run(name, now.wall, true, &outcome.summary, by);
            return Some((outcome, None));
        };
        let passed = self
            .post_check(name, alert, &probe, config.common.post_check_within.secs())
            .await;
        if passed {
            self.set_internal(Condition::clear(
                ACTION_FAILED_RULE,
                fail_labels,
                format!("action {name} succeeded and {probe} reads ok"),
            ));
        } else {
            self.set_internal(Condition::active(
                ACTION_FAILED_RULE,
                fail_labels,
                Severity::Critical,
                format!(
                    "action {name} ran ({}) but the post-check failed: {probe} is still not ok after {}{tail}",
                    outcome.summary,
                    span(config.common.post_check_within.secs())
                ),
            ));
        }
        self.finish_run(name, now.wall, passed, &outcome.summary, by);
        Some((outcome, Some(passed)))
    }

    fn finish_run(&self, name: &str, at: f64, ok: bool, summary: &str, by: &str) {
        self.with_action(name, |e| {
            e.last = Some(LastRun {
                at,
                ok,
                summary: summary.to_string(),
                by: by.to_string(),
            });
            e.state = "idle".into();
        });
    }

    /// Re-runs `probe` now and every half interval (at least 1 s) until it reads ok or
    /// `within` passes; records the verdict.
    async fn post_check(
        &self,
        name: &str,
        alert: Option<&Alert>,
        probe: &str,
        within: f64,
    ) -> bool {
        let started = tokio::time::Instant::now();
        let every = self
            .probe_interval(probe)
            .map_or(Duration::from_secs(1), |i| {
                (i / 2).max(Duration::from_secs(1))
            });
        let mut last = String::new();
        loop {
            if let Some(obs) = self.run_probe_now(probe).await {
                if obs.status == Status::Ok {
                    self.action_note(
                        "action_postcheck",
                        name,
                        alert,
                        LOOKOUT,
                        format!(
                            "post-check passed: {probe} reads ok {} after the run",
                            span(started.elapsed().as_secs_f64())
                        ),
                    );
                    return true;
                }
                last = format!(
                    "{}: {}",
                    obs.status.as_str(),
                    obs.message.lines().next().unwrap_or("")
                );
            }
            // Re-check until the window has passed: the last look is at its end.
            let left = within - started.elapsed().as_secs_f64();
            if left <= 0.0 {
                break;
            }
            tokio::time::sleep(every.min(Duration::from_secs_f64(left))).await;
        }
        self.action_note(
            "action_postcheck",
            name,
            alert,
            LOOKOUT,
            format!(
                "post-check failed: {probe} still not ok after {} ({last})",
                span(within)
            ),
        );
        false
    }
}
