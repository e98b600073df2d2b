//! The probe: one persistent session, re-established after any failure; the role decides
//! what it looks at (see [`primary`] and [`standby`]).

use super::Settings;
use super::conn::{self, Conn, Failure};
use super::queries;
use super::rules::samples;
use super::{primary, standby};
use crate::model::{Labels, Observation, Sample, Status};
use crate::probe::Probe;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not in recovery.
    Primary,
    /// In recovery (a standby).
    Standby,
}

impl Role {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
        }
    }
}

/// What the probe remembers between runs.
#[derive(Default)]
pub struct State {
    pub(super) conn: Option<Conn>,
    pub(super) last_role: Option<Role>,
    /// Expected standbys not connected: when first seen missing (monotonic).
    pub(super) missing_since: BTreeMap<String, Instant>,
    /// When the standby count first fell short (monotonic).
    pub(super) short_since: Option<Instant>,
    /// The `pg_wal` filesystem, resolved once per session.
    pub(super) wal_mount: Option<Result<String, String>>,
    /// The heartbeat table exists (checked once per session, and after a failed write).
    pub(super) table_ready: bool,
    /// Consecutive runs of a standby that found no heartbeat table or row (the first is not a
    /// warning yet: at start-up the primary's probe may not have written it).
    pub(super) heartbeat_absent: u32,
    /// The cluster's system identifier (read once per session; `Some(None)` = unreadable).
    pub(super) system_id: Option<Option<String>>,
    /// Drop the session after this run (e.g. after a failed write check).
    pub(super) reset: bool,
}

/// What one run found: the problems (the message's first lines, so a page's summary names
/// the fault), then the details.
#[derive(Default)]
pub struct Report {
    /// Problems, critical ones first.
    pub findings: Vec<String>,
    /// Details, one per item.
    pub lines: Vec<String>,
}

impl Report {
    /// Records a problem and raises the observation's status to at least `status`.
    pub fn finding(&mut self, obs: &mut Observation, status: Status, text: impl Into<String>) {
        obs.status = obs.status.max(status);
        if status >= Status::Critical {
            self.findings.insert(0, text.into());
        } else {
            self.findings.push(text.into());
        }
    }

    /// The message: findings, then the context line (role, version, TLS), then the details.
    pub fn message(self, context: String) -> String {
        let mut out = self.findings;
        out.push(context);
        out.extend(self.lines);
        out.join("\n")
    }
}

/// The `postgres` probe.
pub struct PostgresProbe {
    s: Settings,
    state: tokio::sync::Mutex<State>,
}

/// Wall time of an instant in the past (for display), measured with the monotonic clock.
pub fn wall_of(at: Instant) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    now - at.elapsed().as_secs_f64()
}

/// A sample without labels.
pub fn plain(name: &str, v: f64) -> Sample {
    Sample::new(name, &Labels::new(), v)
}

/// A sample with one label.
pub fn labelled(name: &str, key: &str, value: &str, v: f64) -> Sample {
    Sample::new(name, &[(key.to_string(), value.to_string())].into(), v)
}

/// The mount point (from `mounts`) holding `path`: the longest mount point that is `path`
/// or one of its parents.
pub fn mount_of(path: &str, mounts: &[crate::probe::disk::Mount]) -> Option<String> {
    mounts
        .iter()
        .filter(|m| {
            path == m.point
                || m.point == "/"
                || path.starts_with(&format!("{}/", m.point.trim_end_matches('/')))
        })
        .max_by_key(|m| m.point.len())
        .map(|m| m.point.clone())
}

/// Resolves `<data_directory>/pg_wal` (following a symlink) to its mount point, off the
/// runtime. Falls back to the data directory when `pg_wal` cannot be read.
pub fn resolve_wal_mount(data_directory: &str) -> Result<String, String> {
    let wal = std::path::Path::new(data_directory).join("pg_wal");
    let real = match std::fs::canonicalize(&wal) {
        Ok(p) => p,
        Err(_) => std::fs::canonicalize(data_directory).map_err(|e| {
            format!("cannot resolve {data_directory} here ({e}); set wal_mount if the database runs on another host")
        })?,
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mounts = crate::probe::disk::parse_mountinfo(&info);
    let path = real.to_string_lossy().into_owned();
    mount_of(&path, &mounts).ok_or_else(|| format!("no mount holds {path}"))
}

impl PostgresProbe {
    /// A probe with these settings and no session yet.
    pub fn new(s: Settings) -> PostgresProbe {
        PostgresProbe {
            s,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    async fn inspect(
        &self,
        conn: &mut Conn,
        st: &mut State,
        deadline: Instant,
    ) -> Result<Observation, Failure> {
        let limit = self.s.statement_timeout;
        let row = conn::step(
            deadline,
            limit,
            "checking the role",
            conn.client.query_one(queries::ROLE, &[]),
        )
        .await?;
        let in_recovery: bool = row.try_get(0).map_err(|e| Failure::Failed {
            step: "checking the role".into(),
            message: queries::describe(&e),
            permission: false,
        })?;
        let version: String = row.try_get(1).unwrap_or_default();
        let tls: String = row.try_get(2).unwrap_or_default();
        let role = if in_recovery {
            Role::Standby
        } else {
            Role::Primary
        };
        let mut obs = Observation::new(Status::Ok, "");
        if let Some(last) = st.last_role
            && last != role
        {
            // The timeline prefixes the probe's id.
            obs.events.push(format!(
                "changed role: {} → {}",
                last.as_str(),
                role.as_str()
            ));
            // Standby bookkeeping means nothing across a role change.
            st.missing_since.clear();
            st.short_since = None;
        }
        st.last_role = Some(role);
        obs.samples.push(plain(
            samples::IN_RECOVERY,
            if in_recovery { 1.0 } else { 0.0 },
        ));
        obs.samples
            .push(plain(samples::TLS, if tls.is_empty() { 0.0 } else { 1.0 }));
        let session = if tls.is_empty() {
            "not encrypted".to_string()
        } else {
            tls
        };
        let context = format!("{} (PostgreSQL {version}; {session})", role.as_str());
        let mut r = Report::default();
        // The pg_role_mismatch rule alerts; the message says it first too. A mismatched probe
        // acts as neither role: it writes nothing to a primary it expected to be a standby, and
        // reads no standby state (heartbeat age, receiver) it expected to be a primary's.
        if let Some(m) = super::role::mismatch(&self.s.expected, in_recovery) {
            r.findings.push(m);
            self.mismatched(conn, st, deadline, role).await?;
            r.lines.push(format!(
                "the {} checks are skipped until the role matches",
                role.as_str()
            ));
            obs.message = r.message(context);
            return Ok(obs);
        }
        if let Some(note) = super::role::skipped_note(&self.s.expected, in_recovery) {
            r.lines.push(note);
        }
        match role {
            Role::Primary => {
                primary::inspect(&self.s, conn, st, deadline, &mut obs, &mut r).await?
            }
            Role::Standby => {
                standby::inspect(&self.s, conn, st, deadline, &mut obs, &mut r).await?
            }
        }
        obs.message = r.message(context);
        Ok(obs)
    }

    /// On a role mismatch: a probe that should write the heartbeat tells the standbys' probes
    /// in this process that nobody writes it (so their heartbeat alert names why).
    async fn mismatched(
        &self,
        conn: &mut Conn,
        st: &mut State,
        deadline: Instant,
        role: Role,
    ) -> Result<(), Failure> {
        if !(self.s.config.heartbeat
            && role == Role::Standby
            && self.s.expected.role == super::role::RoleOption::Primary)
        {
            return Ok(());
        }
        if let Some(sys) = super::table::system_id(&self.s, conn, st, deadline).await? {
            super::board::record(
                &sys,
                &self.s.id,
                Some(format!(
                    "role mismatch: its server ({}) is a standby, so it does not write the \
                     heartbeat",
                    conn::target(&self.s)
                )),
                crate::daemon::clock::unix_now(),
            );
        }
        Ok(())
    }

    /// One run with an explicit deadline (the scheduler's timeout minus a margin).
    pub async fn run_until(&self, deadline: Instant) -> Observation {
        let started = Instant::now();
        let mut st = self.state.lock().await;
        let mut conn = match st.conn.take() {
            Some(c) if !c.client.is_closed() => c,
            _ => {
                st.wal_mount = None;
                st.table_ready = false;
                st.system_id = None;
                match conn::connect(&self.s, deadline).await {
                    Ok(c) => c,
                    Err(f) => return self.failed(f, started),
                }
            }
        };
        match self.inspect(&mut conn, &mut st, deadline).await {
            Ok(mut obs) => {
                if std::mem::take(&mut st.reset) {
                    drop(conn);
                } else {
                    st.conn = Some(conn);
                }
                obs.duration_seconds = started.elapsed().as_secs_f64();
                obs
            }
            // The session may be mid-query: drop it (the task is aborted) and reconnect next run.
            Err(f) => self.failed(f, started),
        }
    }

    fn failed(&self, f: Failure, started: Instant) -> Observation {
        let target = conn::target(&self.s);
        let message = f.message();
        let message = if message.contains(&target) {
            message
        } else {
            format!("{target}: {message}")
        };
        // Nothing was read: the alerts on this server's series are stale, not resolved.
        let mut obs = Observation::failed(Status::Critical, message);
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}

#[async_trait]
impl Probe for PostgresProbe {
    async fn run(&self) -> Observation {
        self.run_until(Instant::now() + self.s.budget).await
    }
}

/// Formats optional seconds as plain words.
pub fn secs(v: Option<f64>) -> String {
    match v {
        Some(s) if s.abs() < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) if s.abs() < 10.0 => format!("{s:.1}s"),
        Some(s) => crate::model::format_duration(s.round()),
        None => "n/a".into(),
    }
}

/// Formats optional bytes.
pub fn bytes(v: Option<f64>) -> String {
    v.map(crate::model::format_bytes)
        .unwrap_or_else(|| "n/a".into())
}

/// The bound of a blocking helper.
pub fn blocking_bound(s: &Settings, deadline: Instant) -> Duration {
    s.statement_timeout
        .min(deadline.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_in_words() {
        assert_eq!(secs(Some(0.0123)), "12ms");
        assert_eq!(secs(Some(4.24)), "4.2s");
        assert_eq!(secs(None), "n/a");
    }

    #[test]
    fn longest_mount_prefix_wins() {
        let m = crate::probe::disk::parse_mountinfo(
            "1 0 8:1 / / rw - ext4 /dev/a rw\n\
             2 1 8:2 / /var/lib rw - ext4 /dev/b rw\n\
             3 1 8:3 / /var/lib/postgresql/15/main/pg_wal rw - ext4 /dev/c rw\n\
             4 1 8:4 / /var/li rw - ext4 /dev/d rw\n",
        );
        let cases = [
            (
                "/var/lib/postgresql/15/main/pg_wal",
                "/var/lib/postgresql/15/main/pg_wal",
            ),
            ("/var/lib/postgresql/15/main", "/var/lib"),
            ("/var/lib", "/var/lib"),
            ("/var/library", "/"),
            ("/srv", "/"),
        ];
        for (path, want) in cases {
            assert_eq!(mount_of(path, &m).as_deref(), Some(want), "{path}");
        }
    }

    #[test]
    fn a_missing_data_directory_says_to_set_wal_mount() {
        let e = resolve_wal_mount("/nonexistent/lookout/data").unwrap_err();
        assert!(e.contains("set wal_mount"), "{e}");
    }
}
