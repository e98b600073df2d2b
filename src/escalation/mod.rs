//! Escalation: routes pick a policy for an alert, groups fold related alerts into one page, and
//! a pure state machine walks the policy's steps (people, schedules, notifiers) until someone
//! acknowledges. No I/O and no clock reads: time comes in as a [`Moment`](crate::model::Moment).

pub mod matcher;
pub mod policy;
pub mod schedule;
pub mod silence;
pub mod state;

pub use matcher::Matcher;
pub use policy::{Paging, match_labels};
pub use state::{
    Escalation, Escalations, Page, PageKind, Tick, canonical_key, group_of_key, step_words,
};
