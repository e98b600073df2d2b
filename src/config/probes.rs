//! `[[probe]]` entries: the fields every probe has, and the registry of probe kinds.

use super::values::Dur;
use crate::alert::AlertPolicy;
use crate::model::Severity;
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
    /// Consecutive failing runs before an alert is pending. Default per kind (http, tcp: 2;
    /// the others: 1).
    pub fail_after: Option<u32>,
    /// Consecutive passing runs before a firing alert resolves. Default per kind (disk: 3).
    pub recover_after: Option<u32>,
    /// How long a condition must hold before it fires. Default per kind (disk: 5m).
    #[serde(rename = "for")]
    pub for_: Option<Dur>,
    /// Severity of the probe's own alert when it cannot tell (timeout, error). Default warning.
    pub unknown_severity: Option<Severity>,
    /// How long, after every probe in `depends_on` is ok again, this probe may keep failing
    /// before `did_not_recover` fires. Default: 2 intervals, at least 60s.
    pub recover_within: Option<Dur>,
    /// Severity of its `did_not_recover` alert. Default critical.
    pub did_not_recover_severity: Option<Severity>,
    /// Cluster mode: the nodes that run this probe of a remote target (`["a", "b"]` or
    /// `"all"`); its alerts page only when `quorum` of the live observers see them.
    pub observers: Option<ObserversConfig>,
    /// With `observers`: how many must see a failure. Only `"majority"` (the default).
    pub quorum: Option<String>,
}

/// `observers = [...]` or `observers = "all"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ObserversConfig {
    /// Named nodes.
    Nodes(Vec<String>),
    /// `"all"`: every live node.
    Word(String),
}

impl ObserversConfig {
    /// The named nodes, or `None` for every node.
    pub fn nodes(&self) -> Option<std::collections::BTreeSet<String>> {
        match self {
            ObserversConfig::Nodes(n) => Some(n.iter().cloned().collect()),
            ObserversConfig::Word(_) => None,
        }
    }
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
    "recover_within",
    "did_not_recover_severity",
    "observers",
    "quorum",
];

/// Defaults of a kind.
#[derive(Clone, Copy, Debug)]
pub struct KindDefaults {
    /// Interval.
    pub interval: Dur,
    /// Timeout.
    pub timeout: Dur,
    /// `fail_after`.
    pub fail_after: u32,
    /// `recover_after`.
    pub recover_after: u32,
    /// `for`.
    pub for_: Dur,
}

impl KindDefaults {
    /// Defaults with `fail_after = 1`, `recover_after = 2` and `for = 0s`.
    pub const fn new(interval_secs: u64, timeout_secs: u64) -> KindDefaults {
        KindDefaults {
            interval: Dur::from_secs(interval_secs),
            timeout: Dur::from_secs(timeout_secs),
            fail_after: 1,
            recover_after: 2,
            for_: Dur::from_secs(0),
        }
    }

    /// The same defaults with another `fail_after`.
    pub const fn fail_after(self, runs: u32) -> KindDefaults {
        KindDefaults {
            fail_after: runs,
            ..self
        }
    }
}

/// What every probe kind's configuration provides: its name, defaults, pure validation, and
/// how to build the probe and its rules.
pub trait KindConfig: for<'de> Deserialize<'de> + Clone + std::fmt::Debug {
    /// The `kind = "…"` name.
    const NAME: &'static str;
    /// Interval, timeout and alert defaults.
    fn defaults() -> KindDefaults;
    /// Semantic checks (pure; no I/O).
    fn validate(
        &self,
        _component: &str,
        _span: Range<usize>,
        _errors: &mut super::error::Collector<'_>,
    ) {
    }
    /// Checks against this host that are not errors (I/O: e.g. a configured path that does
    /// not exist); `config check` prints them as warnings.
    /// `table` is where the probe's table starts in the file (for [`Collector::push_key`]).
    ///
    /// [`Collector::push_key`]: super::error::Collector::push_key
    fn host_warnings(
        &self,
        _component: &str,
        _table: usize,
        _warnings: &mut super::error::Collector<'_>,
    ) {
    }
    /// The runnable probe and its rules.
    fn build(&self, ctx: &crate::probe::BuildContext) -> crate::probe::Built;
}

macro_rules! probe_kinds {
    ($($variant:ident => $module:ident :: $config:ident),* $(,)?) => {
        /// The registry of probe kinds: one line per kind, each with its own config struct.
        #[derive(Debug, Clone)]
        pub enum ProbeKindConfig {
            $(
                #[doc = concat!("`kind = \"", stringify!($module), "\"`")]
                $variant(crate::probe::$module::$config),
            )*
        }

        impl ProbeKindConfig {
            /// Every kind name, for messages.
            pub const KINDS: &[&str] = &[$(<crate::probe::$module::$config as KindConfig>::NAME),*];

            /// Deserializes a kind's own fields (everything but [`COMMON_FIELDS`]), with every bad field.
            pub fn parse(kind: &str, table: Spanned<toml::de::DeValue<'_>>) -> Result<ProbeKindConfig, Vec<toml::de::Error>> {
                $(
                    if kind == <crate::probe::$module::$config as KindConfig>::NAME {
                        return Ok(ProbeKindConfig::$variant(super::parse::deserialize_all::<crate::probe::$module::$config>(table)?));
                    }
                )*
                unreachable!("kind checked by the caller")
            }

            /// The kind's name.
            pub fn name(&self) -> &'static str {
                match self { $(ProbeKindConfig::$variant(_) => <crate::probe::$module::$config as KindConfig>::NAME),* }
            }

            /// The kind's defaults.
            pub fn defaults(&self) -> KindDefaults {
                match self { $(ProbeKindConfig::$variant(_) => <crate::probe::$module::$config as KindConfig>::defaults()),* }
            }

            /// Semantic checks of the kind's fields.
            pub fn validate(&self, component: &str, span: Range<usize>, errors: &mut super::error::Collector<'_>) {
                match self { $(ProbeKindConfig::$variant(c) => c.validate(component, span, errors)),* }
            }

            /// The kind's checks against this host (warnings).
            pub fn host_warnings(&self, component: &str, table: usize, warnings: &mut super::error::Collector<'_>) {
                match self { $(ProbeKindConfig::$variant(c) => c.host_warnings(component, table, warnings)),* }
            }

            /// Builds the probe and its rules.
            pub fn build(&self, ctx: &crate::probe::BuildContext) -> crate::probe::Built {
                match self { $(ProbeKindConfig::$variant(c) => c.build(ctx)),* }
            }
        }
    };
}

probe_kinds! {
    Disk => disk::DiskConfig,
    Clock => clock::ClockConfig,
    Route => route::RouteConfig,
    DhcpLease => dhcp_lease::DhcpLeaseConfig,
    Http => http::HttpConfig,
    Tcp => tcp::TcpConfig,
    Process => process::ProcessConfig,
    Systemd => systemd::SystemdConfig,
    Command => command::CommandConfig,
    Postgres => postgres::PostgresConfig,
    Matrix => matrix::MatrixConfig,
    Bridge => bridge::BridgeConfig,
}

impl ProbeConfig {
    /// The zero-config disk probe: every real filesystem, default rules.
    pub fn zero_config_disks() -> ProbeConfig {
        ProbeConfig {
            id: "disks".into(),
            span: 0..0,
            common: ProbeCommon::default(),
            kind: ProbeKindConfig::Disk(crate::probe::disk::DiskConfig::default()),
        }
    }

    /// The zero-config clock probe: the host's configured time servers and the jump detector.
    pub fn zero_config_clock() -> ProbeConfig {
        ProbeConfig {
            id: "clock".into(),
            span: 0..0,
            common: ProbeCommon::default(),
            kind: ProbeKindConfig::Clock(crate::probe::clock::ClockConfig::default()),
        }
    }

    /// The zero-config route probe: the routes present when lookout started are expected.
    pub fn zero_config_routes() -> ProbeConfig {
        ProbeConfig {
            id: "routes".into(),
            span: 0..0,
            common: ProbeCommon::default(),
            kind: ProbeKindConfig::Route(crate::probe::route::RouteConfig::default()),
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
            fail_after: self.common.fail_after.unwrap_or(d.fail_after),
            recover_after: self.common.recover_after.unwrap_or(d.recover_after),
            for_seconds: self.common.for_.unwrap_or(d.for_).secs(),
        }
    }

    /// The effective `recover_within` in seconds (default 2 intervals, at least 60 s).
    pub fn recover_within(&self) -> f64 {
        self.common.recover_within.map_or_else(
            || crate::alert::recovery::default_within(self.interval().secs()),
            |d| d.secs(),
        )
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
            labels: self.common.labels.clone(),
            unknown_severity: self.common.unknown_severity.unwrap_or(Severity::Warning),
            recover_within: self.recover_within(),
            did_not_recover_severity: self
                .common
                .did_not_recover_severity
                .unwrap_or(Severity::Critical),
        }
    }
}
