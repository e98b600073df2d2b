//! `/api/v1/actions`: the configured actions, manual runs, proposals and their approval.
//! Mutating endpoints need the bearer token; every error is JSON.

use super::{actor, authorized, committed, error, optional_json, unauthorized};
use crate::daemon::core::Core;
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
        .route("/api/v1/actions", get(list))
        .route("/api/v1/actions/proposals", get(proposals))
        .route("/api/v1/actions/proposals/{id}/approve", post(approve))
        .route("/api/v1/actions/{name}/run", post(run))
}

async fn list(State(core): State<Arc<Core>>) -> impl IntoResponse {
    Json(core.actions_list())
}

async fn proposals(State(core): State<Arc<Core>>) -> impl IntoResponse {
    Json(core.proposals())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    by: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    by: Option<String>,
}

fn refused((status, message): (u16, String)) -> Response {
    error(
        StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
        message,
    )
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
    let b: RunBody = match optional_json(&headers, &body) {
        Ok(b) => b.unwrap_or_default(),
        Err(e) => return *e,
    };
    let by = actor(b.by);
    match core
        .run_action_by_hand(&name, &by, b.dry_run, b.force)
        .await
    {
        Ok(v) => {
            committed(&core).await;
            Json(v).into_response()
        }
        Err(r) => refused(r),
    }
}

async fn approve(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&core, &headers) {
        return unauthorized();
    }
    let b: ApproveBody = match optional_json(&headers, &body) {
        Ok(b) => b.unwrap_or_default(),
        Err(e) => return *e,
    };
    match core.approve_proposal(&id, &actor(b.by)) {
        Ok(p) => {
            committed(&core).await;
            Json(p).into_response()
        }
        Err(r) => refused(r),
    }
}
