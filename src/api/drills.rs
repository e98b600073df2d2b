//! `/api/v1/drills`: the configured drills with their last results, and starting a run.
//!
//! `POST /api/v1/drills/{name}/run` answers at once with `202 Accepted` and the run's id; the
//! client polls `GET /api/v1/drills/{name}` until `last.run` is that id (a drill can last
//! minutes: no request is held open that long, and a dropped connection loses nothing).

use super::{actor, authorized, error, optional_json, unauthorized};
use crate::daemon::core::Core;
use crate::drill::runner::{self, StartError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/api/v1/drills", get(list))
        .route("/api/v1/drills/{name}", get(one))
        .route("/api/v1/drills/{name}/run", post(run))
}

async fn list(State(core): State<Arc<Core>>) -> impl IntoResponse {
    Json(core.drills.list(core.clock.now().mono))
}

async fn one(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    match core
        .drills
        .list(core.clock.now().mono)
        .into_iter()
        .find(|d| d.name == name)
    {
        Some(d) => Json(d).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no drill named {name:?}")),
    }
}

#[derive(Deserialize, Default)]
struct RunBody {
    by: Option<String>,
}

async fn run(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&core, &headers) {
        return unauthorized();
    }
    let body = match optional_json::<RunBody>(&headers, &body) {
        Ok(b) => b,
        Err(e) => return *e,
    };
    let by = actor(body.and_then(|b| b.by));
    match runner::start(&core, &name, &by) {
        Ok(started) => (StatusCode::ACCEPTED, Json(started)).into_response(),
        Err(e @ StartError::Unknown(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ StartError::Running(_)) => error(StatusCode::CONFLICT, e.to_string()),
    }
}
