//! `/ack/{token}`: the acknowledgement links pages carry (`crate::notify::ack_link`). A GET
//! shows a small confirmation page and changes nothing (mail scanners and chat previews open
//! links); a POST — the page's button, or ntfy's `http` action — acknowledges the one alert the
//! link names, if it is still the firing episode the link was sent for. Answers are HTML for a
//! person, with no secret in them; a link that is not valid or expired gets a 403 page.

use super::committed;
use super::page::esc;
use crate::alert::{Alert, AlertState};
use crate::daemon::core::Core;
use crate::model::{format_duration, format_utc};
use crate::notify::ack_link::{self, LinkError, LinkToken};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Core>> {
    Router::new().route("/ack/{token}", get(show).post(acknowledge))
}

/// The longest name kept from the form.
const MAX_NAME: usize = 64;

/// A checked link and the alert it names, or the page that says why not.
fn check(core: &Core, token: &str) -> Result<(LinkToken, Alert), Box<Response>> {
    let Some(links) = core.ack_links() else {
        return Err(Box::new(page(
            StatusCode::NOT_FOUND,
            "Acknowledgement links are turned off",
            "<p>This lookout does not take acknowledgements by link (<code>[api] ack_links = false</code>). \
             Acknowledge with <code>lookout ack ID</code>.</p>",
        )));
    };
    let t = match ack_link::verify(links.key(), token, core.clock.now().wall) {
        Ok(t) => t,
        Err(LinkError::Invalid) => {
            return Err(Box::new(page(
                StatusCode::FORBIDDEN,
                "This acknowledgement link is not valid",
                "<p>It was changed or cut short on its way, or it was made by another lookout (or before \
                 this one's link key was replaced). Nothing was acknowledged.</p>\
                 <p>Open the link from the page again, or run <code>lookout ack ID</code>.</p>",
            )));
        }
        Err(LinkError::Expired(at)) => {
            return Err(Box::new(page(
                StatusCode::FORBIDDEN,
                "This acknowledgement link has expired",
                &format!(
                    "<p>It worked until {}. Nothing was acknowledged.</p>\
                     <p>Use the link of a newer page, or run <code>lookout ack ID</code>.</p>",
                    format_utc(at as f64)
                ),
            )));
        }
    };
    let Some(alert) = core.alerts().into_iter().find(|a| a.id == t.alert_id) else {
        return Err(Box::new(page(
            StatusCode::NOT_FOUND,
            "Unknown alert",
            &format!(
                "<p>lookout no longer knows alert <code>{}</code> (it resolved more than a day ago, \
                 or its probe was removed). Nothing was acknowledged.</p>",
                esc(&t.alert_id)
            ),
        )));
    };
    if ack_link::generation(&alert) != t.generation {
        return Err(Box::new(page(
            StatusCode::GONE,
            "This link is for an earlier episode of the alert",
            &format!(
                "{}<p>The page with this link was sent for an episode that has ended; the alert is \
                 <b>{}</b> now. Nothing was acknowledged: use the link of the newest page, or \
                 run <code>lookout ack {}</code>.</p>",
                summary(&alert, core.clock.now().wall),
                alert.state.as_str(),
                esc(&alert.id)
            ),
        )));
    }
    Ok((t, alert))
}

/// GET: the confirmation page. Never acknowledges.
async fn show(State(core): State<Arc<Core>>, Path(token): Path<String>) -> Response {
    let (t, alert) = match check(&core, &token) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let now = core.clock.now().wall;
    if let Some(r) = settled(&alert, now) {
        return r;
    }
    page(
        StatusCode::OK,
        "Acknowledge this alert?",
        &format!(
            "{}<form method=post><p><label>Your name (optional, shown on the timeline) \
             <input name=by maxlength={MAX_NAME} autocomplete=name></label></p>\
             <p><button type=submit>Acknowledge</button></p></form>\
             <p class=note>Acknowledging stops the escalation of this alert; it pages again if it gets \
             worse, or when the acknowledgement expires while it still fires. This link works until {}.</p>",
            summary(&alert, now),
            format_utc(t.expires as f64)
        ),
    )
}

/// POST: acknowledges the alert the link names (the form's `by` says who, if given).
async fn acknowledge(
    State(core): State<Arc<Core>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, alert) = match check(&core, &token) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let now = core.clock.now().wall;
    if let Some(r) = settled(&alert, now) {
        return r;
    }
    let by = actor(form_name(&headers, &body).as_deref());
    match core.acknowledge(&alert.id, &by) {
        Ok(a) => {
            committed(&core).await;
            tracing::info!(alert = %a.id, by = %by, "acknowledged by link");
            page(
                StatusCode::OK,
                "Acknowledged",
                &format!(
                    "{}<p>Acknowledged as <b>{}</b>. The escalation stops and everyone paged so far \
                     hears who answered.</p>",
                    summary(&a, now),
                    esc(&by)
                ),
            )
        }
        Err(e) => page(
            StatusCode::CONFLICT,
            "Not acknowledged",
            &format!("{}<p>{}</p>", summary(&alert, now), esc(&e)),
        ),
    }
}

/// The page for an alert that needs no acknowledgement any more (already acknowledged,
/// resolved, …), with 200: what the person wanted is the case.
fn settled(alert: &Alert, now: f64) -> Option<Response> {
    let (title, text) = match alert.state {
        AlertState::Firing => return None,
        AlertState::Acknowledged => (
            "Already acknowledged",
            format!(
                "<p>{} acknowledged it{}. Nothing more to do.</p>",
                esc(alert.acked_by.as_deref().unwrap_or("someone")),
                alert
                    .acked_at
                    .map(|t| format!(" at {}", format_utc(t)))
                    .unwrap_or_default()
            ),
        ),
        AlertState::Resolved => (
            "Already resolved",
            format!(
                "<p>It resolved{}. Nothing to acknowledge.</p>",
                alert
                    .resolved_at
                    .map(|t| format!(" at {}", format_utc(t)))
                    .unwrap_or_default()
            ),
        ),
        other => (
            "Nothing to acknowledge",
            format!(
                "<p>The alert is {} and is not being paged.</p>",
                other.as_str()
            ),
        ),
    };
    Some(page(
        StatusCode::OK,
        title,
        &format!("{}{text}", summary(alert, now)),
    ))
}

/// The `by` field of a form POST (`application/x-www-form-urlencoded`); any other body is
/// ignored (ntfy's `http` action sends none).
fn form_name(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return None;
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "by")
        .map(|(_, v)| v.into_owned())
}

/// Who acknowledged, as the timeline and the pages say it: `alice (by link)`, or
/// `someone (by link)` without a name. The name is what the person typed: printable
/// characters only, at most 64.
pub fn actor(name: Option<&str>) -> String {
    let clean: String = name
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "someone (by link)".into()
    } else {
        format!("{clean} (by link)")
    }
}

/// What the alert is about, for a person deciding whether to acknowledge it.
fn summary(a: &Alert, now: f64) -> String {
    let labels = if a.labels.is_empty() {
        String::new()
    } else {
        let l: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("<tr><th>labels</th><td>{}</td></tr>", esc(&l.join(", ")))
    };
    let since = a
        .started_at
        .map(|s| {
            format!(
                "<tr><th>since</th><td>{} ({} ago)</td></tr>",
                format_utc(s),
                format_duration((now - s).max(0.0))
            )
        })
        .unwrap_or_default();
    format!(
        "<table><tr><th>alert</th><td>{} on {}</td></tr>\
         <tr><th>severity</th><td class={sev}>{sev}</td></tr>\
         <tr><th>state</th><td>{}</td></tr>{labels}{since}\
         <tr><th>id</th><td><code>{}</code></td></tr></table><pre>{}</pre>",
        esc(&a.rule),
        esc(&a.probe),
        a.state.as_str(),
        esc(&a.id),
        esc(a.message.trim()),
        sev = a.severity.as_str()
    )
}

/// A small HTML page, kept out of caches, frames, search engines and `Referer` headers (its
/// URL is the link).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{t} · lookout</title><style>body{{font:16px system-ui,sans-serif;margin:1.5em;max-width:40em}}\
         th,td{{text-align:left;padding:2px 10px 2px 0;vertical-align:top}}pre{{white-space:pre-wrap}}\
         .critical{{color:#c00;font-weight:bold}}.warning{{color:#a60}}.note{{color:#555;font-size:14px}}\
         button{{font-size:18px;padding:8px 24px}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_says_it_came_by_link() {
        assert_eq!(actor(Some("alice")), "alice (by link)");
        assert_eq!(actor(Some("  ")), "someone (by link)");
        assert_eq!(actor(None), "someone (by link)");
        assert_eq!(actor(Some("bob\n\u{7}x")), "bobx (by link)");
        assert_eq!(actor(Some(&"a".repeat(200))).len(), 64 + " (by link)".len());
    }

    #[test]
    fn only_a_form_body_names_someone() {
        let mut h = HeaderMap::new();
        assert_eq!(form_name(&h, b"by=alice"), None);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert_eq!(
            form_name(&h, b"x=1&by=Alice+B%C3%A9").as_deref(),
            Some("Alice Bé")
        );
        assert_eq!(form_name(&h, b""), None);
    }
}
