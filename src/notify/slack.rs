//! The `slack` notifier: a Slack-compatible incoming webhook (`{"text": …}`), which Mattermost
//! and Rocket.Chat accept too.

use super::text::{details, facts, how_to_acknowledge, redact};
use super::{Notification, Notifier, Outcome};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use async_trait::async_trait;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// `[[notifier]] kind = "slack"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL. A secret (it embeds the token); `${ENV}` allowed. Required
    /// unless `url_file` is set.
    pub url: Option<Secret>,
    /// Read the webhook URL from this file instead.
    pub url_file: Option<PathBuf>,
    /// Deadline of one attempt, connect to last byte. Default 10s.
    pub timeout: Option<Dur>,
    /// Attempts for retryable failures (429, 5xx, timeouts). Default 4.
    pub max_attempts: Option<u32>,
}

impl crate::config::notifiers::NotifierKind for SlackConfig {
    const NAME: &'static str = "slack";

    fn validate(&self, component: &str, span: Range<usize>, errors: &mut Collector<'_>) {
        let mut fail = |msg: &str| errors.push(Some(span.clone()), Some(component), msg, None);
        match (&self.url, &self.url_file) {
            (None, None) => fail("set `url` or `url_file`"),
            (Some(_), Some(_)) => fail("set either `url` or `url_file`, not both"),
            (Some(u), None)
                if !(u.expose().starts_with("http://") || u.expose().starts_with("https://")) =>
            {
                fail("url must start with http:// or https://")
            }
            _ => {}
        }
        if self.max_attempts == Some(0) {
            fail("max_attempts must be at least 1");
        }
    }

    fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.url_file {
            self.url = Some(Secret::from_file(p)?);
        }
        Ok(())
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(4)
    }

    fn build(&self) -> anyhow::Result<std::sync::Arc<dyn Notifier>> {
        Ok(std::sync::Arc::new(Slack::new(self.clone())?))
    }
}

/// The notifier.
pub struct Slack {
    url: Secret,
    /// The URL and the parts of it a server might echo.
    secrets: Vec<Secret>,
    client: reqwest::Client,
}

impl Slack {
    /// A Slack notifier with its own connection pool.
    pub fn new(config: SlackConfig) -> anyhow::Result<Slack> {
        let url = config
            .url
            .ok_or_else(|| anyhow::anyhow!("slack needs a url"))?;
        let timeout = config
            .timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
        Ok(Slack {
            secrets: super::text::url_secrets(&url),
            url,
            client: crate::http::client(timeout)?,
        })
    }
}

/// The message text: the summary in bold, the acknowledgement link (a page of a firing alert),
/// then the details in a code block.
pub fn message_text(n: &Notification) -> String {
    // Slack escapes: &, <, > (mrkdwn control characters); Mattermost renders them as is.
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let block = |s: &str| esc(s).replace("```", "'''");
    match (&n.ack_link, how_to_acknowledge(n)) {
        // `<URL|text>` is a link in Slack; Mattermost and Rocket.Chat translate it too. Outside
        // the code block, where it can be tapped.
        (Some(link), Some(_)) => format!(
            "*{}*\n<{}|Acknowledge> (the link works until {})\n```\n{}Or run: lookout ack {}\n```",
            esc(&n.summary),
            esc(&link.url),
            link.expires_at,
            block(&facts(n)),
            n.alert.id
        ),
        _ => format!("*{}*\n```\n{}```", esc(&n.summary), block(&details(n))),
    }
}

#[async_trait]
impl Notifier for Slack {
    async fn send(&self, message: &Notification) -> Outcome {
        let body = serde_json::json!({ "text": message_text(message) });
        let req = self.client.post(self.url.expose()).json(&body);
        match crate::http::classify_redacted(req.send().await, &self.secrets).await {
            Outcome::Delivered => Outcome::Delivered,
            Outcome::Retryable(e) => {
                Outcome::Retryable(redact(format!("slack: {e}"), &self.secrets))
            }
            Outcome::Permanent(e) => {
                Outcome::Permanent(redact(format!("slack: {e}"), &self.secrets))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::sample;

    #[test]
    fn the_text_has_the_summary_and_details() {
        let t = message_text(&sample("firing"));
        assert!(
            t.starts_with("*[CRITICAL] / is full in 2h | disk_full on root*\n```\n"),
            "{t}"
        );
        assert!(t.contains("lookout ack 0123456789abcdef"), "{t}");
        assert!(t.ends_with("```"), "{t}");
        let mut n = sample("firing");
        n.summary = "a <b> & c".into();
        assert!(message_text(&n).starts_with("*a &lt;b&gt; &amp; c*"));
    }

    #[test]
    fn the_link_is_outside_the_code_block() {
        let mut n = sample("firing");
        n.ack_link = Some(crate::notify::ack_link::AckLink {
            url: "https://ops.example/ack/0123456789abcdef.1.2.SIG".into(),
            expires_at: "2023-11-15T22:13:20Z".into(),
        });
        let t = message_text(&n);
        assert!(
            t.starts_with(
                "*[CRITICAL] / is full in 2h | disk_full on root*\n<https://ops.example/ack/0123456789abcdef.1.2.SIG|Acknowledge> (the link works until 2023-11-15T22:13:20Z)\n```\n"
            ),
            "{t}"
        );
        assert!(
            t.ends_with("Or run: lookout ack 0123456789abcdef\n```"),
            "{t}"
        );
    }
}
