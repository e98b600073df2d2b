//! What the probe looks at on a standby: the WAL receiver, replay, positions and the
//! replicated heartbeat's age (which keeps growing when the stream is blocked, unlike
//! receive − replay).

use super::Settings;
use super::conn::{self, Conn, Failure};
use super::probe::{Report, State, bytes, plain, secs};
use super::queries;
use super::rules::samples;
use super::{board, table};
use crate::model::{Observation, Status};
use std::time::Instant;

/// Inspects a standby: adds samples to `obs`, problems and one plain line per item to `r`.
pub async fn inspect(
    s: &Settings,
    conn: &mut Conn,
    st: &mut State,
    deadline: Instant,
    obs: &mut Observation,
    r: &mut Report,
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
        Some(rx) => {
            obs.samples.push(plain(samples::RECEIVER_UP, 1.0));
            obs.samples.push(plain(
                samples::RECEIVER_STREAMING,
                if rx.status == "streaming" { 1.0 } else { 0.0 },
            ));
            let from = if rx.sender_host.is_empty() {
                "the primary".to_string()
            } else {
                rx.sender_host.clone()
            };
            let slot = if rx.slot.is_empty() {
                " (no slot)".to_string()
            } else {
                format!(" via slot {}", rx.slot)
            };
            let line = format!("WAL receiver {} from {from}{slot}", rx.status);
            // Not streaming is a finding (the pg_wal_receiver_down rule raises the status).
            if rx.status == "streaming" {
                r.lines.push(line);
            } else {
                r.findings.push(line);
            }
        }
        None => {
            obs.samples.push(plain(samples::RECEIVER_UP, 0.0));
            obs.samples.push(plain(samples::RECEIVER_STREAMING, 0.0));
            r.findings.push("WAL receiver is down".into());
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
    if view.paused {
        r.findings.push("WAL replay is paused".into());
    }
    r.lines.push(format!(
        "received {}, replayed {} ({} waiting to replay){}; last replayed transaction {} ago",
        view.receive_lsn.as_deref().unwrap_or("n/a"),
        view.replay_lsn.as_deref().unwrap_or("n/a"),
        bytes(pending),
        if view.paused { ", REPLAY PAUSED" } else { "" },
        secs(view.replay_age),
    ));

    if s.config.heartbeat {
        heartbeat(s, conn, st, deadline, obs, r).await?;
    }
    Ok(())
}

async fn heartbeat(
    s: &Settings,
    conn: &mut Conn,
    st: &mut State,
    deadline: Instant,
    obs: &mut Observation,
    r: &mut Report,
) -> Result<(), Failure> {
    let limit = s.statement_timeout;
    let user = &s.config.user;
    let system = table::system_id(s, conn, st, deadline).await?;
    // What the primary's probe in this process knows about its write, if anything.
    let primary = board::clause(system.as_deref());
    // The same, as a sample, so the pg_heartbeat_age alert (what is paged) names it too.
    if let Some(w) = system.as_deref().and_then(board::failing) {
        let l: crate::model::Labels = [
            ("probe".to_string(), w.probe.clone()),
            ("failure".to_string(), w.failure.clone().unwrap_or_default()),
        ]
        .into();
        obs.samples.push(crate::model::Sample::new(
            samples::HEARTBEAT_WRITER_FAILING,
            &l,
            w.since,
        ));
    }
    let mut warn = |obs: &mut Observation, text: String| {
        r.finding(obs, Status::Warning, format!("{text}{primary}"));
    };
    if !st.table_ready {
        match conn::step(
            deadline,
            limit,
            "looking up the heartbeat table",
            conn.client.query_one(queries::TABLE_EXISTS, &[&s.table]),
        )
        .await
        {
            Ok(row) => st.table_ready = row.try_get::<_, bool>(0).unwrap_or(false),
            Err(Failure::Failed {
                message,
                permission: true,
                ..
            }) => {
                warn(
                    obs,
                    format!(
                        "cannot look up the heartbeat table {} on this standby: {message}; an \
                         admin must run on the primary (grants replicate): {}",
                        s.table,
                        table::read_grant(&s.table, user)
                    ),
                );
                return Ok(());
            }
            Err(f) => return Err(f),
        }
        if !st.table_ready {
            let text = format!(
                "no heartbeat table {} on this standby (it is created on the primary and \
                 replicates here)",
                s.table
            );
            absent(st, obs, r, text, &primary);
            return Ok(());
        }
    }
    let rows = match conn::step(
        deadline,
        limit,
        "reading the heartbeat",
        conn.client.query(&queries::heartbeat_age(&s.table), &[]),
    )
    .await
    {
        Ok(rows) => rows,
        Err(f @ Failure::TimedOut { .. }) => return Err(f),
        Err(Failure::Failed {
            message,
            permission: true,
            ..
        }) => {
            warn(
                obs,
                format!(
                    "cannot read the heartbeat: {message}; an admin must run on the primary \
                     (grants replicate): {}",
                    table::read_grant(&s.table, user)
                ),
            );
            return Ok(());
        }
        Err(f) => {
            // E.g. the table was dropped: look it up again next run.
            st.table_ready = false;
            warn(obs, f.message());
            return Ok(());
        }
    };
    match rows.first().and_then(|row| row.try_get::<_, f64>(0).ok()) {
        Some(age) => {
            st.heartbeat_absent = 0;
            obs.samples.push(plain(samples::HEARTBEAT_AGE, age));
            let line = format!("heartbeat from the primary is {} old", secs(Some(age)));
            if !primary.is_empty() {
                // The age alerts through pg_heartbeat_age; the known cause goes first.
                r.findings.push(format!("{line}{primary}"));
            } else if age >= s.heartbeat_warning {
                // Stale: a finding (the pg_heartbeat_age rule raises the status).
                r.findings.push(format!(
                    "{line} (warning at {}): this standby is not replaying what the primary \
                     writes",
                    secs(Some(s.heartbeat_warning))
                ));
            } else {
                r.lines.push(line);
            }
        }
        None => {
            let text = format!(
                "no heartbeat row in {} on this standby yet (row id = 1, upserted on the \
                 primary by its probe with heartbeat = true)",
                s.table
            );
            absent(st, obs, r, text, &primary);
        }
    }
    Ok(())
}

/// No table or no row: a warning from the second consecutive run on (at start-up the
/// primary's probe may simply not have written it yet).
fn absent(st: &mut State, obs: &mut Observation, r: &mut Report, text: String, primary: &str) {
    st.heartbeat_absent = st.heartbeat_absent.saturating_add(1);
    if st.heartbeat_absent >= 2 || !primary.is_empty() {
        r.finding(obs, Status::Warning, format!("{text}{primary}"));
    } else {
        r.lines
            .push(format!("{text}; a warning if still so at the next run"));
    }
}
