//! The `matrix` probe: the homeserver's write path as a local user sees it. Each run checks
//! `/versions`, sends a message with a unique token to a probe room, and waits until the token
//! comes back through incremental `/sync` (falling back to `/messages`), measuring each step.
//!
//! Synapse can answer `/versions` while refusing to send messages from local users (the seed
//! incident, 2019-05-12); only a probe that sends sees that.

use super::Probe;
use crate::config::values::{Dur, Secret};
use crate::config::{KindConfig, KindDefaults};
use crate::matrix::{Auth, Error, Homeserver, MessageContent, RoomFollower, Session};
use crate::model::{Labels, Observation, Sample, Status, format_duration};
use async_trait::async_trait;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// Sample names of the `matrix` probe.
pub mod samples {
    /// Seconds for `GET /_matrix/client/versions`.
    pub const VERSIONS: &str = "matrix.versions_seconds";
    /// Seconds for the send (`PUT …/send/m.room.message/…`) to be answered.
    pub const SEND: &str = "matrix.send_seconds";
    /// Seconds from the start of the send until the message was read back.
    pub const VISIBLE: &str = "matrix.visible_seconds";
}

/// `[[probe]] kind = "matrix"`: who sends, where, and how long the message may take to show.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Client-server API base URL, e.g. `"https://matrix.example.org"`. Required.
    pub homeserver: String,
    /// The probe user (localpart or full id), for password login. Required with a password.
    pub user: Option<String>,
    /// The probe user's password. Use one of `password`, `password_file`, `access_token`,
    /// `access_token_file`.
    pub password: Option<Secret>,
    /// File holding the password (one trailing newline trimmed), read at each login.
    pub password_file: Option<PathBuf>,
    /// An access token instead of a password (no re-login when it expires).
    pub access_token: Option<Secret>,
    /// File holding the access token.
    pub access_token_file: Option<PathBuf>,
    /// The probe room: a room id (`!…`) or alias (`#…`); joined at the first run (the user
    /// must be invited, or the room public). Required.
    pub room: String,
    /// How long the sent message may take to come back through `/sync`. Default `"10s"`.
    pub visible_within: Option<Dur>,
    /// Per-request deadline (body included). Default `"10s"`, never past the run's timeout.
    pub request_timeout: Option<Dur>,
}

/// How long the message may take to come back, unless configured.
pub const DEFAULT_VISIBLE: Duration = Duration::from_secs(10);
/// Each request's deadline, unless configured.
pub const DEFAULT_REQUEST: Duration = Duration::from_secs(10);

/// The part of the probe's `timeout` a run may use: the timeout less a margin (a tenth of it, at
/// most 0.5 s), so the run names the step that stalled before the scheduler cuts it.
pub fn run_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(500)))
}

impl MatrixConfig {
    /// Each request's deadline: `request_timeout` (default 10 s), at most the probe's timeout.
    pub fn effective_request_timeout(&self, timeout: Duration) -> Duration {
        self.request_timeout
            .map_or(DEFAULT_REQUEST, |d| d.0)
            .min(timeout)
    }
}

impl KindConfig for MatrixConfig {
    const NAME: &'static str = "matrix";

    fn defaults() -> KindDefaults {
        KindDefaults::new(60, 30)
    }

    fn host_warnings(
        &self,
        component: &str,
        table: usize,
        warnings: &mut crate::config::error::Collector<'_>,
    ) {
        if let Some(p) = &self.password_file {
            warnings.warn_unreadable(table, "password_file", component, p);
        }
        if let Some(p) = &self.access_token_file {
            warnings.warn_unreadable(table, "access_token_file", component, p);
        }
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        for (message, hint) in self.problems() {
            errors.push(Some(span.clone()), Some(component), message, hint);
        }
    }

    fn build(&self, ctx: &super::BuildContext) -> super::Built {
        super::Built {
            probe: Arc::new(MatrixProbe::new(&ctx.id, self.clone(), ctx.timeout)),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}

impl MatrixConfig {
    /// Every semantic problem, as (message, hint). Pure.
    pub fn problems(&self) -> Vec<(String, Option<String>)> {
        let mut out = crate::matrix::login_problems(
            &self.homeserver,
            crate::matrix::CredentialsGiven {
                user: self.user.as_deref(),
                password: self.password.is_some(),
                password_file: self.password_file.is_some(),
                access_token: self.access_token.is_some(),
                access_token_file: self.access_token_file.is_some(),
            },
            &self.room,
        );
        for (name, d) in [
            ("visible_within", self.visible_within),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                out.push((format!("{name} must be longer than 0s"), None));
            }
        }
        out
    }

    fn auth(&self) -> Result<Auth, String> {
        if let Some(t) = &self.access_token {
            return Ok(Auth::AccessToken(t.clone()));
        }
        if let Some(p) = &self.access_token_file {
            return Ok(Auth::AccessToken(Secret::from_file(p)?));
        }
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => Secret::from_file(f)?,
            (None, None) => return Err("no password or access token configured".into()),
        };
        Ok(Auth::Password {
            user: self.user.clone().unwrap_or_default(),
            password,
        })
    }
}

/// What the probe keeps between runs: the session (its token), the joined room and the sync
/// position.
#[derive(Default)]
struct State {
    session: Option<Arc<Session>>,
    room_id: Option<String>,
    follower: Option<RoomFollower>,
}

/// The `matrix` probe.
pub struct MatrixProbe {
    id: String,
    config: MatrixConfig,
    timeout: Duration,
    homeserver: Result<Homeserver, String>,
    state: tokio::sync::Mutex<State>,
}

/// Why a run stopped early: a status and its message.
struct Stop(Status, String);

impl MatrixProbe {
    /// A probe whose every run ends a little inside `timeout` (so its message names the step
    /// that stalled).
    pub fn new(id: &str, config: MatrixConfig, timeout: Duration) -> MatrixProbe {
        let request = config.effective_request_timeout(timeout);
        MatrixProbe {
            id: id.to_string(),
            homeserver: Homeserver::new(&config.homeserver, request).map_err(|e| e.to_string()),
            config,
            timeout,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    fn budget(&self) -> Duration {
        run_budget(self.timeout)
    }

    fn timed_out(&self, step: &str) -> Stop {
        Stop(
            Status::Unknown,
            format!(
                "timed out after {} ({step})",
                format_duration(self.timeout.as_secs_f64())
            ),
        )
    }

    /// Runs `fut` until the run's deadline; past it, stops with "timed out (step)".
    async fn step<T>(
        &self,
        deadline: Instant,
        step: &str,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<Result<T, Error>, Stop> {
        timeout_at(deadline, fut)
            .await
            .map_err(|_| self.timed_out(step))
    }

    async fn check(&self, obs: &mut Observation) -> Result<String, Stop> {
        let started = Instant::now();
        let deadline = started + self.budget();
        let hs = self
            .homeserver
            .as_ref()
            .map_err(|e| Stop(Status::Unknown, e.clone()))?;
        let none = Labels::new();

        // 1. /versions: cheap liveness.
        let t = Instant::now();
        match self.step(deadline, "/versions", hs.versions()).await? {
            Ok(_) => {}
            Err(e) => return Err(generic(e, "/versions")),
        }
        let versions = t.elapsed().as_secs_f64();
        obs.samples
            .push(Sample::new(samples::VERSIONS, &none, versions));

        // 2. The session: log in once, keep the token.
        let mut state = self.state.lock().await;
        let session = match &state.session {
            Some(s) => s.clone(),
            None => {
                let auth = self
                    .config
                    .auth()
                    .map_err(|e| Stop(Status::Critical, format!("login failed: {e}")))?;
                let s = Arc::new(Session::new(hs.clone(), auth));
                state.session = Some(s.clone());
                s
            }
        };
        if let Err(e) = self
            .step(deadline, "logging in", session.ensure_logged_in())
            .await?
        {
            // Re-read a password file next time.
            *state = State::default();
            return Err(login_failed(e));
        }

        // 3. The room: joined once.
        let room_id = match &state.room_id {
            Some(r) => r.clone(),
            None => {
                let r = match self
                    .step(
                        deadline,
                        "joining the room",
                        session.join(&self.config.room),
                    )
                    .await?
                {
                    Ok(r) => r,
                    Err(e) if matches!(e, Error::Http { .. }) => {
                        return Err(Stop(
                            Status::Critical,
                            format!("cannot join {}: {e}", self.config.room),
                        ));
                    }
                    Err(e) => return Err(generic(e, "joining the room")),
                };
                state.room_id = Some(r.clone());
                state.follower = None;
                r
            }
        };
        let mut follower = state
            .follower
            .take()
            .unwrap_or_else(|| RoomFollower::new(&room_id));
        if follower.since().is_none()
            && let Err(e) = self
                .step(deadline, "first sync", follower.prime(&session))
                .await?
        {
            return Err(generic(e, "first sync"));
        }

        // 4. Send a unique token.
        let token = format!("lookout probe {} {}", self.id, session.next_txn_id());
        let content = MessageContent {
            msgtype: "m.notice".into(),
            ..MessageContent::text(token.clone())
        };
        let sent_at = Instant::now();
        let event_id = match self
            .step(
                deadline,
                "sending",
                session.send_message(&room_id, &content),
            )
            .await?
        {
            Ok(id) => id,
            Err(e @ Error::Http { .. }) => {
                if e.errcode() == Some("M_FORBIDDEN") {
                    // Perhaps kicked: join again at the next run.
                    state.room_id = None;
                }
                return Err(Stop(Status::Critical, format!("send rejected: {e}")));
            }
            Err(e) => return Err(generic(e, "sending")),
        };
        let send = sent_at.elapsed().as_secs_f64();
        obs.samples.push(Sample::new(samples::SEND, &none, send));

        // 5. Read it back: incremental /sync, then /messages.
        let visible_within = self
            .config
            .visible_within
            .map(|d| d.0)
            .unwrap_or(DEFAULT_VISIBLE);
        let wait_until = (sent_at + visible_within).min(deadline);
        let is_ours = |e: &crate::matrix::RoomEvent| {
            e.event_id == event_id || e.message().is_some_and(|m| m.body == token)
        };
        let synced = timeout_at(deadline, follower.wait_for(&session, wait_until, is_ours))
            .await
            .unwrap_or(Err(Error::Timeout {
                what: "sync",
                after: self.timeout,
            }));
        state.follower = Some(follower);
        let sync_problem = match synced {
            Ok(Some(_)) => {
                let visible = sent_at.elapsed().as_secs_f64();
                obs.samples
                    .push(Sample::new(samples::VISIBLE, &none, visible));
                return Ok(format!(
                    "sent and read back in {} (send {}, /versions {})",
                    format_duration(visible),
                    format_duration(send),
                    format_duration(versions)
                ));
            }
            Ok(None) => None,
            Err(e) => {
                // The next run starts a fresh sync.
                state.follower = None;
                Some(e)
            }
        };
        let recent = match timeout_at(deadline, session.messages(&room_id, 20)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: "messages",
                after: self.timeout,
            }),
        };
        let seen = recent
            .as_ref()
            .map(|r| r.chunk.iter().any(is_ours))
            .unwrap_or(false);
        let waited = format_duration(visible_within.min(self.budget()).as_secs_f64());
        if seen {
            let visible = sent_at.elapsed().as_secs_f64();
            obs.samples
                .push(Sample::new(samples::VISIBLE, &none, visible));
            let why = match sync_problem {
                Some(e) => format!("/sync failed: {e}"),
                None => format!("/sync did not deliver it within {waited}"),
            };
            return Err(Stop(
                Status::Warning,
                format!("sent; visible through /messages only ({why})"),
            ));
        }
        let why = match (sync_problem, recent) {
            (Some(e), _) => format!(" (/sync failed: {e})"),
            (None, Err(e)) => format!(" (/messages failed: {e})"),
            _ => String::new(),
        };
        Err(Stop(
            Status::Critical,
            format!(
                "sent (in {}) but not visible within {waited}{why}",
                format_duration(send)
            ),
        ))
    }
}

/// A failure outside the send: unreachable, timed out, or an error answer.
fn generic(e: Error, step: &str) -> Stop {
    match e {
        Error::Unreachable(_) => Stop(Status::Critical, e.to_string()),
        Error::Timeout { .. } => Stop(Status::Unknown, e.to_string()),
        Error::NotLoggedIn(_) => login_failed(e),
        Error::Http { .. } | Error::Invalid(_) => {
            Stop(Status::Critical, format!("{step} failed: {e}"))
        }
    }
}

fn login_failed(e: Error) -> Stop {
    match e {
        Error::Unreachable(_) => Stop(Status::Critical, e.to_string()),
        Error::Timeout { .. } => Stop(Status::Unknown, format!("login: {e}")),
        Error::NotLoggedIn(d) => Stop(Status::Critical, format!("login failed: {d}")),
        e => Stop(Status::Critical, format!("login failed: {e}")),
    }
}

#[async_trait]
impl Probe for MatrixProbe {
    async fn run(&self) -> Observation {
        let mut obs = Observation::new(Status::Ok, "");
        match self.check(&mut obs).await {
            Ok(message) => obs.message = message,
            Err(Stop(status, message)) => {
                obs.status = status;
                obs.message = message;
            }
        }
        obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> MatrixConfig {
        toml::from_str(&format!(
            "homeserver = \"http://127.0.0.1:8008\"\nroom = \"#probe:localhost\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn exactly_one_credential_is_needed() {
        let none = config("");
        assert!(none.problems()[0].0.contains("(0 set)"));
        let two = config("user = \"p\"\npassword = \"a\"\naccess_token = \"b\"");
        assert!(two.problems()[0].0.contains("(2 set)"));
        assert!(
            config("user = \"p\"\npassword = \"a\"")
                .problems()
                .is_empty()
        );
        assert!(config("access_token = \"t\"").problems().is_empty());
        let no_user = config("password = \"a\"");
        assert!(no_user.problems()[0].0.contains("needs `user`"));
    }

    #[test]
    fn room_and_homeserver_are_checked() {
        let mut c = config("access_token = \"t\"");
        c.room = "probe".into();
        c.homeserver = "matrix.example.org".into();
        let p: Vec<String> = c.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("homeserver:"));
        assert!(p[1].contains("neither a room id"));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = config("access_token = \"t\"");
        c.homeserver = format!("http://127.0.0.1:{port}");
        let p = MatrixProbe::new("m", c, Duration::from_secs(5));
        let o = p.run().await;
        assert_eq!(o.status, Status::Critical);
        assert!(
            o.message
                .starts_with("homeserver unreachable: cannot connect"),
            "{}",
            o.message
        );
    }
}
