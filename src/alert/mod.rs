//! Alerts: the per-alert state machine and the engine that feeds it. Pure: no I/O.

mod engine;
pub mod recovery;
mod state;

pub use engine::{Engine, INTERNAL_PROBE, ProbeSpec};
pub use state::{
    Alert, AlertEvent, AlertEventKind, AlertPolicy, AlertState, Staleness, fingerprint,
};
