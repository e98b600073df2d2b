//! The HTTP API (`/api/v1`), `/metrics`, `/healthz` and the status page.

mod ack_link;
mod actions;
mod cluster;
mod drills;
mod intake;
mod metrics;
mod page;
mod paging;

use crate::alert::AlertState;
use crate::daemon::core::Core;
use crate::rule::disk::samples;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;

/// Serves the API until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    core: Arc<Core>,
    mut stop: watch::Receiver<bool>,
) {
    let app = router(core);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the API server stopped");
    }
}

/// The routes.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{id}/ack", post(ack))
        .route("/api/v1/timeline", get(timeline))
        .route("/api/v1/forecast", get(forecast))
        .merge(ack_link::routes())
        .merge(intake::routes())
        .merge(paging::routes())
        .merge(actions::routes())
        .merge(drills::routes())
        .merge(cluster::routes())
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
        .with_state(core)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

/// The most of a non-JSON error body (axum's rejections are one line) kept as the message.
const MAX_ERROR_TEXT: usize = 16 * 1024;

/// Every error answers in JSON, in one shape (`{"error": "…", "status": N}`): axum's own
/// rejections (a body that is not JSON, a body over the limit, a bad query parameter, a
/// method the path does not take) come as plain text, and are rewritten here with their status
/// and headers kept.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // JSON errors stay as they are, and so do the HTML pages written for a person (the
    // acknowledgement links' 403 and 404 pages).
    let keep = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if keep {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let json = error(status, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (jparts, jbody) = json.into_parts();
    parts.headers.extend(jparts.headers);
    Response::from_parts(parts, jbody)
}

async fn healthz(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let store = core.store.health();
    Json(json!({"status": "ok", "store_ok": store.ok}))
}

async fn status(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let alerts = core.alerts();
    let open = alerts.iter().filter(|a| a.state.is_open()).count();
    Json(json!({
        "probes": core.snapshots(),
        "open_alerts": open,
        "store": core.store.health(),
        "drills": core.drills.last_results(),
    }))
}

#[derive(Deserialize)]
struct AlertsQuery {
    #[serde(default)]
    all: bool,
}

async fn alerts(State(core): State<Arc<Core>>, Query(q): Query<AlertsQuery>) -> impl IntoResponse {
    let mut list: Vec<_> = core
        .alerts()
        .into_iter()
        .filter(|a| q.all || a.state != AlertState::Resolved)
        .collect();
    list.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(
            a.started_at
                .partial_cmp(&b.started_at)
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    // A silenced alert still shows, with what keeps it from being paged.
    let now = core.clock.now().wall;
    let list: Vec<serde_json::Value> = list
        .into_iter()
        .map(|a| {
            let muted = a.state.is_open().then(|| core.muted_by(&a, now)).flatten();
            let mut v = serde_json::to_value(&a).unwrap_or_default();
            // Since when the alert is in its current episode: firing (or suppressed) since
            // `started_at`; a pending one, which has no start yet, since its condition held.
            v["since"] = json!(alert_since(&a));
            if let Some(m) = muted {
                v["silenced_by"] = json!(m);
            }
            if let Some(s) = crate::rule::alertmanager::severity_source(&a) {
                v["severity_source"] = json!(s);
            }
            v
        })
        .collect();
    Json(list)
}

/// Since when an open alert is in its current episode (`None` once resolved): `started_at`,
/// or `pending_since` while it is pending.
pub fn alert_since(a: &crate::alert::Alert) -> Option<f64> {
    match a.state {
        AlertState::Resolved => None,
        // A new episode: `started_at` may still be the last one's.
        AlertState::Pending => a.pending_since,
        _ => a.started_at.or(a.pending_since),
    }
}

#[derive(Deserialize, Default)]
struct AckBody {
    by: Option<String>,
}

/// Whether the request carries the API bearer token.
fn authorized(core: &Core, headers: &HeaderMap) -> bool {
    bearer_matches(headers, &core.api_token)
}

/// Whether `Authorization: Bearer …` carries `expected` (constant-time comparison).
fn bearer_matches(headers: &HeaderMap, expected: &crate::config::Secret) -> bool {
    use subtle::ConstantTimeEq;
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given.as_bytes().ct_eq(expected.expose().as_bytes()).into()
}

/// Waits (at most 2 s) until what an operator just did is committed, so a crash right after
/// the answer cannot lose it. A failing store does not hold the answer back: lookout then
/// works from memory and alerts about its store.
async fn committed(core: &Core) {
    let store = core.store.clone();
    let _ =
        tokio::task::spawn_blocking(move || store.flush(std::time::Duration::from_secs(2))).await;
}

/// An error answer: `{"error": "what went wrong", "status": N}` (docs/api.md).
/// The 401 answer of every endpoint that needs the API token.
fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (see STATE_DIR/api-token or [api] token)",
    )
}

/// Who did it: the `by` a client gave, else `api`.
fn actor(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "api".into())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": message.into(), "status": status.as_u16()})),
    )
        .into_response()
}

/// An optional JSON body: `None` when empty; else it must be sent as
/// `Content-Type: application/json` (415) and be JSON (400) of the right shape (422).
fn optional_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<T>, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !json {
        return Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        )));
    }
    Json::<T>::from_bytes(body)
        .map(|Json(b)| Some(b))
        .map_err(|e| Box::new(error(e.status(), e.body_text())))
}

async fn ack(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&core, &headers) {
        return unauthorized();
    }
    let body = match optional_json::<AckBody>(&headers, &body) {
        Ok(b) => b,
        Err(e) => return *e,
    };
    let by = actor(body.and_then(|b| b.by));
    match core.acknowledge(&id, &by) {
        Ok(alert) => {
            committed(&core).await;
            Json(alert).into_response()
        }
        Err(e) if e.starts_with("no alert") => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

#[derive(Deserialize)]
struct TimelineQuery {
    since: Option<String>,
    limit: Option<usize>,
}

async fn timeline(State(core): State<Arc<Core>>, Query(q): Query<TimelineQuery>) -> Response {
    let span = match q
        .since
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
    {
        Ok(d) => d.unwrap_or(std::time::Duration::from_secs(86_400)),
        Err(_) => return error(StatusCode::BAD_REQUEST, "since must be a duration like 24h"),
    };
    let since = core.clock.now().wall - span.as_secs_f64();
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let dir = core.state_dir.clone();
    let stored = tokio::task::spawn_blocking(move || {
        crate::store::open_read_only(&dir)
            .and_then(|c| crate::store::load_timeline(&c, since, limit))
    })
    .await;
    match stored {
        Ok(Ok(entries)) => {
            // Entries not yet committed are in memory: merge them in, by sequence (a wall
            // clock stepped back must not hide them).
            let mut all = entries;
            let last = all.last().map(|e| e.seq).unwrap_or(i64::MIN);
            all.extend(
                core.recent_timeline_rows(since)
                    .into_iter()
                    .filter(|e| e.seq > last),
            );
            Json(all).into_response()
        }
        _ => Json(core.recent_timeline_rows(since)).into_response(),
    }
}

/// One filesystem's forecast, as `lookout forecast` prints it.
#[derive(Serialize)]
pub struct ForecastRow {
    /// Probe id.
    pub probe: String,
    /// Mount point.
    pub mount: String,
    /// Size in bytes.
    pub size_bytes: f64,
    /// Available to unprivileged users.
    pub avail_bytes: f64,
    /// Held back for root.
    pub reserved_bytes: f64,
    /// Consumption in bytes per second, when estimated.
    pub growth_bytes_per_second: Option<f64>,
    /// Seconds until full, when estimated.
    pub eta_seconds: Option<f64>,
    /// The forecast in words.
    pub message: String,
}

async fn forecast(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let mut rows = Vec::new();
    for snap in core.snapshots().into_iter().filter(|s| s.kind == "disk") {
        let obs = &snap.observation;
        for s in obs.samples.iter().filter(|s| s.name == samples::SIZE) {
            let get = |n: &str| obs.sample(n, &s.labels);
            let mount = s.labels.get("mount").cloned().unwrap_or_default();
            let message = obs
                .message
                .lines()
                .find(|l| l.starts_with(&format!("{mount}:")))
                .unwrap_or("")
                .to_string();
            rows.push(ForecastRow {
                probe: snap.id.clone(),
                mount,
                size_bytes: s.value,
                avail_bytes: get(samples::AVAIL).unwrap_or(0.0),
                reserved_bytes: get(samples::RESERVED).unwrap_or(0.0),
                growth_bytes_per_second: get(samples::GROWTH),
                eta_seconds: get(samples::ETA),
                message,
            });
        }
    }
    Json(rows)
}
