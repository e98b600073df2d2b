//! What the probe looks at on a standby: the WAL receiver, replay, positions and the
//! replicated heartbeat's age (which keeps growing when the stream is blocked, unlike
//! receive − replay).

use super::Settings;
use super::conn::{self, Conn, Failure};
use super::probe::{State, bytes, plain, secs};
use super::queries;
use super::rules::samples;
use crate::model::{Observation, Status};
use std::time::Instant;

/// Inspects a standby: adds samples to `obs` and one plain line per item to `lines`.
pub async fn inspect(
    s: &Settings,
    conn: &mut Conn,
    st: &mut State,
    deadline: Instant,
    obs: &mut Observation,
    lines: &mut Vec<String>,
) -> Result<(), Failure> {
    let limit = s.statement_timeout;
    let receiver = conn::step(
        deadline,
        limit,
        "reading pg_stat_wal_receiver",
        queries::receiver(&conn.client),
    )
    .await?;
    let view = conn::step(
        deadline,
        limit,
        "reading the replay state",
        queries::standby_view(&conn.client),
    )
    .await?;

    match &receiver {
        Some(r) => {
            obs.samples.push(plain(samples::RECEIVER_UP, 1.0));
            obs.samples.push(plain(
                samples::RECEIVER_STREAMING,
                if r.status == "streaming" { 1.0 } else { 0.0 },
            ));
            let from = if r.sender_host.is_empty() {
                "the primary".to_string()
            } else {
                r.sender_host.clone()
            };
            let slot = if r.slot.is_empty() {
                " (no slot)".to_string()
            } else {
                format!(" via slot {}", r.slot)
            };
            lines.push(format!("WAL receiver {} from {from}{slot}", r.status));
        }
        None => {
            obs.samples.push(plain(samples::RECEIVER_UP, 0.0));
            obs.samples.push(plain(samples::RECEIVER_STREAMING, 0.0));
            lines.push("WAL receiver is down".into());
        }
    }
    obs.samples.push(plain(
        samples::REPLAY_PAUSED,
        if view.paused { 1.0 } else { 0.0 },
    ));
    if let Some(v) = view.receive_pos {
        obs.samples.push(plain(samples::RECEIVE_LSN, v));
    }
    if let Some(v) = view.replay_pos {
        obs.samples.push(plain(samples::REPLAY_LSN, v));
    }
    let pending = match (view.receive_pos, view.replay_pos) {
        (Some(a), Some(b)) => Some((a - b).max(0.0)),
        _ => None,
    };
    if let Some(p) = pending {
        obs.samples.push(plain(samples::REPLAY_PENDING, p));
    }
    if let Some(a) = view.replay_age {
        obs.samples.push(plain(samples::REPLAY_AGE, a));
    }
    lines.push(format!(
        "received {}, replayed {} ({} waiting to replay){}; last replayed transaction {} ago",
        view.receive_lsn.as_deref().unwrap_or("n/a"),
        view.replay_lsn.as_deref().unwrap_or("n/a"),
        bytes(pending),
        if view.paused { ", REPLAY PAUSED" } else { "" },
        secs(view.replay_age),
    ));

    if s.config.heartbeat {
        heartbeat(s, conn, st, deadline, obs, lines).await?;
    }
    Ok(())
}

async fn heartbeat(
    s: &Settings,
    conn: &mut Conn,
    st: &mut State,
    deadline: Instant,
    obs: &mut Observation,
    lines: &mut Vec<String>,
) -> Result<(), Failure> {
    let limit = s.statement_timeout;
    let no_table = || {
        format!(
            "no heartbeat in {} yet: set heartbeat = true on the primary's postgres probe",
            s.table
        )
    };
    if !st.table_ready {
        let row = conn::step(
            deadline,
            limit,
            "looking for the heartbeat table",
            conn.client.query_one(queries::TABLE_EXISTS, &[&s.table]),
        )
        .await?;
        st.table_ready = row.try_get::<_, bool>(0).unwrap_or(false);
        if !st.table_ready {
            obs.status = obs.status.max(Status::Warning);
            lines.push(no_table());
            return Ok(());
        }
    }
    let rows = conn::step(
        deadline,
        limit,
        "reading the heartbeat",
        conn.client.query(&queries::heartbeat_age(&s.table), &[]),
    )
    .await?;
    match rows.first().and_then(|r| r.try_get::<_, f64>(0).ok()) {
        Some(age) => {
            obs.samples.push(plain(samples::HEARTBEAT_AGE, age));
            lines.push(format!(
                "heartbeat from the primary is {} old",
                secs(Some(age))
            ));
        }
        None => {
            obs.status = obs.status.max(Status::Warning);
            lines.push(no_table());
        }
    }
    Ok(())
}
