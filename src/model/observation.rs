use super::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Label set of a sample or alert; sorted so that it hashes and prints stably.
pub type Labels = BTreeMap<String, String>;

/// Builds a label set from pairs.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One named number measured by a probe, e.g. `disk.avail_bytes{mount="/"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Dotted metric name, e.g. `disk.avail_bytes`.
    pub name: String,
    /// Labels that tell series apart (mount point, slot name, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// The measured value.
    pub value: f64,
}

impl Sample {
    /// A sample with labels.
    pub fn new(name: &str, labels: &Labels, value: f64) -> Sample {
        Sample {
            name: name.to_string(),
            labels: labels.clone(),
            value,
        }
    }
}

/// What one run of a probe saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The overall status of this run.
    pub status: Status,
    /// A human sentence, e.g. `/: 3.1 GiB of 40 GiB free for users; full in 5h10m`.
    pub message: String,
    /// Measured numbers.
    pub samples: Vec<Sample>,
    /// How long the run took, in seconds.
    pub duration_seconds: f64,
    /// Things worth a timeline entry that happened since the last run (e.g. "wall clock stepped
    /// +9m02s"); not alerts by themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Set when the probe could not read (all of) what it measures: a connection failed, the
    /// run timed out, a mount did not answer. Series missing from such an observation are
    /// unknown, not gone: their alerts keep their state, marked stale (see `docs/alerts.md`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

impl Observation {
    /// An observation with a status and message and no samples.
    pub fn new(status: Status, message: impl Into<String>) -> Observation {
        Observation {
            status,
            message: message.into(),
            samples: Vec::new(),
            duration_seconds: 0.0,
            events: Vec::new(),
            failed: false,
        }
    }

    /// An observation of a probe that could not read its evidence (connection refused,
    /// permission denied, …): the status and message say why (the `failed` field).
    pub fn failed(status: Status, message: impl Into<String>) -> Observation {
        Observation {
            failed: true,
            ..Observation::new(status, message)
        }
    }

    /// The observation recorded when a probe did not finish in time.
    pub fn timed_out(timeout: std::time::Duration) -> Observation {
        Observation::failed(
            Status::Unknown,
            format!(
                "timed out after {}",
                super::format_duration(timeout.as_secs_f64())
            ),
        )
    }

    /// Whether the probe could not read (all of) its evidence: the `failed` flag, or an
    /// `unknown` status with no samples at all (a probe that cannot tell measured nothing).
    pub fn unreadable(&self) -> bool {
        self.failed || (self.status == Status::Unknown && self.samples.is_empty())
    }

    /// The first sample with this name and labels.
    pub fn sample(&self, name: &str, labels: &Labels) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
            .map(|s| s.value)
    }
}
