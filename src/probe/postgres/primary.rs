//! What the probe looks at on a primary: standbys, slots, the WAL directory and its
//! filesystem; the heartbeat write and the write check are in [`super::table`].

use super::Settings;
use super::conn::{self, Conn, Failure};
use super::probe::{Report, State, blocking_bound, bytes, labelled, plain, secs, wall_of};
use super::queries;
use super::rules::{WalStatus, samples};
use crate::model::{Observation, format_utc};
use std::time::Instant;

/// Inspects a primary: adds samples to `obs`, problems and one plain line per item to `r`.
pub async fn inspect(
    s: &Settings,
    conn: &mut Conn,
    st: &mut State,
    deadline: Instant,
    obs: &mut Observation,
    r: &mut Report,
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
        let via = if sb.slot.is_empty() {
            String::new()
        } else {
            format!(" via slot {}", sb.slot)
        };
        r.lines.push(format!(
            "standby {n} ({}{via}): {}, {}; lag sent {} flushed {} replayed {} (replay {})",
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
        // A standby streaming from the slot named like this one is most likely this one
        // under another application_name (pg_basebackup -R's default).
        let other = standbys
            .iter()
            .find(|sb| &sb.slot == name && !c.expected_standbys.contains(&sb.name));
        let hint = match other {
            Some(sb) => {
                obs.samples.push(crate::model::Sample::new(
                    samples::STANDBY_STREAMING_AS,
                    &[
                        ("standby".to_string(), name.clone()),
                        ("as".to_string(), sb.name.clone()),
                    ]
                    .into(),
                    1.0,
                ));
                format!(": {}", super::rules::name_hint(name, &sb.name))
            }
            None => String::new(),
        };
        // A finding (first in the message); the pg_standby_missing rule raises the status.
        r.findings.push(format!(
            "standby {name} is not connected (missing since {}){hint}",
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
            r.findings.push(format!(
                "only {} of {want} expected standbys connected (since {})",
                standbys.len(),
                format_utc(wall_of(first))
            ));
        } else {
            st.short_since = None;
        }
    }
    if standbys.is_empty() && c.expected_standbys.is_empty() && c.expected_standby_count.is_none() {
        r.lines.push("no standbys connected".into());
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
        if let Some(held) = slot.retained {
            obs.samples
                .push(labelled(samples::SLOT_RETAINED, "slot", n, held));
        }
        if let Some(v) = slot.safe_wal_size {
            obs.samples.push(labelled(samples::SLOT_SAFE, "slot", n, v));
        }
        if let Some(w) = WalStatus::parse(&slot.wal_status) {
            obs.samples
                .push(labelled(samples::SLOT_WAL_STATUS, "slot", n, w.code()));
        }
        let line = format!(
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
        );
        // An inactive or endangered slot is a finding (the pg_slot rule raises the status).
        let endangered = matches!(slot.wal_status.as_str(), "unreserved" | "lost");
        if !slot.active || endangered {
            r.findings.push(line);
        } else {
            r.lines.push(line);
        }
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
            r.lines
                .push(format!("WAL directory: {} on {mount}", bytes(wal_dir)));
        }
        Some(Err(e)) => {
            r.lines.push(format!("WAL directory: {}", bytes(wal_dir)));
            notes.push(format!("pg_wal filesystem unknown: {e}"));
        }
        None => {}
    }

    // Heartbeat and write check share the one small table.
    if c.heartbeat || c.write_check {
        super::table::run(s, conn, st, deadline, obs, r).await?;
    }
    r.lines.extend(notes);
    Ok(())
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
