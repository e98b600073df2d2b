//! The verbs that talk to a running daemon over its HTTP API.

use super::Command;
use super::output::table;
use super::target::Target;
use crate::alert::Alert;
use crate::api::ForecastRow;
use crate::config::Secret;
use crate::model::{format_bytes, format_duration, format_utc};
use crate::store::TimelineEntry;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// An API client with a 10 s deadline per request.
pub struct Client {
    target: Target,
    http: reqwest::Client,
}

impl Client {
    /// A client for the daemon `target` names.
    pub fn new(target: Target) -> Result<Client> {
        Ok(Client {
            target,
            http: crate::http::client(Duration::from_secs(10))?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.base)
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.decode(resp).await
    }

    /// The bearer token, or the error naming where it was looked for.
    fn token(&self) -> Result<&Secret> {
        self.target
            .token
            .as_ref()
            .ok_or_else(|| self.target.no_token())
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let req = self
            .http
            .post(self.url(path))
            .json(&body)
            .bearer_auth(self.token()?.expose());
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        self.decode(resp).await
    }

    pub(super) async fn delete(&self, path: &str) -> Result<Value> {
        let req = self
            .http
            .delete(self.url(path))
            .bearer_auth(self.token()?.expose());
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        self.decode(resp).await
    }

    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach lookout at {} (from {}; {}); is `lookout run` running? (--api picks another address)",
            self.target.base,
            self.target.base_from,
            crate::http::describe(e)
        )
    }

    async fn decode(&self, resp: reqwest::Response) -> Result<Value> {
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .context("the API answered something that is not JSON")?;
        if !status.is_success() {
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or(status.as_str());
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(self.target.refused(&format!("HTTP 401: {error}")));
            }
            bail!("{error}");
        }
        Ok(body)
    }
}

/// Runs an API verb.
pub async fn run(c: Client, cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Silence { command } => return super::paging::silence(&c, command).await,
        Command::Action { command } => return super::action::run(&c, command).await,
        Command::Drill { command } => return super::drill::run(&c, command).await,
        Command::Cluster { command } => return super::cluster::run(&c, command).await,
        Command::Status { json } => {
            let v = c.get("/api/v1/status").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = v["probes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let o = &p["observation"];
                        vec![
                            str_of(&p["id"]),
                            str_of(&p["kind"]),
                            str_of(&o["status"]),
                            str_of(&o["message"]),
                        ]
                    })
                    .collect();
                print!("{}", table(&["PROBE", "KIND", "STATUS", "MESSAGE"], &rows));
                println!(
                    "open alerts: {}   store ok: {}",
                    v["open_alerts"], v["store"]["ok"]
                );
                let drills: Vec<Vec<String>> = v["drills"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| vec![str_of(&d["name"]), super::drill::last_result(d)])
                    .collect();
                if !drills.is_empty() {
                    print!("{}", table(&["DRILL", "LAST RESULT"], &drills));
                }
            }
        }
        Command::Alerts { all, json } => {
            let v = c
                .get(if all {
                    "/api/v1/alerts?all=true"
                } else {
                    "/api/v1/alerts"
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let raw: Vec<Value> = serde_json::from_value(v)?;
                if raw.is_empty() {
                    println!(
                        "{}",
                        if all {
                            "no alerts (open, or resolved in the last day)"
                        } else {
                            "no open alerts"
                        }
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                let mut rows = Vec::new();
                for r in raw {
                    let muted = r["silenced_by"].as_str().map(str::to_string);
                    let a: Alert = serde_json::from_value(r)?;
                    rows.push(alert_row(&a, muted.as_deref()));
                }
                print!(
                    "{}",
                    table(
                        &["ID", "SEVERITY", "STATE", "ALERT", "SINCE", "MESSAGE"],
                        &rows
                    )
                );
            }
        }
        Command::Ack { id, by, json } => {
            let by = super::paging::who(by);
            let v = c
                .post(
                    &format!("/api/v1/alerts/{id}/ack"),
                    serde_json::json!({"by": by}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "acknowledged {} ({} on {}) as {by}",
                    str_of(&v["id"]),
                    str_of(&v["rule"]),
                    str_of(&v["probe"])
                );
            }
        }
        Command::Timeline { since, json } => {
            humantime::parse_duration(&since)
                .with_context(|| format!("--since {since:?} is not a duration like 24h"))?;
            let v = c.get(&format!("/api/v1/timeline?since={since}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let entries: Vec<TimelineEntry> = serde_json::from_value(v)?;
                for e in entries {
                    println!("{}  {}", format_utc(e.ts), e.message);
                }
            }
        }
        Command::Forecast { json } => {
            let v = c.get("/api/v1/forecast").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<ForecastRowView> = serde_json::from_value(v)?;
                let body: Vec<Vec<String>> = rows.iter().map(forecast_row).collect();
                print!(
                    "{}",
                    table(
                        &["MOUNT", "SIZE", "AVAIL", "RESERVED", "GROWTH", "FULL IN"],
                        &body
                    )
                );
            }
        }
        _ => unreachable!("offline verbs are dispatched elsewhere"),
    }
    Ok(ExitCode::SUCCESS)
}

/// One row of `lookout alerts`: a silenced alert says so in STATE (`firing, silenced`) and
/// what silences it first in MESSAGE, so it cannot pass for one that pages.
fn alert_row(a: &Alert, silenced_by: Option<&str>) -> Vec<String> {
    let mut state = a.state.as_str().to_string();
    if a.stale.is_some() {
        state.push_str(" (stale)");
    }
    if silenced_by.is_some() {
        state.push_str(", silenced");
    }
    let mut message = match &a.stale {
        Some(st) => format!("({}) {}", st.describe(), a.message),
        None => a.message.clone(),
    };
    if let Some(by) = silenced_by {
        message = format!("[silenced: {by}; nobody is paged] {message}");
    }
    vec![
        a.id.clone(),
        severity_cell(a),
        state,
        format!("{} on {}", a.rule, a.probe),
        crate::api::alert_since(a)
            .map(format_utc)
            .unwrap_or_default(),
        message,
    ]
}

#[derive(serde::Deserialize)]
struct ForecastRowView {
    mount: String,
    size_bytes: f64,
    avail_bytes: f64,
    reserved_bytes: f64,
    growth_bytes_per_second: Option<f64>,
    eta_seconds: Option<f64>,
    #[serde(default)]
    message: String,
}

/// One row of `lookout forecast`. SIZE is what users can fill (all blocks less root's
/// reserve), as in `lookout status` and the `disk_full` alert ("X of SIZE free for users");
/// RESERVED is shown beside it (docs/forecast.md). Without an ETA, FULL IN says why.
fn forecast_row(r: &ForecastRowView) -> Vec<String> {
    vec![
        r.mount.clone(),
        format_bytes((r.size_bytes - r.reserved_bytes).max(0.0)),
        format_bytes(r.avail_bytes),
        format_bytes(r.reserved_bytes),
        r.growth_bytes_per_second
            .map(|g| format!("{}/h", format_bytes(g * 3600.0)))
            .unwrap_or_else(|| "-".into()),
        r.eta_seconds
            .map(format_duration)
            .unwrap_or_else(|| no_eta_reason(&r.message)),
    ]
}

/// Why a filesystem has no ETA, from its line of the probe's message
/// (`/: 1 GiB of 2 GiB free for users (50.0%), …; not filling; …`): the forecast's words.
fn no_eta_reason(message: &str) -> String {
    message
        .split("; ")
        .nth(1)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| "- (no forecast reported)".into())
}

// Keep the API's row type and the view in step at compile time.
const _: fn(ForecastRow) = |_| {};

fn str_of(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// An alert's severity, with where an Alertmanager alert's came from:
/// `critical (severity=page)`.
fn severity_cell(a: &Alert) -> String {
    match crate::rule::alertmanager::severity_source(a) {
        Some(from) => format!("{} ({from})", a.severity),
        None => a.severity.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forecast_says_why_there_is_no_eta_and_sizes_agree_with_status() {
        let r = ForecastRowView {
            mount: "/".into(),
            size_bytes: 10.0 * 1024.0 * 1024.0 * 1024.0,
            avail_bytes: 1024.0 * 1024.0 * 1024.0,
            reserved_bytes: 6.0 * 1024.0 * 1024.0 * 1024.0,
            growth_bytes_per_second: None,
            eta_seconds: None,
            message: "/: 1.0 GiB of 4.0 GiB free for users (25.0%), 6.0 GiB more held back for root; not enough history for a forecast (10s of 30m)".into(),
        };
        let row = forecast_row(&r);
        assert!(
            r.message.contains(&format!("of {} free", row[1])),
            "{row:?}"
        );
        assert_eq!(row[5], "not enough history for a forecast (10s of 30m)");
        assert_eq!(no_eta_reason(""), "- (no forecast reported)");
    }

    #[test]
    fn a_silenced_alert_says_so_in_state_and_message() {
        let cond = crate::rule::Condition::active(
            "disk_full",
            crate::model::Labels::new(),
            crate::model::Severity::Critical,
            "full",
        );
        let mut a = Alert::new(
            "db",
            &cond,
            crate::model::Moment {
                mono: 1.0,
                wall: 1.0,
            },
        );
        a.state = crate::alert::AlertState::Firing;
        let row = alert_row(&a, Some("silence 0a1b by alice (upgrade)"));
        assert_eq!(row[2], "firing, silenced");
        assert!(
            row[5].starts_with("[silenced: silence 0a1b by alice (upgrade); nobody is paged] full"),
            "{row:?}"
        );
        assert_eq!(alert_row(&a, None)[2], "firing");
    }
}
