//! The `clock` probe: this host's clock offset against time servers (SNTP, via `rsntp`), and a
//! jump detector that notices steps of the wall clock between runs.
//!
//! - [`sntp`] asks one server; [`sources`] finds the host's configured servers (chrony, ntpd,
//!   systemd-timesyncd); [`jump`] compares wall and monotonic time between runs.
//! - [`summarize`] turns the answers into an observation (pure).

pub mod jump;
pub mod sntp;
pub mod sources;

use super::{Built, Probe};
use crate::config::{Dur, KindConfig, KindDefaults};
use crate::daemon::clock::{Clock, SystemClock};
use crate::model::{Labels, Observation, Sample, Status, format_duration, labels};
use async_trait::async_trait;
use jump::JumpDetector;
use serde::Deserialize;
use sntp::{Reading, Server};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Sample names.
pub mod samples {
    /// Server time minus this host's time, per server (`{server="…"}`); positive = host behind.
    pub const OFFSET: &str = "clock.offset_seconds";
    /// Round-trip delay of the exchange, per server.
    pub const RTT: &str = "clock.rtt_seconds";
    /// Median offset over the servers that answered.
    pub const MEDIAN_OFFSET: &str = "clock.median_offset_seconds";
    /// How many servers answered.
    pub const SERVERS_ANSWERING: &str = "clock.servers_answering";
}

/// The message when no server is configured anywhere.
pub const NO_SERVERS: &str = "no time servers configured; only the jump detector runs";

/// What a detected wall-clock step does besides its timeline entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JumpSeverity {
    /// The run in which the step is noticed is a warning.
    Warning,
    /// The run in which the step is noticed is critical.
    Critical,
}

/// `[[probe]] kind = "clock"`: time servers, offset thresholds and the jump detector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// Time servers to ask, each `"host"` or `"host:port"` (port 123 by default; IPv6 as
    /// `"[2001:db8::1]:123"`). Default: empty = the servers in the host's chrony, ntpd and
    /// systemd-timesyncd configuration (see `config_files`).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Warn when the median offset is at least this. Default 100ms.
    pub warning_offset: Option<Dur>,
    /// Critical when the median offset is at least this. Default 1s.
    pub critical_offset: Option<Dur>,
    /// How long one server may take (resolution, request and reply); servers are asked at
    /// once, so keep it below the probe's `timeout`. Default 2s.
    pub server_timeout: Option<Dur>,
    /// A difference between how far wall time and monotonic time advanced between two runs
    /// beyond this is a wall-clock step (a timeline event). Default 2s.
    pub jump_threshold: Option<Dur>,
    /// Also raise the status of the run that notices a step: `"warning"` or `"critical"`.
    /// Default: none (a timeline event only).
    pub jump_severity: Option<JumpSeverity>,
    /// Where to read default servers when `servers` is empty. Default: `/etc/chrony/chrony.conf`,
    /// `/etc/chrony.conf`, `/etc/ntp.conf`, `/etc/ntpsec/ntp.conf`,
    /// `/etc/systemd/timesyncd.conf` (with `confdir`/`sourcedir`/`include` and `.conf.d`
    /// drop-ins followed). `[]` reads nothing.
    pub config_files: Option<Vec<String>>,
}

/// The effective settings, defaults filled in (seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Warning offset.
    pub warning: f64,
    /// Critical offset.
    pub critical: f64,
}

impl ClockConfig {
    /// Offset thresholds with defaults.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            warning: self.warning_offset.map(Dur::secs).unwrap_or(0.1),
            critical: self.critical_offset.map(Dur::secs).unwrap_or(1.0),
        }
    }

    /// Per-server deadline with its default.
    pub fn server_timeout(&self) -> Duration {
        self.server_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(2))
    }

    /// Jump threshold in seconds with its default.
    pub fn jump_threshold(&self) -> f64 {
        self.jump_threshold.map(Dur::secs).unwrap_or(2.0)
    }

    /// The files read for default servers.
    pub fn config_files(&self) -> Vec<PathBuf> {
        match &self.config_files {
            Some(files) => files.iter().map(PathBuf::from).collect(),
            None => sources::DEFAULT_CONFIG_FILES
                .iter()
                .map(PathBuf::from)
                .collect(),
        }
    }
}

impl KindConfig for ClockConfig {
    const NAME: &'static str = "clock";

    fn defaults() -> KindDefaults {
        KindDefaults::new(60, 10)
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        let mut err = |message: String, hint: Option<&str>| {
            errors.push(
                Some(span.clone()),
                Some(component),
                message,
                hint.map(String::from),
            )
        };
        for s in &self.servers {
            if let Err(e) = sntp::parse_server(s) {
                err(e, Some("write \"ntp.example.org\" or \"192.0.2.1:123\""));
            }
        }
        let t = self.thresholds();
        if t.critical < t.warning {
            err(
                "critical_offset is smaller than warning_offset".into(),
                Some("critical should be the larger offset, e.g. 100ms and 1s"),
            );
        }
        if self.jump_threshold() <= 0.0 {
            err(
                "jump_threshold must be more than 0s".into(),
                Some("e.g. \"2s\""),
            );
        }
        if self.server_timeout().is_zero() {
            err(
                "server_timeout must be more than 0s".into(),
                Some("e.g. \"2s\""),
            );
        }
        for f in self.config_files.iter().flatten() {
            if !f.starts_with('/') {
                err(format!("config file {f:?} is not an absolute path"), None);
            }
        }
    }

    fn build(&self, ctx: &super::BuildContext) -> Built {
        let mut config = self.clone();
        // Without an explicit per-server deadline, fit the servers' answers inside the probe's
        // own timeout so a slow server is named instead of the whole run timing out.
        if config.server_timeout.is_none() {
            config.server_timeout = Some(Dur(Duration::from_secs(2).min(ctx.timeout.mul_f64(0.8))));
        }
        Built {
            probe: Arc::new(ClockProbe::new(config, Arc::new(SystemClock::default()))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}

/// The probe: the configuration, the injected clock and the jump detector's memory.
pub struct ClockProbe {
    config: ClockConfig,
    clock: Arc<dyn Clock>,
    jumps: JumpDetector,
}

impl ClockProbe {
    /// A probe reading time from `clock` (the system clock in production, a fake in tests).
    pub fn new(config: ClockConfig, clock: Arc<dyn Clock>) -> ClockProbe {
        let jumps = JumpDetector::new(config.jump_threshold());
        ClockProbe {
            config,
            clock,
            jumps,
        }
    }

    /// The servers to ask: configured ones, or the host's (read off the runtime).
    async fn servers(&self) -> Result<Vec<Server>, String> {
        if !self.config.servers.is_empty() {
            return self
                .config
                .servers
                .iter()
                .map(|s| sntp::parse_server(s))
                .collect();
        }
        let files = self.config.config_files();
        let (names, _) = tokio::task::spawn_blocking(move || sources::read_servers(&files))
            .await
            .map_err(|e| format!("reading the time daemons' configuration failed: {e}"))?;
        // A malformed entry in a host file is skipped, not fatal: the others still count.
        Ok(names
            .iter()
            .filter_map(|n| sntp::parse_server(n).ok())
            .collect())
    }

    /// Asks every server at once, each within the per-server deadline; answers in order.
    async fn ask_all(&self, servers: Vec<Server>) -> Vec<(String, Result<Reading, String>)> {
        let deadline = self.config.server_timeout();
        let mut set = tokio::task::JoinSet::new();
        for (i, server) in servers.iter().cloned().enumerate() {
            set.spawn(async move { (i, sntp::query(&server, deadline).await) });
        }
        let mut answers: Vec<Option<Result<Reading, String>>> = vec![None; servers.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, r)) = joined {
                answers[i] = Some(r);
            }
        }
        servers
            .into_iter()
            .zip(answers)
            .map(|(s, a)| (s.name, a.unwrap_or_else(|| Err("the query failed".into()))))
            .collect()
    }
}

#[async_trait]
impl Probe for ClockProbe {
    async fn run(&self) -> Observation {
        let started = std::time::Instant::now();
        // Read the clocks first, so a slow server cannot delay (or a timeout skip) the check.
        let step = self.jumps.observe(self.clock.now());
        let mut obs = match self.servers().await {
            Err(e) => Observation::new(Status::Unknown, e),
            Ok(servers) if servers.is_empty() => Observation::new(Status::Ok, NO_SERVERS),
            Ok(servers) => summarize(&self.ask_all(servers).await, self.config.thresholds()),
        };
        if let Some(step) = step {
            let sentence = step.describe();
            if let Some(sev) = self.config.jump_severity {
                obs.status = obs.status.max(match sev {
                    JumpSeverity::Warning => Status::Warning,
                    JumpSeverity::Critical => Status::Critical,
                });
                obs.message = format!("{sentence}; {}", obs.message);
            }
            obs.events.push(sentence);
        }
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}

/// How an offset reads to people: `9m00s behind`, `3ms ahead`, `in step`.
pub fn relative(offset: f64) -> String {
    if offset.abs() < 0.0005 {
        "in step".into()
    } else if offset > 0.0 {
        format!("{} behind", format_duration(offset))
    } else {
        format!("{} ahead", format_duration(-offset))
    }
}

/// The median of some numbers (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Turns every server's answer into the observation: median offset against the thresholds,
/// disagreeing and silent servers named, samples per server.
pub fn summarize(answers: &[(String, Result<Reading, String>)], t: Thresholds) -> Observation {
    let ok: Vec<(&str, Reading)> = answers
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|r| (n.as_str(), *r)))
        .collect();
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n} failed: {e}")))
        .collect();
    let offsets: Vec<f64> = ok.iter().map(|(_, r)| r.offset).collect();
    let Some(m) = median(&offsets) else {
        let mut obs = Observation::new(
            Status::Unknown,
            format!("no time server answered ({})", failed.join("; ")),
        );
        obs.samples
            .push(Sample::new(samples::SERVERS_ANSWERING, &Labels::new(), 0.0));
        return obs;
    };
    let status = if m.abs() >= t.critical {
        Status::Critical
    } else if m.abs() >= t.warning {
        Status::Warning
    } else {
        Status::Ok
    };
    let mut message = if let [(name, r)] = ok.as_slice() {
        format!(
            "clock is {} (per {name}, round trip {})",
            relative(m),
            format_duration(r.rtt.max(0.0))
        )
    } else {
        let each: Vec<String> = ok
            .iter()
            .map(|(n, r)| format!("{n} {}", relative(r.offset)))
            .collect();
        format!(
            "clock is {} (median of {} servers: {})",
            relative(m),
            ok.len(),
            each.join(", ")
        )
    };
    if status != Status::Ok {
        let limit = if status == Status::Critical {
            t.critical
        } else {
            t.warning
        };
        message.push_str(&format!(
            "; {} from {}",
            status.as_str(),
            format_duration(limit)
        ));
    }
    if ok.len() > 1 {
        for (n, r) in &ok {
            let off = r.offset - m;
            if off.abs() > t.warning {
                message.push_str(&format!(
                    "; {n} disagrees with the others by {}",
                    format_duration(off.abs())
                ));
            }
        }
    }
    for f in &failed {
        message.push_str(&format!("; {f}"));
    }
    let mut obs = Observation::new(status, message);
    for (n, r) in &ok {
        let l = labels([("server", n)]);
        obs.samples.push(Sample::new(samples::OFFSET, &l, r.offset));
        obs.samples.push(Sample::new(samples::RTT, &l, r.rtt));
    }
    let none = Labels::new();
    obs.samples
        .push(Sample::new(samples::MEDIAN_OFFSET, &none, m));
    obs.samples.push(Sample::new(
        samples::SERVERS_ANSWERING,
        &none,
        ok.len() as f64,
    ));
    obs
}

#[cfg(test)]
mod tests;
