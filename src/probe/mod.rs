//! Probes: one file per kind behind the [`Probe`] trait; [`build`] is the one registry.

pub mod bridge;
pub mod clock;
pub mod command;
pub mod dhcp_lease;
pub mod disk;
pub mod http;
pub mod matrix;
pub mod postgres;
pub mod process;
pub mod route;
pub mod systemd;
pub mod tcp;

use crate::config::ProbeConfig;
use crate::model::Observation;
use crate::rule::RuleSet;
use async_trait::async_trait;
use std::sync::Arc;

/// One configured check. `run` may take as long as it likes: the scheduler bounds it with the
/// probe's timeout and records a timeout as `unknown`.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Runs the check once.
    async fn run(&self) -> Observation;

    /// After a run, how soon the next one should come when that is sooner than the interval
    /// (e.g. to confirm a failure quickly). Default: at the interval.
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A probe ready to schedule: the runnable check and its kind's rules.
pub struct Built {
    /// The check.
    pub probe: Arc<dyn Probe>,
    /// Its kind's rules.
    pub rules: Box<dyn RuleSet>,
}

/// What a probe kind needs to know about its configured probe when it is built.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// The probe's id.
    pub id: String,
    /// The probe's interval.
    pub interval: std::time::Duration,
    /// The probe's timeout: the scheduler cancels a run at this deadline; a kind that reports
    /// *where* it stalled should finish a little before it.
    pub timeout: std::time::Duration,
}

/// Builds the probe and rules for a configured probe.
pub fn build(config: &ProbeConfig) -> Built {
    let ctx = BuildContext {
        id: config.id.clone(),
        interval: config.interval().0,
        timeout: config.timeout().0,
    };
    config.kind.build(&ctx)
}

/// A probe that always reports the same observation (for kinds whose checks are made elsewhere).
pub struct Fixed(pub Observation);

#[async_trait]
impl Probe for Fixed {
    async fn run(&self) -> Observation {
        self.0.clone()
    }
}
