//! "Did not recover": a probe whose dependencies came back while it stayed broken.
//!
//! One [`Tracker`] per probe with `depends_on`. Pure: every time comes in as an argument and
//! every duration is measured on the monotonic clock.
//!
//! The life of one episode:
//! - a dependency fails → [`Phase::DependencyFailing`] (the dependant's alerts are suppressed by
//!   the dependency, as always);
//! - every dependency is ok again → [`Phase::Grace`] until `recover_within` after the last one
//!   recovered: the dependant's alerts stay suppressed while it reconnects;
//! - the dependant reads ok (fresh evidence) → the episode ends quietly ([`Outcome::Recovered`]);
//! - its first failing run at or after the deadline → [`Outcome::DidNotRecover`] and
//!   [`Phase::Open`]: `did_not_recover` fires and the dependant's own alerts stay suppressed
//!   while it is open, so one page tells the story;
//! - while open, only a run of the dependant that reads ok resolves it ([`Outcome::Resolved`]);
//!   a dependency failing again changes nothing about it (it stays open, the dependant's alerts
//!   stay suppressed), and a failed or missing run of the dependant never resolves it.

use crate::model::{Moment, format_duration, format_utc};

/// The rule of the alert this module raises.
pub const RULE: &str = "did_not_recover";

/// The smallest default `recover_within`, in seconds.
pub const MIN_DEFAULT_WITHIN: f64 = 60.0;

/// The default `recover_within` of a probe that runs every `interval` seconds: two intervals,
/// at least 60 s.
pub fn default_within(interval: f64) -> f64 {
    (2.0 * interval).max(MIN_DEFAULT_WITHIN)
}

/// Where a dependant is in a recovery episode.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// No dependency failed since the last episode ended.
    Idle,
    /// A dependency is failing: its own alert speaks for the dependant.
    DependencyFailing,
    /// Every dependency is ok again; the dependant has until `deadline` to read ok.
    Grace {
        /// The dependency that recovered last.
        dependency: String,
        /// Unix seconds when it recovered.
        recovered_wall: f64,
        /// Monotonic seconds when it recovered.
        recovered_mono: f64,
        /// Monotonic seconds: `recovered_mono + recover_within`.
        deadline: f64,
    },
    /// `did_not_recover` is open.
    Open {
        /// The dependency named in the alert.
        dependency: String,
    },
}

/// What an observation of the dependant decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Nothing changed.
    Nothing,
    /// It read ok within the grace: the episode ends without a page.
    Recovered {
        /// The dependency that recovered last.
        dependency: String,
        /// Seconds from that recovery to this observation (monotonic).
        after: f64,
    },
    /// It is still failing past the deadline: raise `did_not_recover`.
    DidNotRecover {
        /// The dependency that recovered last.
        dependency: String,
        /// Unix seconds when it recovered.
        recovered_wall: f64,
        /// Seconds from that recovery to this observation (monotonic).
        after: f64,
    },
    /// It was open and the dependant read ok: resolve `did_not_recover`.
    Resolved {
        /// The dependency named in the alert.
        dependency: String,
    },
    /// The grace ended while the dependant already had an alert of its own open (it was
    /// broken before the dependency failed): that alert already pages, so nothing is raised.
    AlreadyPaging,
}

/// The recovery state of one dependant probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracker {
    /// The current phase.
    pub phase: Phase,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker { phase: Phase::Idle }
    }
}

impl Tracker {
    /// A tracker whose `did_not_recover` alert is open (restored after a restart).
    pub fn open(dependency: &str) -> Tracker {
        Tracker {
            phase: Phase::Open {
                dependency: dependency.to_string(),
            },
        }
    }

    /// Whether the dependant's own alerts are held back by the episode (grace or open).
    pub fn holds(&self) -> bool {
        matches!(self.phase, Phase::Grace { .. } | Phase::Open { .. })
    }

    /// A dependency (direct or transitive) started failing. An open `did_not_recover` stays
    /// open; returns whether it is open (for the timeline).
    pub fn dependency_failed(&mut self) -> bool {
        match self.phase {
            Phase::Open { .. } => true,
            _ => {
                self.phase = Phase::DependencyFailing;
                false
            }
        }
    }

    /// Every dependency is ok again; `dependency` recovered last, now. Starts the grace when a
    /// dependency had failed; returns whether it did.
    pub fn dependencies_recovered(&mut self, dependency: &str, now: Moment, within: f64) -> bool {
        if self.phase != Phase::DependencyFailing && !matches!(self.phase, Phase::Grace { .. }) {
            return false;
        }
        self.phase = Phase::Grace {
            dependency: dependency.to_string(),
            recovered_wall: now.wall,
            recovered_mono: now.mono,
            deadline: now.mono + within.max(0.0),
        };
        true
    }

    /// One fresh observation of the dependant: `failing` is its status, `own_open` whether it
    /// has an alert of its own firing or acknowledged. Call only when no dependency is failing.
    pub fn observed(&mut self, failing: bool, own_open: bool, now: Moment) -> Outcome {
        match &self.phase {
            Phase::Idle | Phase::DependencyFailing => Outcome::Nothing,
            Phase::Grace {
                dependency,
                recovered_wall,
                recovered_mono,
                deadline,
            } => {
                let after = (now.mono - recovered_mono).max(0.0);
                let outcome = if !failing {
                    Outcome::Recovered {
                        dependency: dependency.clone(),
                        after,
                    }
                } else if now.mono < *deadline {
                    return Outcome::Nothing;
                } else if own_open {
                    Outcome::AlreadyPaging
                } else {
                    let o = Outcome::DidNotRecover {
                        dependency: dependency.clone(),
                        recovered_wall: *recovered_wall,
                        after,
                    };
                    self.phase = Phase::Open {
                        dependency: dependency.clone(),
                    };
                    return o;
                };
                self.phase = Phase::Idle;
                outcome
            }
            Phase::Open { dependency } => {
                if failing {
                    return Outcome::Nothing;
                }
                let dependency = dependency.clone();
                self.phase = Phase::Idle;
                Outcome::Resolved { dependency }
            }
        }
    }
}

/// The message of `did_not_recover`: `app-write still failing 4m after db recovered at
/// 2026-05-12T05:58:00Z; app-write did not recover within 1m: <its own first line>`.
pub fn message(
    probe: &str,
    dependency: &str,
    recovered_wall: f64,
    after: f64,
    within: f64,
    why: &str,
) -> String {
    let why = why.lines().next().unwrap_or("").trim();
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    };
    format!(
        "{probe} still failing {} after {dependency} recovered at {}; {probe} did not recover \
         within {}{why}",
        format_duration(after),
        format_utc(recovered_wall),
        format_duration(within),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Moment {
        Moment {
            mono: t,
            wall: 1_494_568_680.0 + t,
        }
    }

    #[test]
    fn default_is_two_intervals_at_least_a_minute() {
        assert_eq!(default_within(10.0), 60.0);
        assert_eq!(default_within(30.0), 60.0);
        assert_eq!(default_within(45.0), 90.0);
    }

    #[test]
    fn still_failing_after_the_grace_raises_once() {
        let mut t = Tracker::default();
        assert!(!t.holds());
        t.dependency_failed();
        assert!(t.dependencies_recovered("db", at(100.0), 60.0));
        assert!(t.holds());
        assert_eq!(t.observed(true, false, at(130.0)), Outcome::Nothing);
        assert!(t.holds(), "still in the grace: held");
        match t.observed(true, false, at(161.0)) {
            Outcome::DidNotRecover {
                dependency, after, ..
            } => {
                assert_eq!(dependency, "db");
                assert_eq!(after, 61.0);
            }
            o => panic!("{o:?}"),
        }
        assert!(t.holds(), "open: the dependant's alerts stay suppressed");
        assert_eq!(t.observed(true, false, at(200.0)), Outcome::Nothing);
        assert_eq!(
            t.observed(false, false, at(230.0)),
            Outcome::Resolved {
                dependency: "db".into()
            }
        );
        assert!(!t.holds());
        assert_eq!(t.observed(true, false, at(300.0)), Outcome::Nothing);
    }

    #[test]
    fn reading_ok_within_the_grace_ends_quietly() {
        let mut t = Tracker::default();
        t.dependency_failed();
        t.dependencies_recovered("db", at(100.0), 60.0);
        assert_eq!(
            t.observed(false, false, at(112.0)),
            Outcome::Recovered {
                dependency: "db".into(),
                after: 12.0
            }
        );
        assert_eq!(t.phase, Phase::Idle);
    }

    #[test]
    fn no_grace_without_a_failed_dependency() {
        let mut t = Tracker::default();
        assert!(!t.dependencies_recovered("db", at(1.0), 60.0));
        assert_eq!(t.observed(true, false, at(500.0)), Outcome::Nothing);
    }

    #[test]
    fn a_dependency_failing_again_goes_back_to_suppressed_and_restarts_the_grace() {
        let mut t = Tracker::default();
        t.dependency_failed();
        t.dependencies_recovered("db", at(100.0), 60.0);
        assert!(!t.dependency_failed(), "nothing open");
        assert_eq!(t.phase, Phase::DependencyFailing);
        t.dependencies_recovered("db", at(150.0), 60.0);
        assert_eq!(t.observed(true, false, at(205.0)), Outcome::Nothing);
        assert!(matches!(
            t.observed(true, false, at(210.0)),
            Outcome::DidNotRecover { .. }
        ));
    }

    #[test]
    fn an_open_alert_survives_a_dependency_failing_again() {
        let mut t = Tracker::default();
        t.dependency_failed();
        t.dependencies_recovered("db", at(0.0), 60.0);
        t.observed(true, false, at(60.0));
        assert!(t.dependency_failed(), "stays open");
        assert!(!t.dependencies_recovered("db", at(90.0), 60.0));
        assert!(t.holds());
        assert_eq!(
            t.observed(false, false, at(95.0)),
            Outcome::Resolved {
                dependency: "db".into()
            }
        );
    }

    #[test]
    fn an_alert_already_paging_is_not_doubled() {
        let mut t = Tracker::default();
        t.dependency_failed();
        t.dependencies_recovered("db", at(0.0), 60.0);
        assert_eq!(t.observed(true, true, at(61.0)), Outcome::AlreadyPaging);
        assert!(!t.holds());
    }

    #[test]
    fn the_clock_is_monotonic() {
        let mut t = Tracker::default();
        t.dependency_failed();
        t.dependencies_recovered("db", at(100.0), 60.0);
        // Wall clock stepped 9 minutes ahead: the grace is measured on the monotonic clock.
        let stepped = Moment {
            mono: 110.0,
            wall: at(110.0).wall + 540.0,
        };
        assert_eq!(t.observed(true, false, stepped), Outcome::Nothing);
    }

    #[test]
    fn the_message_names_the_dependency_and_when() {
        let m = message(
            "app-write",
            "db",
            1_494_568_680.0,
            240.0,
            60.0,
            "HTTP 503\nmore",
        );
        assert_eq!(
            m,
            "app-write still failing 4m00s after db recovered at 2017-05-12T05:58:00Z; \
             app-write did not recover within 1m00s: HTTP 503"
        );
    }
}
