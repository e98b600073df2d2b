//! The injected clock: monotonic time for every interval, wall time for records.

use crate::model::Moment;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Reads both clocks.
pub trait Clock: Send + Sync {
    /// Now, on both clocks.
    fn now(&self) -> Moment;
}

/// The real clocks of this process.
pub struct SystemClock {
    base: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            base: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Moment {
        Moment {
            mono: self.base.elapsed().as_secs_f64(),
            wall: unix_now(),
        }
    }
}

/// Wall-clock unix seconds (for records and display only).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
