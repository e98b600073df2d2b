//! The pure half of the `http` probe: conditions on an answer, certificate dates, and texts
//! that never show a query string, user info or header value.

use super::JsonCheck;
use crate::model::{Status, format_bytes, format_duration};
use serde_json::Value;

/// Sample names of the `http` probe.
pub mod samples {
    /// The response's status code.
    pub const STATUS_CODE: &str = "http.status_code";
    /// Seconds from the start of the request to the end of the body.
    pub const DURATION: &str = "http.duration_seconds";
    /// Bytes of body received.
    pub const BODY_BYTES: &str = "http.body_bytes";
    /// Seconds until the server's TLS certificate expires (negative once expired).
    pub const CERT_EXPIRES_IN: &str = "http.cert_expires_in_seconds";
}

/// Bytes of the body kept for `body_contains` and `json` (the rest is counted, not kept).
pub const MAX_BODY_KEPT: usize = 1 << 20;

/// The conditions of one probe, defaults filled in (seconds as floats).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions {
    /// Accepted status codes; empty means any 2xx.
    pub expected_status: Vec<u16>,
    /// Text the body must contain.
    pub body_contains: Option<String>,
    /// Values the JSON body must hold.
    pub json: Vec<JsonCheck>,
    /// Warning above this many seconds.
    pub warning_latency: Option<f64>,
    /// Critical above this many seconds.
    pub critical_latency: Option<f64>,
    /// Warning when the certificate expires within this many seconds.
    pub cert_warning_within: f64,
    /// Critical when the certificate expires within this many seconds.
    pub cert_critical_within: f64,
}

/// What came back from the server.
#[derive(Clone, Debug)]
pub struct Answer<'a> {
    /// Status code.
    pub status: u16,
    /// The start of the body (at most [`MAX_BODY_KEPT`] bytes).
    pub body: &'a [u8],
    /// Bytes of body received in all.
    pub body_bytes: u64,
    /// Seconds the whole exchange took.
    pub seconds: f64,
    /// Seconds until the certificate expires, for TLS.
    pub cert_expires_in: Option<f64>,
}

/// Judges an answer to the request `target` (`GET https://…`): the status and the message.
/// A problem comes first (`HTTP 503 Service Unavailable, expected 2xx (GET https://shop/ in
/// 12ms, 1.2 KiB)`), so a page's first words are the finding; an answer that is fine reads
/// `GET https://shop/: HTTP 200 OK in 12ms, 1.2 KiB`.
pub fn judge(c: &Conditions, a: &Answer<'_>, target: &str) -> (Status, String) {
    let mut status = Status::Ok;
    let timing = format!(
        "in {}, {}",
        format_duration(a.seconds),
        format_bytes(a.body_bytes as f64)
    );
    let mut notes = String::new();
    let status_ok = if c.expected_status.is_empty() {
        (200..300).contains(&a.status)
    } else {
        c.expected_status.contains(&a.status)
    };
    let mut problems = Vec::new();
    if !status_ok {
        status = Status::Critical;
        let expected = if c.expected_status.is_empty() {
            "2xx".to_string()
        } else {
            c.expected_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let mut p = format!("expected {expected}");
        if !a.body.is_empty() {
            p.push_str(&format!("; the body starts {}", snippet(a.body, 120)));
        }
        problems.push(p);
    } else {
        if let Some(want) = &c.body_contains
            && !contains(a.body, want.as_bytes())
        {
            status = Status::Critical;
            problems.push(format!(
                "the body does not contain {}; it starts {}",
                snippet(want.as_bytes(), 60),
                snippet(a.body, 120)
            ));
        }
        if !c.json.is_empty() {
            match serde_json::from_slice::<Value>(a.body) {
                Err(e) => {
                    status = Status::Critical;
                    problems.push(format!(
                        "the body is not JSON ({e}); it starts {}",
                        snippet(a.body, 120)
                    ));
                }
                Ok(doc) => {
                    for check in &c.json {
                        if let Some(p) = json_problem(check, &doc) {
                            status = Status::Critical;
                            problems.push(p);
                        }
                    }
                }
            }
        }
    }
    for (limit, level) in [
        (c.critical_latency, Status::Critical),
        (c.warning_latency, Status::Warning),
    ] {
        if let Some(limit) = limit
            && a.seconds > limit
        {
            status = status.max(level);
            problems.push(format!(
                "slower than the {} latency {}",
                level.as_str(),
                format_duration(limit)
            ));
            break;
        }
    }
    if let Some(left) = a.cert_expires_in {
        let level = if left <= c.cert_critical_within {
            Status::Critical
        } else if left <= c.cert_warning_within {
            Status::Warning
        } else {
            Status::Ok
        };
        status = status.max(level);
        let when = cert_words(left);
        if level == Status::Ok {
            notes.push_str(&format!("; the TLS certificate {when}"));
        } else {
            problems.push(format!("the TLS certificate {when}"));
        }
    }
    let line = status_line(a.status);
    if problems.is_empty() {
        return (status, format!("{target}: {line} {timing}{notes}"));
    }
    let finding = problems.join("; ");
    let text = if status_ok {
        format!("{finding} ({target}: {line} {timing}){notes}")
    } else {
        // The status is the finding: `HTTP 500 Internal Server Error, expected 2xx; …`.
        format!("{line}, {finding} ({target} {timing}){notes}")
    };
    (status, text)
}

/// `HTTP 503 Service Unavailable`.
pub fn status_line(code: u16) -> String {
    match reqwest::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {code} {reason}"),
        None => format!("HTTP {code}"),
    }
}

fn cert_words(left: f64) -> String {
    if left > 0.0 {
        format!("expires in {}", format_duration(left))
    } else {
        format!("expired {} ago", format_duration(-left))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// What is wrong with one JSON check, if anything.
pub fn json_problem(check: &JsonCheck, doc: &Value) -> Option<String> {
    let Some(found) = doc.pointer(&check.pointer) else {
        return Some(format!("JSON {} is missing", shown_pointer(&check.pointer)));
    };
    let want = check.equals.as_ref()?;
    if json_equal(found, want) {
        None
    } else {
        Some(format!(
            "JSON {} is {}, expected {}",
            shown_pointer(&check.pointer),
            short_json(found),
            short_json(want)
        ))
    }
}

fn shown_pointer(p: &str) -> &str {
    if p.is_empty() {
        "(the whole document)"
    } else {
        p
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// Bytes as a quoted, escaped string of at most `max_chars` characters (then `…`).
pub fn snippet(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// `scheme://host:port/path` of a URL: no user info, query or fragment (they may hold tokens).
pub fn safe_url(u: &reqwest::Url) -> String {
    let host = u.host_str().unwrap_or("?");
    match u.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}{}", u.scheme(), u.path()),
        None => format!("{}://{host}{}", u.scheme(), u.path()),
    }
}

/// Unix seconds at which a DER certificate stops being valid (its `notAfter`).
pub fn cert_not_after(der: &[u8]) -> Result<i64, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("cannot read the server's certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: &'static str, seconds: f64) -> Answer<'static> {
        Answer {
            status,
            body: body.as_bytes(),
            body_bytes: body.len() as u64,
            seconds,
            cert_expires_in: None,
        }
    }

    fn conditions() -> Conditions {
        Conditions {
            cert_warning_within: 14.0 * 86400.0,
            cert_critical_within: 3.0 * 86400.0,
            ..Conditions::default()
        }
    }

    #[test]
    fn answers_are_judged_by_every_condition() {
        let json_ok = vec![JsonCheck {
            pointer: "/status".into(),
            equals: Some(json!("ok")),
        }];
        let cases: Vec<(&str, Conditions, Answer<'static>, Status, &str)> = vec![
            (
                "plain 200",
                conditions(),
                answer(200, "hi", 0.035),
                Status::Ok,
                "HTTP 200 OK in 35ms, 2 B",
            ),
            (
                "204 is 2xx",
                conditions(),
                answer(204, "", 0.01),
                Status::Ok,
                "HTTP 204 No Content",
            ),
            (
                "500",
                conditions(),
                answer(500, "boom\nstack", 0.01),
                Status::Critical,
                "HTTP 500 Internal Server Error, expected 2xx; the body starts \"boom\\nstack\" (GET http://h/ in 10ms, 10 B)",
            ),
            (
                "301 not followed",
                conditions(),
                answer(301, "", 0.01),
                Status::Critical,
                "expected 2xx",
            ),
            (
                "listed status",
                Conditions {
                    expected_status: vec![200, 401],
                    ..conditions()
                },
                answer(401, "", 0.01),
                Status::Ok,
                "HTTP 401 Unauthorized",
            ),
            (
                "unlisted 200",
                Conditions {
                    expected_status: vec![401],
                    ..conditions()
                },
                answer(200, "", 0.01),
                Status::Critical,
                "expected 401",
            ),
            (
                "body contains",
                Conditions {
                    body_contains: Some("alive".into()),
                    ..conditions()
                },
                answer(200, "I am alive", 0.01),
                Status::Ok,
                "HTTP 200 OK",
            ),
            (
                "body lacks",
                Conditions {
                    body_contains: Some("alive".into()),
                    ..conditions()
                },
                answer(200, "dead", 0.01),
                Status::Critical,
                "the body does not contain \"alive\"; it starts \"dead\"",
            ),
            (
                "json equal",
                Conditions {
                    json: json_ok.clone(),
                    ..conditions()
                },
                answer(200, r#"{"status":"ok"}"#, 0.01),
                Status::Ok,
                "HTTP 200 OK",
            ),
            (
                "json differs",
                Conditions {
                    json: json_ok.clone(),
                    ..conditions()
                },
                answer(200, r#"{"status":"degraded"}"#, 0.01),
                Status::Critical,
                "JSON /status is \"degraded\", expected \"ok\"",
            ),
            (
                "json missing",
                Conditions {
                    json: json_ok.clone(),
                    ..conditions()
                },
                answer(200, r#"{"state":"ok"}"#, 0.01),
                Status::Critical,
                "JSON /status is missing",
            ),
            (
                "not json",
                Conditions {
                    json: json_ok,
                    ..conditions()
                },
                answer(200, "<html>", 0.01),
                Status::Critical,
                "the body is not JSON",
            ),
            (
                "numbers by value",
                Conditions {
                    json: vec![JsonCheck {
                        pointer: "/n".into(),
                        equals: Some(json!(3)),
                    }],
                    ..conditions()
                },
                answer(200, r#"{"n":3.0}"#, 0.01),
                Status::Ok,
                "HTTP 200 OK",
            ),
            (
                "exists only",
                Conditions {
                    json: vec![JsonCheck {
                        pointer: "/a/0".into(),
                        equals: None,
                    }],
                    ..conditions()
                },
                answer(200, r#"{"a":[false]}"#, 0.01),
                Status::Ok,
                "HTTP 200 OK",
            ),
            (
                "slow warning",
                Conditions {
                    warning_latency: Some(0.5),
                    critical_latency: Some(2.0),
                    ..conditions()
                },
                answer(200, "", 0.7),
                Status::Warning,
                "slower than the warning latency 500ms (GET http://h/: HTTP 200 OK in 700ms, 0 B)",
            ),
            (
                "slow critical",
                Conditions {
                    warning_latency: Some(0.5),
                    critical_latency: Some(2.0),
                    ..conditions()
                },
                answer(200, "", 2.5),
                Status::Critical,
                "slower than the critical latency 2s",
            ),
        ];
        for (name, c, a, status, text) in cases {
            let (got_status, got_text) = judge(&c, &a, "GET http://h/");
            assert_eq!(got_status, status, "{name}: {got_text}");
            assert!(
                got_text.contains(text),
                "{name}: {got_text:?} lacks {text:?}"
            );
        }
    }

    #[test]
    fn certificate_expiry_sets_the_status() {
        let day = 86400.0;
        for (left, status, text) in [
            (
                60.0 * day,
                Status::Ok,
                "; the TLS certificate expires in 60d00h",
            ),
            (
                10.0 * day,
                Status::Warning,
                "the TLS certificate expires in 10d00h (GET http://h/: HTTP 200 OK",
            ),
            (
                2.0 * day,
                Status::Critical,
                "the TLS certificate expires in 2d00h (GET",
            ),
            (
                -day,
                Status::Critical,
                "the TLS certificate expired 1d00h ago (GET",
            ),
        ] {
            let a = Answer {
                cert_expires_in: Some(left),
                ..answer(200, "", 0.01)
            };
            let (s, t) = judge(&conditions(), &a, "GET http://h/");
            assert_eq!(s, status, "{t}");
            assert!(t.contains(text), "{t:?} lacks {text:?}");
            // A problem is the first thing the message says.
            assert_eq!(
                s == Status::Ok,
                t.starts_with("GET http://h/: HTTP 200 OK"),
                "{t}"
            );
        }
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        for (url, shown) in [
            (
                "https://user:pw@example.org/health?token=abc#x",
                "https://example.org:443/health",
            ),
            ("http://127.0.0.1:8080/a/b?k=v", "http://127.0.0.1:8080/a/b"),
            ("http://[::1]/", "http://[::1]:80/"),
        ] {
            let u = reqwest::Url::parse(url).unwrap();
            assert_eq!(safe_url(&u), shown);
        }
    }

    #[test]
    fn snippets_are_escaped_and_cut() {
        assert_eq!(snippet(b"a\"b\r\n", 10), "\"a\\\"b\\r\\n\"");
        assert_eq!(snippet(b"abcdef", 3), "\"abc…\"");
        assert_eq!(snippet(&[0xff, b'x'], 5), "\"\u{fffd}x\"");
    }

    #[test]
    fn certificate_dates_are_read_and_garbage_is_an_error() {
        assert!(cert_not_after(b"not a certificate").is_err());
    }
}
