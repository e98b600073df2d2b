//! The guards around one action, as a pure state machine: time is passed in (monotonic
//! seconds), nothing here sleeps or runs anything. The runner (`crate::daemon::actions`) asks
//! [`decide`] what to do next and does it.
//!
//! The order is fixed (docs/actions.md): max runs per window, cooldown, preconditions, the
//! alert still firing, then the mode. `max_runs` comes first so that a pursuit whose last
//! allowed run failed stops (and pages) at once instead of waiting out a cooldown for nothing.

use crate::config::actions::{ActionCommon, ActionMode};

/// The guard settings of one action, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guards {
    /// Wait after the alert fires before the first check.
    pub delay: f64,
    /// How long the precondition probes must have been ok, continuously.
    pub require_ok_for: f64,
    /// At least this long between two runs.
    pub cooldown: f64,
    /// At most this many runs per `window`.
    pub max_runs: u32,
    /// The window of `max_runs`.
    pub window: f64,
    /// An unanswered proposal expires after this.
    pub ask_deadline: f64,
    /// `dry_run`, `ask` or `auto`.
    pub mode: ActionMode,
}

impl Guards {
    /// The guards of a configured action.
    pub fn of(c: &ActionCommon) -> Guards {
        Guards {
            delay: c.delay.secs(),
            require_ok_for: c.require_ok_for.secs(),
            cooldown: c.cooldown.secs(),
            max_runs: c.max_runs,
            window: c.window.secs(),
            ask_deadline: c.ask_deadline.secs(),
            mode: c.mode,
        }
    }
}

/// The runs of one action that count against its guards: lookout's own runs (a pursuit's, an
/// approved proposal's) count against `max_runs`; every run, a person's too, starts the
/// cooldown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// When each counted run started (monotonic seconds), oldest first.
    runs: Vec<f64>,
    /// The start of the latest run of any kind.
    last_any: Option<f64>,
}

impl History {
    /// A history holding these counted run starts and the latest run of any kind (e.g.
    /// rebuilt from the stored timeline at start).
    pub fn with_runs(mut runs: Vec<f64>, last_any: Option<f64>) -> History {
        runs.sort_by(f64::total_cmp);
        let last_any = match (runs.last().copied(), last_any) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        History { runs, last_any }
    }

    /// Notes a run that starts at `now`; `counted` runs count against `max_runs` (a person's
    /// manual run does not).
    pub fn record_run(&mut self, now: f64, counted: bool) {
        if counted {
            self.runs.push(now);
        }
        self.last_any = Some(self.last_any.map_or(now, |l| l.max(now)));
    }

    /// The start of the latest run of any kind.
    pub fn last_run(&self) -> Option<f64> {
        self.last_any
    }

    /// Counted runs that started within the window ending at `now`.
    pub fn runs_in_window(&self, g: &Guards, now: f64) -> u32 {
        self.runs.iter().filter(|r| now - **r < g.window).count() as u32
    }

    /// When the oldest counted run in the window leaves it (a run is allowed again).
    pub fn window_frees_at(&self, g: &Guards, now: f64) -> f64 {
        self.runs
            .iter()
            .find(|r| now - **r < g.window)
            .map_or(now, |r| r + g.window)
    }

    /// Forgets runs older than any window (keeps the history small).
    pub fn prune(&mut self, g: &Guards, now: f64) {
        self.runs.retain(|r| now - *r < g.window.max(g.cooldown));
    }
}

/// Whether the precondition probes allow a run now.
#[derive(Clone, Debug, PartialEq)]
pub enum Precondition {
    /// Every probe has been ok for long enough.
    Met,
    /// Not yet: why (in words), and when to look again.
    NotMet {
        /// E.g. "db is critical: connection refused", "db ok for only 12s of 60s".
        why: String,
        /// Monotonic seconds.
        retry_at: f64,
    },
}

/// What the runner knows at the moment of a check.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// Monotonic seconds.
    pub now: f64,
    /// Whether the triggering alert is still firing (true for a manual run).
    pub alert_firing: bool,
    /// The preconditions.
    pub preconditions: Precondition,
    /// A person asked for this run (`lookout action run`): the mode `ask` does not apply (the
    /// person is the approval); `dry_run` still does.
    pub manual: bool,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Too soon after the last run: wait until then.
    Cooldown {
        /// Monotonic seconds.
        until: f64,
    },
    /// `max_runs` reached in the window: stop until a run leaves the window (the pursuit pages
    /// `remediation_exhausted`).
    Exhausted {
        /// Monotonic seconds at which a run is allowed again.
        until: f64,
        /// Runs in the window.
        runs: u32,
    },
    /// The preconditions are not met: wait and look again.
    NotReady {
        /// Why, in words.
        why: String,
        /// Monotonic seconds.
        retry_at: f64,
    },
    /// The alert resolved before the run: nothing to do.
    Resolved,
    /// `mode = "dry_run"`: say what would run, run nothing.
    DryRun,
    /// `mode = "ask"`: propose the run; it expires unanswered at `deadline`.
    Propose {
        /// Monotonic seconds.
        deadline: f64,
    },
    /// Run now.
    Run,
}

/// The guards' verdict, in the documented order.
pub fn decide(g: &Guards, h: &History, i: &Inputs) -> Decision {
    let runs = h.runs_in_window(g, i.now);
    if runs >= g.max_runs {
        return Decision::Exhausted {
            until: h.window_frees_at(g, i.now),
            runs,
        };
    }
    if let Some(last) = h.last_run()
        && i.now - last < g.cooldown
    {
        return Decision::Cooldown {
            until: last + g.cooldown,
        };
    }
    if let Precondition::NotMet { why, retry_at } = &i.preconditions {
        return Decision::NotReady {
            why: why.clone(),
            retry_at: *retry_at,
        };
    }
    if !i.alert_firing {
        return Decision::Resolved;
    }
    match g.mode {
        ActionMode::DryRun => Decision::DryRun,
        ActionMode::Ask if !i.manual => Decision::Propose {
            deadline: i.now + g.ask_deadline,
        },
        _ => Decision::Run,
    }
}

/// The precondition verdict for probes given as (id, ok since (monotonic seconds) or the
/// reason it is not ok).
pub fn preconditions(
    probes: &[(String, Result<f64, String>)],
    g: &Guards,
    now: f64,
) -> Precondition {
    let mut retry = None::<f64>;
    let mut why = Vec::new();
    for (id, state) in probes {
        match state {
            Err(e) => {
                why.push(format!("{id} is not ok ({e})"));
                retry = Some(retry.map_or(now + 1.0, |r: f64| r.min(now + 1.0)));
            }
            Ok(since) if now - since < g.require_ok_for => {
                why.push(format!(
                    "{id} has been ok for only {} of the required {}",
                    span((now - since).max(0.0).floor()),
                    span(g.require_ok_for)
                ));
                let at = since + g.require_ok_for;
                retry = Some(retry.map_or(at, |r| r.min(at)));
            }
            Ok(_) => {}
        }
    }
    match retry {
        None => Precondition::Met,
        Some(retry_at) => Precondition::NotMet {
            why: why.join("; "),
            retry_at,
        },
    }
}

/// A configured span as written: `30s`, `5m`, `1h`, `2d`; other values as
/// [`crate::model::format_duration`] does (`1m30s`).
pub fn span(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if (seconds - s as f64).abs() > 1e-9 || s == 0 {
        return crate::model::format_duration(seconds);
    }
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s if s < 60 => format!("{s}s"),
        _ => crate::model::format_duration(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guards(mode: ActionMode) -> Guards {
        Guards {
            delay: 30.0,
            require_ok_for: 60.0,
            cooldown: 300.0,
            max_runs: 3,
            window: 3600.0,
            ask_deadline: 900.0,
            mode,
        }
    }

    fn at(now: f64) -> Inputs {
        Inputs {
            now,
            alert_firing: true,
            preconditions: Precondition::Met,
            manual: false,
        }
    }

    #[test]
    fn modes_decide_once_every_guard_passes() {
        let h = History::default();
        assert_eq!(
            decide(&guards(ActionMode::Auto), &h, &at(0.0)),
            Decision::Run
        );
        assert_eq!(
            decide(&guards(ActionMode::DryRun), &h, &at(0.0)),
            Decision::DryRun
        );
        assert_eq!(
            decide(&guards(ActionMode::Ask), &h, &at(10.0)),
            Decision::Propose { deadline: 910.0 }
        );
        // A person asking is the approval; a dry run stays a dry run.
        let manual = Inputs {
            manual: true,
            ..at(0.0)
        };
        assert_eq!(decide(&guards(ActionMode::Ask), &h, &manual), Decision::Run);
        assert_eq!(
            decide(&guards(ActionMode::DryRun), &h, &manual),
            Decision::DryRun
        );
    }

    #[test]
    fn max_runs_comes_before_the_cooldown_and_frees_with_the_window() {
        let g = guards(ActionMode::Auto);
        let mut h = History::default();
        h.record_run(0.0, true);
        assert_eq!(
            decide(&g, &h, &at(100.0)),
            Decision::Cooldown { until: 300.0 }
        );
        assert_eq!(decide(&g, &h, &at(300.0)), Decision::Run);
        h.record_run(300.0, true);
        h.record_run(600.0, true);
        // The third run failed: the pursuit stops at once, not after the cooldown.
        let stop = Decision::Exhausted {
            until: 3600.0,
            runs: 3,
        };
        assert_eq!(decide(&g, &h, &at(601.0)), stop);
        assert_eq!(decide(&g, &h, &at(1000.0)), stop);
        // The first run leaves the window: one more is allowed.
        assert_eq!(decide(&g, &h, &at(3600.0)), Decision::Run);
    }

    #[test]
    fn a_manual_run_starts_the_cooldown_but_does_not_count_against_max_runs() {
        let g = guards(ActionMode::Auto);
        let mut h = History::default();
        h.record_run(0.0, true);
        h.record_run(400.0, false);
        h.record_run(800.0, false);
        assert_eq!(h.runs_in_window(&g, 900.0), 1);
        assert_eq!(
            decide(&g, &h, &at(900.0)),
            Decision::Cooldown { until: 1100.0 }
        );
        assert_eq!(decide(&g, &h, &at(1100.0)), Decision::Run);
        let rebuilt = History::with_runs(vec![0.0], Some(800.0));
        assert_eq!(rebuilt.last_run(), Some(800.0));
        assert_eq!(rebuilt.runs_in_window(&g, 900.0), 1);
    }

    #[test]
    fn preconditions_wait_and_say_why_and_a_resolved_alert_skips() {
        let g = guards(ActionMode::Auto);
        let probes = vec![
            ("db".to_string(), Ok(100.0)),
            ("disk".to_string(), Err("critical: full".to_string())),
        ];
        let p = preconditions(&probes, &g, 130.0);
        let Precondition::NotMet { why, retry_at } = &p else {
            panic!("{p:?}")
        };
        assert!(
            why.contains("db has been ok for only 30s of the required 1m"),
            "{why}"
        );
        assert!(why.contains("disk is not ok (critical: full)"), "{why}");
        assert_eq!(*retry_at, 131.0);
        let h = History::default();
        let i = Inputs {
            preconditions: p,
            ..at(130.0)
        };
        assert!(matches!(decide(&g, &h, &i), Decision::NotReady { .. }));
        assert_eq!(preconditions(&probes[..1], &g, 160.0), Precondition::Met);
        let gone = Inputs {
            alert_firing: false,
            ..at(200.0)
        };
        assert_eq!(decide(&g, &h, &gone), Decision::Resolved);
    }

    #[test]
    fn a_rebuilt_history_counts_runs_from_before_a_restart() {
        let g = guards(ActionMode::Auto);
        let mut h = History::with_runs(vec![-1000.0, -2000.0, -10.0], None);
        assert_eq!(h.runs_in_window(&g, 0.0), 3);
        assert!(matches!(
            decide(&g, &h, &at(400.0)),
            Decision::Exhausted { .. }
        ));
        h.prune(&g, 5000.0);
        assert_eq!(span(3600.0), "1h");
        assert_eq!(span(300.0), "5m");
        assert_eq!(span(90.0), "1m30s");
        assert_eq!(h.runs_in_window(&g, 5000.0), 0);
    }
}
