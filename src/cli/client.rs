//! The verbs that talk to a running daemon over its HTTP API.

use super::Command;
use super::output::table;
use crate::alert::Alert;
use crate::api::ForecastRow;
use crate::config::{Config, Secret};
use crate::model::{format_bytes, format_duration, format_utc};
use crate::store::TimelineEntry;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// An API client with a 10 s deadline per request.
pub struct Client {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the daemon the configuration describes (or `--api`).
    pub fn new(config: &Config, api: Option<&str>, state_dir: Option<&Path>) -> Result<Client> {
        let base = match api {
            Some(api) => api_base(api)?,
            None => format!("http://{}", config.api.listen),
        };
        let dir = crate::daemon::state_dir(state_dir, config);
        let token = config
            .api
            .token
            .clone()
            .or_else(|| Secret::from_file(&dir.join("api-token")).ok());
        Ok(Client {
            base,
            token,
            http: crate::http::client(Duration::from_secs(10))?,
        })
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        decode(resp).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        decode(req.send().await.map_err(|e| self.unreachable(&e))?).await
    }

    pub(super) async fn delete(&self, path: &str) -> Result<Value> {
        let mut req = self.http.delete(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        decode(req.send().await.map_err(|e| self.unreachable(&e))?).await
    }

    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach lookout at {} ({}); is `lookout run` running? (--api picks another address)",
            self.base,
            crate::http::describe(e)
        )
    }
}

/// The base URL of `--api`: `host:port` means `http://host:port`; an `http://` or `https://`
/// URL is taken as given (without a trailing `/`). Anything else is refused with what is wrong.
fn api_base(api: &str) -> Result<String> {
    let api = api.trim().trim_end_matches('/');
    let url = if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        anyhow::anyhow!("--api {api:?} is not an address ({e}): give host:port or http://host:port")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!(
            "--api {api:?} is not an http:// or https:// address: give host:port or http://host:port"
        );
    }
    Ok(url)
}

async fn decode(resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .context("the API answered something that is not JSON")?;
    if !status.is_success() {
        bail!(
            "{}",
            body.get("error")
                .and_then(Value::as_str)
                .unwrap_or(status.as_str())
        );
    }
    Ok(body)
}

/// Runs an API verb.
pub async fn run(c: Client, cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Silence { command } => return super::paging::silence(&c, command).await,
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
                let alerts: Vec<Alert> = serde_json::from_value(v)?;
                let rows: Vec<Vec<String>> = alerts
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            severity_cell(a),
                            match a.stale {
                                Some(_) => format!("{} (stale)", a.state.as_str()),
                                None => a.state.as_str().into(),
                            },
                            format!("{} on {}", a.rule, a.probe),
                            crate::api::alert_since(a)
                                .map(format_utc)
                                .unwrap_or_default(),
                            match &a.stale {
                                Some(st) => format!("({}) {}", st.describe(), a.message),
                                None => a.message.clone(),
                            },
                        ]
                    })
                    .collect();
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
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
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
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.mount.clone(),
                            format_bytes(r.size_bytes),
                            format_bytes(r.avail_bytes),
                            format_bytes(r.reserved_bytes),
                            r.growth_bytes_per_second
                                .map(|g| format!("{}/h", format_bytes(g * 3600.0)))
                                .unwrap_or_else(|| "-".into()),
                            r.eta_seconds
                                .map(format_duration)
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
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

#[derive(serde::Deserialize)]
struct ForecastRowView {
    mount: String,
    size_bytes: f64,
    avail_bytes: f64,
    reserved_bytes: f64,
    growth_bytes_per_second: Option<f64>,
    eta_seconds: Option<f64>,
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
    use super::api_base;

    #[test]
    fn api_base_accepts_host_port_and_urls_and_names_what_is_wrong() {
        assert_eq!(api_base("127.0.0.1:9330").unwrap(), "http://127.0.0.1:9330");
        assert_eq!(
            api_base("https://lookout.example:443/").unwrap(),
            "https://lookout.example:443"
        );
        assert_eq!(api_base("http://[::1]:9330").unwrap(), "http://[::1]:9330");
        let e = api_base("ftp://host:21").unwrap_err().to_string();
        assert!(e.contains("not an http:// or https:// address"), "{e}");
        let e = api_base("127.0.0.1:port").unwrap_err().to_string();
        assert!(e.contains("give host:port"), "{e}");
    }
}
