//! Versioned schema migrations. Each entry runs once, in order, inside a transaction.

use rusqlite::Connection;

/// The migrations; index + 1 is the schema version they produce. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE samples (
        ts REAL NOT NULL, probe TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL,
        value REAL NOT NULL, resolution INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX samples_series ON samples (probe, name, labels, ts);
     CREATE INDEX samples_ts ON samples (resolution, ts);
     CREATE TABLE statuses (
        ts REAL NOT NULL, probe TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL,
        duration REAL NOT NULL);
     CREATE INDEX statuses_probe ON statuses (probe, ts);
     CREATE TABLE alerts (
        id TEXT PRIMARY KEY, state TEXT NOT NULL, severity TEXT NOT NULL, probe TEXT NOT NULL,
        body TEXT NOT NULL, updated_at REAL NOT NULL);
     CREATE TABLE notifications (
        dedup_key TEXT PRIMARY KEY, alert_id TEXT NOT NULL, notifier TEXT NOT NULL,
        event TEXT NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL,
        latency REAL, error TEXT, payload TEXT NOT NULL, created_at REAL NOT NULL,
        updated_at REAL NOT NULL);
     CREATE INDEX notifications_outcome ON notifications (outcome);
     CREATE TABLE timeline (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
        probe TEXT, alert_id TEXT, severity TEXT, actor TEXT, message TEXT NOT NULL);
     CREATE INDEX timeline_ts ON timeline (ts);",
    // 2: escalations in progress (one row per group; the body is JSON) and silences.
    "CREATE TABLE escalations (
        id TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at REAL NOT NULL);
     CREATE TABLE silences (
        id TEXT PRIMARY KEY, body TEXT NOT NULL, ends_at REAL NOT NULL);",
];

/// Brings a database to the newest schema version; returns the version it is at.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: usize = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|v| v as usize)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [(i + 1) as i64],
        )?;
        tx.commit()?;
    }
    Ok(MIGRATIONS.len().max(current))
}
