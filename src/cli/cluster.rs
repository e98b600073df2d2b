//! `lookout cluster status` (over the API of the node it talks to).

use super::ClusterCommand;
use super::client::Client;
use super::output::table;
use anyhow::Result;
use serde_json::Value;
use std::process::ExitCode;

/// Runs a `lookout cluster` verb against the daemon.
pub async fn run(c: &Client, cmd: ClusterCommand) -> Result<ExitCode> {
    match cmd {
        ClusterCommand::Status { json } => {
            let v = c.get("/api/v1/cluster").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", status_text(&v));
            }
            Ok(if healthy(&v) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn healthy(v: &Value) -> bool {
    v["enabled"].as_bool() == Some(true)
        && !v["leader"].is_null()
        && v["down"].as_array().is_none_or(|d| d.is_empty())
        && v["drift"].as_array().is_none_or(|d| d.is_empty())
        && v["fallback"].as_bool() != Some(true)
}

/// The human form of `GET /api/v1/cluster`.
pub fn status_text(v: &Value) -> String {
    if v["enabled"].as_bool() != Some(true) {
        return "this lookout runs alone: no [cluster] section (docs/cluster.md)\n".into();
    }
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "cluster {} on {} — this is node {} ({}); leader: {}\n",
        s("prefix"),
        v["endpoints"]
            .as_array()
            .map(|e| e
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        s("node"),
        s("role"),
        v["leader"].as_str().unwrap_or("none"),
    );
    out.push_str(&format!(
        "lease: {} ({:.1}s left of {}s)\n",
        if v["lease_valid"].as_bool() == Some(true) {
            "held"
        } else {
            "NOT held"
        },
        v["lease_left_seconds"].as_f64().unwrap_or(0.0),
        v["lease_ttl_seconds"].as_f64().unwrap_or(0.0),
    ));
    let rows: Vec<Vec<String>> = v["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            vec![
                m["name"].as_str().unwrap_or("?").to_string(),
                if m["leader"].as_bool() == Some(true) {
                    "leader".into()
                } else {
                    "member".into()
                },
                m["api"].as_str().unwrap_or("").to_string(),
                m["version"].as_str().unwrap_or("").to_string(),
                format!(
                    "{}{}",
                    m["config_hash"].as_str().unwrap_or(""),
                    if m["drift"].as_bool() == Some(true) {
                        " (drift)"
                    } else {
                        ""
                    }
                ),
            ]
        })
        .collect();
    out.push_str(&table(&["NODE", "ROLE", "API", "VERSION", "CONFIG"], &rows));
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let down = list("down");
    if !down.is_empty() {
        out.push_str(&format!(
            "down (lease expired): {} — paged as lookout_node_down\n",
            down.join(", ")
        ));
    }
    let drift = list("drift");
    if !drift.is_empty() {
        out.push_str(&format!(
            "warning: configuration drift: {} run a different configuration\n",
            drift.join(", ")
        ));
    }
    if v["fallback"].as_bool() == Some(true) {
        out.push_str("FALLBACK: etcd unreachable; this node pages its own critical alerts\n");
    }
    if let Some(e) = v["last_error"].as_str() {
        out.push_str(&format!("last etcd error: {e}\n"));
    }
    out
}
