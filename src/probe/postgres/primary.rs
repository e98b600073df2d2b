//! What the probe looks at on a primary: standbys, slots, the WAL directory and its
//! filesystem, the heartbeat write and the write check.

use super::Settings;
use super::conn::{self, Conn, Failure};
use super::probe::{State, blocking_bound, bytes, labelled, plain, secs, wall_of};
use super::queries;
use super::rules::{WalStatus, samples};
use crate::model::{Observation, Status, format_utc};
use std::time::Instant;

/// Inspects a primary: adds samples to `obs` and one plain line per item to `lines`.
pub async fn inspect(
    s: &Settings,
    conn: &mut Conn,
    st: &mut State,
    deadline: Instant,
    obs: &mut Observation,
    lines: &mut Vec<String>,
) -> Result<(), Failure> {
    let limit = s.statement_timeout;
    let c = &s.config;
    let standbys = conn::step(
        deadline,
        limit,
        "reading pg_stat_replication",
        queries::standbys(&conn.client),
    )
    .await?;
    let slots = conn::step(
        deadline,
        limit,
        "reading pg_replication_slots",
        queries::slots(&conn.client),
    )
    .await?;

    // Standbys: the connected ones, then the expected ones that are not.
    for sb in &standbys {
        let n = sb.name.as_str();
        obs.samples
            .push(labelled(samples::STANDBY_CONNECTED, "standby", n, 1.0));
        for (name, v) in [
            (samples::SEND_LAG, sb.send_lag),
            (samples::FLUSH_LAG, sb.flush_lag),
            (samples::REPLAY_LAG, sb.replay_lag),
            (samples::WRITE_LAG_S, sb.write_lag_s),
            (samples::FLUSH_LAG_S, sb.flush_lag_s),
            (samples::REPLAY_LAG_S, sb.replay_lag_s),
        ] {
            if let Some(v) = v {
                obs.samples.push(labelled(name, "standby", n, v));
            }
        }
        lines.push(format!(
            "standby {n} ({}): {}, {}; lag sent {} flushed {} replayed {} (replay {})",
            sb.addr,
            sb.state,
            sb.sync_state,
            bytes(sb.send_lag),
            bytes(sb.flush_lag),
            bytes(sb.replay_lag),
            secs(sb.replay_lag_s),
        ));
    }
    for name in &c.expected_standbys {
        if standbys.iter().any(|sb| &sb.name == name) {
            st.missing_since.remove(name);
            continue;
        }
        let first = *st
            .missing_since
            .entry(name.clone())
            .or_insert_with(Instant::now);
        let since = wall_of(first);
        obs.samples
            .push(labelled(samples::STANDBY_CONNECTED, "standby", name, 0.0));
        obs.samples.push(labelled(
            samples::STANDBY_MISSING_SINCE,
            "standby",
            name,
            since,
        ));
        lines.push(format!(
            "standby {name} is not connected (missing since {})",
            format_utc(since)
        ));
    }
    st.missing_since
        .retain(|name, _| c.expected_standbys.contains(name));
    obs.samples
        .push(plain(samples::STANDBY_COUNT, standbys.len() as f64));
    if let Some(want) = c.expected_standby_count {
        obs.samples
            .push(plain(samples::STANDBY_EXPECTED, want as f64));
        if (standbys.len() as u32) < want {
            let first = *st.short_since.get_or_insert_with(Instant::now);
            obs.samples
                .push(plain(samples::STANDBY_SHORT_SINCE, wall_of(first)));
            lines.push(format!(
                "only {} of {want} expected standbys connected (since {})",
                standbys.len(),
                format_utc(wall_of(first))
            ));
        } else {
            st.short_since = None;
        }
    }
    if standbys.is_empty() && c.expected_standbys.is_empty() && c.expected_standby_count.is_none() {
        lines.push("no standbys connected".into());
    }

    // Slots.
    for slot in &slots {
        let n = slot.name.as_str();
        obs.samples.push(labelled(
            samples::SLOT_ACTIVE,
            "slot",
            n,
            if slot.active { 1.0 } else { 0.0 },
        ));
        if let Some(r) = slot.retained {
            obs.samples
                .push(labelled(samples::SLOT_RETAINED, "slot", n, r));
        }
        if let Some(v) = slot.safe_wal_size {
            obs.samples.push(labelled(samples::SLOT_SAFE, "slot", n, v));
        }
        if let Some(w) = WalStatus::parse(&slot.wal_status) {
            obs.samples
                .push(labelled(samples::SLOT_WAL_STATUS, "slot", n, w.code()));
        }
        lines.push(format!(
            "slot {n} ({}): {}, wal_status {}, retains {}, safe_wal_size {}",
            slot.kind,
            if slot.active { "active" } else { "inactive" },
            if slot.wal_status.is_empty() {
                "n/a"
            } else {
                &slot.wal_status
            },
            bytes(slot.retained),
            slot.safe_wal_size
                .map(crate::model::format_bytes)
                .unwrap_or_else(|| "unlimited".into()),
        ));
    }

    // The WAL directory: a permission problem is a note, not a failure.
    let mut notes = Vec::new();
    let wal_dir = match conn::step(
        deadline,
        limit,
        "reading pg_ls_waldir()",
        conn.client.query_one(queries::WAL_DIR, &[]),
    )
    .await
    {
        Ok(row) => row.try_get::<_, f64>(0).ok(),
        Err(Failure::Failed {
            permission: true, ..
        }) => {
            notes.push(format!(
                "cannot size pg_wal: role {} lacks pg_monitor (GRANT pg_monitor TO {})",
                c.user, c.user
            ));
            None
        }
        Err(f) => return Err(f),
    };
    if let Some(v) = wal_dir {
        obs.samples.push(plain(samples::WAL_DIR, v));
    }

    // The filesystem holding pg_wal, once per session.
    if st.wal_mount.is_none() {
        st.wal_mount = Some(resolve_mount(s, conn, deadline).await?);
    }
    match &st.wal_mount {
        Some(Ok(mount)) => {
            obs.samples
                .push(labelled(samples::WAL_MOUNT, "mount", mount, 1.0));
            lines.push(format!("WAL directory: {} on {mount}", bytes(wal_dir)));
        }
        Some(Err(e)) => {
            lines.push(format!("WAL directory: {}", bytes(wal_dir)));
            notes.push(format!("pg_wal filesystem unknown: {e}"));
        }
        None => {}
    }

    // Heartbeat and write check share the one small table.
    if c.heartbeat || c.write_check {
        if !st.table_ready {
            match conn::step(
                deadline,
                limit,
                "creating the heartbeat table",
                conn.client.batch_execute(&queries::create_table(&s.table)),
            )
            .await
            {
                Ok(()) => st.table_ready = true,
                Err(f @ Failure::TimedOut { .. }) => return Err(f),
                Err(f) => {
                    obs.status = obs.status.max(Status::Warning);
                    notes.push(format!(
                        "{}; the heartbeat and write check need CREATE on the database, or \
                         create {} (id int primary key, ts timestamptz) yourself",
                        f.message(),
                        s.table
                    ));
                }
            }
        }
        if st.table_ready && c.heartbeat {
            match conn::step(
                deadline,
                limit,
                "writing the heartbeat",
                conn.client.query_one(&queries::upsert(&s.table), &[&1i32]),
            )
            .await
            {
                Ok(_) => lines.push(format!("heartbeat written to {}", s.table)),
                Err(f @ Failure::TimedOut { .. }) => return Err(f),
                Err(f) => {
                    obs.status = obs.status.max(Status::Warning);
                    notes.push(f.message());
                }
            }
        }
        if st.table_ready && c.write_check && !write_check(s, conn, deadline, obs, lines).await {
            // The session may hold a lock or sit mid-transaction: start afresh next run.
            st.reset = true;
        }
    }
    lines.extend(notes);
    Ok(())
}

/// The tiny write-and-read-back transaction. A failure or a timeout is critical with its own
/// message (put first); returns whether it passed.
async fn write_check(
    s: &Settings,
    conn: &mut Conn,
    deadline: Instant,
    obs: &mut Observation,
    lines: &mut Vec<String>,
) -> bool {
    let started = Instant::now();
    let table = s.table.clone();
    let client = &mut conn.client;
    let result = conn::step(deadline, s.statement_timeout, "write check", async move {
        let tx = client.transaction().await?;
        let wrote: f64 = tx
            .query_one(&queries::upsert(&table), &[&0i32])
            .await?
            .try_get(0)?;
        let read: f64 = tx
            .query_one(&queries::read_back(&table), &[&0i32])
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok((wrote, read))
    })
    .await;
    match result {
        Ok((wrote, read)) if wrote == read => {
            let took = started.elapsed().as_secs_f64();
            obs.samples.push(plain(samples::WRITE_SECONDS, took));
            lines.push(format!("write check ok ({})", secs(Some(took))));
            true
        }
        other => {
            let why = match other {
                Ok(_) => "the row read back differs from the one written".to_string(),
                Err(Failure::TimedOut { after, .. }) => format!(
                    "no commit within {}",
                    crate::model::format_duration(after.as_secs_f64())
                ),
                Err(Failure::Failed { message, .. }) => message,
            };
            obs.status = Status::Critical;
            lines.insert(
                1.min(lines.len()),
                format!(
                    "accepts connections but cannot write: {why} (a full disk, read-only mode, \
                     stuck locks or a synchronous standby that is gone?)"
                ),
            );
            false
        }
    }
}

/// The `pg_wal` filesystem: the configured `wal_mount`, or `data_directory` resolved here.
async fn resolve_mount(
    s: &Settings,
    conn: &Conn,
    deadline: Instant,
) -> Result<Result<String, String>, Failure> {
    if let Some(m) = &s.config.wal_mount {
        return Ok(Ok(m.clone()));
    }
    let dir = match conn::step(
        deadline,
        s.statement_timeout,
        "reading data_directory",
        conn.client.query_one(queries::DATA_DIRECTORY, &[]),
    )
    .await
    {
        Ok(row) => row.try_get::<_, String>(0).unwrap_or_default(),
        Err(Failure::Failed {
            permission: true, ..
        }) => {
            return Ok(Err(
                "cannot read data_directory without pg_monitor; set wal_mount".into(),
            ));
        }
        Err(f) => return Err(f),
    };
    let bound = blocking_bound(s, deadline);
    let task = tokio::task::spawn_blocking(move || super::probe::resolve_wal_mount(&dir));
    match tokio::time::timeout(bound, task).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Ok(Err(format!("resolving pg_wal failed: {e}"))),
        Err(_) => Ok(Err(format!(
            "resolving pg_wal took longer than {}",
            crate::model::format_duration(bound.as_secs_f64())
        ))),
    }
}
