//! The heartbeat table on a primary: the heartbeat write and the write check.
//!
//! An existing table is used as it is: the probe looks it up with `to_regclass` and needs
//! only `SELECT, INSERT, UPDATE` on it (and `USAGE` on its schema). Only a missing table is
//! created, and when that fails the finding says exactly what an admin must run (since
//! PostgreSQL 15 the `public` schema no longer grants CREATE to every role, and
//! `CREATE TABLE IF NOT EXISTS` checks that privilege before it looks for the table).

use super::Settings;
use super::conn::{self, Conn, Failure};
use super::probe::{Report, State, secs};
use super::queries;
use super::rules::samples;
use crate::model::{Observation, Status};
use std::time::Instant;

/// `name` as an SQL identifier: as it is when plain lower case, else double-quoted.
pub fn quote_ident(name: &str) -> String {
    if super::valid_table_name(name) && !name.contains('.') {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The statements an admin runs on the primary so that role `user` can use `table`.
pub fn admin_sql(table: &str, user: &str) -> String {
    let user = quote_ident(user);
    let mut out = String::new();
    if let Some((schema, _)) = table.split_once('.') {
        out.push_str(&format!("GRANT USAGE ON SCHEMA {schema} TO {user}; "));
    }
    out.push_str(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, ts timestamptz NOT NULL); \
         GRANT SELECT, INSERT, UPDATE ON {table} TO {user};"
    ));
    out
}

/// The grant a role needs to write the table (the table exists).
pub fn write_grant(table: &str, user: &str) -> String {
    let user = quote_ident(user);
    let mut out = String::new();
    if let Some((schema, _)) = table.split_once('.') {
        out.push_str(&format!("GRANT USAGE ON SCHEMA {schema} TO {user}; "));
    }
    out.push_str(&format!(
        "GRANT SELECT, INSERT, UPDATE ON {table} TO {user};"
    ));
    out
}

/// The grant a standby's role needs to read the table (given on the primary; it replicates).
pub fn read_grant(table: &str, user: &str) -> String {
    let user = quote_ident(user);
    let mut out = String::new();
    if let Some((schema, _)) = table.split_once('.') {
        out.push_str(&format!("GRANT USAGE ON SCHEMA {schema} TO {user}; "));
    }
    out.push_str(&format!("GRANT SELECT ON {table} TO {user};"));
    out
}

/// The cluster's system identifier (shared by a primary and its standbys), once per session;
/// `None` when it cannot be read.
pub async fn system_id(
    s: &Settings,
    conn: &Conn,
    st: &mut State,
    deadline: Instant,
) -> Result<Option<String>, Failure> {
    if st.system_id.is_none() {
        let id = match conn::step(
            deadline,
            s.statement_timeout,
            "reading the system identifier",
            conn.client.query_one(queries::SYSTEM_ID, &[]),
        )
        .await
        {
            Ok(row) => row.try_get::<_, String>(0).ok(),
            Err(f @ Failure::TimedOut { .. }) => return Err(f),
            Err(_) => None,
        };
        st.system_id = Some(id);
    }
    Ok(st.system_id.clone().flatten())
}

/// Heartbeat write and write check on a primary.
pub async fn run(
    s: &Settings,
    conn: &mut Conn,
    st: &mut State,
    deadline: Instant,
    obs: &mut Observation,
    r: &mut Report,
) -> Result<(), Failure> {
    let c = &s.config;
    let system = if c.heartbeat {
        system_id(s, conn, st, deadline).await?
    } else {
        None
    };
    let record = |failure: Option<String>| {
        if let Some(sys) = &system {
            super::board::record(sys, &s.id, failure, crate::daemon::clock::unix_now());
        }
    };
    if !st.table_ready {
        match ensure(s, conn, deadline, r).await? {
            Ok(()) => st.table_ready = true,
            Err(finding) => {
                record(Some(finding.clone()));
                r.finding(obs, Status::Warning, finding);
                return Ok(());
            }
        }
    }
    // This run's write check uses the table even if the heartbeat write below fails.
    let ready = st.table_ready;
    if c.heartbeat {
        match conn::step(
            deadline,
            s.statement_timeout,
            "writing the heartbeat",
            conn.client.query_one(&queries::upsert(&s.table), &[&1i32]),
        )
        .await
        {
            Ok(_) => {
                record(None);
                r.lines.push(format!("heartbeat written to {}", s.table));
            }
            Err(f @ Failure::TimedOut { .. }) => return Err(f),
            Err(f) => {
                let finding = match &f {
                    Failure::Failed {
                        message,
                        permission: true,
                        ..
                    } => format!(
                        "cannot write the heartbeat: {message}; an admin must run on the \
                         primary: {}",
                        write_grant(&s.table, &c.user)
                    ),
                    _ => f.message(),
                };
                record(Some(finding.clone()));
                r.finding(obs, Status::Warning, finding);
                // The table may have been dropped: look it up again next run.
                st.table_ready = false;
            }
        }
    }
    if ready && c.write_check && !write_check(s, conn, deadline, obs, r).await {
        // The session may hold a lock or sit mid-transaction: start afresh next run.
        st.reset = true;
    }
    Ok(())
}

/// Makes sure the table exists: looks it up, creates it only when missing. `Ok(Err(finding))`
/// when it cannot be used, with the statements an admin must run.
async fn ensure(
    s: &Settings,
    conn: &Conn,
    deadline: Instant,
    r: &mut Report,
) -> Result<Result<(), String>, Failure> {
    let user = &s.config.user;
    let exists = match conn::step(
        deadline,
        s.statement_timeout,
        "looking up the heartbeat table",
        conn.client.query_one(queries::TABLE_EXISTS, &[&s.table]),
    )
    .await
    {
        Ok(row) => row.try_get::<_, bool>(0).unwrap_or(false),
        Err(f @ Failure::TimedOut { .. }) => return Err(f),
        Err(Failure::Failed {
            message,
            permission: true,
            ..
        }) => {
            return Ok(Err(format!(
                "cannot look up the heartbeat table {}: {message}; an admin must run on the \
                 primary: {}",
                s.table,
                write_grant(&s.table, user)
            )));
        }
        Err(f) => return Ok(Err(f.message())),
    };
    if exists {
        return Ok(Ok(()));
    }
    match conn::step(
        deadline,
        s.statement_timeout,
        "creating the heartbeat table",
        conn.client.batch_execute(&queries::create_table(&s.table)),
    )
    .await
    {
        Ok(()) => {
            r.lines
                .push(format!("created the heartbeat table {}", s.table));
            Ok(Ok(()))
        }
        Err(f @ Failure::TimedOut { .. }) => Err(f),
        Err(f) => {
            let why = match f {
                Failure::Failed { message, .. } => message,
                other => other.message(),
            };
            Ok(Err(format!(
                "heartbeat table {} does not exist and role {user} cannot create it ({why}); \
                 an admin must run on the primary: {}",
                s.table,
                admin_sql(&s.table, user)
            )))
        }
    }
}

/// The tiny write-and-read-back transaction. A failure or a timeout is critical with its own
/// message (put first), a missing privilege a warning naming the grant; returns whether it
/// passed.
async fn write_check(
    s: &Settings,
    conn: &mut Conn,
    deadline: Instant,
    obs: &mut Observation,
    r: &mut Report,
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
    let why = match result {
        Ok((wrote, read)) if wrote == read => {
            let took = started.elapsed().as_secs_f64();
            obs.samples
                .push(super::probe::plain(samples::WRITE_SECONDS, took));
            r.lines
                .push(format!("write check ok ({})", secs(Some(took))));
            return true;
        }
        Ok(_) => "the row read back differs from the one written".to_string(),
        Err(Failure::TimedOut { after, .. }) => format!(
            "no commit within {}",
            crate::model::format_duration(after.as_secs_f64())
        ),
        Err(Failure::Failed {
            message,
            permission: true,
            ..
        }) => {
            r.finding(
                obs,
                Status::Warning,
                format!(
                    "write check cannot run: {message}; an admin must run on the primary: {}",
                    write_grant(&s.table, &s.config.user)
                ),
            );
            return false;
        }
        Err(Failure::Failed { message, .. }) => message,
    };
    r.finding(
        obs,
        Status::Critical,
        format!(
            "accepts connections but cannot write: {why} (a full disk, read-only mode, stuck \
             locks or a synchronous standby that is gone?)"
        ),
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_for_the_admin() {
        assert_eq!(
            admin_sql("lookout_heartbeat", "lookout"),
            "CREATE TABLE lookout_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL); \
             GRANT SELECT, INSERT, UPDATE ON lookout_heartbeat TO lookout;"
        );
        assert_eq!(
            write_grant("ops.hb", "Mon-1"),
            "GRANT USAGE ON SCHEMA ops TO \"Mon-1\"; GRANT SELECT, INSERT, UPDATE ON ops.hb TO \"Mon-1\";"
        );
        assert_eq!(
            read_grant("hb", "lookout"),
            "GRANT SELECT ON hb TO lookout;"
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
