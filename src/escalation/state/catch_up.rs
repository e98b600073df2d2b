//! How late a step may be noticed and still count from its nominal time: by default one
//! second (a restart never fires several steps in one burst); in a cluster the lease TTL plus
//! a second, so a new leader pages each step the old one left due and keeps the schedule.

use super::{Escalation, Escalations};
use crate::model::Moment;

impl Escalations {
    /// Sets how late a transition may be noticed and still count from its nominal time.
    pub fn set_catch_up(&mut self, seconds: f64) {
        self.catch_up = Some(seconds);
    }
}

/// How late a transition may be noticed and still count from its nominal time. Ticks come four
/// times a second, so a running daemon notices every transition well within this; a transition
/// found later than this (the process was stopped, paused or starved) counts from when it was
/// noticed instead, so a restart never fires several steps in one burst.
pub const MAX_CATCH_UP: f64 = 1.0;

/// When the next phase begins: nominally `wait` after the current one began (so the few
/// milliseconds by which a tick notices it late never add up over the steps), or now when that
/// is more than `limit` (by default [`MAX_CATCH_UP`]) ago.
pub(super) fn nominal(e: &Escalation, wait: f64, now: Moment, limit: f64) -> Moment {
    let mono = e.since_mono + wait;
    if now.mono - mono > limit || !mono.is_finite() {
        return now;
    }
    Moment {
        mono,
        wall: now.wall - (now.mono - mono),
    }
}
