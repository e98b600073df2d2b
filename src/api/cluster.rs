//! `GET /api/v1/cluster`: this node's view of its cluster (members, leader, lease, drift),
//! for `lookout cluster status` and for peers asking whether anyone still reaches etcd.

use crate::daemon::core::Core;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// The routes.
pub fn routes() -> Router<Arc<Core>> {
    Router::new().route("/api/v1/cluster", get(status))
}

async fn status(State(core): State<Arc<Core>>) -> Json<Value> {
    let Some(c) = core.cluster() else {
        return Json(json!({ "enabled": false, "lease_valid": false }));
    };
    let s = c.state();
    let now = Instant::now();
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "api": m.api,
                "version": m.version,
                "config_hash": m.config_hash,
                "started_at": m.started_at,
                "leader": s.leader.as_deref() == Some(m.name.as_str()),
                "drift": s.drift.contains(&m.name),
            })
        })
        .collect();
    Json(json!({
        "enabled": true,
        "node": c.node,
        "prefix": c.config.key_prefix(),
        "endpoints": c.config.endpoints,
        "role": s.role,
        "leader": s.leader,
        "lease_valid": s.lease.valid(now),
        "lease_left_seconds": s.lease.left(now).as_secs_f64(),
        "lease_ttl_seconds": c.config.lease_ttl.0.as_secs_f64(),
        "fallback": s.fallback,
        "config_hash": c.config_hash(),
        "members": members,
        "down": s.down,
        "drift": s.drift,
        "open_alerts": s.view.len(),
        "last_error": s.last_error,
    }))
}
