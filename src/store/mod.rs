//! The embedded SQLite store: samples with retention and downsampling, status history, alerts,
//! the notification log and the timeline.
//!
//! Writes go through [`writer::StoreWriter`], a thread that batches them off the probe path
//! and keeps them in memory while the database fails. Reads open their own connection.

mod schema;
pub mod writer;

use crate::alert::{Alert, AlertState};
use crate::model::{Labels, Sample};
use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file's name inside the state directory.
pub const DB_FILE: &str = "lookout.db";

/// One timeline entry: anything that happened, in UTC. Every key is serialized, `null` when
/// absent, as `GET /api/v1/timeline` documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Unix seconds.
    pub ts: f64,
    /// What kind of thing happened, e.g. `alert_firing`, `daemon_started`.
    pub kind: String,
    /// The probe concerned (`null` when none: the API's keys are always present).
    pub probe: Option<String>,
    /// The alert concerned.
    pub alert_id: Option<String>,
    /// Its severity.
    pub severity: Option<String>,
    /// Who did it (for acknowledgements and other human actions).
    pub actor: Option<String>,
    /// What happened, in words.
    pub message: String,
}

/// A timeline entry with its place in the order things happened: `seq` grows with every entry
/// (across restarts too), whatever the wall clock did, and the timeline is read in its order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// The entry's sequence number (its row id).
    pub seq: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: TimelineEntry,
}

/// One delivery of one alert event to one notifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `alert id : event sequence : notifier id` — stable across restarts.
    pub dedup_key: String,
    /// The alert.
    pub alert_id: String,
    /// The notifier.
    pub notifier: String,
    /// The event (`firing`, `resolved`, …).
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub outcome: String,
    /// Attempts made.
    pub attempts: u32,
    /// Seconds the successful attempt took.
    pub latency: Option<f64>,
    /// The last error, without secrets.
    pub error: Option<String>,
    /// The JSON message, so a pending delivery can be retried after a restart.
    pub payload: String,
    /// Unix seconds.
    pub created_at: f64,
    /// Unix seconds.
    pub updated_at: f64,
}

/// Opens (creating and migrating) the database in `state_dir`.
///
/// A file that is not a database is moved aside as `lookout.db.corrupt-<unix time>` (nothing is
/// deleted) and a fresh one is created.
pub fn open(state_dir: &Path) -> Result<Connection> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    let path = state_dir.join(DB_FILE);
    match open_at(&path) {
        Ok(c) => Ok(c),
        Err(e) if is_corruption(&e) => {
            let aside = path.with_extension(format!(
                "db.corrupt-{}",
                crate::daemon::clock::unix_now() as u64
            ));
            std::fs::rename(&path, &aside).with_context(|| {
                format!("cannot move the corrupted store {} aside", path.display())
            })?;
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", path.display()));
                let _ = std::fs::rename(&side, format!("{}{suffix}", aside.display()));
            }
            tracing::error!(moved_to = %aside.display(), "the store was corrupted; moved it aside and started a new one");
            open_at(&path)
        }
        Err(e) => Err(e),
    }
}

fn is_corruption(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
            matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            )
        })
    })
}

fn open_at(path: &Path) -> Result<Connection> {
    let mut conn =
        Connection::open(path).with_context(|| format!("cannot open store {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .context("cannot switch the store to WAL mode")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    schema::migrate(&mut conn)
        .with_context(|| format!("cannot migrate store {}", path.display()))?;
    Ok(conn)
}

/// Opens a read-only connection for queries (API, CLI).
pub fn open_read_only(state_dir: &Path) -> Result<Connection> {
    let path = state_dir.join(DB_FILE);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open store {} for reading", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Alerts that are not resolved, plus those resolved since `since` (unix seconds).
pub fn load_alerts(conn: &Connection, since: f64) -> Result<Vec<Alert>> {
    let mut stmt = conn.prepare("SELECT body FROM alerts WHERE state != ?1 OR updated_at >= ?2")?;
    let rows = stmt.query_map(params![AlertState::Resolved.as_str(), since], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for body in rows {
        match serde_json::from_str::<Alert>(&body?) {
            Ok(a) => out.push(a),
            Err(e) => tracing::warn!(error = %e, "skipping an alert row that does not parse"),
        }
    }
    Ok(out)
}

/// Samples of one probe and name recorded since `since` (unix seconds), oldest first.
pub fn load_samples(
    conn: &Connection,
    probe: &str,
    name: &str,
    since: f64,
) -> Result<Vec<(f64, Sample)>> {
    let mut stmt = conn.prepare("SELECT ts, labels, value FROM samples WHERE probe = ?1 AND name = ?2 AND ts >= ?3 ORDER BY ts")?;
    let rows = stmt.query_map(params![probe, name, since], |r| {
        Ok((
            r.get::<_, f64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, f64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ts, labels, value) = row?;
        let labels: Labels = serde_json::from_str(&labels).unwrap_or_default();
        out.push((
            ts,
            Sample {
                name: name.to_string(),
                labels,
                value,
            },
        ));
    }
    Ok(out)
}

/// Timeline entries recorded at or after `since` (unix seconds), in the order they happened
/// (by sequence, not by wall time: a stepped clock does not reorder them), the last `limit`.
pub fn load_timeline(conn: &Connection, since: f64, limit: usize) -> Result<Vec<TimelineRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, ts, kind, probe, alert_id, severity, actor, message FROM
           (SELECT * FROM timeline WHERE ts >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
    )?;
    let rows = stmt.query_map(params![since, limit as i64], |r| {
        Ok(TimelineRow {
            seq: r.get(0)?,
            entry: TimelineEntry {
                ts: r.get(1)?,
                kind: r.get(2)?,
                probe: r.get(3)?,
                alert_id: r.get(4)?,
                severity: r.get(5)?,
                actor: r.get(6)?,
                message: r.get(7)?,
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The sequence number the next timeline entry gets (one more than the largest stored).
pub fn next_timeline_seq(conn: &Connection) -> Result<i64> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM timeline", [], |r| {
            r.get(0)
        })?,
    )
}

/// Deliveries still pending (sent, or about to be, but not confirmed) — to retry at start-up.
pub fn load_pending_deliveries(conn: &Connection) -> Result<Vec<Delivery>> {
    let mut stmt = conn.prepare(
        "SELECT dedup_key, alert_id, notifier, event, outcome, attempts, latency, error, payload, created_at, updated_at
           FROM notifications WHERE outcome = 'pending' ORDER BY created_at",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Delivery {
            dedup_key: r.get(0)?,
            alert_id: r.get(1)?,
            notifier: r.get(2)?,
            event: r.get(3)?,
            outcome: r.get(4)?,
            attempts: r.get(5)?,
            latency: r.get(6)?,
            error: r.get(7)?,
            payload: r.get(8)?,
            created_at: r.get(9)?,
            updated_at: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The outcome already recorded for a dedup key, if any.
pub fn delivery_outcome(conn: &Connection, dedup_key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT outcome FROM notifications WHERE dedup_key = ?1",
            [dedup_key],
            |r| r.get(0),
        )
        .optional()?)
}

/// Escalations in progress (JSON bodies that do not parse are skipped with a warning).
pub fn load_escalations(conn: &Connection) -> Result<Vec<crate::escalation::Escalation>> {
    let mut stmt = conn.prepare("SELECT body FROM escalations")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in rows {
        match serde_json::from_str(&body?) {
            Ok(e) => out.push(e),
            Err(e) => tracing::warn!(error = %e, "skipping an escalation row that does not parse"),
        }
    }
    Ok(out)
}

/// Dedup keys of escalation deliveries already made or under way: a restart never sends them
/// again.
pub fn load_escalation_keys(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT dedup_key FROM notifications WHERE dedup_key LIKE 'esc:%' AND outcome != 'pending'",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Silences that end after `since` (unix seconds).
pub fn load_silences(
    conn: &Connection,
    since: f64,
) -> Result<Vec<crate::escalation::silence::Silence>> {
    let mut stmt = conn.prepare("SELECT body FROM silences WHERE ends_at >= ?1 ORDER BY id")?;
    let rows = stmt.query_map([since], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in rows {
        match serde_json::from_str(&body?) {
            Ok(s) => out.push(s),
            Err(e) => tracing::warn!(error = %e, "skipping a silence row that does not parse"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_row_keeps_every_key_with_null_for_what_it_lacks() {
        let row = TimelineRow {
            seq: 7,
            entry: TimelineEntry {
                ts: 1.5,
                kind: "daemon_started".into(),
                probe: None,
                alert_id: None,
                severity: None,
                actor: None,
                message: "lookout started".into(),
            },
        };
        let v = serde_json::to_value(&row).unwrap();
        let o = v.as_object().unwrap();
        for key in ["probe", "alert_id", "severity", "actor"] {
            assert_eq!(o.get(key), Some(&serde_json::Value::Null), "{key}: {v}");
        }
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            8,
            "seq, ts, kind, probe, alert_id, severity, actor, message: {v}"
        );
        // The CLI's timeline printer reads the entries back.
        let back: TimelineEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, row.entry);
    }
}
