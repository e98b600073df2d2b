//! Probes: one file per kind behind the [`Probe`] trait; [`build`] is the one registry.

pub mod disk;

use crate::config::{ProbeConfig, ProbeKindConfig};
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
}

/// A probe ready to schedule: the runnable check and its kind's rules.
pub struct Built {
    /// The check.
    pub probe: Arc<dyn Probe>,
    /// Its kind's rules.
    pub rules: Box<dyn RuleSet>,
}

/// Builds the probe and rules for a configured probe.
pub fn build(config: &ProbeConfig) -> Built {
    match &config.kind {
        ProbeKindConfig::Disk(c) => Built {
            probe: Arc::new(disk::DiskProbe::new(c.clone())),
            rules: Box::new(crate::rule::disk::DiskRules::new(c.rule_params())),
        },
    }
}
