//! The SQL the probe runs and the rows it reads. Every value is cast in SQL to a type
//! tokio-postgres reads natively (`float8`, `text`, `bool`), so LSNs, `numeric` and
//! `interval` need no extra codecs.

use tokio_postgres::Client;

/// `pg_is_in_recovery()`, the server version, and the TLS version and cipher of this session
/// (`''` when it is not encrypted).
pub const ROLE: &str = "\
SELECT pg_is_in_recovery(), current_setting('server_version'),
       coalesce((SELECT version || ' ' || cipher FROM pg_stat_ssl
                  WHERE pid = pg_backend_pid() AND ssl), '')";

/// One row per connected standby (a disconnected standby has no row), with the slot it
/// streams from (`pg_replication_slots.active_pid` = its walsender's pid; `''` for none).
pub const REPLICATION: &str = "\
SELECT coalesce(r.application_name, ''), coalesce(host(r.client_addr), 'local'),
       coalesce(state, ''), coalesce(sync_state, ''),
       pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)::float8,
       pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::float8,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8,
       extract(epoch from write_lag)::float8,
       extract(epoch from flush_lag)::float8,
       extract(epoch from replay_lag)::float8,
       coalesce((SELECT s.slot_name::text FROM pg_replication_slots s
                  WHERE s.active_pid = r.pid LIMIT 1), '')
  FROM pg_stat_replication r
 ORDER BY 1";

/// One row per replication slot (`wal_status`/`safe_wal_size` exist from PostgreSQL 13).
pub const SLOTS: &str = "\
SELECT slot_name::text, slot_type, active, coalesce(wal_status, ''),
       safe_wal_size::float8,
       CASE WHEN restart_lsn IS NULL THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 END
  FROM pg_replication_slots
 ORDER BY 1";

/// Size of `pg_wal` (superuser or the `pg_monitor` role).
pub const WAL_DIR: &str = "SELECT coalesce(sum(size), 0)::float8 FROM pg_ls_waldir()";

/// Where the data directory is (superuser or `pg_read_all_settings`, part of `pg_monitor`).
pub const DATA_DIRECTORY: &str = "SELECT current_setting('data_directory')";

/// The standby's own view: replay paused, positions, last replayed transaction's age.
pub const STANDBY: &str = "\
SELECT pg_is_wal_replay_paused(),
       pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::float8,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8,
       extract(epoch from now() - pg_last_xact_replay_timestamp())::float8";

/// The WAL receiver (no row = down).
pub const RECEIVER: &str = "\
SELECT coalesce(status, ''), coalesce(sender_host, ''), coalesce(slot_name, '')
  FROM pg_stat_wal_receiver";

/// Creates the heartbeat table (`{table}` is a validated identifier).
pub fn create_table(table: &str) -> String {
    format!("CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, ts timestamptz NOT NULL)")
}

/// Upserts row `id` with the current time and returns it (seconds since the epoch).
pub fn upsert(table: &str) -> String {
    format!(
        "INSERT INTO {table} (id, ts) VALUES ($1, clock_timestamp()) \
         ON CONFLICT (id) DO UPDATE SET ts = excluded.ts \
         RETURNING extract(epoch from ts)::float8"
    )
}

/// Reads back row `id`'s time (seconds since the epoch).
pub fn read_back(table: &str) -> String {
    format!("SELECT extract(epoch from ts)::float8 FROM {table} WHERE id = $1")
}

/// Age of the heartbeat row on a standby.
pub fn heartbeat_age(table: &str) -> String {
    format!("SELECT extract(epoch from clock_timestamp() - ts)::float8 FROM {table} WHERE id = 1")
}

/// The cluster's system identifier, shared by a primary and its physical standbys.
pub const SYSTEM_ID: &str = "SELECT system_identifier::text FROM pg_control_system()";

/// Whether a relation exists (looked up before any CREATE, which needs a privilege the role
/// may lack).
pub const TABLE_EXISTS: &str = "SELECT to_regclass($1) IS NOT NULL";

/// A standby as seen on the primary.
#[derive(Clone, Debug, PartialEq)]
pub struct Standby {
    /// `application_name`.
    pub name: String,
    /// `client_addr` (or `local` for a Unix socket).
    pub addr: String,
    /// `state` (`streaming`, `catchup`, …).
    pub state: String,
    /// `sync_state` (`async`, `sync`, …).
    pub sync_state: String,
    /// Lag in bytes: sent, flushed, replayed.
    pub send_lag: Option<f64>,
    /// Bytes not yet flushed on the standby.
    pub flush_lag: Option<f64>,
    /// Bytes not yet replayed on the standby.
    pub replay_lag: Option<f64>,
    /// `write_lag` seconds.
    pub write_lag_s: Option<f64>,
    /// `flush_lag` seconds.
    pub flush_lag_s: Option<f64>,
    /// `replay_lag` seconds.
    pub replay_lag_s: Option<f64>,
    /// The slot it streams from (empty for none).
    pub slot: String,
}

/// A replication slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// `slot_name`.
    pub name: String,
    /// `physical` or `logical`.
    pub kind: String,
    /// Whether a consumer is connected.
    pub active: bool,
    /// `wal_status` (empty when NULL).
    pub wal_status: String,
    /// `safe_wal_size` (NULL when retention is unlimited).
    pub safe_wal_size: Option<f64>,
    /// Retained bytes (NULL when the slot has no `restart_lsn`, e.g. lost).
    pub retained: Option<f64>,
}

/// The standby's own view.
#[derive(Clone, Debug, PartialEq)]
pub struct StandbyView {
    /// `pg_is_wal_replay_paused()`.
    pub paused: bool,
    /// Last received LSN, as text.
    pub receive_lsn: Option<String>,
    /// Last replayed LSN, as text.
    pub replay_lsn: Option<String>,
    /// Received position in bytes.
    pub receive_pos: Option<f64>,
    /// Replayed position in bytes.
    pub replay_pos: Option<f64>,
    /// Seconds since the last replayed transaction committed on the primary.
    pub replay_age: Option<f64>,
}

/// The WAL receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Receiver {
    /// `status` (`streaming`, `waiting`, …).
    pub status: String,
    /// `sender_host`.
    pub sender_host: String,
    /// `slot_name`.
    pub slot: String,
}

/// Reads `pg_stat_replication`.
pub async fn standbys(c: &Client) -> Result<Vec<Standby>, tokio_postgres::Error> {
    let rows = c.query(REPLICATION, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Standby {
            name: r.try_get(0)?,
            addr: r.try_get(1)?,
            state: r.try_get(2)?,
            sync_state: r.try_get(3)?,
            send_lag: r.try_get(4)?,
            flush_lag: r.try_get(5)?,
            replay_lag: r.try_get(6)?,
            write_lag_s: r.try_get(7)?,
            flush_lag_s: r.try_get(8)?,
            replay_lag_s: r.try_get(9)?,
            slot: r.try_get(10)?,
        });
    }
    Ok(out)
}

/// Reads `pg_replication_slots`.
pub async fn slots(c: &Client) -> Result<Vec<Slot>, tokio_postgres::Error> {
    let rows = c.query(SLOTS, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Slot {
            name: r.try_get(0)?,
            kind: r.try_get(1)?,
            active: r.try_get(2)?,
            wal_status: r.try_get(3)?,
            safe_wal_size: r.try_get(4)?,
            retained: r.try_get(5)?,
        });
    }
    Ok(out)
}

/// Reads the standby's own view.
pub async fn standby_view(c: &Client) -> Result<StandbyView, tokio_postgres::Error> {
    let r = c.query_one(STANDBY, &[]).await?;
    Ok(StandbyView {
        paused: r.try_get(0)?,
        receive_lsn: r.try_get(1)?,
        replay_lsn: r.try_get(2)?,
        receive_pos: r.try_get(3)?,
        replay_pos: r.try_get(4)?,
        replay_age: r.try_get(5)?,
    })
}

/// Reads `pg_stat_wal_receiver` (`None` = no receiver).
pub async fn receiver(c: &Client) -> Result<Option<Receiver>, tokio_postgres::Error> {
    let rows = c.query(RECEIVER, &[]).await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Receiver {
        status: r.try_get(0)?,
        sender_host: r.try_get(1)?,
        slot: r.try_get(2)?,
    }))
}

/// A plain-words error: the server's own message (with its hint) for database errors, the
/// error chain otherwise.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(h) = db.hint() {
            s.push_str(&format!(" (hint: {h})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(&format!(": {t}"));
        }
        src = inner.source();
    }
    s
}

/// Whether an error is a permission problem (SQLSTATE 42501), which degrades to a note.
pub fn is_permission(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
}
