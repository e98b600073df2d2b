//! The `ntfy` notifier: publishes to a topic on an ntfy server with a priority per severity
//! (priority 5 is the one a phone can let through do-not-disturb).

use super::text::{details, redact};
use super::{Notification, Notifier, Outcome};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use crate::model::Severity;
use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// `[[notifier]] kind = "ntfy"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// The ntfy server's base URL. Default `https://ntfy.sh`.
    pub server: Option<String>,
    /// The topic. A secret: on a public server, whoever knows the topic can read it.
    pub topic: Secret,
    /// An access token, sent as `Authorization: Bearer …`; `${ENV}` allowed.
    pub token: Option<Secret>,
    /// Read the access token from this file instead.
    pub token_file: Option<PathBuf>,
    /// User for basic auth (with `password`).
    pub username: Option<Secret>,
    /// Password for basic auth; `${ENV}` allowed.
    pub password: Option<Secret>,
    /// Read the password from this file instead.
    pub password_file: Option<PathBuf>,
    /// Priority per event: keys `critical`, `warning`, `info` (firing alerts by severity),
    /// `acknowledged` and `resolved`; values 1–5 or `min`, `low`, `default`, `high`, `max`
    /// (`urgent`). Default critical 5, warning 4, info 3, acknowledged 3, resolved 3.
    #[serde(default)]
    pub priorities: Priorities,
    /// Extra tags (ntfy shows known names as emoji), added after the event's own tag
    /// (`rotating_light`, `warning`, `information_source`, `eyes`, `white_check_mark`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// URL opened when the notification is tapped; `{id}` is replaced by the alert id.
    /// Default none.
    pub click: Option<String>,
    /// Deadline of one attempt, connect to last byte. Default 10s.
    pub timeout: Option<Dur>,
    /// Attempts for retryable failures (429, 5xx, timeouts). Default 4.
    pub max_attempts: Option<u32>,
}

/// Priorities per event; each field is 1–5 or a name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Priorities {
    /// Firing critical alerts. Default 5 (max).
    pub critical: Option<Priority>,
    /// Firing warnings. Default 4 (high).
    pub warning: Option<Priority>,
    /// Firing info alerts. Default 3 (default).
    pub info: Option<Priority>,
    /// Acknowledgements. Default 3.
    pub acknowledged: Option<Priority>,
    /// Resolutions. Default 3.
    pub resolved: Option<Priority>,
}

/// An ntfy priority, 1 (min) to 5 (max).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priority(pub u8);

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Name(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Name(s) => match s.to_ascii_lowercase().as_str() {
                "min" => 1,
                "low" => 2,
                "default" => 3,
                "high" => 4,
                "max" | "urgent" => 5,
                other => other.parse().map_err(|_| {
                    D::Error::custom(format!(
                        "unknown ntfy priority {s:?}: use 1–5 or min, low, default, high, max"
                    ))
                })?,
            },
        };
        match u8::try_from(n) {
            Ok(p @ 1..=5) => Ok(Priority(p)),
            _ => Err(D::Error::custom(format!(
                "ntfy priority {n} is outside 1–5"
            ))),
        }
    }
}

impl Priorities {
    /// The priority for a notification.
    pub fn pick(&self, n: &Notification) -> u8 {
        let (chosen, default) = match n.event.as_str() {
            "resolved" => (self.resolved, 3),
            "acknowledged" => (self.acknowledged, 3),
            _ => match n.alert.severity {
                Severity::Critical => (self.critical, 5),
                Severity::Warning => (self.warning, 4),
                Severity::Info => (self.info, 3),
            },
        };
        chosen.map(|p| p.0).unwrap_or(default)
    }
}

impl crate::config::notifiers::NotifierKind for NtfyConfig {
    const NAME: &'static str = "ntfy";

    fn validate(&self, component: &str, span: Range<usize>, errors: &mut Collector<'_>) {
        let mut fail = |msg: &str| errors.push(Some(span.clone()), Some(component), msg, None);
        if let Some(s) = &self.server
            && !(s.starts_with("http://") || s.starts_with("https://"))
        {
            fail("server must start with http:// or https://");
        }
        let topic = self.topic.expose();
        if topic.is_empty() || topic.contains('/') || topic.contains('?') {
            fail("topic must be a non-empty name without `/` or `?`");
        }
        if self.token.is_some() && self.token_file.is_some() {
            fail("set either `token` or `token_file`, not both");
        }
        if self.password.is_some() && self.password_file.is_some() {
            fail("set either `password` or `password_file`, not both");
        }
        let password = self.password.is_some() || self.password_file.is_some();
        if self.username.is_some() != password {
            fail("basic auth needs both `username` and `password` (or `password_file`)");
        }
        if (self.token.is_some() || self.token_file.is_some()) && self.username.is_some() {
            fail("use a `token` or `username`/`password`, not both");
        }
        if let Some(c) = &self.click
            && !c.contains("://")
        {
            fail("click must be a URL");
        }
        if self.max_attempts == Some(0) {
            fail("max_attempts must be at least 1");
        }
    }

    fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.token_file {
            self.token = Some(Secret::from_file(p)?);
        }
        if let Some(p) = &self.password_file {
            self.password = Some(Secret::from_file(p)?);
        }
        Ok(())
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(4)
    }

    fn build(&self) -> anyhow::Result<std::sync::Arc<dyn Notifier>> {
        Ok(std::sync::Arc::new(Ntfy::new(self.clone())?))
    }
}

/// The notifier.
pub struct Ntfy {
    config: NtfyConfig,
    /// Every secret and the encoded forms a server might echo (the basic-auth credentials).
    secrets: Vec<Secret>,
    url: String,
    client: reqwest::Client,
}

impl Ntfy {
    /// An ntfy notifier with its own connection pool.
    pub fn new(config: NtfyConfig) -> anyhow::Result<Ntfy> {
        let timeout = config
            .timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
        let server = config.server.as_deref().unwrap_or("https://ntfy.sh");
        let url = format!("{}/{}", server.trim_end_matches('/'), config.topic.expose());
        let mut secrets: Vec<Secret> = [
            Some(&config.topic),
            config.token.as_ref(),
            config.username.as_ref(),
            config.password.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            secrets.push(Secret::new(
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    u.expose(),
                    p.expose()
                )),
            ));
        }
        Ok(Ntfy {
            secrets,
            url,
            client: crate::http::client(timeout)?,
            config,
        })
    }
}

/// The tag ntfy shows as an emoji for an event.
pub fn event_tag(n: &Notification) -> &'static str {
    match n.event.as_str() {
        "resolved" => "white_check_mark",
        "acknowledged" => "eyes",
        _ => match n.alert.severity {
            Severity::Critical => "rotating_light",
            Severity::Warning => "warning",
            Severity::Info => "information_source",
        },
    }
}

/// A header value as is when it is printable ASCII, else as an RFC 2047 encoded word (ntfy
/// decodes those).
pub fn header_text(s: &str) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    if one_line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        one_line
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(one_line.as_bytes())
        )
    }
}

/// The `Actions` header of a page with an acknowledgement link, in ntfy's JSON form: an `http`
/// button that POSTs to the link (acknowledging without leaving the notification) and a `view`
/// button that opens its confirmation page.
pub fn actions(url: &str) -> String {
    serde_json::json!([
        {"action": "http", "label": "Acknowledge", "url": url, "method": "POST", "clear": true},
        {"action": "view", "label": "Open", "url": url},
    ])
    .to_string()
}

#[async_trait]
impl Notifier for Ntfy {
    async fn send(&self, message: &Notification) -> Outcome {
        let mut tags = vec![event_tag(message).to_string()];
        tags.extend(self.config.tags.iter().cloned());
        let mut req = self
            .client
            .post(&self.url)
            .header("Title", header_text(&message.summary))
            .header("Priority", self.config.priorities.pick(message).to_string())
            .header("Tags", header_text(&tags.join(",")));
        let link = message
            .ack_link
            .as_ref()
            .filter(|_| super::text::how_to_acknowledge(message).is_some());
        if let Some(click) = &self.config.click {
            req = req.header(
                "Click",
                header_text(&click.replace("{id}", &message.alert.id)),
            );
        } else if let Some(link) = link {
            // Tapping the notification opens the confirmation page.
            req = req.header("Click", header_text(&link.url));
        }
        if let Some(link) = link {
            req = req.header("Actions", actions(&link.url));
        }
        if let Some(token) = &self.config.token {
            req = req.bearer_auth(token.expose());
        } else if let (Some(user), Some(password)) = (&self.config.username, &self.config.password)
        {
            req = req.basic_auth(user.expose(), Some(password.expose()));
        }
        match crate::http::classify_redacted(req.body(details(message)).send().await, &self.secrets)
            .await
        {
            Outcome::Delivered => Outcome::Delivered,
            Outcome::Retryable(e) => {
                Outcome::Retryable(redact(format!("ntfy: {e}"), &self.secrets))
            }
            Outcome::Permanent(e) => {
                Outcome::Permanent(redact(format!("ntfy: {e}"), &self.secrets))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::sample;

    #[test]
    fn priorities_follow_severity_and_event() {
        let p = Priorities::default();
        assert_eq!(p.pick(&sample("firing")), 5);
        assert_eq!(p.pick(&sample("resolved")), 3);
        let mut warn = sample("firing");
        warn.alert.severity = Severity::Warning;
        assert_eq!(p.pick(&warn), 4);
        let c: NtfyConfig =
            toml::from_str("topic = \"t\"\npriorities = { critical = \"high\", resolved = 1 }")
                .unwrap();
        assert_eq!(c.priorities.pick(&sample("firing")), 4);
        assert_eq!(c.priorities.pick(&sample("resolved")), 1);
        let bad = toml::from_str::<NtfyConfig>("topic = \"t\"\npriorities = { critical = 9 }");
        assert!(bad.unwrap_err().to_string().contains("outside 1–5"));
        let bad =
            toml::from_str::<NtfyConfig>("topic = \"t\"\npriorities = { critical = \"loud\" }");
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown ntfy priority")
        );
    }

    #[test]
    fn actions_are_an_http_post_and_a_view_of_the_link() {
        let a: serde_json::Value =
            serde_json::from_str(&actions("https://ops.example/ack/abc.1.2.S-_")).unwrap();
        assert_eq!(a[0]["action"], "http");
        assert_eq!(a[0]["method"], "POST");
        assert_eq!(a[0]["url"], "https://ops.example/ack/abc.1.2.S-_");
        assert_eq!(a[0]["clear"], true);
        assert_eq!(a[1]["action"], "view");
        assert_eq!(a[1]["url"], "https://ops.example/ack/abc.1.2.S-_");
        assert!(
            actions("x").starts_with('['),
            "ntfy reads JSON when it starts with ["
        );
    }

    #[test]
    fn headers_stay_ascii() {
        assert_eq!(header_text("plain"), "plain");
        assert_eq!(header_text("a\nb"), "a b");
        assert_eq!(header_text("déjà"), "=?UTF-8?B?ZMOpasOg?=");
    }
}
