//! `[intake]` (alerts pushed to lookout by Alertmanager) and `[[heartbeat]]` (inbound
//! heartbeats from cron jobs, backups, another lookout).

use super::error::Collector;
use super::values::{Dur, Secret};
use crate::model::Severity;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// `[intake]`: alerts other systems push to lookout.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Bearer token Alertmanager must send on `POST /api/v1/alertmanager` (its
    /// `http_config.authorization.credentials`); `${ENV}` allowed. Default: none, the endpoint
    /// accepts every request that reaches the listen address.
    pub alertmanager_token: Option<Secret>,
    /// Read the Alertmanager token from this file instead. Default: none.
    pub alertmanager_token_file: Option<PathBuf>,
    /// `severity` label value (any case) → lookout severity, over the built-in conventions
    /// (`page`, `P1` … critical; `warn`, `P3` … warning; `low`, `none` … info); the key `"*"`
    /// is the severity of unknown values and of alerts without the label. Default: none
    /// (conventions, else warning).
    pub alertmanager_severities: std::collections::BTreeMap<String, Severity>,
}

impl IntakeConfig {
    /// Semantic checks (pure).
    pub fn validate(&self, span: Option<Range<usize>>, errors: &mut Collector<'_>) {
        if self.alertmanager_token.is_some() && self.alertmanager_token_file.is_some() {
            errors.push(
                span.clone(),
                Some("[intake]"),
                "set either `alertmanager_token` or `alertmanager_token_file`, not both",
                None,
            );
        }
        if self
            .alertmanager_token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            errors.push(
                span.clone(),
                Some("[intake]"),
                "alertmanager_token is empty",
                Some("remove it to accept unauthenticated requests, or set a value".into()),
            );
        }
        if self
            .alertmanager_severities
            .keys()
            .any(|k| k.trim().is_empty())
        {
            errors.push(
                span,
                Some("[intake.alertmanager_severities]"),
                "a severity label value is empty",
                Some("name the value Alertmanager sends, e.g. page = \"critical\"".into()),
            );
        }
    }

    /// Reads the token file, if one is named.
    pub fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.alertmanager_token_file {
            self.alertmanager_token = Some(Secret::from_file(p)?);
        }
        Ok(())
    }
}

/// One `[[heartbeat]]`: a name that must be pinged at least every `period` (+ `grace`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// The name in `/api/v1/heartbeat/{name}`: letters, digits, `-`, `_`, `.`. Required.
    pub name: String,
    /// How often a success is expected. Required.
    pub period: Dur,
    /// Extra time allowed after `period` (and after a `/start`) before it counts as missing.
    /// Default 1m.
    pub grace: Option<Dur>,
    /// Severity of `heartbeat_missing` and `heartbeat_failed`. Default critical.
    pub severity: Option<Severity>,
    /// Bearer token the pinger must send (`Authorization: Bearer …`); `${ENV}` allowed.
    /// Default: none, any request to the URL counts.
    pub token: Option<Secret>,
    /// Read the token from this file instead. Default: none.
    pub token_file: Option<PathBuf>,
    /// Where the table is in the file (set by the parser).
    #[serde(skip)]
    pub span: Range<usize>,
}

/// The default `grace` of a heartbeat.
pub const DEFAULT_GRACE: Dur = Dur(std::time::Duration::from_secs(60));

impl HeartbeatConfig {
    /// `grace`, or its default.
    pub fn grace(&self) -> Dur {
        self.grace.unwrap_or(DEFAULT_GRACE)
    }

    /// `severity`, or its default.
    pub fn severity(&self) -> Severity {
        self.severity.unwrap_or(Severity::Critical)
    }

    /// Semantic checks (pure).
    pub fn validate(&self, errors: &mut Collector<'_>) {
        let component = format!("heartbeat {:?}", self.name);
        let span = Some(self.span.clone());
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errors.push(
                span.clone(),
                Some(&component),
                "a heartbeat name may hold only letters, digits, `-`, `_` and `.`",
                Some("it is part of the URL /api/v1/heartbeat/{name}".into()),
            );
        }
        if self.period.0.is_zero() {
            errors.push(
                span.clone(),
                Some(&component),
                "period must be longer than 0s",
                None,
            );
        }
        if self.token.is_some() && self.token_file.is_some() {
            errors.push(
                span,
                Some(&component),
                "set either `token` or `token_file`, not both",
                None,
            );
        }
    }

    /// Reads the token file, if one is named.
    pub fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.token_file {
            self.token = Some(Secret::from_file(p)?);
        }
        Ok(())
    }
}

/// The endpoints that take requests without a token: the Alertmanager intake (always served)
/// without `[intake] alertmanager_token`, and each `[[heartbeat]]` without a `token`.
pub fn unauthenticated_endpoints(
    intake: &IntakeConfig,
    heartbeats: &[HeartbeatConfig],
) -> Vec<String> {
    let mut open = Vec::new();
    if intake.alertmanager_token.is_none() && intake.alertmanager_token_file.is_none() {
        open.push("POST /api/v1/alertmanager (no [intake] alertmanager_token)".to_string());
    }
    for h in heartbeats {
        if h.token.is_none() && h.token_file.is_none() {
            open.push(format!("/api/v1/heartbeat/{} (no token)", h.name));
        }
    }
    open
}

/// Why serving on `listen` would be an open door, or `None`: a non-loopback address while
/// [`unauthenticated_endpoints`] is not empty and `[api] allow_unauthenticated` is off.
/// An address that does not parse as `IP:PORT` is left to the other checks.
pub fn open_door(config: &super::Config, listen: &str) -> Option<String> {
    let addr: std::net::SocketAddr = listen.parse().ok()?;
    if addr.ip().is_loopback() || config.api.allow_unauthenticated {
        return None;
    }
    let open = unauthenticated_endpoints(&config.intake, &config.heartbeats);
    (!open.is_empty()).then(|| {
        format!(
            "listening on {addr}, which is not a loopback address, while anyone who reaches it can raise pages without a token: {}",
            open.join(", ")
        )
    })
}

/// What [`open_door`] would refuse, when `[api] allow_unauthenticated = true` allows it: said as
/// a warning, so an open door is never silent.
pub fn open_door_allowed(config: &super::Config, listen: &str) -> Option<String> {
    let addr: std::net::SocketAddr = listen.parse().ok()?;
    if addr.ip().is_loopback() || !config.api.allow_unauthenticated {
        return None;
    }
    let open = unauthenticated_endpoints(&config.intake, &config.heartbeats);
    (!open.is_empty()).then(|| {
        format!(
            "allow_unauthenticated: anyone who reaches {addr} can raise pages without a token: {}",
            open.join(", ")
        )
    })
}

/// The hint that goes with [`open_door`].
pub const OPEN_DOOR_HINT: &str = "set [intake] alertmanager_token and a `token` on every [[heartbeat]], or listen on 127.0.0.1 (behind a reverse proxy that authenticates), or set [api] allow_unauthenticated = true if the network itself is trusted";

/// Checks every heartbeat and that names are unique (pure).
pub fn validate_heartbeats(list: &[HeartbeatConfig], errors: &mut Collector<'_>) {
    let mut seen = std::collections::BTreeSet::new();
    for h in list {
        h.validate(errors);
        if !seen.insert(h.name.as_str()) {
            errors.push(
                Some(h.span.clone()),
                Some(&format!("heartbeat {:?}", h.name)),
                "duplicate heartbeat name",
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_defaults_and_secrets() {
        let h: HeartbeatConfig =
            toml::from_str("name = \"backup\"\nperiod = \"1h\"\ntoken = \"HBT0KEN\"").unwrap();
        assert_eq!(h.grace(), DEFAULT_GRACE);
        assert_eq!(h.severity(), Severity::Critical);
        assert!(!format!("{h:?}").contains("HBT0KEN"));
        let i: IntakeConfig = toml::from_str("alertmanager_token = \"AMT0KEN\"").unwrap();
        assert!(!format!("{i:?}").contains("AMT0KEN"));
        assert!(
            toml::from_str::<HeartbeatConfig>("name = \"x\"\nperiod = \"1h\"\nperiode = \"1h\"")
                .is_err()
        );
    }

    #[test]
    fn the_example_configuration_has_valid_heartbeats() {
        let src = include_str!("../../examples/reference.toml").replace("CHANGE-ME", "x");
        let c = crate::config::parse_str(std::path::Path::new("reference.toml"), &src)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.heartbeats.len(), 2);
        assert_eq!(c.heartbeats[0].grace().secs(), 3600.0);
    }

    #[test]
    fn bad_heartbeats_are_reported_with_their_names() {
        let src = "[[heartbeat]]\nname = \"a b\"\nperiod = \"0s\"\n[[heartbeat]]\nname = \"x\"\nperiod = \"1m\"\n[[heartbeat]]\nname = \"x\"\nperiod = \"1m\"\nbogus = 1\n[[probe]]\nid = \"alertmanager\"\nkind = \"disk\"\n";
        let e = crate::config::parse_str(std::path::Path::new("h.toml"), src)
            .unwrap_err()
            .to_string();
        for want in ["only letters", "period must be longer", "bogus", "reserved"] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let dup = "[[heartbeat]]\nname = \"x\"\nperiod = \"1m\"\n[[heartbeat]]\nname = \"x\"\nperiod = \"1m\"\n";
        let e = crate::config::parse_str(std::path::Path::new("h.toml"), dup)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate heartbeat name"), "{e}");
    }
}
