//! Alerts pushed to lookout: Alertmanager's webhook (`POST /api/v1/alertmanager`) and inbound
//! heartbeats (`/api/v1/heartbeat/{name}[/start|/fail|/{exit-code}]`). Both file their alerts
//! in the same engine as the probes, so they reach the timeline and the notifiers alike.

use super::{bearer_matches, error};
use crate::alert::AlertEventKind;
use crate::daemon::core::Core;
use crate::rule::alertmanager;
use crate::rule::heartbeat::Ping;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// The largest Alertmanager payload accepted (a group of thousands of alerts fits).
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// The intake routes.
pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route(
            "/api/v1/alertmanager",
            axum::routing::post(alertmanager).layer(DefaultBodyLimit::max(MAX_PAYLOAD)),
        )
        .route("/api/v1/heartbeat/{name}", get(beat).post(beat))
        .route(
            "/api/v1/heartbeat/{name}/{suffix}",
            get(beat_with).post(beat_with),
        )
}

async fn alertmanager(State(core): State<Arc<Core>>, headers: HeaderMap, body: Bytes) -> Response {
    let intake = core.intake_tokens();
    if let Some(token) = intake.alertmanager
        && !bearer_matches(&headers, &token)
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (set http_config.authorization.credentials in Alertmanager to [intake] alertmanager_token)",
        );
    }
    let payload = match alertmanager::decode(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if payload.truncated_alerts > 0 {
        tracing::warn!(
            truncated = payload.truncated_alerts,
            receiver = %payload.receiver,
            "Alertmanager left alerts out of a notification (max_alerts)"
        );
    }
    let conds = alertmanager::conditions(
        &payload,
        core.clock.now().wall,
        &intake.alertmanager_severities,
    );
    let events = core.set_external(alertmanager::SOURCE, conds);
    let count = |f: fn(&AlertEventKind) -> bool| events.iter().filter(|e| f(&e.kind)).count();
    Json(json!({
        "alerts": payload.alerts.len(),
        "fired": count(|k| matches!(k, AlertEventKind::Firing)),
        "resolved": count(|k| matches!(k, AlertEventKind::Resolved)),
        "changed": count(|k| matches!(k, AlertEventKind::SeverityChanged { .. })),
    }))
    .into_response()
}

async fn beat(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    ping(&core, &name, None, &headers)
}

async fn beat_with(
    State(core): State<Arc<Core>>,
    Path((name, suffix)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    ping(&core, &name, Some(&suffix), &headers)
}

fn ping(core: &Core, name: &str, suffix: Option<&str>, headers: &HeaderMap) -> Response {
    let Some(ping) = Ping::parse(suffix) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown heartbeat action: use /start, /fail or an exit code 0-255",
        );
    };
    if let Some(token) = core.intake_tokens().heartbeats.get(name)
        && !bearer_matches(headers, token)
    {
        return error(
            StatusCode::UNAUTHORIZED,
            format!("heartbeat {name} needs its bearer token"),
        );
    }
    let known = core.with_heartbeats(|h, now| match h.ping(name, &ping, now) {
        Some(conds) => (true, conds),
        None => (false, Vec::new()),
    });
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            format!("no heartbeat named {name:?} is configured (add a [[heartbeat]])"),
        );
    }
    tracing::debug!(heartbeat = name, ping = ping.as_str(), "heartbeat");
    Json(json!({"heartbeat": name, "ping": ping.as_str()})).into_response()
}
