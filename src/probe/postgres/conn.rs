//! The probe's one connection, and deadlines that name the step that stalled.
//!
//! The connection task is aborted when its [`Conn`] is dropped: a run cancelled by the
//! scheduler, or one that failed, leaves no task behind waiting on a frozen server.

use super::Settings;
use super::queries::describe;
use super::tls::{Pem, SslMode};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

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
    step_with(deadline, limit, what, fut, describe).await
}

/// [`step`] with its own words for the error.
async fn step_with<T, F>(
    deadline: Instant,
    limit: Duration,
    what: &str,
    fut: F,
    words: impl Fn(&tokio_postgres::Error) -> String,
) -> Result<T, Failure>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let bound = limit.min(deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(bound, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Failed {
            step: what.to_string(),
            message: words(&e),
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

/// Opens a session: reads the password file (and the TLS files) if any, connects (TLS as
/// `sslmode` says) within the connect bound and sets the session's `statement_timeout`.
pub async fn connect(s: &Settings, deadline: Instant) -> Result<Conn, Failure> {
    let c = &s.config;
    let password = match (&c.password, &c.password_file) {
        (Some(p), _) => Some(p.expose().to_string()),
        (None, Some(path)) => {
            let bytes = read_file(s, deadline, "password_file", path).await?;
            let text = String::from_utf8_lossy(&bytes);
            Some(text.strip_suffix('\n').unwrap_or(&text).to_string())
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
    let mode = s.sslmode;
    let own_roots = c.sslrootcert.is_some();
    let words = |e: &tokio_postgres::Error| {
        super::tls::explain(e, mode, own_roots).unwrap_or_else(|| describe(e))
    };
    if mode == SslMode::Disable {
        cfg.ssl_mode(mode.wire());
        return step_with(deadline, s.connect_timeout, &what, open(&cfg, NoTls), words).await;
    }
    let tls = tls_connector(s, deadline).await?;
    cfg.ssl_mode(mode.wire());
    let first = step_with(deadline, s.connect_timeout, &what, open(&cfg, tls), words).await;
    match first {
        // As libpq: `prefer` tries once more without TLS after a failed TLS attempt (a
        // server whose pg_hba.conf accepts only `hostnossl`), unless the time is spent.
        Err(Failure::Failed {
            message: with_tls, ..
        }) if mode == SslMode::Prefer => {
            cfg.ssl_mode(SslMode::Disable.wire());
            let plain = step_with(deadline, s.connect_timeout, &what, open(&cfg, NoTls), words);
            match plain.await {
                Err(Failure::Failed {
                    step,
                    message,
                    permission,
                }) if message != with_tls => Err(Failure::Failed {
                    step,
                    message: format!("{message} (and with TLS: {with_tls})"),
                    permission,
                }),
                other => other,
            }
        }
        other => other,
    }
}

/// Connects and starts the connection task.
async fn open<T>(cfg: &tokio_postgres::Config, tls: T) -> Result<Conn, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = cfg.connect(tls).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(Conn { client, task })
}

/// The TLS connector, from the certificate files read now (so renewed files are picked up at
/// the next reconnect).
async fn tls_connector(s: &Settings, deadline: Instant) -> Result<MakeRustlsConnect, Failure> {
    let c = &s.config;
    let mut pem = Pem::default();
    if let Some(path) = &c.sslrootcert {
        pem.root = Some(read_file(s, deadline, "sslrootcert", path).await?);
    }
    if let (Some(cert), Some(key)) = (&c.sslcert, &c.sslkey) {
        pem.client = Some((
            read_file(s, deadline, "sslcert", cert).await?,
            read_file(s, deadline, "sslkey", key).await?,
        ));
    }
    let config = super::tls::client_config(s.sslmode, &pem).map_err(|message| Failure::Failed {
        step: "setting up TLS".into(),
        message,
        permission: false,
    })?;
    Ok(MakeRustlsConnect::new(config))
}

/// Reads a local file named by option `option`, bounded by the connect timeout.
async fn read_file(
    s: &Settings,
    deadline: Instant,
    option: &str,
    path: &std::path::Path,
) -> Result<Vec<u8>, Failure> {
    let bound = s
        .connect_timeout
        .min(deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(bound, tokio::fs::read(path)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(Failure::Failed {
            step: format!("reading {option}"),
            message: format!("{}: {e}", path.display()),
            permission: false,
        }),
        Err(_) => Err(Failure::TimedOut {
            step: format!("reading {option} {}", path.display()),
            after: bound,
        }),
    }
}
