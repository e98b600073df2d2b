//! Alertmanager's webhook payload (version "4") turned into alert conditions. Pure: the HTTP
//! edge is `api::intake`; the engine files the conditions under the pseudo probe [`SOURCE`].
//!
//! One Alertmanager alert becomes one lookout alert: rule = its `alertname` label, labels = the
//! other labels (so the lookout fingerprint is as stable as Alertmanager's own), severity from
//! the `severity` label, message from the `summary` and `description` annotations.

use super::Condition;
use crate::model::{Labels, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The pseudo probe Alertmanager alerts are filed under.
pub const SOURCE: &str = "alertmanager";

/// The rule of an alert that has no `alertname` label.
pub const UNNAMED_RULE: &str = "alertmanager_alert";

/// The webhook payload. Unknown fields are accepted (Alertmanager may add some).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// Payload version; lookout understands "4".
    pub version: Option<String>,
    /// Alertmanager's key of the group.
    #[serde(default)]
    pub group_key: String,
    /// Alerts left out because of the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// `firing` when at least one alert fires, else `resolved`.
    pub status: String,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// Labels the group is formed by.
    #[serde(default)]
    pub group_labels: Labels,
    /// Labels every alert of the group has.
    #[serde(default)]
    pub common_labels: Labels,
    /// Annotations every alert of the group has.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's own URL.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<AmAlert>,
}

/// One alert of the payload.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its identity; `alertname` names it.
    #[serde(default)]
    pub labels: Labels,
    /// `summary`, `description`, `runbook_url`, …
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// RFC 3339; the zero time `0001-01-01T00:00:00Z` while firing.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Link to the rule that raised it.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's fingerprint of the labels.
    #[serde(default)]
    pub fingerprint: String,
}

/// Decodes a request body; the error says what is wrong in words.
pub fn decode(body: &[u8]) -> Result<Payload, String> {
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
    if let Some(v) = &payload.version
        && v != "4"
    {
        return Err(format!(
            "unsupported payload version {v:?}; lookout understands version \"4\""
        ));
    }
    for (i, a) in payload.alerts.iter().enumerate() {
        if a.status != "firing" && a.status != "resolved" {
            return Err(format!(
                "alerts[{i}].status is {:?}, expected \"firing\" or \"resolved\"",
                a.status
            ));
        }
        for (field, value) in [("startsAt", &a.starts_at), ("endsAt", &a.ends_at)] {
            if let Some(v) = value
                && parse_rfc3339(v).is_none()
            {
                return Err(format!("alerts[{i}].{field} {v:?} is not an RFC 3339 time"));
            }
        }
        if a.labels.is_empty() {
            return Err(format!(
                "alerts[{i}] has no labels: an alert is identified by its labels (at least alertname); nothing of this batch was filed"
            ));
        }
    }
    Ok(payload)
}

/// The severity of a `severity` label value in the usual conventions (Prometheus rule sets,
/// PagerDuty, Opsgenie's P1–P5, syslog, Zabbix), lowercase; `None` for a value none of them uses.
pub fn default_severity(value: &str) -> Option<Severity> {
    Some(match value {
        "critical" | "crit" | "page" | "pager" | "paging" | "emergency" | "emerg" | "alert"
        | "fatal" | "disaster" | "error" | "err" | "high" | "major" | "urgent" | "p0" | "p1"
        | "p2" | "sev0" | "sev1" | "sev2" => Severity::Critical,
        "warning" | "warn" | "medium" | "moderate" | "average" | "minor" | "p3" | "sev3" => {
            Severity::Warning
        }
        "info" | "information" | "informational" | "notice" | "low" | "none" | "debug" | "p4"
        | "p5" | "sev4" | "sev5" => Severity::Info,
        _ => return None,
    })
}

/// How `severity` label values become lookout severities: `[intake.alertmanager_severities]`
/// over [`default_severity`]; the key `"*"` names the severity of unknown values and of alerts
/// without the label (default warning).
#[derive(Clone, Debug, Default)]
pub struct SeverityMap {
    custom: BTreeMap<String, Severity>,
}

/// How a label value was mapped.
#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    /// A known value (configured or conventional).
    Known(Severity),
    /// No `severity` label, or one no table names: the fallback.
    Fallback(Severity),
}

impl SeverityMap {
    /// The map of a configuration's `[intake.alertmanager_severities]` (keys any case).
    pub fn new(custom: &BTreeMap<String, Severity>) -> SeverityMap {
        SeverityMap {
            custom: custom
                .iter()
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), *v))
                .collect(),
        }
    }

    /// The severity of an alert with these labels.
    pub fn map(&self, labels: &Labels) -> Mapped {
        let fallback = self.custom.get("*").copied().unwrap_or(Severity::Warning);
        let Some(value) = labels.get("severity") else {
            return Mapped::Fallback(fallback);
        };
        let v = value.trim().to_ascii_lowercase();
        match self
            .custom
            .get(&v)
            .copied()
            .or_else(|| default_severity(&v))
        {
            Some(s) => Mapped::Known(s),
            None => Mapped::Fallback(fallback),
        }
    }
}

impl Mapped {
    /// The severity either way.
    pub fn severity(&self) -> Severity {
        match self {
            Mapped::Known(s) | Mapped::Fallback(s) => *s,
        }
    }
}

/// Where an Alertmanager alert's severity came from, for `lookout alerts` and the API:
/// `severity=page` (the label as Alertmanager sent it), or `no severity label`.
pub fn severity_source(alert: &crate::alert::Alert) -> Option<String> {
    (alert.probe == SOURCE).then(|| match alert.labels.get("severity") {
        Some(v) => format!("severity={v}"),
        None => "no severity label".to_string(),
    })
}

/// The condition of one alert at wall time `now` (unix seconds): resolved when Alertmanager
/// says so or when its `endsAt` has passed; an active one began at its `startsAt`.
pub fn condition(alert: &AmAlert, now: f64, severities: &SeverityMap) -> Condition {
    let mut labels = alert.labels.clone();
    let rule = labels
        .remove("alertname")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| UNNAMED_RULE.to_string());
    let text = |k: &str| {
        alert
            .annotations
            .get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    };
    let mut message = match (text("summary"), text("description")) {
        (Some(s), Some(d)) if s != d => format!("{s}\n{d}"),
        (Some(s), _) | (None, Some(s)) => s.to_string(),
        (None, None) => format!("{rule} is firing in Alertmanager"),
    };
    let mapped = severities.map(&alert.labels);
    if let (Mapped::Fallback(s), Some(v)) = (&mapped, alert.labels.get("severity")) {
        message.push_str(&format!(
            "\nseverity label {v:?} is not one lookout knows: paged as {s} (map it in [intake.alertmanager_severities])"
        ));
    }
    if !alert.generator_url.is_empty() {
        message.push_str(&format!("\nsource: {}", alert.generator_url));
    }
    let ended = alert
        .ends_at
        .as_deref()
        .and_then(parse_rfc3339)
        .is_some_and(|t| t > 0.0 && t <= now);
    if alert.status == "resolved" || ended {
        Condition::clear(&rule, labels, message)
    } else {
        let began = alert
            .starts_at
            .as_deref()
            .and_then(parse_rfc3339)
            .filter(|t| *t > 0.0);
        Condition::active(&rule, labels, mapped.severity(), message).since(began)
    }
}

/// Every alert's condition.
pub fn conditions(payload: &Payload, now: f64, severities: &SeverityMap) -> Vec<Condition> {
    payload
        .alerts
        .iter()
        .map(|a| condition(a, now, severities))
        .collect()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to unix seconds (negative before 1970, as
/// Go's zero time `0001-01-01T00:00:00Z` is).
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || ob[3] != b':' || !matches!(ob[0], b'+' | b'-') {
                return None;
            }
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if ob[0] == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Debian's prometheus-alertmanager 0.25 (webhook receiver, send_resolved).
    const FIRING: &str = include_str!("../../tests/fixtures/alertmanager/firing.json");
    const RESOLVED: &str = include_str!("../../tests/fixtures/alertmanager/resolved.json");

    #[test]
    fn a_captured_firing_payload_maps_to_active_conditions() {
        let p = decode(FIRING.as_bytes()).unwrap();
        assert_eq!(p.version.as_deref(), Some("4"));
        assert_eq!(p.status, "firing");
        let c = conditions(&p, 1.9e9, &SeverityMap::default());
        assert_eq!(c.len(), p.alerts.len());
        let disk = c.iter().find(|c| c.rule == "DiskFull").unwrap();
        assert_eq!(disk.severity, Some(Severity::Critical));
        assert!(!disk.labels.contains_key("alertname"));
        assert_eq!(disk.labels.get("instance").map(String::as_str), Some("db1"));
        assert!(
            disk.message.starts_with("Disk on db1 is full"),
            "{}",
            disk.message
        );
    }

    #[test]
    fn a_captured_resolved_payload_maps_to_clear_conditions() {
        let p = decode(RESOLVED.as_bytes()).unwrap();
        let c = conditions(&p, 0.0, &SeverityMap::default());
        assert!(c.iter().all(|c| c.severity.is_none()), "{c:?}");
    }

    #[test]
    fn identity_and_severity() {
        let alert = |status: &str, sev: Option<&str>, ends: &str| AmAlert {
            status: status.into(),
            labels: crate::model::labels([("alertname", "Up"), ("job", "node")])
                .into_iter()
                .chain(sev.map(|s| ("severity".to_string(), s.to_string())))
                .collect(),
            annotations: Default::default(),
            starts_at: None,
            ends_at: Some(ends.into()),
            generator_url: String::new(),
            fingerprint: String::new(),
        };
        let zero = "0001-01-01T00:00:00Z";
        let m = SeverityMap::default();
        let condition = |a: &AmAlert, now: f64| condition(a, now, &m);
        let c = condition(&alert("firing", Some("CRITICAL"), zero), 1e9);
        assert_eq!(
            (c.rule.as_str(), c.severity),
            ("Up", Some(Severity::Critical))
        );
        assert_eq!(c.message, "Up is firing in Alertmanager");
        // The usual names map by default; an unknown one is a warning and the message says so.
        for (sev, want) in [
            (Some("info"), Severity::Info),
            (Some("page"), Severity::Critical),
            (Some(" P1 "), Severity::Critical),
            (Some("P2"), Severity::Critical),
            (Some("crit"), Severity::Critical),
            (Some("error"), Severity::Critical),
            (Some("high"), Severity::Critical),
            (Some("P3"), Severity::Warning),
            (Some("warn"), Severity::Warning),
            (Some("medium"), Severity::Warning),
            (Some("low"), Severity::Info),
            (Some("none"), Severity::Info),
            (Some("P4"), Severity::Info),
            (Some("purple"), Severity::Warning),
            (None, Severity::Warning),
        ] {
            let c = condition(&alert("firing", sev, zero), 1e9);
            assert_eq!(c.severity, Some(want), "{sev:?}");
            assert_eq!(
                c.message.contains("not one lookout knows"),
                sev == Some("purple")
            );
        }
        // The table wins over the conventions; "*" names the fallback.
        let custom = SeverityMap::new(&BTreeMap::from([
            ("High".to_string(), Severity::Warning),
            ("*".to_string(), Severity::Critical),
        ]));
        for (sev, want) in [
            (Some("high"), Severity::Warning),
            (Some("purple"), Severity::Critical),
            (None, Severity::Critical),
            (Some("page"), Severity::Critical),
            (Some("low"), Severity::Info),
        ] {
            assert_eq!(
                custom.map(&alert("firing", sev, zero).labels).severity(),
                want,
                "{sev:?}"
            );
        }
        // endsAt in the past resolves even while the status still says firing.
        let ended = condition(&alert("firing", None, "2001-09-09T01:46:40Z"), 1e9 + 1.0);
        assert_eq!(ended.severity, None);
        let not_yet = condition(&alert("firing", None, "2001-09-09T01:46:40Z"), 1e9 - 1.0);
        assert!(not_yet.severity.is_some());
        assert_eq!(
            condition(&alert("resolved", None, zero), 0.0).severity,
            None
        );
    }

    #[test]
    fn bad_payloads_are_errors_in_words() {
        assert!(
            decode(b"{")
                .unwrap_err()
                .contains("not an Alertmanager webhook payload")
        );
        assert!(decode(b"[]").is_err());
        let wrong = br#"{"version":"3","status":"firing","alerts":[]}"#;
        assert!(decode(wrong).unwrap_err().contains("version \"3\""));
        let status =
            br#"{"version":"4","status":"firing","alerts":[{"status":"burning","labels":{}}]}"#;
        assert!(decode(status).unwrap_err().contains("alerts[0].status"));
        let time = br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{},"endsAt":"yesterday"}]}"#;
        assert!(decode(time).unwrap_err().contains("alerts[0].endsAt"));
        let labels =
            br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":1}}]}"#;
        assert!(decode(labels).is_err());
        let none = br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A"}},{"status":"firing","labels":{}}]}"#;
        assert!(
            decode(none)
                .unwrap_err()
                .starts_with("alerts[1] has no labels")
        );
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2001-09-09T01:46:40Z"), Some(1e9));
        assert_eq!(parse_rfc3339("2001-09-09T03:46:40+02:00"), Some(1e9));
        assert_eq!(parse_rfc3339("2001-09-09T01:46:40.25Z"), Some(1e9 + 0.25));
        assert_eq!(
            parse_rfc3339("2001-09-09T01:46:40.123456789Z").map(|t| (t - 1e9 * 1.0) > 0.12),
            Some(true)
        );
        assert!(parse_rfc3339("0001-01-01T00:00:00Z").unwrap() < 0.0);
        for bad in [
            "",
            "2001-09-09",
            "2001-13-09T01:46:40Z",
            "2001-09-09T01:46:40",
            "2001-09-09T01:46:40+2",
            "2001-09-09T01:46:40.Z",
            "２001-09-09T01:46:40Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
