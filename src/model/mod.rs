//! The vocabulary every other module speaks: statuses, observations, samples and time.
//!
//! Everything here is pure data: no I/O, no clock reads.

mod observation;
mod status;
mod time;

pub use observation::{Labels, Observation, Sample, labels};
pub use status::{Severity, Status};
pub use time::{Moment, format_bytes, format_duration, format_utc};
