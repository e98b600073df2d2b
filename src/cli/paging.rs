//! `lookout silence …` (over the API) and `lookout oncall` (offline, from the configuration).

use super::SilenceCommand;
use super::client::Client;
use super::output::table;
use crate::alert::Alert;
use crate::config::Config;
use crate::escalation::Paging;
use crate::escalation::schedule::{Schedule, parse_local};
use crate::escalation::silence::Silence;
use crate::model::format_utc;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::process::ExitCode;

/// The actor of a CLI request: `--by`, else a non-empty `$USER`, else `cli`.
pub(super) fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs a `lookout silence` verb against the daemon.
pub async fn silence(c: &Client, cmd: SilenceCommand) -> Result<ExitCode> {
    match cmd {
        SilenceCommand::Add {
            matchers,
            duration,
            comment,
            by,
            json,
        } => {
            let v = c
                .post(
                    "/api/v1/silences",
                    json!({"matchers": matchers, "duration": duration, "comment": comment, "author": who(by)}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "silence {} until {}",
                    v["id"].as_str().unwrap_or(""),
                    format_utc(v["ends_at"].as_f64().unwrap_or(0.0))
                );
                let silence: Silence = serde_json::from_value(v)?;
                let alerts: Vec<Alert> = serde_json::from_value(c.get("/api/v1/alerts").await?)?;
                println!("{}", what_it_silences(&silence, &alerts));
            }
        }
        SilenceCommand::List { json } => {
            let v = c.get("/api/v1/silences").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let s_ = |k: &str| s[k].as_str().unwrap_or("").to_string();
                        vec![
                            s_("id"),
                            if s["active"] == Value::Bool(true) {
                                "active".into()
                            } else {
                                "ended".into()
                            },
                            s["matchers"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" "),
                            format_utc(s["ends_at"].as_f64().unwrap_or(0.0)),
                            s_("author"),
                            s_("comment"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["ID", "STATE", "MATCHERS", "ENDS", "BY", "COMMENT"], &rows)
                );
            }
        }
        SilenceCommand::Expire { id, by } => {
            let v = c
                .delete(&format!(
                    "/api/v1/silences/{}?by={}",
                    url_part(&id),
                    url_part(&who(by))
                ))
                .await?;
            println!("silence {} expired", v["id"].as_str().unwrap_or(&id));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Which open alerts a new silence covers, in one line: a silence that matches nothing now is
/// kept (it covers alerts that fire before it ends), but a typo in a matcher should not pass
/// unnoticed. Pure.
fn what_it_silences(s: &Silence, alerts: &[Alert]) -> String {
    let hit: Vec<String> = alerts
        .iter()
        .filter(|a| a.state.is_open() && s.silences(a, s.starts_at))
        .map(|a| format!("{} on {} ({})", a.rule, a.probe, &a.id[..a.id.len().min(8)]))
        .collect();
    match hit.len() {
        0 => format!(
            "it matches no open alert now (matchers: {}); it will silence matching alerts that fire before it ends",
            s.matchers.join(" ")
        ),
        1 => format!("it silences 1 open alert: {}", hit[0]),
        n => format!("it silences {n} open alerts: {}", hit.join(", ")),
    }
}

/// Prints who is on call in each schedule (or one) at `at` (default now).
pub fn oncall(
    config: &Config,
    at: Option<&str>,
    only: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let paging = Paging::from_config(config);
    let compiled: Vec<Schedule> = match &paging {
        Some(p) => p.schedules().values().cloned().collect(),
        None => config
            .schedules
            .iter()
            .filter_map(|s| Schedule::compile(s).ok())
            .collect(),
    };
    let list: Vec<&Schedule> = compiled
        .iter()
        .filter(|s| only.is_none_or(|o| o == s.id))
        .collect();
    if list.is_empty() {
        match only {
            Some(o) => bail!("no schedule {o:?} in {}", config.origin()),
            None => bail!("{} has no [[schedule]]", config.origin()),
        }
    }
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for s in list {
        let t = match at {
            None => jiff::Timestamp::now(),
            Some(a) => match a.parse::<jiff::Timestamp>() {
                Ok(t) => t,
                Err(_) => {
                    parse_local(a, &s.tz)
                        .map_err(|e| anyhow::anyhow!("--at {e} (or give RFC 3339 with an offset)"))?
                        .1
                }
            },
        };
        let person = s.on_call(t);
        let next = s.next_change(t);
        let local = |t: jiff::Timestamp| {
            t.to_zoned(s.tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        };
        out.push(json!({
            "schedule": s.id,
            "at": t.to_string(),
            "on_call": person,
            "until": next.map(|n| n.to_string()),
        }));
        rows.push(vec![
            s.id.clone(),
            person.unwrap_or_else(|| "(nobody)".into()),
            local(t),
            next.map(local).unwrap_or_else(|| "-".into()),
        ]);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&["SCHEDULE", "ON CALL", "AT", "UNTIL"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}
