//! The `matrix` notifier: pages go to a Matrix room (plain and HTML body, pills and
//! `m.mentions` for the people to wake); a ✅ reaction or an "ack" reply from an allowed user
//! acknowledges the alert ([`ack`]).

pub mod ack;

use super::text::details;
use super::{AckSender, Notification, Notifier, Outcome};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use crate::matrix::api::Mentions;
use crate::matrix::{Auth, Error, Homeserver, MessageContent, Session};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::VecDeque;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `[[notifier]] kind = "matrix"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixNotifierConfig {
    /// Client-server API base URL, e.g. `"https://matrix.example.org"`. Required.
    pub homeserver: String,
    /// The bot user (localpart or full id); needed with a password.
    pub user: Option<String>,
    /// The bot's password; `${ENV}` allowed. One of `password`, `password_file`,
    /// `access_token`, `access_token_file`.
    pub password: Option<Secret>,
    /// Read the password from this file instead.
    pub password_file: Option<PathBuf>,
    /// An access token instead of a password; `${ENV}` allowed.
    pub access_token: Option<Secret>,
    /// Read the access token from this file instead.
    pub access_token_file: Option<PathBuf>,
    /// Room id (`!…`) or alias (`#…`) the pages go to; joined on first use. Required.
    pub room: String,
    /// User ids mentioned (pill + `m.mentions`) in every page, e.g. `["@alice:example.org"]`.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Who may acknowledge by reaction or reply. Default: the `mentions`.
    pub ack_users: Option<Vec<String>>,
    /// Sync the room for acknowledgements. Default true.
    pub acknowledge: Option<bool>,
    /// `m.text` or `m.notice` (clients do not notify for notices). Default `m.text`.
    pub msgtype: Option<String>,
    /// Deadline of one request, connect to last byte. Default 10s.
    pub timeout: Option<Dur>,
    /// Attempts for retryable failures (429, 5xx, timeouts). Default 4.
    pub max_attempts: Option<u32>,
}

impl super::super::config::notifiers::NotifierKind for MatrixNotifierConfig {
    const NAME: &'static str = "matrix";

    fn validate(&self, component: &str, span: Range<usize>, errors: &mut Collector<'_>) {
        for (message, hint) in self.problems() {
            errors.push(Some(span.clone()), Some(component), message, hint);
        }
    }

    fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.password_file {
            self.password = Some(Secret::from_file(p)?);
        }
        if let Some(p) = &self.access_token_file {
            self.access_token = Some(Secret::from_file(p)?);
        }
        Ok(())
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(4)
    }

    fn build(&self) -> anyhow::Result<Arc<dyn Notifier>> {
        Ok(Arc::new(MatrixNotifier::new(self.clone())?))
    }
}

fn is_user_id(s: &str) -> bool {
    s.starts_with('@') && s.len() > 3 && s[1..].contains(':') && !s.contains(char::is_whitespace)
}

impl MatrixNotifierConfig {
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
        for u in self
            .mentions
            .iter()
            .chain(self.ack_users.iter().flatten())
            .filter(|u| !is_user_id(u))
        {
            out.push((
                format!("{u:?} is not a Matrix user id"),
                Some("e.g. \"@alice:example.org\"".into()),
            ));
        }
        if let Some(t) = &self.msgtype
            && t != "m.text"
            && t != "m.notice"
        {
            out.push((format!("msgtype {t:?} is not m.text or m.notice"), None));
        }
        if self.acknowledge != Some(false) && self.allowed().is_empty() {
            out.push((
                "nobody may acknowledge: set `mentions` or `ack_users` (or acknowledge = false)"
                    .into(),
                None,
            ));
        }
        out
    }

    /// Who may acknowledge.
    pub fn allowed(&self) -> Vec<String> {
        self.ack_users
            .clone()
            .unwrap_or_else(|| self.mentions.clone())
    }

    fn auth(&self) -> anyhow::Result<Auth> {
        if let Some(t) = &self.access_token {
            return Ok(Auth::AccessToken(t.clone()));
        }
        match &self.password {
            Some(p) => Ok(Auth::Password {
                user: self.user.clone().unwrap_or_default(),
                password: p.clone(),
            }),
            None => anyhow::bail!("no password or access token (were *_file secrets read?)"),
        }
    }
}

/// Pages remembered for acknowledgements, newest last.
const REMEMBERED_PAGES: usize = 1000;

/// What the sender and the acknowledgement listener share.
pub(crate) struct Shared {
    pub(crate) config: MatrixNotifierConfig,
    pub(crate) session: Session,
    room_id: tokio::sync::Mutex<Option<String>>,
    /// Pages sent, oldest first (trigger pages only: a bare "ack" means the newest of them).
    pub(crate) pages: Mutex<VecDeque<PageRef>>,
}

impl Shared {
    /// The room id, joining (once) on first use.
    pub(crate) async fn room_id(&self) -> Result<String, Error> {
        let mut guard = self.room_id.lock().await;
        if let Some(r) = guard.as_ref() {
            return Ok(r.clone());
        }
        let r = self.session.join(&self.config.room).await?;
        *guard = Some(r.clone());
        Ok(r)
    }

    /// What a page event is about, from memory.
    pub(crate) fn remembered(&self, event_id: &str) -> Option<PageRef> {
        self.pages
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|p| p.event_id == event_id)
            .cloned()
    }

    /// The newest page.
    pub(crate) fn latest(&self) -> Option<PageRef> {
        self.pages.lock().unwrap().back().cloned()
    }
}

/// A page lookout sent to the room.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PageRef {
    /// Its event id.
    pub(crate) event_id: String,
    /// The alert it speaks about.
    pub(crate) alert_id: String,
    /// The escalation it stands for, if it was an escalation page.
    pub(crate) group: Option<String>,
}

/// The notifier.
pub struct MatrixNotifier {
    shared: Arc<Shared>,
}

impl MatrixNotifier {
    /// Builds the client (no I/O until the first page).
    pub fn new(config: MatrixNotifierConfig) -> anyhow::Result<MatrixNotifier> {
        let timeout = config
            .timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
        let hs = Homeserver::new(&config.homeserver, timeout).map_err(anyhow::Error::msg)?;
        let session = Session::new(hs, config.auth()?);
        Ok(MatrixNotifier {
            shared: Arc::new(Shared {
                config,
                session,
                room_id: tokio::sync::Mutex::new(None),
                pages: Mutex::new(VecDeque::new()),
            }),
        })
    }
}

/// Whether a notification event wakes people (and may be acknowledged), as opposed to an
/// "[ACK by …]" or "[RESOLVED]" follow-up.
fn is_page(event: &str) -> bool {
    matches!(event, "firing" | "severity_changed" | "test")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The message for a notification: plain and HTML bodies, mentions, and the alert id.
pub fn render(n: &Notification, config: &MatrixNotifierConfig) -> MessageContent {
    let paging = is_page(&n.event);
    let mentions: &[String] = if paging { &config.mentions } else { &[] };
    let how = if paging && config.acknowledge != Some(false) {
        "\nReact with ✅ or reply \"ack\" to acknowledge."
    } else {
        ""
    };
    let detail = details(n);
    let mut body = n.summary.clone();
    let mut html = format!("<b>{}</b>", html_escape(&n.summary));
    if !mentions.is_empty() {
        body.push_str(&format!("\n{}", mentions.join(" ")));
        let pills: Vec<String> = mentions
            .iter()
            .map(|u| {
                format!(
                    "<a href=\"https://matrix.to/#/{u}\">{u}</a>",
                    u = html_escape(u)
                )
            })
            .collect();
        html.push_str(&format!("<br>{}", pills.join(" ")));
    }
    body.push_str(&format!("\n\n{detail}{how}"));
    html.push_str(&format!(
        "<pre>{}</pre>{}",
        html_escape(detail.trim_end()),
        html_escape(how.trim())
    ));
    MessageContent {
        msgtype: config.msgtype.clone().unwrap_or_else(|| "m.text".into()),
        body,
        format: Some("org.matrix.custom.html".into()),
        formatted_body: Some(html),
        mentions: Some(Mentions {
            user_ids: mentions.to_vec(),
        }),
        relates_to: None,
        alert_id: Some(n.alert.id.clone()),
        escalation: crate::escalation::group_of_key(&n.dedup_key).map(str::to_string),
    }
}

/// A Matrix error as a delivery outcome: rate limits, server errors, timeouts and unreachable
/// servers are worth retrying; other refusals are not.
pub fn outcome(e: &Error) -> Outcome {
    match e {
        Error::Http { status, .. } if *status == 429 || *status >= 500 => {
            Outcome::Retryable(e.to_string())
        }
        Error::Unreachable(_) | Error::Timeout { .. } => Outcome::Retryable(e.to_string()),
        _ => Outcome::Permanent(e.to_string()),
    }
}

#[async_trait]
impl Notifier for MatrixNotifier {
    async fn send(&self, message: &Notification) -> Outcome {
        let s = &self.shared;
        let room_id = match s.room_id().await {
            Ok(r) => r,
            Err(e) => return outcome(&e),
        };
        let content = render(message, &s.config);
        match s.session.send_message(&room_id, &content).await {
            Ok(event_id) => {
                if is_page(&message.event) {
                    let mut pages = s.pages.lock().unwrap();
                    pages.push_back(PageRef {
                        event_id,
                        alert_id: message.alert.id.clone(),
                        group: content.escalation.clone(),
                    });
                    while pages.len() > REMEMBERED_PAGES {
                        pages.pop_front();
                    }
                }
                Outcome::Delivered
            }
            Err(e) => outcome(&e),
        }
    }

    fn listen(&self, acks: AckSender) -> Option<tokio::task::JoinHandle<()>> {
        if self.shared.config.acknowledge == Some(false) {
            return None;
        }
        Some(tokio::spawn(ack::listen(self.shared.clone(), acks)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::sample;

    fn config(extra: &str) -> MatrixNotifierConfig {
        toml::from_str(&format!(
            "homeserver = \"http://127.0.0.1:8008\"\nroom = \"#ops:localhost\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn a_page_mentions_the_people_and_carries_the_alert_id() {
        let c = config("access_token = \"t\"\nmentions = [\"@alice:x\", \"@bob:x\"]");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let m = render(&sample("firing"), &c);
        assert!(
            m.body
                .starts_with("[CRITICAL] / is full in 2h | disk_full on root"),
            "{}",
            m.body
        );
        assert!(m.body.contains("@alice:x @bob:x"));
        assert!(m.body.contains("React with ✅"));
        let html = m.formatted_body.unwrap();
        assert!(
            html.contains("<a href=\"https://matrix.to/#/@alice:x\">@alice:x</a>"),
            "{html}"
        );
        assert_eq!(m.mentions.unwrap().user_ids, vec!["@alice:x", "@bob:x"]);
        assert_eq!(m.alert_id.as_deref(), Some("0123456789abcdef"));
        // A resolution pings nobody.
        let r = render(&sample("resolved"), &c);
        assert!(r.mentions.unwrap().user_ids.is_empty());
        assert!(!r.body.contains("React with"));
    }

    #[test]
    fn html_is_escaped() {
        let mut n = sample("firing");
        n.summary = "<script>&".into();
        let c = config("access_token = \"t\"\nmentions = [\"@a:x\"]");
        let html = render(&n, &c).formatted_body.unwrap();
        assert!(html.starts_with("<b>&lt;script&gt;&amp;</b>"), "{html}");
    }

    #[test]
    fn config_problems_are_named() {
        let c = config("password = \"p\"\nmentions = [\"alice\"]");
        let p: Vec<String> = c.problems().into_iter().map(|p| p.0).collect();
        assert!(p.iter().any(|m| m.contains("needs `user`")), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.contains("\"alice\" is not a Matrix user id")),
            "{p:?}"
        );
        let nobody = config("access_token = \"t\"");
        assert!(nobody.problems()[0].0.contains("nobody may acknowledge"));
        assert!(
            config("access_token = \"t\"\nacknowledge = false")
                .problems()
                .is_empty()
        );
    }

    #[test]
    fn outcomes_say_whether_to_retry() {
        let http = |status| Error::Http {
            status,
            errcode: None,
            error: None,
        };
        assert!(matches!(outcome(&http(429)), Outcome::Retryable(_)));
        assert!(matches!(outcome(&http(502)), Outcome::Retryable(_)));
        assert!(matches!(outcome(&http(403)), Outcome::Permanent(_)));
        assert!(matches!(
            outcome(&Error::Unreachable("x".into())),
            Outcome::Retryable(_)
        ));
    }
}
