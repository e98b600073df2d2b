//! Plain-text rendering shared by the human-facing notifiers (email, ntfy, Slack), and the
//! scrubbing of secrets from error texts that echo a server's or a child's words.

use super::Notification;
use crate::config::values::Secret;
use crate::model::format_utc;

/// The lines every human-facing message carries: the full message, labels, id, times and how to
/// acknowledge.
pub fn details(n: &Notification) -> String {
    let mut out = facts(n);
    if let Some(ack) = how_to_acknowledge(n) {
        out.push_str(&ack);
    }
    out
}

/// How to acknowledge a page of a firing alert: its link (when the page has one) and the
/// command; `None` for resolutions, acknowledgements and test pages.
pub fn how_to_acknowledge(n: &Notification) -> Option<String> {
    if !matches!(n.event.as_str(), "firing" | "severity_changed") {
        return None;
    }
    let id = &n.alert.id;
    Some(match &n.ack_link {
        Some(link) => format!(
            "Acknowledge: {}\n  (opens a confirmation page; the link works until {})\nOr run:      lookout ack {id}\n",
            link.url, link.expires_at
        ),
        None => format!("Acknowledge: lookout ack {id}\n"),
    })
}

/// [`details`] without how to acknowledge: the message, labels, id and times.
pub fn facts(n: &Notification) -> String {
    let a = &n.alert;
    let mut out = String::new();
    let message = a.message.trim();
    if !message.is_empty() {
        out.push_str(message);
        out.push_str("\n\n");
    }
    out.push_str(&format!("Alert:    {} on {}\n", a.rule, a.probe));
    out.push_str(&format!(
        "Severity: {}   State: {}\n",
        a.severity.as_str(),
        n.event
    ));
    if !a.labels.is_empty() {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("Labels:   {}\n", labels.join(", ")));
    }
    if let Some(started) = a.started_at {
        out.push_str(&format!("Since:    {}\n", format_utc(started)));
    }
    if let Some(stale) = &a.stale {
        out.push_str(&format!("Evidence: {}\n", stale.describe()));
    }
    out.push_str(&format!("Event at: {}\n", n.at));
    out.push_str(&format!("Alert id: {}\n", a.id));
    out
}

/// Replaces every occurrence of a secret's value in `text` with `<secret>` (servers and
/// scripts sometimes echo what they were sent).
pub fn redact<'a>(text: String, secrets: impl IntoIterator<Item = &'a Secret>) -> String {
    let mut text = text;
    for s in secrets {
        let v = s.expose();
        if v.len() >= 3 && text.contains(v) {
            text = text.replace(v, "<secret>");
        }
    }
    text
}

/// A secret URL and the parts of it a server may echo on its own: the path with the query, and
/// every path segment or query value of 16 characters or more (the usual shape of a token).
pub fn url_secrets(url: &Secret) -> Vec<Secret> {
    let mut out = vec![url.clone()];
    let v = url.expose();
    let after_scheme = v.split_once("://").map(|(_, r)| r).unwrap_or(v);
    if let Some(slash) = after_scheme.find('/') {
        let path = &after_scheme[slash..];
        if path.len() > 1 {
            out.push(Secret::new(path));
        }
        for part in path.split(['/', '?', '&', '=', '#']) {
            if part.len() >= 16 {
                out.push(Secret::new(part));
            }
        }
    }
    out
}

/// The first `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::{Alert, AlertState};
    use crate::model::Severity;

    /// A firing critical notification for unit tests.
    pub fn sample(event: &str) -> Notification {
        let alert: Alert = serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef",
            "rule": "disk_full",
            "probe": "root",
            "labels": {"mount": "/"},
            "state": "firing",
            "severity": "critical",
            "message": "/ is full in 2h\nsecond line",
            "value": null,
            "started_at": 1_700_000_000.0,
            "changed_at": 1_700_000_000.0,
            "resolved_at": null,
            "acked_by": null,
            "acked_at": null,
            "pending_since": null,
            "active_streak": 1,
            "inactive_streak": 0,
            "sequence": 1
        }))
        .expect("a valid alert");
        assert_eq!(alert.state, AlertState::Firing);
        assert_eq!(alert.severity, Severity::Critical);
        Notification {
            version: 1,
            event: event.into(),
            dedup_key: "0123456789abcdef:1".into(),
            summary: "[CRITICAL] / is full in 2h | disk_full on root".into(),
            at: "2023-11-14T22:13:20Z".into(),
            alert,
            ack_link: None,
            node: None,
        }
    }

    #[test]
    fn details_carry_everything_a_responder_needs() {
        let d = details(&sample("firing"));
        for want in [
            "/ is full in 2h\nsecond line",
            "mount=/",
            "0123456789abcdef",
            "2023-11-14T22:13:20Z",
            "lookout ack 0123456789abcdef",
        ] {
            assert!(d.contains(want), "{want} missing from:\n{d}");
        }
        assert!(!details(&sample("resolved")).contains("lookout ack"));
    }

    #[test]
    fn a_stale_alert_says_its_evidence_cannot_be_read() {
        let mut n = sample("firing");
        assert!(!details(&n).contains("Evidence:"));
        n.alert.stale = Some(crate::alert::Staleness {
            since: 1_700_000_000.0,
            reason: "127.0.0.1:5432: connection refused".into(),
        });
        let d = details(&n);
        assert!(
            d.contains(
                "Evidence: stale since 2023-11-14T22:13:20Z: 127.0.0.1:5432: connection refused"
            ),
            "{d}"
        );
    }

    #[test]
    fn a_page_with_a_link_offers_it_before_the_command() {
        let mut n = sample("firing");
        n.ack_link = Some(crate::notify::ack_link::AckLink {
            url: "https://ops.example/ack/0123456789abcdef.1.2.SIG".into(),
            expires_at: "2023-11-15T22:13:20Z".into(),
        });
        let d = details(&n);
        assert!(
            d.ends_with(
                "Acknowledge: https://ops.example/ack/0123456789abcdef.1.2.SIG\n  (opens a confirmation page; the link works until 2023-11-15T22:13:20Z)\nOr run:      lookout ack 0123456789abcdef\n"
            ),
            "{d}"
        );
        n.event = "resolved".into();
        assert!(
            !details(&n).contains("/ack/"),
            "a resolution offers no link"
        );
    }

    #[test]
    fn redaction_and_truncation() {
        let s = Secret::new("hunter2");
        assert_eq!(
            redact("key hunter2 rejected".into(), [&s]),
            "key <secret> rejected"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        let url = Secret::new("https://hooks.slack.com/services/T0/B0/abcdefghijklmnopqrstuvwx");
        let parts = url_secrets(&url);
        assert_eq!(
            redact(
                "POST /services/T0/B0/abcdefghijklmnopqrstuvwx failed".into(),
                &parts
            ),
            "POST <secret> failed"
        );
        assert_eq!(
            redact("token abcdefghijklmnopqrstuvwx".into(), &parts),
            "token <secret>"
        );
        assert_eq!(truncate("abc", 4), "abc");
    }
}
