//! The store's writer thread: batches writes, keeps them in memory while the database fails,
//! and reports its health so the daemon can alert about its own store.

use super::{Delivery, TimelineRow};
use crate::alert::Alert;
use crate::config::StoreConfig;
use crate::model::{Sample, Status};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One write.
#[derive(Clone, Debug)]
pub enum StoreOp {
    /// Samples of one probe run.
    Samples {
        /// Unix seconds.
        ts: f64,
        /// Probe id.
        probe: String,
        /// The samples.
        samples: Vec<Sample>,
    },
    /// A probe's status changed.
    Status {
        /// Unix seconds.
        ts: f64,
        /// Probe id.
        probe: String,
        /// New status.
        status: Status,
        /// Its message.
        message: String,
        /// Run duration in seconds.
        duration: f64,
    },
    /// An alert's current state (upsert).
    Alert(Alert),
    /// A delivery's current state (upsert).
    Delivery(Delivery),
    /// A timeline entry.
    Timeline(TimelineRow),
    /// An escalation's state (upsert), or its end (`body = None`: delete).
    Escalation {
        /// The escalation (group) id.
        id: String,
        /// Its JSON state.
        body: Option<String>,
        /// Unix seconds.
        ts: f64,
    },
    /// A silence (upsert by id).
    Silence {
        /// The silence id.
        id: String,
        /// Its JSON.
        body: String,
        /// Unix seconds when it ends (or ended, when expired early).
        ends_at: f64,
    },
}

impl StoreOp {
    /// Writes that should not wait for the next batch: they carry state a restart needs.
    fn urgent(&self) -> bool {
        matches!(
            self,
            StoreOp::Alert(_)
                | StoreOp::Delivery(_)
                | StoreOp::Timeline(_)
                | StoreOp::Escalation { .. }
                | StoreOp::Silence { .. }
        )
    }
}

/// How the store is doing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreHealth {
    /// The last write succeeded.
    pub ok: bool,
    /// The last error, when failing.
    pub error: Option<String>,
    /// Unix seconds since when it fails.
    pub failing_since: Option<f64>,
    /// Writes dropped because the backlog was full.
    pub dropped: u64,
    /// Writes waiting in memory.
    pub backlog: usize,
    /// Unix seconds of the last successful commit.
    pub last_commit: Option<f64>,
}

enum Msg {
    Op(Box<StoreOp>),
    Flush(mpsc::Sender<()>),
    Shutdown,
}

/// The daemon's handle to the writer thread. Sending never blocks.
#[derive(Clone)]
pub struct StoreHandle {
    tx: SyncSender<Msg>,
    health: Arc<Mutex<StoreHealth>>,
}

impl StoreHandle {
    /// Queues a write; when even the queue is full the write is dropped and counted.
    pub fn send(&self, op: StoreOp) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Op(Box::new(op)))
        {
            self.health.lock().expect("health lock").dropped += 1;
        }
    }

    /// The store's health right now.
    pub fn health(&self) -> StoreHealth {
        self.health.lock().expect("health lock").clone()
    }

    /// Asks the writer to commit what it holds; waits at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    /// Commits what it can within `timeout` and stops the writer.
    pub fn shutdown(&self, timeout: Duration) {
        self.flush(timeout);
        let _ = self.tx.try_send(Msg::Shutdown);
    }
}

/// Starts the writer thread. `conn` is the connection opened at start-up, if that worked.
pub fn spawn(
    state_dir: PathBuf,
    config: StoreConfig,
    conn: Option<Connection>,
    error: Option<String>,
) -> StoreHandle {
    let (tx, rx) = mpsc::sync_channel(20_000);
    let health = Arc::new(Mutex::new(StoreHealth {
        ok: conn.is_some(),
        failing_since: error.as_ref().map(|_| crate::daemon::clock::unix_now()),
        error,
        ..Default::default()
    }));
    let writer = Writer {
        state_dir,
        config,
        conn,
        backlog: VecDeque::new(),
        health: health.clone(),
        retry_at: None,
        backoff: Duration::from_millis(500),
        next_maintenance: Instant::now() + Duration::from_secs(60),
    };
    std::thread::Builder::new()
        .name("lookout-store".into())
        .spawn(move || writer.run(rx))
        .expect("spawning the store thread");
    StoreHandle { tx, health }
}

struct Writer {
    state_dir: PathBuf,
    config: StoreConfig,
    conn: Option<Connection>,
    backlog: VecDeque<StoreOp>,
    health: Arc<Mutex<StoreHealth>>,
    retry_at: Option<Instant>,
    backoff: Duration,
    next_maintenance: Instant,
}

/// The shortest `flush_interval` used (a shorter one is raised to this; `config check` warns).
pub const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// The smallest `downsample_to` bucket used (a smaller one is raised to this).
pub const MIN_DOWNSAMPLE_BUCKET: Duration = Duration::from_secs(1);

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let interval = self.config.flush_interval.0.max(MIN_FLUSH_INTERVAL);
        let mut next_flush = Instant::now() + interval;
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            let mut urgent = false;
            let mut msg = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Msg::Shutdown),
            };
            // Take everything queued, so one transaction commits it all.
            while let Some(m) = msg.take() {
                match m {
                    Msg::Op(op) => {
                        urgent |= op.urgent();
                        self.push(*op);
                    }
                    Msg::Flush(ack) => {
                        self.retry_at = None;
                        self.flush();
                        let _ = ack.send(());
                    }
                    Msg::Shutdown => {
                        self.retry_at = None;
                        self.flush();
                        return;
                    }
                }
                msg = rx.try_recv().ok();
            }
            if urgent || Instant::now() >= next_flush {
                self.flush();
                next_flush = Instant::now() + interval;
            }
        }
    }

    fn push(&mut self, op: StoreOp) {
        self.backlog.push_back(op);
        if self.backlog.len() > self.config.max_backlog {
            // Drop the oldest samples first: alerts, deliveries and the timeline matter more.
            let pos = self
                .backlog
                .iter()
                .position(|o| matches!(o, StoreOp::Samples { .. } | StoreOp::Status { .. }));
            self.backlog.remove(pos.unwrap_or(0));
            self.health.lock().expect("health lock").dropped += 1;
        }
    }

    fn flush(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            self.health.lock().expect("health lock").backlog = self.backlog.len();
            return;
        }
        let result = self.write_backlog().and_then(|_| self.maintain());
        let mut h = self.health.lock().expect("health lock");
        h.backlog = self.backlog.len();
        match result {
            Ok(()) => {
                if !h.ok {
                    tracing::info!("the store works again");
                }
                h.ok = true;
                h.error = None;
                h.failing_since = None;
                h.last_commit = Some(crate::daemon::clock::unix_now());
                self.retry_at = None;
                self.backoff = Duration::from_millis(500);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if h.ok || h.error.as_deref() != Some(&msg) {
                    tracing::error!(error = %msg, backlog = self.backlog.len(), "the store fails; keeping writes in memory");
                }
                if h.ok {
                    h.failing_since = Some(crate::daemon::clock::unix_now());
                }
                h.ok = false;
                h.error = Some(msg);
                self.conn = None;
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(Duration::from_secs(10));
            }
        }
    }

    fn write_backlog(&mut self) -> anyhow::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(super::open(&self.state_dir)?);
        }
        if self.backlog.is_empty() {
            return Ok(());
        }
        let conn = self.conn.as_mut().expect("opened above");
        let tx = conn.transaction()?;
        for op in &self.backlog {
            write_op(&tx, op)?;
        }
        tx.commit()?;
        self.backlog.clear();
        Ok(())
    }

    fn maintain(&mut self) -> anyhow::Result<()> {
        if Instant::now() < self.next_maintenance {
            return Ok(());
        }
        self.next_maintenance = Instant::now() + Duration::from_secs(600);
        let conn = self.conn.as_mut().expect("opened by write_backlog");
        let now = crate::daemon::clock::unix_now();
        let bucket = self
            .config
            .downsample_to
            .secs()
            .max(MIN_DOWNSAMPLE_BUCKET.as_secs_f64());
        let raw_cutoff = ((now - self.config.raw_retention.secs()) / bucket).floor() * bucket;
        let old_cutoff = now - self.config.downsampled_retention.secs();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO samples (ts, probe, name, labels, value, resolution)
             SELECT CAST(ts / ?1 AS INTEGER) * ?1 + ?1 / 2.0, probe, name, labels, AVG(value), CAST(?1 AS INTEGER)
               FROM samples WHERE resolution = 0 AND ts < ?2
              GROUP BY probe, name, labels, CAST(ts / ?1 AS INTEGER)",
            params![bucket, raw_cutoff],
        )?;
        tx.execute(
            "DELETE FROM samples WHERE resolution = 0 AND ts < ?1",
            [raw_cutoff],
        )?;
        tx.execute(
            "DELETE FROM samples WHERE resolution > 0 AND ts < ?1",
            [old_cutoff],
        )?;
        tx.execute("DELETE FROM statuses WHERE ts < ?1", [old_cutoff])?;
        tx.execute(
            "DELETE FROM notifications WHERE updated_at < ?1 AND outcome != 'pending'",
            [old_cutoff],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn write_op(tx: &rusqlite::Transaction<'_>, op: &StoreOp) -> rusqlite::Result<()> {
    match op {
        StoreOp::Samples { ts, probe, samples } => {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO samples (ts, probe, name, labels, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for s in samples {
                let labels = serde_json::to_string(&s.labels).unwrap_or_default();
                stmt.execute(params![ts, probe, s.name, labels, s.value])?;
            }
        }
        StoreOp::Status {
            ts,
            probe,
            status,
            message,
            duration,
        } => {
            tx.prepare_cached("INSERT INTO statuses (ts, probe, status, message, duration) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![ts, probe, status.as_str(), message, duration])?;
        }
        StoreOp::Alert(a) => {
            let body = serde_json::to_string(a).unwrap_or_default();
            tx.prepare_cached(
                "INSERT INTO alerts (id, state, severity, probe, body, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET state = ?2, severity = ?3, probe = ?4, body = ?5, updated_at = ?6",
            )?
            .execute(params![a.id, a.state.as_str(), a.severity.as_str(), a.probe, body, a.changed_at])?;
        }
        StoreOp::Delivery(d) => {
            tx.prepare_cached(
                "INSERT INTO notifications (dedup_key, alert_id, notifier, event, outcome, attempts, latency, error, payload, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (dedup_key) DO UPDATE SET outcome = ?5, attempts = ?6, latency = ?7, error = ?8, updated_at = ?11",
            )?
            .execute(params![d.dedup_key, d.alert_id, d.notifier, d.event, d.outcome, d.attempts, d.latency, d.error, d.payload, d.created_at, d.updated_at])?;
        }
        StoreOp::Escalation { id, body, ts } => match body {
            Some(b) => {
                tx.prepare_cached(
                    "INSERT INTO escalations (id, body, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET body = ?2, updated_at = ?3",
                )?
                .execute(params![id, b, ts])?;
            }
            None => {
                tx.prepare_cached("DELETE FROM escalations WHERE id = ?1")?
                    .execute([id])?;
            }
        },
        StoreOp::Silence { id, body, ends_at } => {
            tx.prepare_cached(
                "INSERT INTO silences (id, body, ends_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET body = ?2, ends_at = ?3",
            )?
            .execute(params![id, body, ends_at])?;
        }
        StoreOp::Timeline(TimelineRow { seq, entry: t }) => {
            // The row id is the entry's sequence number; should it be taken (a store that
            // could not be read at start-up), the entry still lands, after the others.
            let put = tx.prepare_cached("INSERT OR IGNORE INTO timeline (id, ts, kind, probe, alert_id, severity, actor, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?
                .execute(params![seq, t.ts, t.kind, t.probe, t.alert_id, t.severity, t.actor, t.message])?;
            if put == 0 {
                tx.prepare_cached("INSERT INTO timeline (ts, kind, probe, alert_id, severity, actor, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                    .execute(params![t.ts, t.kind, t.probe, t.alert_id, t.severity, t.actor, t.message])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;

    #[test]
    fn writes_land_and_old_samples_are_downsampled() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open(dir.path()).unwrap();
        let config = StoreConfig {
            raw_retention: crate::config::Dur::from_secs(3600),
            ..Default::default()
        };
        let h = spawn(dir.path().to_path_buf(), config, Some(conn), None);
        let now = crate::daemon::clock::unix_now();
        let l = labels([("mount", "/")]);
        for i in 0..10 {
            let ts = now - 7200.0 + i as f64; // two hours old: past raw retention
            h.send(StoreOp::Samples {
                ts,
                probe: "d".into(),
                samples: vec![Sample::new("disk.avail_bytes", &l, i as f64)],
            });
        }
        h.send(StoreOp::Samples {
            ts: now,
            probe: "d".into(),
            samples: vec![Sample::new("disk.avail_bytes", &l, 42.0)],
        });
        assert!(h.flush(Duration::from_secs(5)));
        assert!(h.health().ok);
        let read = super::super::open_read_only(dir.path()).unwrap();
        let rows = super::super::load_samples(&read, "d", "disk.avail_bytes", 0.0).unwrap();
        assert_eq!(rows.len(), 11, "raw before maintenance");
        // Force maintenance now.
        let mut w = Writer {
            state_dir: dir.path().to_path_buf(),
            config: StoreConfig {
                raw_retention: crate::config::Dur::from_secs(3600),
                ..Default::default()
            },
            conn: Some(super::super::open(dir.path()).unwrap()),
            backlog: VecDeque::new(),
            health: Arc::new(Mutex::new(StoreHealth::default())),
            retry_at: None,
            backoff: Duration::from_secs(1),
            next_maintenance: Instant::now(),
        };
        w.maintain().unwrap();
        let rows = super::super::load_samples(&read, "d", "disk.avail_bytes", 0.0).unwrap();
        assert!(
            rows.len() <= 3,
            "downsampled into at most two 5-minute buckets plus the fresh one: {rows:?}"
        );
        assert_eq!(rows.last().unwrap().1.value, 42.0);
        h.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn alerts_round_trip_through_the_store_and_resume_without_a_new_event() {
        use crate::alert::{Alert, AlertPolicy};
        use crate::model::{Moment, Severity};
        use crate::rule::Condition;
        let dir = tempfile::tempdir().unwrap();
        let h = spawn(
            dir.path().to_path_buf(),
            StoreConfig::default(),
            Some(super::super::open(dir.path()).unwrap()),
            None,
        );
        let cond = Condition::active(
            "disk_full",
            labels([("mount", "/")]),
            Severity::Critical,
            "full",
        );
        let t0 = Moment {
            mono: 0.0,
            wall: 5_000.0,
        };
        let mut a = Alert::new("disks", &cond, t0);
        a.observe(&cond, &AlertPolicy::default(), false, t0);
        h.send(StoreOp::Alert(a.clone()));
        assert!(h.flush(Duration::from_secs(5)));
        // A new process: another monotonic origin, the wall clock a minute on.
        let read = super::super::open_read_only(dir.path()).unwrap();
        let loaded = super::super::load_alerts(&read, 0.0).unwrap();
        assert_eq!(loaded.len(), 1);
        let now = Moment {
            mono: 1.0,
            wall: 5_060.0,
        };
        let mut back = loaded.into_iter().next().unwrap().restore(now);
        assert_eq!(back.state, crate::alert::AlertState::Firing);
        assert_eq!(back.started_at, Some(5_000.0));
        assert!(
            back.observe(&cond, &AlertPolicy::default(), false, now)
                .is_none(),
            "not announced again"
        );
        h.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn a_corrupted_database_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(super::super::DB_FILE), vec![0x42u8; 8192]).unwrap();
        let conn = super::super::open(dir.path()).expect("a fresh store");
        drop(conn);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(
            aside.len(),
            1,
            "the corrupted file is kept beside the new one"
        );
        assert_eq!(std::fs::read(aside[0].path()).unwrap(), vec![0x42u8; 8192]);
    }

    #[test]
    fn a_failing_store_keeps_writes_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // A file where the state directory should be: opening fails.
        std::fs::write(&state, b"not a directory").unwrap();
        let h = spawn(
            state.clone(),
            StoreConfig::default(),
            None,
            Some("boom".into()),
        );
        h.send(StoreOp::Timeline(TimelineRow {
            seq: 1,
            entry: super::super::TimelineEntry {
                ts: 1.0,
                kind: "test".into(),
                probe: None,
                alert_id: None,
                severity: None,
                actor: None,
                message: "kept".into(),
            },
        }));
        h.flush(Duration::from_secs(5));
        let health = h.health();
        assert!(!health.ok);
        assert_eq!(health.backlog, 1);
        std::fs::remove_file(&state).unwrap();
        assert!(h.flush(Duration::from_secs(5)));
        assert!(h.health().ok, "{:?}", h.health());
        let read = super::super::open_read_only(&state).unwrap();
        let t = super::super::load_timeline(&read, 0.0, 10).unwrap();
        assert_eq!(t[0].entry.message, "kept");
    }
}
