//! `/api/v1/silences` and `/api/v1/escalations`.

use super::{actor, authorized, committed, error, unauthorized};
use crate::daemon::core::Core;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/api/v1/silences", get(list).post(add))
        .route("/api/v1/silences/{id}", delete(expire))
        .route("/api/v1/escalations", get(escalations))
}

async fn list(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let now = core.clock.now().wall;
    let list: Vec<_> = core
        .silences()
        .into_iter()
        .map(|s| {
            let active = s.active(now);
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["active"] = json!(active);
            v
        })
        .collect();
    Json(list)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<String>,
    /// `2h`, `30m`, …
    duration: String,
    #[serde(default)]
    comment: String,
    author: Option<String>,
}

async fn add(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !authorized(&core, &headers) {
        return unauthorized();
    }
    let Json(b) = match body {
        Ok(b) => b,
        // 415 without `Content-Type: application/json`, 422 for JSON of the wrong shape, 400
        // for a body that is not JSON, 413 over the limit (docs/api.md).
        Err(e) => return error(e.status(), e.body_text()),
    };
    let Ok(d) = humantime::parse_duration(&b.duration) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("duration {:?} is not like 2h or 30m", b.duration),
        );
    };
    let author = actor(b.author);
    match core.add_silence(b.matchers, d.as_secs_f64(), b.comment, author) {
        Ok(s) => {
            committed(&core).await;
            Json(s).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
struct ExpireQuery {
    by: Option<String>,
}

async fn expire(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    Query(q): Query<ExpireQuery>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&core, &headers) {
        return unauthorized();
    }
    let by = actor(q.by);
    match core.expire_silence(&id, &by) {
        Ok(s) => {
            committed(&core).await;
            Json(s).into_response()
        }
        Err(e) if e.starts_with("no silence") => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn escalations(State(core): State<Arc<Core>>) -> impl IntoResponse {
    Json(core.escalations())
}
