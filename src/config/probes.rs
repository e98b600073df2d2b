//! `[[probe]]` entries: the fields every probe has, and the registry of probe kinds.

use super::values::Dur;
use crate::alert::AlertPolicy;
use crate::model::Severity;
use crate::probe::disk::DiskConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// One configured probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Unique id, used in alerts, samples and `depends_on`.
    pub id: String,
    /// Where the probe's table is in the file (for validation messages).
    pub span: Range<usize>,
    /// Fields every kind has.
    pub common: ProbeCommon,
    /// The kind and its own fields.
    pub kind: ProbeKindConfig,
}

/// Fields every probe kind has.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeCommon {
    /// How often it runs. Default per kind (disk: 60s).
    pub interval: Option<Spanned<Dur>>,
    /// How long one run may take; past it the result is `unknown: timed out`. Default per kind
    /// (disk: 10s); never longer than the interval.
    pub timeout: Option<Spanned<Dur>>,
    /// Extra labels attached to its alerts and samples.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Probes whose failure suppresses this one's alerts.
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// Consecutive failing runs before an alert is pending. Default 1.
    pub fail_after: Option<u32>,
    /// Consecutive passing runs before a firing alert resolves. Default per kind (disk: 3).
    pub recover_after: Option<u32>,
    /// How long a condition must hold before it fires. Default per kind (disk: 5m).
    #[serde(rename = "for")]
    pub for_: Option<Dur>,
    /// Severity of the probe's own alert when it cannot tell (timeout, error). Default warning.
    pub unknown_severity: Option<Severity>,
}

/// The keys of [`ProbeCommon`] plus `id` and `kind`, split off before the kind's own fields.
pub const COMMON_FIELDS: &[&str] = &[
    "id",
    "kind",
    "interval",
    "timeout",
    "labels",
    "depends_on",
    "fail_after",
    "recover_after",
    "for",
    "unknown_severity",
];

/// The registry of probe kinds: one variant per kind, each with its own config struct.
#[derive(Debug, Clone)]
pub enum ProbeKindConfig {
    /// Filesystem space, reserve and time until full.
    Disk(DiskConfig),
}

/// Defaults of a kind.
pub struct KindDefaults {
    /// Interval.
    pub interval: Dur,
    /// Timeout.
    pub timeout: Dur,
    /// `recover_after`.
    pub recover_after: u32,
    /// `for`.
    pub for_: Dur,
}

impl ProbeKindConfig {
    /// Every kind name, for messages.
    pub const KINDS: &[&str] = &["disk"];

    /// Deserializes a kind's own fields (everything but [`COMMON_FIELDS`]).
    pub fn parse(
        kind: &str,
        table: Spanned<toml::de::DeValue<'_>>,
    ) -> Result<ProbeKindConfig, toml::de::Error> {
        use serde::de::IntoDeserializer;
        match kind {
            "disk" => Ok(ProbeKindConfig::Disk(DiskConfig::deserialize(
                table.into_deserializer(),
            )?)),
            _ => unreachable!("kind checked by the caller"),
        }
    }

    /// The kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKindConfig::Disk(_) => "disk",
        }
    }

    /// The kind's defaults.
    pub fn defaults(&self) -> KindDefaults {
        match self {
            ProbeKindConfig::Disk(_) => KindDefaults {
                interval: Dur::from_secs(60),
                timeout: Dur::from_secs(10),
                recover_after: 3,
                for_: Dur::from_secs(300),
            },
        }
    }
}

impl ProbeConfig {
    /// The zero-config disk probe: every real filesystem, default rules.
    pub fn zero_config_disks() -> ProbeConfig {
        ProbeConfig {
            id: "disks".into(),
            span: 0..0,
            common: ProbeCommon::default(),
            kind: ProbeKindConfig::Disk(DiskConfig::default()),
        }
    }

    /// The effective interval.
    pub fn interval(&self) -> Dur {
        self.common
            .interval
            .as_ref()
            .map(|s| *s.get_ref())
            .unwrap_or(self.kind.defaults().interval)
    }

    /// The effective timeout (never longer than the interval).
    pub fn timeout(&self) -> Dur {
        self.common
            .timeout
            .as_ref()
            .map(|s| *s.get_ref())
            .unwrap_or(self.kind.defaults().timeout)
            .min(self.interval())
    }

    /// The effective alert policy.
    pub fn policy(&self) -> AlertPolicy {
        let d = self.kind.defaults();
        AlertPolicy {
            fail_after: self.common.fail_after.unwrap_or(1),
            recover_after: self.common.recover_after.unwrap_or(d.recover_after),
            for_seconds: self.common.for_.unwrap_or(d.for_).secs(),
        }
    }

    /// The engine's view of this probe.
    pub fn spec(&self) -> crate::alert::ProbeSpec {
        crate::alert::ProbeSpec {
            id: self.id.clone(),
            kind: self.kind.name().into(),
            depends_on: self
                .common
                .depends_on
                .iter()
                .map(|d| d.get_ref().clone())
                .collect(),
            policy: self.policy(),
            unknown_severity: self.common.unknown_severity.unwrap_or(Severity::Warning),
        }
    }
}
