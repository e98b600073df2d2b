//! The `pagerduty` notifier: PagerDuty Events API v2. One incident per alert: the alert id is
//! the `dedup_key`, so firing triggers, an acknowledgement acknowledges and a resolution
//! resolves the same incident.

use super::text::{redact, truncate};
use super::{Notification, Notifier, Outcome};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// Where events go unless `url` says otherwise.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[[notifier]] kind = "pagerduty"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration key of an Events API v2 integration (32 characters); `${ENV}` allowed.
    /// Required unless `routing_key_file` is set.
    pub routing_key: Option<Secret>,
    /// Read the routing key from this file instead.
    pub routing_key_file: Option<PathBuf>,
    /// The Events API endpoint. Default `https://events.pagerduty.com/v2/enqueue` (EU accounts
    /// may use `https://events.eu.pagerduty.com/v2/enqueue`).
    pub url: Option<String>,
    /// `payload.source`: the affected system. Default this host's name.
    pub source: Option<String>,
    /// Deadline of one attempt, connect to last byte. Default 10s.
    pub timeout: Option<Dur>,
    /// Attempts for retryable failures (429, 5xx, timeouts). Default 4.
    pub max_attempts: Option<u32>,
}

impl crate::config::notifiers::NotifierKind for PagerDutyConfig {
    const NAME: &'static str = "pagerduty";

    fn validate(&self, component: &str, span: Range<usize>, errors: &mut Collector<'_>) {
        let mut fail = |msg: &str| errors.push(Some(span.clone()), Some(component), msg, None);
        match (&self.routing_key, &self.routing_key_file) {
            (None, None) => fail("set `routing_key` or `routing_key_file`"),
            (Some(_), Some(_)) => fail("set either `routing_key` or `routing_key_file`, not both"),
            (Some(k), None) if k.expose().trim().is_empty() => fail("routing_key is empty"),
            _ => {}
        }
        if let Some(url) = &self.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            fail("url must start with http:// or https://");
        }
        if self.max_attempts == Some(0) {
            fail("max_attempts must be at least 1");
        }
    }

    fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.routing_key_file {
            self.routing_key = Some(Secret::from_file(p)?);
        }
        Ok(())
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(4)
    }

    fn build(&self) -> anyhow::Result<std::sync::Arc<dyn Notifier>> {
        Ok(std::sync::Arc::new(PagerDuty::new(self.clone())?))
    }
}

/// The notifier.
pub struct PagerDuty {
    routing_key: Secret,
    url: String,
    source: String,
    client: reqwest::Client,
}

impl PagerDuty {
    /// A PagerDuty notifier with its own connection pool.
    pub fn new(config: PagerDutyConfig) -> anyhow::Result<PagerDuty> {
        let routing_key = config
            .routing_key
            .ok_or_else(|| anyhow::anyhow!("pagerduty needs a routing_key"))?;
        let timeout = config
            .timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
        Ok(PagerDuty {
            routing_key,
            url: config.url.unwrap_or_else(|| DEFAULT_URL.into()),
            source: config.source.unwrap_or_else(host_name),
            client: crate::http::client(timeout)?,
        })
    }
}

/// This host's name (`uname -n`).
pub fn host_name() -> String {
    let uts = rustix::system::uname();
    let name = uts.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "lookout".into()
    } else {
        name
    }
}

/// The Events API action for a notification's event.
pub fn event_action(event: &str) -> &'static str {
    match event {
        "acknowledged" => "acknowledge",
        "resolved" => "resolve",
        _ => "trigger",
    }
}

/// The Events API v2 body for a notification.
pub fn event_body(n: &Notification, routing_key: &str, source: &str) -> Value {
    let a = &n.alert;
    let action = event_action(&n.event);
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": a.id,
        "client": "lookout",
    });
    if action == "trigger" {
        body["payload"] = json!({
            "summary": truncate(&n.summary, 1024),
            "source": source,
            "severity": a.severity.as_str(),
            "timestamp": n.at,
            "component": a.probe,
            "group": a.rule,
            "class": a.rule,
            "custom_details": {
                "message": a.message,
                "labels": a.labels,
                "alert_id": a.id,
                "event": n.event,
                "acknowledge": format!("lookout ack {}", a.id),
            },
        });
        if let Some(link) = &n.ack_link {
            body["payload"]["custom_details"]["acknowledge_link"] = json!(link.url);
            body["payload"]["custom_details"]["acknowledge_link_expires_at"] =
                json!(link.expires_at);
            // Shown as a link on the incident.
            body["links"] = json!([{"href": link.url, "text": "Acknowledge in lookout"}]);
        }
    }
    body
}

/// PagerDuty's answer in words: `message` and `errors` from its JSON body, or the raw start.
pub fn explain(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let mut parts = Vec::new();
            if let Some(m) = v["message"].as_str() {
                parts.push(m.to_string());
            }
            if let Some(errs) = v["errors"].as_array() {
                let errs: Vec<String> = errs
                    .iter()
                    .map(|e| {
                        e.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect();
                if !errs.is_empty() {
                    parts.push(errs.join("; "));
                }
            }
            if parts.is_empty() {
                truncate(body.trim(), 200)
            } else {
                parts.join(": ")
            }
        }
        Err(_) => truncate(body.trim(), 200),
    }
}

#[async_trait]
impl Notifier for PagerDuty {
    async fn send(&self, message: &Notification) -> Outcome {
        let body = event_body(message, self.routing_key.expose(), &self.source);
        let resp = match self.client.post(&self.url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Retryable(crate::http::describe(&e)),
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Outcome::Retryable(crate::http::describe(&e)),
        };
        let said = explain(&redact(text, [&self.routing_key]));
        let code = status.as_u16();
        if status.is_success() {
            Outcome::Delivered
        } else if code == 429 {
            Outcome::Retryable(format!("PagerDuty throttled the event (HTTP 429): {said}"))
        } else if code == 408 || status.is_server_error() {
            Outcome::Retryable(format!("PagerDuty answered HTTP {code}: {said}"))
        } else if code == 400 {
            Outcome::Permanent(format!("PagerDuty rejected the event (HTTP 400): {said}"))
        } else {
            Outcome::Permanent(format!("PagerDuty answered HTTP {code}: {said}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::sample;

    #[test]
    fn events_map_to_actions_with_one_dedup_key_per_alert() {
        let b = event_body(&sample("firing"), "KEY", "host1");
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["dedup_key"], "0123456789abcdef");
        assert_eq!(b["routing_key"], "KEY");
        let p = &b["payload"];
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["source"], "host1");
        assert_eq!(p["component"], "root");
        assert_eq!(p["group"], "disk_full");
        assert_eq!(p["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(p["custom_details"]["labels"]["mount"], "/");
        for (event, action) in [
            ("severity_changed", "trigger"),
            ("acknowledged", "acknowledge"),
            ("resolved", "resolve"),
        ] {
            let b = event_body(&sample(event), "KEY", "h");
            assert_eq!(b["event_action"], action);
            assert_eq!(b["dedup_key"], "0123456789abcdef");
            assert_eq!(b.get("payload").is_some(), action == "trigger");
        }
    }

    #[test]
    fn a_trigger_carries_the_acknowledgement_link() {
        let mut n = sample("firing");
        n.ack_link = Some(crate::notify::ack_link::AckLink {
            url: "https://ops.example/ack/x.1.2.S".into(),
            expires_at: "2023-11-15T22:13:20Z".into(),
        });
        let b = event_body(&n, "K", "h");
        let d = &b["payload"]["custom_details"];
        assert_eq!(d["acknowledge_link"], "https://ops.example/ack/x.1.2.S");
        assert_eq!(d["acknowledge_link_expires_at"], "2023-11-15T22:13:20Z");
        assert_eq!(b["links"][0]["href"], "https://ops.example/ack/x.1.2.S");
        assert!(
            event_body(&sample("firing"), "K", "h")
                .get("links")
                .is_none()
        );
    }

    #[test]
    fn the_summary_is_capped_at_1024_characters() {
        let mut n = sample("firing");
        n.summary = "x".repeat(5000);
        let b = event_body(&n, "K", "h");
        assert_eq!(
            b["payload"]["summary"].as_str().unwrap().chars().count(),
            1024
        );
    }

    #[test]
    fn errors_are_explained_from_the_body() {
        let body = r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#;
        assert_eq!(
            explain(body),
            "Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)"
        );
        assert_eq!(explain("oops"), "oops");
    }
}
