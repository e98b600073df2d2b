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
mod follower;
mod session;

pub use api::{MessageContent, ReactionContent, RoomEvent};
pub use error::Error;
pub use follower::RoomFollower;
pub use session::{Auth, Session};

use crate::config::values::Secret;
use api::*;
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Which Matrix credentials a configuration entry set: presence only, for validation.
#[derive(Clone, Copy, Debug, Default)]
pub struct CredentialsGiven<'a> {
    /// `user`.
    pub user: Option<&'a str>,
    /// `password` is set.
    pub password: bool,
    /// `password_file` is set.
    pub password_file: bool,
    /// `access_token` is set.
    pub access_token: bool,
    /// `access_token_file` is set.
    pub access_token_file: bool,
}

/// The problems, as (message, hint), of a homeserver URL, a set of credentials and a room, shared
/// by every configuration that logs in to Matrix (the `matrix` and `bridge` probes, the `matrix`
/// notifier). Pure.
pub fn login_problems(
    homeserver: &str,
    given: CredentialsGiven<'_>,
    room: &str,
) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    if let Err(e) = Homeserver::check_url(homeserver) {
        out.push((
            format!("homeserver: {e}"),
            Some(
                "the client-server API base, e.g. homeserver = \"https://matrix.example.org\""
                    .into(),
            ),
        ));
    }
    let count = [
        given.password,
        given.password_file,
        given.access_token,
        given.access_token_file,
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if count != 1 {
        out.push((
            format!(
                "set exactly one of password, password_file, access_token, access_token_file ({count} set)"
            ),
            Some("e.g. user = \"lookout\" and password_file = \"/etc/lookout/matrix.password\"".into()),
        ));
    }
    if (given.password || given.password_file) && given.user.is_none_or(|u| u.trim().is_empty()) {
        out.push((
            "a password login needs `user`".into(),
            Some("the user's localpart or full id, e.g. user = \"@lookout:example.org\"".into()),
        ));
    }
    if !is_room_reference(room) {
        out.push((
            format!("room {room:?} is neither a room id nor an alias"),
            Some(ROOM_HINT.into()),
        ));
    }
    out
}

/// Whether `room` can name a room: a room id (`!opaque`, with `:server` before room version 12)
/// or an alias (`#name:server`).
pub fn is_room_reference(room: &str) -> bool {
    let id = room.starts_with('!') && room.len() > 1;
    let alias = room.starts_with('#') && room.contains(':') && !room.ends_with(':');
    id || alias
}

/// The hint shown with a room that is neither.
pub const ROOM_HINT: &str =
    "a room id \"!id\" (\"!id:server\" before room version 12) or an alias \"#name:server\"";

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
            transaction_id: Some(format!("lookout-{}", session::txn_prefix())),
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
    fn room_ids_of_every_room_version_and_aliases_are_accepted() {
        assert!(is_room_reference("!abc:example.org"));
        assert!(is_room_reference("!Xq3z9v0bFWq1aB")); // room version 12: no server part
        assert!(is_room_reference("#ops:example.org"));
        assert!(!is_room_reference("#ops"));
        assert!(!is_room_reference("ops"));
        assert!(!is_room_reference("!"));
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
