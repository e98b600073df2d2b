//! A small Matrix client-server client shared by the `matrix` probe, the `bridge` probe and the
//! `matrix` notifier.
//!
//! - [`Homeserver`]: one persistent HTTP client (keep-alive) for one homeserver, with a hard
//!   deadline around every request *including its body*; unauthenticated calls (`/versions`,
//!   the appservice ping with an `as_token`).
//! - [`Session`]: a logged-in user (password or access token) that re-logs in once when the
//!   server answers `M_UNKNOWN_TOKEN`; sends, joins, syncs, reads.
//! - [`RoomFollower`]: incremental `/sync` of one room, remembering `next_batch`.
//!
//! Requests and answers are typed ([`api`]); errors are typed ([`Error`]) and never carry a URL,
//! the access token or the password.

pub mod api;
mod error;

pub use api::{MessageContent, ReactionContent, RoomEvent};
pub use error::Error;

use crate::config::values::Secret;
use api::*;
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Longest error text kept from a server's answer.
const MAX_ERROR_TEXT: usize = 200;

/// One homeserver: base URL, a persistent HTTP client and the per-request deadline.
#[derive(Clone, Debug)]
pub struct Homeserver {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
}

/// What the appservice ping found.
#[derive(Clone, Debug, PartialEq)]
pub struct Ping {
    /// The homeserver's round trip to the appservice, as it reported it.
    pub duration: Duration,
    /// Whether only the unstable `fi.mau.msc2659` endpoint answered.
    pub unstable: bool,
}

impl Homeserver {
    /// A client for the homeserver at `url` (e.g. `https://matrix.example.org`); every request
    /// must complete, body included, within `timeout` unless a call says otherwise.
    pub fn new(url: &str, timeout: Duration) -> Result<Homeserver, Error> {
        let base = Homeserver::check_url(url).map_err(Error::Invalid)?;
        let http = crate::http::client(timeout)
            .map_err(|e| Error::Unreachable(format!("cannot build the HTTP client: {e}")))?;
        Ok(Homeserver {
            http,
            base,
            timeout,
        })
    }

    /// Parses and checks a homeserver URL (pure; for config validation too).
    pub fn check_url(url: &str) -> Result<Url, String> {
        let base = Url::parse(url.trim_end_matches('/')).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err("must start with http:// or https://".into());
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err("must not carry credentials".into());
        }
        Ok(base)
    }

    /// The default per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The base URL (no credentials are ever part of it).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `base` + the path segments, each percent-encoded (room ids, aliases, event ids).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the URL can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// One request with a hard deadline around headers *and* body; decodes a 2xx answer as
    /// `R`, anything else as a Matrix error. `secrets` are scrubbed from error texts.
    #[allow(clippy::too_many_arguments)]
    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        what: &'static str,
        method: Method,
        url: Url,
        token: Option<&Secret>,
        body: Option<&B>,
        deadline: Duration,
        secrets: &[&Secret],
    ) -> Result<R, Error> {
        let mut req = self.http.request(method, url).timeout(deadline);
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let exchange = async {
            let resp = req
                .send()
                .await
                .map_err(|e| from_reqwest(what, deadline, &e))?;
            let status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| from_reqwest(what, deadline, &e))?;
            Ok::<_, Error>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| Error::Timeout {
                what,
                after: deadline,
            })??;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("{what}: {e}")));
        }
        let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let error = parsed
            .error
            .or_else(|| {
                let raw = String::from_utf8_lossy(&bytes).trim().to_string();
                (!raw.is_empty()).then_some(raw)
            })
            .map(|t| {
                let t = crate::notify::text::redact(t, secrets.iter().copied());
                t.chars().take(MAX_ERROR_TEXT).collect()
            });
        Err(Error::Http {
            status: status.as_u16(),
            errcode: parsed.errcode,
            error,
        })
    }

    /// `GET /_matrix/client/versions`: the cheap liveness check.
    pub async fn versions(&self) -> Result<VersionsResponse, Error> {
        let url = self.url(&["_matrix", "client", "versions"]);
        self.call::<(), _>("versions", Method::GET, url, None, None, self.timeout, &[])
            .await
    }

    /// The appservice ping (Matrix v1.7): the homeserver calls the appservice `appservice_id`
    /// and reports how long that took. Authenticated with the appservice's `as_token`. Falls
    /// back to the unstable `fi.mau.msc2659` path when the stable one is not recognised.
    pub async fn appservice_ping(
        &self,
        appservice_id: &str,
        as_token: &Secret,
    ) -> Result<Ping, Error> {
        let body = PingRequest {
            transaction_id: Some(format!("lookout-{}", txn_prefix())),
        };
        let stable = self.url(&[
            "_matrix",
            "client",
            "v1",
            "appservice",
            appservice_id,
            "ping",
        ]);
        let secrets = [as_token];
        match self
            .call::<_, PingResponse>(
                "appservice ping",
                Method::POST,
                stable,
                Some(as_token),
                Some(&body),
                self.timeout,
                &secrets,
            )
            .await
        {
            Ok(p) => Ok(Ping {
                duration: Duration::from_millis(p.duration_ms),
                unstable: false,
            }),
            Err(Error::Http {
                status, errcode, ..
            }) if status == 404
                || status == 405
                || errcode.as_deref() == Some("M_UNRECOGNIZED") =>
            {
                let unstable = self.url(&[
                    "_matrix",
                    "client",
                    "unstable",
                    "fi.mau.msc2659",
                    "appservice",
                    appservice_id,
                    "ping",
                ]);
                let p: PingResponse = self
                    .call(
                        "appservice ping",
                        Method::POST,
                        unstable,
                        Some(as_token),
                        Some(&body),
                        self.timeout,
                        &secrets,
                    )
                    .await?;
                Ok(Ping {
                    duration: Duration::from_millis(p.duration_ms),
                    unstable: true,
                })
            }
            Err(e) => Err(e),
        }
    }
}

fn from_reqwest(what: &'static str, deadline: Duration, e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            what,
            after: deadline,
        }
    } else {
        Error::Unreachable(crate::http::describe(e))
    }
}

/// A refused login (4xx, or an answer that makes no sense) becomes [`Error::NotLoggedIn`]; an
/// unreachable, slow or failing (5xx) server stays what it is, so callers can retry.
fn login_error(e: Error) -> Error {
    match e {
        Error::Http { status, .. } if status < 500 => Error::NotLoggedIn(e.to_string()),
        Error::Invalid(_) => Error::NotLoggedIn(e.to_string()),
        e => e,
    }
}

/// A random prefix for transaction ids, so ids stay unique across restarts.
fn txn_prefix() -> String {
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

/// Follows one room through incremental `/sync`, remembering `next_batch`.
#[derive(Debug, Clone)]
pub struct RoomFollower {
    room_id: String,
    filter: String,
    since: Option<String>,
}

impl RoomFollower {
    /// Follows `room_id` (a room id, not an alias: join first).
    pub fn new(room_id: &str) -> RoomFollower {
        let filter = serde_json::to_string(&Filter::room_timeline(room_id, 50))
            .expect("a filter always serialises");
        RoomFollower {
            room_id: room_id.to_string(),
            filter,
            since: None,
        }
    }

    /// The followed room.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// The position after the last sync, if any.
    pub fn since(&self) -> Option<&str> {
        self.since.as_deref()
    }

    /// Continues from a `next_batch` saved earlier (e.g. by a previous run): the next poll
    /// returns what arrived since then.
    pub fn resume_from(&mut self, since: String) {
        self.since = Some(since);
    }

    /// Starts from now: one sync without waiting, its events dropped. Later polls return only
    /// what arrives after this.
    pub async fn prime(&mut self, session: &Session) -> Result<(), Error> {
        let r = session.sync(None, &self.filter, Duration::ZERO).await?;
        self.since = Some(r.next_batch);
        Ok(())
    }

    /// One incremental sync (priming first if never synced), waiting up to `wait` for news;
    /// returns the room's new timeline events, oldest first.
    pub async fn poll(
        &mut self,
        session: &Session,
        wait: Duration,
    ) -> Result<Vec<RoomEvent>, Error> {
        if self.since.is_none() {
            self.prime(session).await?;
        }
        let mut r = session
            .sync(self.since.as_deref(), &self.filter, wait)
            .await?;
        self.since = Some(r.next_batch);
        Ok(r.rooms
            .join
            .remove(&self.room_id)
            .map(|j| j.timeline.events)
            .unwrap_or_default())
    }

    /// Polls until an event matches or `deadline` passes (`Ok(None)`).
    pub async fn wait_for(
        &mut self,
        session: &Session,
        deadline: Instant,
        mut matches: impl FnMut(&RoomEvent) -> bool,
    ) -> Result<Option<RoomEvent>, Error> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let polled = Instant::now();
            let events = self.poll(session, left).await?;
            let empty = events.is_empty();
            if let Some(e) = events.into_iter().find(|e| matches(e)) {
                return Ok(Some(e));
            }
            // A server that answers a long poll at once with nothing must not make this spin.
            if empty && polled.elapsed() < Duration::from_millis(50) {
                tokio::time::sleep(Duration::from_millis(100).min(left)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_room_ids_and_aliases() {
        let hs = Homeserver::new("http://127.0.0.1:8008/", Duration::from_secs(5)).unwrap();
        let u = hs.url(&["_matrix", "client", "v3", "join", "#probe:example.org"]);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8008/_matrix/client/v3/join/%23probe:example.org"
        );
        let u = hs.url(&["_matrix", "client", "v3", "rooms", "!a/b:x", "event", "$e"]);
        assert!(u.as_str().ends_with("/rooms/!a%2Fb:x/event/$e"), "{u}");
    }

    #[test]
    fn a_homeserver_url_must_be_http() {
        assert!(Homeserver::new("ftp://x", Duration::from_secs(1)).is_err());
        assert!(Homeserver::new("not a url", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn txn_ids_are_unique() {
        let hs = Homeserver::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap();
        let s = Session::new(hs, Auth::AccessToken(Secret::new("t")));
        assert_ne!(s.next_txn_id(), s.next_txn_id());
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_says_no_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hs =
            Homeserver::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let s = Session::new(
            hs,
            Auth::Password {
                user: "probe".into(),
                password: Secret::new("hunter2-password"),
            },
        );
        let e = s.login().await.unwrap_err();
        assert!(e.is_unreachable(), "{e:?}");
        let text = e.to_string();
        assert!(
            !text.contains("127.0.0.1") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_server_that_sends_headers_then_nothing_times_out_including_the_body() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let hs = Homeserver::new(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_millis(500),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let e = hs.versions().await.unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
