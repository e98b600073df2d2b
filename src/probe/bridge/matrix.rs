//! The Matrix side of a bridged pair: a small session (login or access token, join, send,
//! incremental `/sync` with `since`, appservice ping) over the shared HTTP client. Every request
//! has a hard deadline, body included; no error text carries a URL or a token.

use crate::config::values::Secret;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How the probe user authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// An access token.
    Token(Secret),
    /// A password (given, or read from a file at each login).
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
    /// Read from this file at each login.
    File(std::path::PathBuf),
}

#[derive(Clone)]
struct Session {
    token: Secret,
    room_id: String,
}

/// A Matrix session kept across rounds.
pub struct MatrixSide {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    room: String,
    session: Mutex<Option<Session>>,
    since: Mutex<Option<String>>,
    txn: std::sync::atomic::AtomicU64,
}

/// A Matrix failure in words, with whether the session should be dropped.
#[derive(Debug)]
pub struct MatrixError {
    /// What went wrong.
    pub message: String,
    /// The access token was refused: log in again next round.
    pub unauthorized: bool,
}

impl MatrixError {
    fn new(message: impl Into<String>) -> MatrixError {
        MatrixError {
            message: message.into(),
            unauthorized: false,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    errcode: Option<String>,
    error: Option<String>,
}

impl MatrixSide {
    /// A session for `room` (an id `!…` or alias `#…`) on the homeserver at `base`, whose
    /// requests each end within `request_timeout`.
    pub fn new(
        base: &str,
        auth: Auth,
        room: &str,
        request_timeout: Duration,
    ) -> anyhow::Result<MatrixSide> {
        Ok(MatrixSide {
            http: crate::http::client(request_timeout)?,
            base: base.trim_end_matches('/').to_string(),
            auth,
            room: room.to_string(),
            session: Mutex::new(None),
            since: Mutex::new(None),
            txn: std::sync::atomic::AtomicU64::new(0),
        })
    }

    async fn call(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<Value, MatrixError> {
        let fut =
            async {
                let resp = req.send().await.map_err(|e| {
                    MatrixError::new(format!("{what}: {}", crate::http::describe(&e)))
                })?;
                let status = resp.status();
                let body = resp.bytes().await.map_err(|e| {
                    MatrixError::new(format!("{what}: {}", crate::http::describe(&e)))
                })?;
                if status.is_success() {
                    return serde_json::from_slice(&body)
                        .map_err(|e| MatrixError::new(format!("{what}: answer is not JSON: {e}")));
                }
                let err: Option<ErrorBody> = serde_json::from_slice(&body).ok();
                let (code, text) = err
                    .map(|e| (e.errcode.unwrap_or_default(), e.error.unwrap_or_default()))
                    .unwrap_or_default();
                let mut message = format!("{what}: HTTP {}", status.as_u16());
                if !code.is_empty() {
                    message.push_str(&format!(" {code}"));
                }
                if !text.is_empty() {
                    let text: String = text.chars().take(160).collect();
                    message.push_str(&format!(" ({text})"));
                }
                Err(MatrixError {
                    message,
                    unauthorized: status.as_u16() == 401,
                })
            };
        match tokio::time::timeout_at(deadline, fut).await {
            Err(_) => Err(MatrixError::new(format!("{what}: timed out"))),
            Ok(r) => r,
        }
    }

    /// Logs in (if needed), joins the room and takes a sync position, all before `deadline`.
    async fn session(&self, deadline: Instant) -> Result<Session, MatrixError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            return Ok(s.clone());
        }
        let token = match &self.auth {
            Auth::Token(t) => t.clone(),
            Auth::Password { user, password } => {
                let password = match password {
                    PasswordSource::Value(s) => s.clone(),
                    PasswordSource::File(p) => Secret::from_file(p).map_err(MatrixError::new)?,
                };
                let body = json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": password.expose(),
                    "initial_device_display_name": "lookout bridge probe",
                });
                let v = self
                    .call(
                        "login",
                        self.http
                            .post(format!("{}/_matrix/client/v3/login", self.base))
                            .json(&body),
                        deadline,
                    )
                    .await?;
                Secret::new(
                    v["access_token"]
                        .as_str()
                        .ok_or_else(|| MatrixError::new("login: no access_token in the answer"))?,
                )
            }
        };
        let v = self
            .call(
                "join",
                self.http
                    .post(format!(
                        "{}/_matrix/client/v3/join/{}",
                        self.base,
                        encode(&self.room)
                    ))
                    .bearer_auth(token.expose())
                    .json(&json!({})),
                deadline,
            )
            .await?;
        let room_id = v["room_id"]
            .as_str()
            .ok_or_else(|| MatrixError::new("join: no room_id in the answer"))?
            .to_string();
        let session = Session { token, room_id };
        *self.since.lock().await = None;
        let (next, _) = self.sync_once(&session, None, 0, deadline).await?;
        *self.since.lock().await = Some(next);
        *guard = Some(session.clone());
        Ok(session)
    }

    /// Drops the session after a refused token, so the next round logs in again.
    async fn forget_if(&self, e: &MatrixError) {
        if e.unauthorized {
            *self.session.lock().await = None;
        }
    }

    /// Makes sure the session is up.
    pub async fn ready(&self, deadline: Instant) -> Result<(), String> {
        match self.session(deadline).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.forget_if(&e).await;
                Err(e.message)
            }
        }
    }

    /// Sends `text` as an `m.text` message into the room.
    pub async fn send(&self, text: &str, deadline: Instant) -> Result<(), String> {
        let s = self.session(deadline).await.map_err(|e| e.message)?;
        let txn = format!(
            "lookout-{}-{}",
            std::process::id(),
            self.txn.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            self.base,
            encode(&s.room_id),
            txn
        );
        let r = self
            .call(
                "send",
                self.http
                    .put(url)
                    .bearer_auth(s.token.expose())
                    .json(&json!({"msgtype": "m.text", "body": text})),
                deadline,
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                self.forget_if(&e).await;
                Err(e.message)
            }
        }
    }

    /// One `/sync` from `since` (long-polling up to `wait_ms`): the next position and the
    /// bodies of the room's new messages.
    async fn sync_once(
        &self,
        s: &Session,
        since: Option<&str>,
        wait_ms: u64,
        deadline: Instant,
    ) -> Result<(String, Vec<String>), MatrixError> {
        let filter = json!({
            "room": {
                "rooms": [s.room_id],
                "timeline": {"limit": 50, "types": ["m.room.message"]},
                "state": {"lazy_load_members": true, "types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
            "presence": {"types": []},
            "account_data": {"types": []},
        })
        .to_string();
        let mut query = vec![
            ("filter", filter),
            ("timeout", wait_ms.to_string()),
            ("set_presence", "offline".to_string()),
        ];
        if let Some(since) = since {
            query.push(("since", since.to_string()));
        }
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let v = self
            .call(
                "sync",
                self.http
                    .get(format!("{}/_matrix/client/v3/sync?{query}", self.base))
                    .bearer_auth(s.token.expose()),
                deadline,
            )
            .await?;
        let next = v["next_batch"]
            .as_str()
            .ok_or_else(|| MatrixError::new("sync: no next_batch in the answer"))?
            .to_string();
        // Empty syncs may omit `rooms` altogether.
        let bodies = v["rooms"]["join"][&s.room_id]["timeline"]["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok((next, bodies))
    }

    /// Follows the room with incremental syncs until a message containing `token` arrives, at
    /// most until `deadline`. `Ok(None)`: not seen in time.
    pub async fn wait_for(
        &self,
        token: &str,
        deadline: Instant,
    ) -> Result<Option<Instant>, String> {
        let s = self.session(deadline).await.map_err(|e| e.message)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(50) {
                return Ok(None);
            }
            let since = self.since.lock().await.clone();
            // Long-poll for most of what is left; the request's own deadline adds a margin.
            let wait = left
                .saturating_sub(Duration::from_millis(300))
                .min(Duration::from_secs(10));
            match self
                .sync_once(&s, since.as_deref(), wait.as_millis() as u64, deadline)
                .await
            {
                Ok((next, bodies)) => {
                    let at = Instant::now();
                    *self.since.lock().await = Some(next);
                    if bodies.iter().any(|b| b.contains(token)) {
                        return Ok(Some(at));
                    }
                }
                Err(e) if e.message.contains("timed out") => return Ok(None),
                Err(e) => {
                    self.forget_if(&e).await;
                    return Err(e.message);
                }
            }
        }
    }

    /// The homeserver's appservice ping (Matrix v1.7; MSC2659's unstable path as a fallback):
    /// the seconds the homeserver's own round trip to the bridge took.
    pub async fn ping_appservice(
        &self,
        appservice_id: &str,
        as_token: &Secret,
        deadline: Instant,
    ) -> Result<f64, String> {
        let mut last = String::new();
        for path in [
            "_matrix/client/v1/appservice",
            "_matrix/client/unstable/fi.mau.msc2659/appservice",
        ] {
            let url = format!("{}/{path}/{}/ping", self.base, encode(appservice_id));
            let r = self
                .call(
                    "appservice ping",
                    self.http.post(url).bearer_auth(as_token.expose()).json(
                        &json!({"transaction_id": format!("lookout-{}", rand::random::<u32>())}),
                    ),
                    deadline,
                )
                .await;
            match r {
                Ok(v) => {
                    return v["duration_ms"]
                        .as_f64()
                        .map(|ms| ms / 1000.0)
                        .ok_or_else(|| "appservice ping: no duration_ms in the answer".into());
                }
                // The stable endpoint unknown to an older homeserver: try the unstable one.
                Err(e)
                    if e.message.contains("M_UNRECOGNIZED")
                        || e.message.contains("HTTP 404 ")
                        || e.message.ends_with("HTTP 404") =>
                {
                    last = e.message
                }
                Err(e) => return Err(e.message),
            }
        }
        Err(last)
    }
}

/// Percent-encodes a path segment (room ids and aliases hold `!`, `#` and `:`).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(super::encode("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(super::encode("#test (local)"), "%23test%20%28local%29");
    }
}
