//! `[deadman]`: the outbound dead-man's switch — a URL (healthchecks.io, Uptime Kuma push, cron
//! monitors) that lookout pings only while its whole pipeline works, so an outside service pages
//! when lookout or its paging path dies.

use super::error::Collector;
use super::values::{Dur, Secret};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// `[deadman]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DeadmanConfig {
    /// The URL to ping; a secret (ping URLs embed their key); `${ENV}` allowed.
    pub url: Option<Secret>,
    /// Read the URL from this file instead.
    pub url_file: Option<PathBuf>,
    /// Pinged at once when lookout sees its pipeline broken (healthchecks.io: the `/fail` URL), so
    /// the outside service pages without waiting for its grace time. Default: none.
    pub fail_url: Option<Secret>,
    /// How often the watchdog travels the pipeline and the URL is pinged. Default 1m.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Deadline of one ping, connect to last byte. Default 10s.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// How long without any probe run counts as a stalled scheduler. Default: 3 × the longest
    /// probe interval, at least 3 × `interval`.
    pub stalled_after: Option<Dur>,
}

fn default_interval() -> Dur {
    Dur::from_secs(60)
}

fn default_timeout() -> Dur {
    Dur::from_secs(10)
}

impl DeadmanConfig {
    /// Semantic checks (pure).
    pub fn validate(&self, span: Option<Range<usize>>, errors: &mut Collector<'_>) {
        let component = Some("[deadman]");
        match (&self.url, &self.url_file) {
            (Some(_), Some(_)) => errors.push(
                span.clone(),
                component,
                "set either `url` or `url_file`, not both",
                None,
            ),
            (None, None) => errors.push(
                span.clone(),
                component,
                "`url` is missing",
                Some("the ping URL of your outside monitor, e.g. url = \"https://hc-ping.com/${HC_UUID}\"".into()),
            ),
            _ => {}
        }
        for (name, url) in [("url", &self.url), ("fail_url", &self.fail_url)] {
            if let Some(u) = url
                && !(u.expose().starts_with("http://") || u.expose().starts_with("https://"))
            {
                errors.push(
                    span.clone(),
                    component,
                    format!("{name} must start with http:// or https://"),
                    None,
                );
            }
        }
        if self.interval.0.as_secs_f64() < 1.0 {
            errors.push(
                span.clone(),
                component,
                "interval must be at least 1s",
                None,
            );
        }
        if self.timeout.0.is_zero() || self.timeout.0 > self.interval.0 {
            errors.push(
                span,
                component,
                "timeout must be above zero and at most the interval",
                None,
            );
        }
    }

    /// Reads the URL file, if one is named.
    pub fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.url_file {
            self.url = Some(Secret::from_file(p)?);
        }
        Ok(())
    }
}
