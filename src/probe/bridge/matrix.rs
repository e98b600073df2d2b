//! The Matrix side of a bridged pair, over the shared client in [`crate::matrix`]: a session
//! (password or access token; re-login on `M_UNKNOWN_TOKEN`), the joined room, and a
//! [`RoomFollower`] whose `since` position is kept across rounds. Every call is also bounded by
//! the round's deadline.

use crate::config::values::Secret;
use crate::matrix::{Auth, Error, Homeserver, MessageContent, RoomFollower, Session};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Where the probe user's credentials come from.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// An access token.
    Token(Secret),
    /// A user and a password.
    Password {
        /// The user id or localpart.
        user: String,
        /// The password.
        password: PasswordSource,
    },
}

/// Where a password comes from.
#[derive(Clone, Debug)]
pub enum PasswordSource {
    /// Given in the config.
    Value(Secret),
    /// Read from this file whenever a new session starts.
    File(std::path::PathBuf),
}

struct Joined {
    session: Arc<Session>,
    room_id: String,
}

/// A Matrix session and room position kept across rounds.
pub struct MatrixSide {
    hs: Homeserver,
    credentials: Credentials,
    room: String,
    joined: Mutex<Option<Joined>>,
    follower: Mutex<Option<RoomFollower>>,
}

async fn bounded<T>(
    deadline: Instant,
    what: &str,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline, f).await {
        Err(_) => Err(format!("{what}: timed out")),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Ok(Ok(v)) => Ok(v),
    }
}

impl MatrixSide {
    /// A session for `room` (an id `!…` or alias `#…`) on the homeserver at `base`, whose
    /// requests each end within `request_timeout`.
    pub fn new(
        base: &str,
        credentials: Credentials,
        room: &str,
        request_timeout: Duration,
    ) -> anyhow::Result<MatrixSide> {
        Ok(MatrixSide {
            hs: Homeserver::new(base, request_timeout).map_err(|e| anyhow::anyhow!("{e}"))?,
            credentials,
            room: room.to_string(),
            joined: Mutex::new(None),
            follower: Mutex::new(None),
        })
    }

    /// Logs in (if needed), joins the room and takes a sync position, all before `deadline`.
    async fn joined(&self, deadline: Instant) -> Result<(Arc<Session>, String), String> {
        let mut guard = self.joined.lock().await;
        if let Some(j) = guard.as_ref() {
            return Ok((Arc::clone(&j.session), j.room_id.clone()));
        }
        let auth = match &self.credentials {
            Credentials::Token(t) => Auth::AccessToken(t.clone()),
            Credentials::Password { user, password } => Auth::Password {
                user: user.clone(),
                password: match password {
                    PasswordSource::Value(s) => s.clone(),
                    PasswordSource::File(p) => Secret::from_file(p)?,
                },
            },
        };
        let session = Arc::new(Session::new(self.hs.clone(), auth));
        bounded(deadline, "login", session.ensure_logged_in()).await?;
        let room_id = bounded(deadline, "join", session.join(&self.room)).await?;
        let mut follower = RoomFollower::new(&room_id);
        bounded(deadline, "sync", follower.prime(&session)).await?;
        *self.follower.lock().await = Some(follower);
        *guard = Some(Joined {
            session: Arc::clone(&session),
            room_id: room_id.clone(),
        });
        Ok((session, room_id))
    }

    /// Makes sure the session is up.
    pub async fn ready(&self, deadline: Instant) -> Result<(), String> {
        self.joined(deadline).await.map(|_| ())
    }

    /// Forgets the session after an error that a new login may cure (a refused token with no
    /// way to log in again, a kicked user).
    async fn forget_if(&self, e: &Error) {
        if matches!(e, Error::NotLoggedIn(_))
            || matches!(
                e,
                Error::Http {
                    status: 401 | 403,
                    ..
                }
            )
        {
            *self.joined.lock().await = None;
        }
    }

    /// Sends `text` as an `m.text` message into the room.
    pub async fn send(&self, text: &str, deadline: Instant) -> Result<(), String> {
        let (session, room_id) = self.joined(deadline).await?;
        let content = MessageContent::text(text);
        match tokio::time::timeout_at(deadline, session.send_message(&room_id, &content)).await {
            Err(_) => Err("send: timed out".into()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.forget_if(&e).await;
                Err(format!("send: {e}"))
            }
        }
    }

    /// Follows the room with incremental syncs until a message containing `token` arrives, at
    /// most until `deadline`. `Ok(None)`: not seen in time.
    pub async fn wait_for(
        &self,
        token: &str,
        deadline: Instant,
    ) -> Result<Option<Instant>, String> {
        let (session, _) = self.joined(deadline).await?;
        let mut guard = self.follower.lock().await;
        let Some(follower) = guard.as_mut() else {
            return Err("sync: no room position".into());
        };
        let matches =
            |e: &crate::matrix::RoomEvent| e.message().is_some_and(|m| m.body.contains(token));
        // The follower long-polls for what is left; stop a little before the deadline.
        let stop = deadline
            - Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout_at(deadline, follower.wait_for(&session, stop, matches)).await {
            Err(_) | Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(_))) => Ok(Some(Instant::now())),
            Ok(Err(e)) if e.is_timeout() => Ok(None),
            Ok(Err(e)) => {
                self.forget_if(&e).await;
                Err(format!("sync: {e}"))
            }
        }
    }

    /// The homeserver's appservice ping: the seconds its own round trip to the bridge took.
    /// The error is bare ("timed out", "HTTP 502 …"): the caller names the step.
    pub async fn ping_appservice(
        &self,
        appservice_id: &str,
        as_token: &Secret,
        deadline: Instant,
    ) -> Result<f64, String> {
        match tokio::time::timeout_at(deadline, self.hs.appservice_ping(appservice_id, as_token))
            .await
        {
            Err(_) => Err("timed out".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(p)) => Ok(p.duration.as_secs_f64()),
        }
    }
}
