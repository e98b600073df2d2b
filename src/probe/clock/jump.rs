//! The jump detector: between two runs, wall time and monotonic time should advance alike
//! (NTP slewing adjusts both); a difference is a step of the wall clock.

use crate::model::{Moment, format_duration, format_utc};
use std::sync::Mutex;

/// A detected step of the wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// How far the wall clock moved beyond (positive) or behind (negative) monotonic time.
    pub seconds: f64,
    /// Wall time (unix seconds) when the step was noticed.
    pub noticed_at: f64,
}

impl Step {
    /// The timeline sentence: `wall clock stepped +9m02s at 2026-11-25T19:40:12Z`.
    pub fn describe(&self) -> String {
        let sign = if self.seconds >= 0.0 { "+" } else { "" };
        format!(
            "wall clock stepped {sign}{} at {}",
            format_duration(self.seconds),
            format_utc(self.noticed_at)
        )
    }
}

/// Remembers the previous reading of both clocks (across runs of one probe).
pub struct JumpDetector {
    threshold: f64,
    previous: Mutex<Option<Moment>>,
}

impl JumpDetector {
    /// A detector that reports differences beyond `threshold` seconds.
    pub fn new(threshold: f64) -> JumpDetector {
        JumpDetector {
            threshold,
            previous: Mutex::new(None),
        }
    }

    /// Feeds this run's reading; returns the step since the previous one, if beyond the
    /// threshold. The first reading only sets the baseline.
    pub fn observe(&self, now: Moment) -> Option<Step> {
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let before = previous.replace(now)?;
        let seconds = (now.wall - before.wall) - (now.mono - before.mono);
        (seconds.abs() > self.threshold).then_some(Step {
            seconds,
            noticed_at: now.wall,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_795_635_612.0; // 2026-11-25T19:40:12Z

    /// (mono advance, wall advance) per run after the first, and the step each run expects.
    type Case<'a> = (&'a [(f64, f64)], &'a [Option<&'a str>]);

    #[test]
    fn steps_beyond_the_threshold_are_reported_with_sign_and_time() {
        let cases: &[Case] = &[
            (&[(60.0, 60.0), (60.0, 60.5)], &[None, None]),
            (&[(60.0, 602.0)], &[Some("+9m02s")]),
            (&[(60.0, 60.0 - 542.0)], &[Some("-9m02s")]),
            // A frozen VM: both clocks stood still together, then ran on — no step.
            (&[(600.0, 600.0)], &[None]),
            // Exactly at the threshold is not beyond it.
            (&[(1.0, 3.0), (1.0, 3.001)], &[None, Some("+2s")]),
            // After a step the new wall time is the baseline: no second report.
            (&[(1.0, 541.0), (1.0, 1.0)], &[Some("+9m00s"), None]),
        ];
        for (advances, want) in cases {
            let d = JumpDetector::new(2.0);
            let mut now = Moment {
                mono: 100.0,
                wall: T0,
            };
            assert_eq!(d.observe(now), None, "first reading is the baseline");
            for ((dm, dw), want) in advances.iter().zip(*want) {
                now = Moment {
                    mono: now.mono + dm,
                    wall: now.wall + dw,
                };
                let got = d.observe(now).map(|s| s.describe());
                match want {
                    None => assert_eq!(got, None, "{advances:?}"),
                    Some(w) => {
                        let got = got.unwrap_or_else(|| panic!("no step for {advances:?}"));
                        assert!(
                            got.starts_with(&format!("wall clock stepped {w} at ")),
                            "{got}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn describes_the_moment_it_noticed() {
        let s = Step {
            seconds: 542.0,
            noticed_at: T0,
        };
        assert_eq!(
            s.describe(),
            "wall clock stepped +9m02s at 2026-11-25T19:40:12Z"
        );
    }
}
