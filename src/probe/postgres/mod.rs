//! The `postgres` probe: one per server. Detects the role with `pg_is_in_recovery()`; on a
//! primary it checks expected standbys, replication slots (retention, `wal_status`, growth) and
//! the WAL directory, and publishes which slot fills the `pg_wal` filesystem; on a standby it
//! checks the WAL receiver, replay and an end-to-end heartbeat. See `docs/probes/postgres.md`.

pub mod board;
pub mod conn;
pub mod primary;
pub mod probe;
pub mod queries;
pub mod role;
pub mod rules;
pub mod standby;
pub mod table;
pub mod tls;

use crate::config::values::{Dur, Secret, Size};
use crate::config::{KindConfig, KindDefaults};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// The default heartbeat table.
pub const DEFAULT_HEARTBEAT_TABLE: &str = "lookout_heartbeat";

/// `[[probe]] kind = "postgres"`: how to reach one server and the thresholds of its rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Host name, IP address, or a Unix socket directory (starting with `/`). Default
    /// `"localhost"`.
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port (also names the Unix socket). Default 5432.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Role to log in as; give it `pg_monitor` (see the docs). Default `"postgres"`.
    #[serde(default = "default_user")]
    pub user: String,
    /// Database to connect to. Default `"postgres"`.
    #[serde(default = "default_dbname")]
    pub dbname: String,
    /// Password. Default none (trust, peer or `.pgpass`-less setups).
    pub password: Option<Secret>,
    /// File holding the password (one trailing newline is trimmed), read at each (re)connect.
    /// Default none.
    pub password_file: Option<PathBuf>,
    /// How long connecting (TCP, the TLS handshake, startup, authentication) may take.
    /// Default: 80 % of the probe's timeout.
    pub connect_timeout: Option<Dur>,
    /// Server-side `statement_timeout` for the probe's session, and the client-side bound of
    /// each step. Default: 80 % of the probe's timeout.
    pub statement_timeout: Option<Dur>,
    /// TLS as libpq's `sslmode`: `disable`, `prefer`, `require`, `verify-ca` or
    /// `verify-full`. Ignored for a Unix socket. Default `"prefer"`.
    pub sslmode: Option<tls::SslMode>,
    /// PEM file of the CA certificates that may sign the server's certificate. Default: the
    /// system's trusted roots (for `verify-ca`/`verify-full`).
    pub sslrootcert: Option<PathBuf>,
    /// PEM file of a client certificate chain (with `sslkey`). Default none.
    pub sslcert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (with `sslcert`). Default none.
    pub sslkey: Option<PathBuf>,
    /// The role this server must have: `"primary"`, `"standby"` or `"any"`; the other role
    /// raises `pg_role_mismatch`. Default: `"primary"` when `expected_standbys`,
    /// `expected_standby_count` or `write_check` is set, else `"any"`.
    pub role: Option<role::RoleOption>,
    /// On a primary: standbys (by `application_name`) that must be connected; a missing one
    /// is critical. Default none.
    #[serde(default)]
    pub expected_standbys: Vec<String>,
    /// On a primary: at least this many standbys must be connected. Default none.
    pub expected_standby_count: Option<u32>,
    /// A slot retaining this much WAL is critical. Default `"10GiB"`.
    pub slot_retained_critical: Option<Size>,
    /// An inactive slot whose growth would reach `slot_retained_critical` within this is
    /// critical. Default `"4h"`.
    pub slot_growth_horizon: Option<Dur>,
    /// History the slot growth rate is measured over. Default `"15m"`.
    pub slot_growth_window: Option<Dur>,
    /// The end-to-end heartbeat. On a primary: upsert its row every run (the table is used
    /// if it exists, created only if missing). On a standby: read the row's replicated age. Default false.
    #[serde(default)]
    pub heartbeat: bool,
    /// The heartbeat table (`name` or `schema.name`, lower case). Default
    /// `"lookout_heartbeat"`.
    pub heartbeat_table: Option<String>,
    /// Heartbeat age that warns (standby). Default 3 × the interval.
    pub heartbeat_warning: Option<Dur>,
    /// Heartbeat age that is critical (standby). Default 10 × the interval.
    pub heartbeat_critical: Option<Dur>,
    /// On a primary: write and read back a row of the heartbeat table in one transaction, so
    /// "accepts connections but cannot write" is its own status. Default false.
    #[serde(default)]
    pub write_check: bool,
    /// The mount point of the filesystem holding `pg_wal` (for the disk forecast's cause
    /// note). Default: resolved from `data_directory` when lookout runs on the database host.
    pub wal_mount: Option<String>,
}

fn default_host() -> String {
    "localhost".into()
}
fn default_port() -> u16 {
    5432
}
fn default_user() -> String {
    "postgres".into()
}
fn default_dbname() -> String {
    "postgres".into()
}

/// Whether `s` is a plain lower-case identifier, optionally schema-qualified.
pub fn valid_table_name(s: &str) -> bool {
    let part = |p: &str| {
        let mut c = p.chars();
        c.next().is_some_and(|f| f.is_ascii_lowercase() || f == '_')
            && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            && p.len() <= 63
    };
    let parts: Vec<&str> = s.split('.').collect();
    (1..=2).contains(&parts.len()) && parts.iter().all(|p| part(p))
}

/// The effective settings of one probe, defaults filled in.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The configuration.
    pub config: PostgresConfig,
    /// The probe id (for role-change events).
    pub id: String,
    /// Connect bound.
    pub connect_timeout: Duration,
    /// Per-step bound (and server-side statement_timeout).
    pub statement_timeout: Duration,
    /// The whole run's budget (a little under the scheduler's timeout).
    pub budget: Duration,
    /// The heartbeat table.
    pub table: String,
    /// TLS mode (`disable` for a Unix socket).
    pub sslmode: tls::SslMode,
    /// The role the server must have, and why.
    pub expected: role::Expected,
    /// Heartbeat age (seconds) from which a standby's message puts the age first (the
    /// `pg_heartbeat_age` rule's warning threshold).
    pub heartbeat_warning: f64,
}

impl PostgresConfig {
    /// The rule thresholds for a probe with this interval.
    pub fn rule_params(&self, interval: Duration) -> rules::PgRuleParams {
        let d = rules::PgRuleParams::default();
        let i = interval.as_secs_f64();
        rules::PgRuleParams {
            slot_retained_critical: match self.slot_retained_critical {
                Some(Size::Bytes(b)) => b as f64,
                _ => d.slot_retained_critical,
            },
            slot_growth_horizon: self
                .slot_growth_horizon
                .map(Dur::secs)
                .unwrap_or(d.slot_growth_horizon),
            slot_growth_window: self.slot_growth_window.map(Dur::secs).unwrap_or(2.0 * i),
            heartbeat_warning: self.heartbeat_warning.map(Dur::secs).unwrap_or(3.0 * i),
            heartbeat_critical: self.heartbeat_critical.map(Dur::secs).unwrap_or(10.0 * i),
            expected: role::expected(self),
        }
    }

    /// Effective settings for a probe with this id and timeout.
    pub fn settings(&self, id: &str, timeout: Duration) -> Settings {
        let margin = (timeout / 10).min(Duration::from_millis(500));
        let budget = timeout.saturating_sub(margin);
        let default = timeout.mul_f64(0.8);
        Settings {
            config: self.clone(),
            id: id.to_string(),
            connect_timeout: self.connect_timeout.map(|d| d.0).unwrap_or(default),
            statement_timeout: self.statement_timeout.map(|d| d.0).unwrap_or(default),
            budget,
            table: self
                .heartbeat_table
                .clone()
                .unwrap_or_else(|| DEFAULT_HEARTBEAT_TABLE.into()),
            sslmode: if self.host.starts_with('/') {
                tls::SslMode::Disable
            } else {
                self.sslmode.unwrap_or(tls::SslMode::DEFAULT)
            },
            expected: role::expected(self),
            heartbeat_warning: self
                // The kind's default interval; `build` passes the probe's own.
                .rule_params(Duration::from_secs(30))
                .heartbeat_warning,
        }
    }

    /// Semantic checks (pure).
    pub fn check(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        if self.password.is_some() && self.password_file.is_some() {
            out.push((
                "both password and password_file are set".to_string(),
                Some("keep one of them".to_string()),
            ));
        }
        if let Some(t) = &self.heartbeat_table
            && !valid_table_name(t)
        {
            out.push((
                format!("heartbeat_table {t:?} is not a plain lower-case table name"),
                Some("use letters, digits and _, optionally schema.table".into()),
            ));
        }
        if let Some(Size::Percent(_)) = self.slot_retained_critical {
            out.push((
                "slot_retained_critical must be a size such as \"10GiB\", not a percentage".into(),
                None,
            ));
        }
        if let (Some(w), Some(c)) = (self.heartbeat_warning, self.heartbeat_critical)
            && c.0 < w.0
        {
            out.push((
                "heartbeat_critical is shorter than heartbeat_warning".into(),
                Some("critical should be the larger age".into()),
            ));
        }
        if !self.expected_standbys.is_empty() && self.expected_standby_count.is_some() {
            out.push((
                "both expected_standbys and expected_standby_count are set".into(),
                Some("name the standbys, or give a count, not both".into()),
            ));
        }
        if let Some(m) = &self.wal_mount
            && !m.starts_with('/')
        {
            out.push((format!("wal_mount {m:?} is not an absolute path"), None));
        }
        if self.role == Some(role::RoleOption::Standby) {
            for option in role::primary_only_options(self) {
                out.push((
                    format!("role = \"standby\" but {option} is set: it applies only on a primary"),
                    Some(
                        "remove it, or set role = \"any\" for a probe that follows failovers"
                            .into(),
                    ),
                ));
            }
        }
        if self.host.is_empty() {
            out.push(("host is empty".into(), None));
        }
        if self.sslcert.is_some() != self.sslkey.is_some() {
            out.push((
                "sslcert and sslkey go together".into(),
                Some("set both (the client certificate and its private key) or neither".into()),
            ));
        }
        if self.sslmode == Some(tls::SslMode::Disable)
            && (self.sslrootcert.is_some() || self.sslcert.is_some())
        {
            out.push((
                "sslrootcert/sslcert are set but sslmode = \"disable\"".into(),
                Some("remove them, or choose another sslmode".into()),
            ));
        }
        out
    }
}

impl KindConfig for PostgresConfig {
    const NAME: &'static str = "postgres";

    fn defaults() -> KindDefaults {
        KindDefaults::new(30, 10)
    }

    fn host_warnings(
        &self,
        component: &str,
        table: usize,
        warnings: &mut crate::config::error::Collector<'_>,
    ) {
        if let Some(p) = &self.password_file {
            warnings.warn_unreadable(table, "password_file", component, p);
        }
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        for (message, hint) in self.check() {
            errors.push(Some(span.clone()), Some(component), message, hint);
        }
    }

    fn build(&self, ctx: &super::BuildContext) -> super::Built {
        super::Built {
            probe: std::sync::Arc::new(probe::PostgresProbe::new(Settings {
                heartbeat_warning: self.rule_params(ctx.interval).heartbeat_warning,
                ..self.settings(&ctx.id, ctx.timeout)
            })),
            rules: Box::new(rules::PgRules::new(self.rule_params(ctx.interval))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<PostgresConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let c = parse("").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str()),
            ("localhost", 5432, "postgres")
        );
        let s = c.settings("db1", Duration::from_secs(10));
        assert_eq!(s.connect_timeout, Duration::from_secs(8));
        assert_eq!(s.budget, Duration::from_millis(9500));
        assert_eq!(s.table, "lookout_heartbeat");
        let p = c.rule_params(Duration::from_secs(30));
        assert_eq!((p.heartbeat_warning, p.heartbeat_critical), (90.0, 300.0));
        // The slot growth rate reacts within two runs.
        assert_eq!(p.slot_growth_window, 60.0);
        assert_eq!(p.expected.role, role::RoleOption::Any);
        assert!(parse("hots = \"x\"").unwrap_err().contains("unknown field"));
        let e = parse("sslmode = \"verify_full\"").unwrap_err();
        assert!(
            e.contains("is not one of disable, prefer, require, verify-ca, verify-full")
                && e.contains("did you mean \"verify-full\"?"),
            "{e}"
        );
        let e = parse("sslmode = \"on\"").unwrap_err();
        assert!(
            e.contains("sslmode \"on\" is not one of") && !e.contains("did you mean"),
            "{e}"
        );
    }

    #[test]
    fn checks_in_words() {
        let cases = [
            (
                "password = \"a\"\npassword_file = \"/f\"",
                "both password and password_file",
            ),
            (
                "heartbeat_table = \"x; drop table y\"",
                "not a plain lower-case table name",
            ),
            ("slot_retained_critical = \"5%\"", "not a percentage"),
            (
                "heartbeat_warning = \"1m\"\nheartbeat_critical = \"30s\"",
                "shorter than",
            ),
            (
                "expected_standbys = [\"a\"]\nexpected_standby_count = 1",
                "not both",
            ),
            ("wal_mount = \"data\"", "not an absolute path"),
            ("sslcert = \"/c.pem\"", "sslcert and sslkey go together"),
            ("sslkey = \"/k.pem\"", "set both"),
            (
                "sslmode = \"disable\"\nsslrootcert = \"/ca.pem\"",
                "sslmode = \"disable\"",
            ),
            (
                "role = \"standby\"\nwrite_check = true",
                "role = \"standby\" but write_check is set: it applies only on a primary",
            ),
        ];
        for (text, words) in cases {
            let errs = parse(text).unwrap().check();
            assert!(
                errs.iter()
                    .any(|(m, h)| m.contains(words) || h.as_deref().unwrap_or("").contains(words)),
                "{text}: {errs:?}"
            );
        }
        assert!(
            parse("heartbeat_table = \"ops.lookout_hb\"")
                .unwrap()
                .check()
                .is_empty()
        );
        let ok = "sslmode = \"verify-full\"\nsslrootcert = \"/ca.pem\"\n\
                  sslcert = \"/c.pem\"\nsslkey = \"/k.pem\"";
        assert!(parse(ok).unwrap().check().is_empty());
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_is_off_for_a_unix_socket() {
        let t = Duration::from_secs(10);
        assert_eq!(
            parse("").unwrap().settings("a", t).sslmode,
            tls::SslMode::Prefer
        );
        let c = parse("sslmode = \"verify-ca\"").unwrap();
        assert_eq!(c.settings("a", t).sslmode, tls::SslMode::VerifyCa);
        let c = parse("host = \"/run/postgresql\"\nsslmode = \"require\"").unwrap();
        assert_eq!(c.settings("a", t).sslmode, tls::SslMode::Disable);
    }
}
