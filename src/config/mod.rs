//! Configuration: TOML files, the zero-config profile, and validation that reports every
//! problem with file, line and column.
//!
//! Parsing walks the spanned document section by section and probe by probe, so one bad probe
//! does not hide the next one's errors. Validation ([`validate`]) is pure; resolving secret
//! files is the only I/O and happens in [`load`].

pub mod actions;
pub mod caps;
pub mod cluster;
pub mod deadman;
pub mod drills;
pub mod error;
pub mod host;
pub mod intake;
pub mod listen;

pub mod notifiers;
pub mod paging;
mod parse;
pub mod paths;
mod probes;
mod validate;
pub mod values;

pub use deadman::DeadmanConfig;
pub use error::{ConfigError, ConfigErrors};
pub use host::HostConfig;
pub use intake::{HeartbeatConfig, IntakeConfig};
pub use notifiers::{NotifierCommon, NotifierConfig, NotifierKindConfig};
pub use paging::{MaintenanceConfig, PersonConfig, PolicyConfig, RouteConfig, ScheduleConfig};
pub use probes::{KindConfig, KindDefaults, ProbeCommon, ProbeConfig, ProbeKindConfig};
pub use values::{Dur, Secret, Size};

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Default)]
pub struct Config {
    /// The file it came from; `None` for the zero-config profile.
    pub source: Option<PathBuf>,
    /// Daemon-wide settings.
    pub daemon: DaemonConfig,
    /// `[host]`: the built-in host view.
    pub host: HostConfig,
    /// The HTTP API and status page.
    pub api: ApiConfig,
    /// The embedded store.
    pub store: StoreConfig,
    /// Configured probes, in file order.
    pub probes: Vec<ProbeConfig>,
    /// Configured notifiers, in file order.
    pub notifiers: Vec<NotifierConfig>,
    /// `[[action]]`: configured remediations, in file order.
    pub actions: Vec<actions::ActionConfig>,
    /// `[intake]`: alerts pushed by Alertmanager.
    pub intake: IntakeConfig,
    /// `[[heartbeat]]`: inbound heartbeats, in file order.
    pub heartbeats: Vec<HeartbeatConfig>,
    /// `[deadman]`: the outbound dead-man's switch, if configured.
    pub deadman: Option<DeadmanConfig>,
    /// `[cluster]`: several nodes sharing one pager through etcd, if configured.
    pub cluster: Option<cluster::ClusterConfig>,
    /// `[paging]`: escalation-wide settings.
    pub paging: paging::PagingConfig,
    /// `[[route]]`: which alerts go to which policy, first match wins.
    pub routes: Vec<RouteConfig>,
    /// `[[policy]]`: escalation policies.
    pub policies: Vec<PolicyConfig>,
    /// `[[person]]`: people and their contact methods.
    pub people: Vec<PersonConfig>,
    /// `[[schedule]]`: on-call schedules.
    pub schedules: Vec<ScheduleConfig>,
    /// `[[maintenance]]`: windows in which matching alerts are not paged.
    pub maintenance: Vec<MaintenanceConfig>,
    /// `[[drill]]`: recovery drills, in file order.
    pub drills: Vec<drills::DrillConfig>,
    /// Where each top-level section starts in the file, and a few keys as `section.key`
    /// (`api.listen`, `host.watch`), for validation messages.
    pub section_spans: std::collections::BTreeMap<String, std::ops::Range<usize>>,
    /// Problems that do not make the file invalid: values the daemon caps (see [`caps`]) and
    /// host checks (a configured path that does not exist); `config check` prints them, the
    /// daemon logs them.
    pub warnings: Vec<ConfigError>,
}

/// `[daemon]`: scheduling.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Where the store, the lock and the API token live. Default `/var/lib/lookout` when it
    /// exists, else `./lookout-data`; `--state-dir` / `LOOKOUT_STATE_DIR` win (docs/cli.md).
    pub state_dir: Option<PathBuf>,
    /// Probes allowed to run at the same time. Default 64 (a stalled probe holds its slot until its timeout).
    pub max_concurrent_probes: usize,
    /// Random spread added to each interval, as a fraction of it (0–0.5). Default 0.1.
    pub jitter: f64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: None,
            max_concurrent_probes: 64,
            jitter: 0.1,
        }
    }
}

/// `[api]`: the HTTP API, `/metrics` and the status page.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Listen address, `IP:PORT` or `localhost:PORT`. Default `127.0.0.1:9330`; `--listen` wins.
    pub listen: String,
    /// Bearer token for mutating endpoints (`${ENV}` allowed). Default: a random token written
    /// to `STATE_DIR/api-token` (mode 0600), which the CLI reads.
    pub token: Option<Secret>,
    /// Read the bearer token from this file instead.
    pub token_file: Option<PathBuf>,
    /// The URL people reach this API at (`https://lookout.example.org`, or with a path behind
    /// a reverse proxy); acknowledgement links in pages start with it. Default: the listen
    /// address, which works only on this host (`config check` warns).
    pub public_url: Option<String>,
    /// Put a signed acknowledgement link in every page of a firing alert. Default true.
    pub ack_links: bool,
    /// How long such a link works after the page was sent. Default 24h.
    pub ack_link_expiry: Dur,
    /// Allow a non-loopback `listen` address while the Alertmanager intake or a heartbeat takes
    /// requests without a token (anyone who reaches the address could raise or silence pages).
    /// Default false: `config check` and `lookout run` refuse such a configuration.
    pub allow_unauthenticated: bool,
}

/// The longest `ack_link_expiry` accepted.
pub const MAX_ACK_LINK_EXPIRY: Dur = Dur::from_secs(30 * 86_400);

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:9330".into(),
            token: None,
            token_file: None,
            public_url: None,
            ack_links: true,
            ack_link_expiry: Dur::from_secs(86_400),
            allow_unauthenticated: false,
        }
    }
}

/// `[store]`: retention and batching of the embedded SQLite store.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// How long raw samples are kept. Default 7 days.
    pub raw_retention: Dur,
    /// Raw samples older than `raw_retention` are averaged into buckets of this size. Default 5m.
    pub downsample_to: Dur,
    /// How long downsampled samples are kept. Default 90 days.
    pub downsampled_retention: Dur,
    /// How often queued writes are committed in one transaction. Default 1s.
    pub flush_interval: Dur,
    /// Writes kept in memory while the store fails, oldest dropped first. Default 100000.
    pub max_backlog: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            raw_retention: Dur::from_secs(7 * 86_400),
            downsample_to: Dur::from_secs(300),
            downsampled_retention: Dur::from_secs(90 * 86_400),
            flush_interval: Dur::from_secs(1),
            max_backlog: 100_000,
        }
    }
}

/// Where a configuration came from when none was named.
pub const SEARCH_PATH: [&str; 2] = ["./lookout.toml", "/etc/lookout/lookout.toml"];

/// Finds the configuration file: the named one, else the first of [`SEARCH_PATH`] that exists,
/// else `None` (the zero-config profile).
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    SEARCH_PATH.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Loads, parses, validates and resolves secrets of a configuration file, or builds the
/// zero-config profile when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let Some(path) = path else {
        return Ok(Config::zero_config());
    };
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            component: None,
            message: format!("cannot read the configuration: {e}"),
            hint: (e.kind() == std::io::ErrorKind::NotFound)
                .then(|| "run without --config to use the built-in zero-config profile, or copy examples/lookout.toml".into()),
        }])
    })?;
    let mut config = parse_str(path, &src)?;
    config.resolve_secret_files(&src)?;
    config.warnings.extend(host_warnings(&config, path, &src));
    config.warnings.sort_by_key(|w| (w.line, w.column));
    Ok(config)
}

/// Checks of a valid configuration against this host (the only other I/O of [`load`]):
/// warnings, never errors, since the host may change before the daemon runs.
fn host_warnings(config: &Config, path: &Path, src: &str) -> Vec<ConfigError> {
    let mut warnings = error::Collector::new(path, src);
    for p in &config.probes {
        p.kind
            .host_warnings(&format!("probe {:?}", p.id), p.span.start, &mut warnings);
    }
    warnings.into_sorted()
}

/// Parses and validates configuration text (no I/O).
pub fn parse_str(path: &Path, src: &str) -> Result<Config, ConfigErrors> {
    let mut errors = error::Collector::new(path, src);
    let mut config = parse::parse(src, &mut errors);
    config.source = Some(path.to_path_buf());
    host::add_host_view(&mut config);
    validate::validate(&config, &mut errors);
    if errors.errors.is_empty() {
        config.warnings = caps::warnings(&config, path, src);
        config.warnings.extend(watching_nothing(&config, path, src));
        Ok(config)
    } else {
        Err(ConfigErrors(errors.into_sorted()))
    }
}

/// The warning for a configuration that watches nothing (see [`host::watches_nothing`]).
fn watching_nothing(config: &Config, path: &Path, src: &str) -> Option<ConfigError> {
    if !host::watches_nothing(config) {
        return None;
    }
    let mut c = error::Collector::new(path, src);
    let at = config
        .section_spans
        .get("host.watch")
        .or_else(|| config.section_spans.get("host"))
        .cloned();
    c.push(
        at,
        Some("[host]"),
        WATCHING_NOTHING,
        Some("remove `[host] watch = false` to watch this host (filesystems, clock, routes), or add a [[probe]] or [[heartbeat]]".into()),
    );
    c.errors.pop()
}

/// The first `*_file = …` key of the table that starts at byte `table` of `src`, for secret
/// file errors.
fn secret_file_key(src: &str, table: usize) -> Option<std::ops::Range<usize>> {
    let from = src.floor_char_boundary(table.min(src.len()));
    let line_start = src[..from].rfind('\n').map_or(0, |i| i + 1);
    let mut offset = line_start;
    for (i, line) in src[line_start..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if i > 0 && trimmed.starts_with('[') {
            return None;
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        if trimmed.contains('=') && key.ends_with("_file") {
            let start = offset + line.len() - trimmed.len();
            return Some(start..start + key.len());
        }
        offset += line.len();
    }
    None
}

/// The message of the "watches nothing" warning (also the text of the `watching_nothing` alert).
pub const WATCHING_NOTHING: &str = "lookout watches nothing: no probe, no heartbeat, no [intake], and the host view is off; nothing can ever alert";

impl Config {
    /// The built-in profile: watch this host's real filesystems, its clock and the routes it
    /// had at start, serve the API on 127.0.0.1:9330, no notifiers.
    pub fn zero_config() -> Config {
        Config {
            probes: host::host_view(),
            ..Config::default()
        }
    }

    /// Reads `*_file` secrets; errors name the component, the `*_file` key's line and column
    /// in `src` and the file, never the secret.
    fn resolve_secret_files(&mut self, src: &str) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        let file = self.source.clone().unwrap_or_default();
        let mut collector = error::Collector::new(&file, src);
        let mut fail = |table: Option<usize>, component: String, message: String| {
            let at = table.and_then(|t| secret_file_key(src, t));
            collector.push(
                at,
                Some(&component),
                message,
                Some("the file must exist, be readable by lookout's user and hold the secret (one trailing newline is dropped)".into()),
            );
        };
        let section = |name: &str| self.section_spans.get(name).map(|s| s.start);
        if let Some(p) = &self.api.token_file {
            match Secret::from_file(p) {
                Ok(s) => self.api.token = Some(s),
                Err(e) => fail(section("api"), "[api]".into(), e),
            }
        }
        if let Err(e) = self.intake.resolve_secret_files() {
            fail(section("intake"), "[intake]".into(), e);
        }
        if let Some(d) = &mut self.deadman
            && let Err(e) = d.resolve_secret_files()
        {
            fail(section("deadman"), "[deadman]".into(), e);
        }
        if let Some(c) = &mut self.cluster
            && let Err(e) = c.resolve_secret_files()
        {
            fail(section("cluster"), "[cluster]".into(), e);
        }
        for h in &mut self.heartbeats {
            if let Err(e) = h.resolve_secret_files() {
                fail(Some(h.span.start), format!("heartbeat {:?}", h.name), e);
            }
        }
        for n in &mut self.notifiers {
            if let Err(e) = n.kind.resolve_secret_files() {
                fail(Some(n.span.start), format!("notifier {:?}", n.id), e);
            }
        }
        errors.extend(collector.errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// A short description of where this configuration came from.
    pub fn origin(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => "built-in zero-config profile".into(),
        }
    }
}
