//! `[cluster]`: several lookout nodes share one pager through etcd (docs/cluster.md).
//! Without the section lookout runs alone, exactly as before.

use super::error::Collector;
use super::values::{Dur, Secret};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// The shortest `lease_ttl` accepted: below it one slow keep-alive round trip would cost the lead.
pub const MIN_LEASE_TTL: Dur = Dur::from_secs(2);

/// How often the cluster loop looks at etcd (leader key, shared alerts, acknowledgements) and
/// the paging tick: `lease_ttl` must hold at least eight of them.
pub const CLUSTER_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// `[cluster]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://` or `https://`); at least one.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// This node's name, unique in the cluster. Default: the host name.
    #[serde(default)]
    pub name: Option<String>,
    /// Where lookout keeps its keys in etcd. Default `/lookout/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The lease every node keeps alive; a leader that cannot renew it stops paging before it
    /// can expire on the etcd side. Default 5s, minimum 2s.
    #[serde(default = "default_ttl")]
    pub lease_ttl: Dur,
    /// etcd user (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// etcd password; `${ENV}` allowed.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Read the password from this file instead.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed etcd's server certificates, for `https://` endpoints.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's `--client-cert-auth`, with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The URL other nodes and people reach this node's API at, shown by `lookout cluster
    /// status`. Default: `[api] public_url`, else the listen address.
    #[serde(default)]
    pub api_url: Option<String>,
}

fn default_prefix() -> String {
    "/lookout/".into()
}

fn default_ttl() -> Dur {
    Dur::from_secs(5)
}

impl ClusterConfig {
    /// This node's name: `name`, else the host name.
    pub fn node_name(&self) -> String {
        self.name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(host_name)
    }

    /// The prefix with exactly one trailing slash.
    pub fn key_prefix(&self) -> String {
        format!("{}/", self.prefix.trim_end_matches('/'))
    }

    /// Semantic checks (pure).
    pub fn validate(&self, span: Option<Range<usize>>, errors: &mut Collector<'_>) {
        let component = Some("[cluster]");
        let mut err = |message: String, hint: Option<&str>| {
            errors.push(span.clone(), component, message, hint.map(str::to_string))
        };
        if self.endpoints.is_empty() {
            err(
                "`endpoints` is empty".into(),
                Some(
                    "the client URLs of your etcd members, e.g. endpoints = [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\", \"http://10.0.0.3:2379\"]",
                ),
            );
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                err(
                    format!("endpoint {e:?} must start with http:// or https://"),
                    None,
                );
            }
        }
        if let Some(n) = &self.name
            && (n.is_empty() || n.contains('/') || n.chars().any(char::is_whitespace))
        {
            err(
                format!("name {n:?} must be non-empty, without spaces or `/`"),
                None,
            );
        }
        if !self.prefix.starts_with('/') {
            err(
                format!("prefix {:?} must start with `/`", self.prefix),
                None,
            );
        }
        let ttl = self.lease_ttl.0;
        if ttl < MIN_LEASE_TTL.0 {
            err(
                format!("lease_ttl {} is below the minimum of 2s", self.lease_ttl),
                Some("a shorter lease is lost to one slow round trip to etcd"),
            );
        } else if ttl < CLUSTER_TICK * 8 {
            err(
                format!(
                    "lease_ttl {} holds fewer than 8 cluster ticks of 250ms",
                    self.lease_ttl
                ),
                None,
            );
        }
        if self.password.is_some() && self.password_file.is_some() {
            err(
                "set either `password` or `password_file`, not both".into(),
                None,
            );
        }
        let has_password = self.password.is_some() || self.password_file.is_some();
        if self.username.is_some() != has_password {
            err(
                "`username` and `password` go together".into(),
                Some("etcd's authentication needs both, or neither"),
            );
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            err("`cert_file` and `key_file` go together".into(), None);
        }
        let tls = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if !tls && (self.ca_file.is_some() || self.cert_file.is_some()) {
            err(
                "`ca_file`/`cert_file` are set but no endpoint uses https://".into(),
                None,
            );
        }
    }

    /// Reads the password file, if one is named.
    pub fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.password_file {
            self.password = Some(Secret::from_file(p)?);
        }
        Ok(())
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `lookout` when unreadable.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "lookout".into())
}
