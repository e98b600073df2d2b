//! The probe's one connection, and deadlines that name the step that stalled.
//!
//! The connection task is aborted when its [`Conn`] is dropped: a run cancelled by the
//! scheduler, or one that failed, leaves no task behind waiting on a frozen server.

use super::Settings;
use super::queries::describe;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

/// A live session: the client and its connection task.
pub struct Conn {
    /// The client.
    pub client: Client,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Drops the socket; a frozen server cannot keep the task alive.
        self.task.abort();
    }
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// It did not finish within its bound.
    TimedOut {
        /// What it was doing, e.g. `connecting to 127.0.0.1:5432`.
        step: String,
        /// The bound.
        after: Duration,
    },
    /// It failed.
    Failed {
        /// What it was doing.
        step: String,
        /// The error in words.
        message: String,
        /// Whether this is a permission problem (SQLSTATE 42501).
        permission: bool,
    },
}

impl Failure {
    /// The failure in plain words.
    pub fn message(&self) -> String {
        match self {
            Failure::TimedOut { step, after } => format!(
                "timed out after {} ({step}): the server did not answer; is it stopped, \
                 frozen or overloaded?",
                super::probe::secs(Some(after.as_secs_f64()))
            ),
            Failure::Failed { step, message, .. } => format!("{step} failed: {message}"),
        }
    }
}

/// Runs one step bounded by `limit` and by the run's `deadline`, whichever is sooner.
pub async fn step<T, F>(
    deadline: Instant,
    limit: Duration,
    what: &str,
    fut: F,
) -> Result<T, Failure>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let bound = limit.min(deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(bound, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Failed {
            step: what.to_string(),
            message: describe(&e),
            permission: super::queries::is_permission(&e),
        }),
        Err(_) => Err(Failure::TimedOut {
            step: what.to_string(),
            after: bound,
        }),
    }
}

/// Where the probe connects, for messages.
pub fn target(s: &Settings) -> String {
    format!("{}:{}", s.config.host, s.config.port)
}

/// Opens a session: reads the password file if any, connects with the connect bound and sets
/// the session's `statement_timeout`.
pub async fn connect(s: &Settings, deadline: Instant) -> Result<Conn, Failure> {
    let c = &s.config;
    let password = match (&c.password, &c.password_file) {
        (Some(p), _) => Some(p.expose().to_string()),
        (None, Some(path)) => {
            let bound = s
                .connect_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(bound, tokio::fs::read_to_string(path)).await {
                Ok(Ok(text)) => Some(text.strip_suffix('\n').unwrap_or(&text).to_string()),
                Ok(Err(e)) => {
                    return Err(Failure::Failed {
                        step: "reading password_file".into(),
                        message: format!("{}: {e}", path.display()),
                        permission: false,
                    });
                }
                Err(_) => {
                    return Err(Failure::TimedOut {
                        step: format!("reading password_file {}", path.display()),
                        after: bound,
                    });
                }
            }
        }
        (None, None) => None,
    };
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&c.host)
        .port(c.port)
        .user(&c.user)
        .dbname(&c.dbname)
        .application_name("lookout")
        .connect_timeout(s.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .options(format!(
            "-c statement_timeout={}",
            s.statement_timeout.as_millis().max(1)
        ));
    if let Some(p) = &password {
        cfg.password(p.as_bytes());
    }
    let what = format!("connecting to {}", target(s));
    let (client, connection) = step(deadline, s.connect_timeout, &what, cfg.connect(NoTls)).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(Conn { client, task })
}
