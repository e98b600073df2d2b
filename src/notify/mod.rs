//! Notifiers: one file per channel kind behind the [`Notifier`] trait, and the dispatcher that
//! delivers alert events with retries and records every delivery.

pub mod ack_link;
pub mod dispatch;
pub mod email;
pub mod exec;
pub mod matrix;
pub mod ntfy;
pub mod pagerduty;
pub mod slack;
pub mod text;
pub mod webhook;

use crate::alert::{Alert, AlertEvent, AlertEventKind};
use crate::model::format_utc;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How one attempt ended. A failure says whether trying again could help.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The channel accepted the message.
    Delivered,
    /// Failed, but a later attempt may work (timeout, 5xx, 429, connection refused).
    Retryable(String),
    /// Failed for good (4xx, bad configuration).
    Permanent(String),
}

/// The message every notifier sends, in its own format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notification {
    /// Payload version.
    pub version: u32,
    /// `firing`, `resolved`, `acknowledged`, `severity_changed`, `test`.
    pub event: String,
    /// Stable across restarts: `alert id:sequence`; receivers can drop repeats by it.
    pub dedup_key: String,
    /// One line for a phone screen.
    pub summary: String,
    /// When the event happened (RFC 3339 UTC).
    pub at: String,
    /// The alert after the event.
    pub alert: Alert,
    /// A signed link that acknowledges this alert (pages of a firing alert only; see
    /// [`ack_link`]). Absent on resolutions, acknowledgements and test pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_link: Option<ack_link::AckLink>,
    /// The cluster node that sent it (cluster mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Notification {
    /// Builds the message for an alert event.
    pub fn from_event(event: &AlertEvent) -> Notification {
        let name = match &event.kind {
            AlertEventKind::Firing => "firing",
            AlertEventKind::SeverityChanged { .. } => "severity_changed",
            AlertEventKind::Resolved => "resolved",
            AlertEventKind::Acknowledged { .. } => "acknowledged",
            AlertEventKind::Suppressed => "suppressed",
        };
        let a = &event.alert;
        let tag = match &event.kind {
            AlertEventKind::Acknowledged { by } => format!("ACK by {by}"),
            AlertEventKind::Resolved => "RESOLVED".into(),
            _ => a.severity.as_str().to_uppercase(),
        };
        let summary = summary_line(&tag, a, "");
        Notification {
            version: 1,
            event: name.into(),
            dedup_key: format!("{}:{}", a.id, a.sequence),
            summary,
            at: format_utc(event.at),
            alert: a.clone(),
            ack_link: None,
            node: None,
        }
    }
}

/// The first line of every page, for a phone's lock screen: the finding first (the first line
/// of the alert's message), then which alert it is, then the escalation's words:
/// `[CRITICAL] HTTP 500 Internal Server Error from GET https://shop/ | probe_status on shop
/// (escalation step 1 for alice)`. `tag` is the severity in capitals, `RESOLVED` or `ACK by …`.
pub fn summary_line(tag: &str, a: &Alert, suffix: &str) -> String {
    let finding = a.message.lines().map(str::trim).find(|l| !l.is_empty());
    match finding {
        Some(f) => format!("[{tag}] {f} | {} on {}{suffix}", a.rule, a.probe),
        None => format!("[{tag}] {} on {}{suffix}", a.rule, a.probe),
    }
}

/// An acknowledgement a channel received (e.g. a ✅ reaction to a page in a Matrix room).
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    /// The acknowledged alert's id.
    pub alert_id: String,
    /// Who acknowledged, in the channel's terms (a Matrix user id).
    pub by: String,
    /// The escalation the acknowledged page stood for: every open alert of that group is
    /// acknowledged (a grouped page speaks for all of them).
    pub group: Option<String>,
}

/// Where channels report acknowledgements; the daemon feeds them into the same path as
/// `lookout ack` and `POST /api/v1/alerts/{id}/ack`.
pub type AckSender = tokio::sync::mpsc::UnboundedSender<Ack>;

/// A channel that can deliver a notification.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one message, once; the dispatcher retries.
    async fn send(&self, message: &Notification) -> Outcome;

    /// Starts listening for acknowledgements on the channel, if it can receive them; the
    /// daemon aborts the returned task when the notifier is replaced (reload). Default: none.
    fn listen(&self, _acks: AckSender) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// Builds the notifier for a configuration entry.
pub fn build(
    config: &crate::config::NotifierConfig,
) -> anyhow::Result<std::sync::Arc<dyn Notifier>> {
    config.kind.build()
}
