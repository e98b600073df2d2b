//! The plain HTML status page at `/` (the full web page with charts is a later issue).

use super::Html;
use crate::daemon::core::Core;
use crate::model::{format_duration, format_utc};
use axum::extract::State;
use std::fmt::Write;
use std::sync::Arc;

/// `s` escaped for HTML text and attribute values.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the page.
pub async fn index(State(core): State<Arc<Core>>) -> Html<String> {
    let now = core.clock.now().wall;
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=10><title>lookout</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
         .ok{color:#070}.warning{color:#a60}.critical{color:#c00;font-weight:bold}.unknown{color:#666}pre{margin:0;white-space:pre-wrap}tr.silenced td{color:#777;background:#f3f3f3}tr.silenced td.critical,tr.silenced td.warning{font-weight:normal;text-decoration:line-through}</style></head><body><h1>lookout</h1>",
    );
    let alerts: Vec<_> = core
        .alerts()
        .into_iter()
        .filter(|a| a.state.is_open())
        .collect();
    let muted: Vec<Option<String>> = alerts.iter().map(|a| core.muted_by(a, now)).collect();
    let silenced = muted.iter().filter(|m| m.is_some()).count();
    let _ = write!(h, "<h2>Alerts ({})</h2>", alerts.len());
    if silenced > 0 {
        let _ = write!(
            h,
            "<p>{silenced} of them silenced: shown greyed, nobody is paged for them.</p>"
        );
    }
    if alerts.is_empty() {
        h.push_str("<p class=ok>No open alerts.</p>");
    } else {
        h.push_str("<table><tr><th>severity</th><th>state</th><th>alert</th><th>since</th><th>message</th><th>id</th></tr>");
        for (a, muted) in alerts.iter().zip(&muted) {
            let since = a
                .started_at
                .map(|s| format!("{} ({} ago)", format_utc(s), format_duration(now - s)))
                .unwrap_or_default();
            let (row, state, note) = match muted {
                Some(by) => (
                    " class=silenced",
                    format!("{}, silenced", a.state.as_str()),
                    format!("<p><b>silenced</b> ({}): nobody is paged</p>", esc(by)),
                ),
                None => ("", a.state.as_str().to_string(), String::new()),
            };
            let _ = write!(
                h,
                "<tr id=\"alert-{id}\"{row}><td class={sev}>{sev}</td><td>{state}</td><td>{} on {}</td><td>{}</td><td>{note}<pre>{}</pre></td><td><code>{id}</code></td></tr>",
                esc(&a.rule),
                esc(&a.probe),
                since,
                esc(&a.message),
                id = esc(&a.id),
                sev = a.severity.as_str()
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Probes</h2><table><tr><th>probe</th><th>kind</th><th>status</th><th>last run</th><th>message</th></tr>");
    let snaps = core.snapshots();
    for (id, kind) in core
        .probe_kinds()
        .iter()
        .filter(|(id, _)| !snaps.iter().any(|s| &s.id == *id))
    {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{kind}</td><td class=unknown>not run yet</td><td></td><td></td></tr>",
            esc(id)
        );
    }
    for s in snaps {
        let st = s.observation.status.as_str();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class={st}>{st}</td><td>{} ago</td><td><pre>{}</pre></td></tr>",
            esc(&s.id),
            s.kind,
            format_duration(now - s.at),
            esc(&s.observation.message)
        );
    }
    h.push_str("</table><h2>Timeline (last 24 h)</h2><table>");
    for e in core.recent_timeline(now - 86_400.0).iter().rev().take(50) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            format_utc(e.ts),
            esc(&e.message)
        );
    }
    h.push_str("</table><p><a href=/metrics>/metrics</a> · <a href=/api/v1/status>/api/v1/status</a></p></body></html>");
    Html(h)
}
