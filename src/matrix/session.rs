//! [`Session`]: a logged-in user that re-logs in once on `M_UNKNOWN_TOKEN`.

use super::api::*;
use super::login_error;
use super::{Error, Homeserver};
use crate::config::values::Secret;
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
/// A random prefix for transaction ids, so ids stay unique across restarts.
pub(super) fn txn_prefix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// How a [`Session`] authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `m.login.password` as `user` (localpart or full id); re-logs in when the token expires.
    Password {
        /// Localpart or full user id.
        user: String,
        /// The password.
        password: Secret,
    },
    /// A ready access token (no re-login possible).
    AccessToken(Secret),
}

struct LoggedIn {
    token: Secret,
    user_id: String,
}

/// A logged-in Matrix user on one homeserver.
pub struct Session {
    hs: Homeserver,
    auth: Auth,
    state: Mutex<Option<LoggedIn>>,
    login_lock: tokio::sync::Mutex<()>,
    device_id: Mutex<Option<String>>,
    txn_prefix: String,
    txn: AtomicU64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("homeserver", &self.hs.base.as_str())
            .field("user_id", &self.user_id())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that logs in on first use.
    pub fn new(hs: Homeserver, auth: Auth) -> Session {
        Session {
            hs,
            auth,
            state: Mutex::new(None),
            login_lock: tokio::sync::Mutex::new(()),
            device_id: Mutex::new(None),
            txn_prefix: txn_prefix(),
            txn: AtomicU64::new(0),
        }
    }

    /// The homeserver.
    pub fn homeserver(&self) -> &Homeserver {
        &self.hs
    }

    /// The logged-in user's id, once known.
    pub fn user_id(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.user_id.clone())
    }

    fn secrets(&self) -> Vec<Secret> {
        let mut out = Vec::new();
        if let Some(s) = self.state.lock().unwrap().as_ref() {
            out.push(s.token.clone());
        }
        match &self.auth {
            Auth::Password { password, .. } => out.push(password.clone()),
            Auth::AccessToken(t) => out.push(t.clone()),
        }
        out
    }

    /// Logs in (password) or checks the token (`whoami`); returns the user id. Forgets any
    /// earlier token first.
    pub async fn login(&self) -> Result<String, Error> {
        let _guard = self.login_lock.lock().await;
        self.login_locked().await
    }

    async fn login_locked(&self) -> Result<String, Error> {
        *self.state.lock().unwrap() = None;
        let logged = match &self.auth {
            Auth::Password { user, password } => {
                let device = self.device_id.lock().unwrap().clone();
                let body = LoginRequest {
                    kind: "m.login.password",
                    identifier: UserIdentifier {
                        kind: "m.id.user",
                        user,
                    },
                    password: password.expose(),
                    initial_device_display_name: "lookout",
                    device_id: device.as_deref(),
                };
                let url = self.hs.url(&["_matrix", "client", "v3", "login"]);
                let r: LoginResponse = self
                    .hs
                    .call(
                        "login",
                        Method::POST,
                        url,
                        None,
                        Some(&body),
                        self.hs.timeout,
                        &[password],
                    )
                    .await?;
                *self.device_id.lock().unwrap() = r.device_id;
                LoggedIn {
                    token: Secret::new(r.access_token),
                    user_id: r.user_id,
                }
            }
            Auth::AccessToken(token) => {
                let url = self
                    .hs
                    .url(&["_matrix", "client", "v3", "account", "whoami"]);
                let r: WhoamiResponse = self
                    .hs
                    .call::<(), _>(
                        "whoami",
                        Method::GET,
                        url,
                        Some(token),
                        None,
                        self.hs.timeout,
                        &[token],
                    )
                    .await?;
                LoggedIn {
                    token: token.clone(),
                    user_id: r.user_id,
                }
            }
        };
        let id = logged.user_id.clone();
        *self.state.lock().unwrap() = Some(logged);
        Ok(id)
    }

    /// Logs in unless already logged in; returns the user id.
    pub async fn ensure_logged_in(&self) -> Result<String, Error> {
        if let Some(id) = self.user_id() {
            return Ok(id);
        }
        let _guard = self.login_lock.lock().await;
        if let Some(id) = self.user_id() {
            return Ok(id);
        }
        self.login_locked().await
    }

    fn token(&self) -> Option<Secret> {
        self.state.lock().unwrap().as_ref().map(|s| s.token.clone())
    }

    /// An authenticated call; on `M_UNKNOWN_TOKEN` logs in again once (password auth) and
    /// retries. A failed re-login is [`Error::NotLoggedIn`].
    async fn authed<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        what: &'static str,
        method: Method,
        url: Url,
        body: Option<&B>,
        deadline: Duration,
    ) -> Result<R, Error> {
        self.ensure_logged_in().await.map_err(login_error)?;
        for attempt in 0..2 {
            let token = self
                .token()
                .ok_or_else(|| Error::NotLoggedIn("no access token".into()))?;
            let secrets = self.secrets();
            let refs: Vec<&Secret> = secrets.iter().collect();
            let result = self
                .hs
                .call(
                    what,
                    method.clone(),
                    url.clone(),
                    Some(&token),
                    body,
                    deadline,
                    &refs,
                )
                .await;
            match result {
                Err(e) if e.is_unknown_token() && attempt == 0 => {
                    if matches!(self.auth, Auth::AccessToken(_)) {
                        return Err(Error::NotLoggedIn(format!(
                            "the access token was rejected: {e}"
                        )));
                    }
                    let _guard = self.login_lock.lock().await;
                    // Another caller may have logged in meanwhile.
                    if self.token().as_ref() == Some(&token) {
                        self.login_locked().await.map_err(login_error)?;
                    }
                }
                other => return other,
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// `GET /account/whoami`.
    pub async fn whoami(&self) -> Result<WhoamiResponse, Error> {
        let url = self
            .hs
            .url(&["_matrix", "client", "v3", "account", "whoami"]);
        self.authed::<(), _>("whoami", Method::GET, url, None, self.hs.timeout)
            .await
    }

    /// Joins a room by id (`!…`) or alias (`#…`); returns the room id.
    pub async fn join(&self, room: &str) -> Result<String, Error> {
        let url = self.hs.url(&["_matrix", "client", "v3", "join", room]);
        let r: JoinResponse = self
            .authed(
                "join",
                Method::POST,
                url,
                Some(&JoinRequest {}),
                self.hs.timeout,
            )
            .await?;
        Ok(r.room_id)
    }

    /// A fresh transaction id: unique within the session and, by its random prefix, across
    /// restarts.
    pub fn next_txn_id(&self) -> String {
        let n = self.txn.fetch_add(1, Ordering::Relaxed);
        format!("lookout.{}.{n}", self.txn_prefix)
    }

    /// Sends an event of `event_type` to a room; returns its event id.
    pub async fn send_event<T: Serialize + ?Sized>(
        &self,
        room_id: &str,
        event_type: &str,
        content: &T,
    ) -> Result<String, Error> {
        let txn = self.next_txn_id();
        let url = self.hs.url(&[
            "_matrix", "client", "v3", "rooms", room_id, "send", event_type, &txn,
        ]);
        let r: SendResponse = self
            .authed("send", Method::PUT, url, Some(content), self.hs.timeout)
            .await?;
        Ok(r.event_id)
    }

    /// Sends an `m.room.message`; returns its event id.
    pub async fn send_message(
        &self,
        room_id: &str,
        content: &MessageContent,
    ) -> Result<String, Error> {
        self.send_event(room_id, "m.room.message", content).await
    }

    /// Reacts to `event_id` with `key` (e.g. `✅`); returns the reaction's event id.
    pub async fn react(&self, room_id: &str, event_id: &str, key: &str) -> Result<String, Error> {
        self.send_event(room_id, "m.reaction", &ReactionContent::new(event_id, key))
            .await
    }

    /// One `/sync`: `since` (always pass it after the first), an inline `filter` (JSON), and
    /// a long-poll `wait`; the request's deadline is `wait` plus the per-request timeout.
    pub async fn sync(
        &self,
        since: Option<&str>,
        filter: &str,
        wait: Duration,
    ) -> Result<SyncResponse, Error> {
        let mut url = self.hs.url(&["_matrix", "client", "v3", "sync"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("filter", filter);
            q.append_pair("timeout", &wait.as_millis().to_string());
            if let Some(s) = since {
                q.append_pair("since", s);
            }
        }
        self.authed::<(), _>("sync", Method::GET, url, None, wait + self.hs.timeout)
            .await
    }

    /// The newest `limit` events of a room, newest first (`/messages?dir=b`).
    pub async fn messages(&self, room_id: &str, limit: u32) -> Result<MessagesResponse, Error> {
        let mut url = self
            .hs
            .url(&["_matrix", "client", "v3", "rooms", room_id, "messages"]);
        url.query_pairs_mut()
            .append_pair("dir", "b")
            .append_pair("limit", &limit.to_string());
        self.authed::<(), _>("messages", Method::GET, url, None, self.hs.timeout)
            .await
    }

    /// Room account data of the logged-in user
    /// (`/user/{userId}/rooms/{roomId}/account_data/{type}`); `None` when never set.
    pub async fn room_account_data(
        &self,
        room_id: &str,
        kind: &str,
    ) -> Result<Option<serde_json::Value>, Error> {
        let me = self.ensure_logged_in().await?;
        let url = self.hs.url(&[
            "_matrix",
            "client",
            "v3",
            "user",
            &me,
            "rooms",
            room_id,
            "account_data",
            kind,
        ]);
        match self
            .authed::<(), serde_json::Value>(
                "account data",
                Method::GET,
                url,
                None,
                self.hs.timeout,
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets room account data of the logged-in user.
    pub async fn set_room_account_data(
        &self,
        room_id: &str,
        kind: &str,
        content: &serde_json::Value,
    ) -> Result<(), Error> {
        let me = self.ensure_logged_in().await?;
        let url = self.hs.url(&[
            "_matrix",
            "client",
            "v3",
            "user",
            &me,
            "rooms",
            room_id,
            "account_data",
            kind,
        ]);
        self.authed::<_, serde_json::Value>(
            "account data",
            Method::PUT,
            url,
            Some(content),
            self.hs.timeout,
        )
        .await
        .map(|_| ())
    }

    /// One event by id (`/rooms/{roomId}/event/{eventId}`).
    pub async fn event(&self, room_id: &str, event_id: &str) -> Result<RoomEvent, Error> {
        let url = self.hs.url(&[
            "_matrix", "client", "v3", "rooms", room_id, "event", event_id,
        ]);
        self.authed::<(), _>("event", Method::GET, url, None, self.hs.timeout)
            .await
    }
}
