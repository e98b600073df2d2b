//! `lookout action list|run|approve`: remediation actions through the running daemon's API.

use super::client::Client;
use super::output::table;
use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};
use std::process::ExitCode;

/// `lookout action …`.
#[derive(Subcommand, Debug)]
pub enum ActionCommand {
    /// List the configured actions: kind, mode, binding, every guard with its value, the last
    /// run, runs in the window and what the action is doing now; then open proposals.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run an action now through the daemon. Its guards (all but the delay) still apply:
    /// cooldown, max runs per window, preconditions; `mode = "ask"` does not (you are the
    /// approval). Exit 1 when it was refused or failed.
    Run {
        /// The action's name.
        name: String,
        /// Who runs it (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Only record what would run.
        #[arg(long)]
        dry_run: bool,
        /// Run even when a guard says no (and when `mode = "dry_run"`).
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a proposed run (`mode = "ask"`), by id or unique prefix.
    Approve {
        /// The proposal id (16 hex digits, or a unique prefix).
        id: String,
        /// Who approves (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

use super::paging::who;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// Runs an `action` verb.
pub async fn run(c: &Client, cmd: ActionCommand) -> Result<ExitCode> {
    match cmd {
        ActionCommand::List { json } => {
            let actions = c.get("/api/v1/actions").await?;
            let proposals = c.get("/api/v1/actions/proposals").await?;
            if json {
                let v = json!({"actions": actions, "proposals": proposals});
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = actions
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let g = &a["guards"];
                    let on = a["on"]
                        .as_object()
                        .filter(|o| !o.is_empty())
                        .map(|o| {
                            o.iter()
                                .map(|(k, v)| format!("{k}={}", s(v)))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_else(|| "(by hand only)".into());
                    let last = if a["last_run"].is_null() {
                        "never".to_string()
                    } else {
                        let l = &a["last_run"];
                        format!(
                            "{} {} by {}: {}",
                            crate::model::format_utc(l["at"].as_f64().unwrap_or(0.0)),
                            if l["ok"] == true { "ok" } else { "failed" },
                            s(&l["by"]),
                            s(&l["summary"])
                        )
                    };
                    vec![
                        s(&a["name"]),
                        s(&a["kind"]),
                        s(&a["mode"]),
                        on,
                        format!(
                            "{}/{}",
                            a["runs_in_window"], g["max_runs"]
                        ),
                        format!(
                            "delay {}, require_ok {} for {}, cooldown {}, max_runs {} per {}, post_check {} within {}, ask_deadline {}, timeout {}\nwould run: {}\nlast run: {last}\nstate: {}",
                            s(&g["delay"]),
                            s(&g["require_ok"]),
                            s(&g["require_ok_for"]),
                            s(&g["cooldown"]),
                            g["max_runs"],
                            s(&g["window"]),
                            g["post_check"],
                            s(&g["post_check_within"]),
                            s(&g["ask_deadline"]),
                            s(&g["timeout"]),
                            s(&a["would_run"]),
                            s(&a["state"]),
                        ),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no actions are configured ([[action]] in the configuration)");
            } else {
                print!(
                    "{}",
                    table(&["ACTION", "KIND", "MODE", "ON", "RUNS", "GUARDS"], &rows)
                );
            }
            for p in proposals.as_array().into_iter().flatten() {
                println!(
                    "proposal {}: {} would run {} for {}; expires {}; approve: lookout action approve {}",
                    s(&p["id"]),
                    s(&p["action"]),
                    s(&p["would_run"]),
                    s(&p["alert"]),
                    crate::model::format_utc(p["deadline"].as_f64().unwrap_or(0.0)),
                    s(&p["id"]),
                );
            }
        }
        ActionCommand::Run {
            name,
            by,
            dry_run,
            force,
            json,
        } => {
            let v = c
                .post(
                    &format!("/api/v1/actions/{name}/run"),
                    json!({"by": who(by), "dry_run": dry_run, "force": force}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v["ran"] == false {
                println!(
                    "{name}: dry run: would run {}; nothing ran",
                    s(&v["would_run"])
                );
            } else {
                println!("{name}: {}", s(&v["summary"]));
                let tail = s(&v["output_tail"]);
                if !tail.trim().is_empty() && tail != "-" {
                    println!("{}", tail.trim_end());
                }
            }
            if v["ok"] == false {
                return Ok(ExitCode::from(1));
            }
        }
        ActionCommand::Approve { id, by, json } => {
            let by = who(by);
            let v = c
                .post(
                    &format!("/api/v1/actions/proposals/{id}/approve"),
                    json!({"by": by}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "approved proposal {} as {by}: {} runs {}",
                    s(&v["id"]),
                    s(&v["action"]),
                    s(&v["would_run"])
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
