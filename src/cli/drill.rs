//! `lookout drill list` and `lookout drill run NAME` (over the API).

use super::DrillCommand;
use super::client::Client;
use super::output::table;
use crate::drill::{Check, Report, secs};
use crate::model::{format_duration, format_utc};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs a `lookout drill` verb against the daemon.
pub async fn run(c: &Client, cmd: DrillCommand) -> Result<ExitCode> {
    match cmd {
        DrillCommand::List { json } => {
            let v = c.get("/api/v1/drills").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let list = v.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no drills configured (add a [[drill]], see docs/drills.md)");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list.iter().map(list_row).collect();
            print!(
                "{}",
                table(&["DRILL", "FAULT", "EVERY", "LAST RESULT"], &rows)
            );
            Ok(ExitCode::SUCCESS)
        }
        DrillCommand::Run { name, by, json } => {
            let by = super::paging::who(by);
            let path = format!("/api/v1/drills/{}", url_part(&name));
            let started = c.post(&format!("{path}/run"), json!({ "by": by })).await?;
            let run = started["run"].as_str().unwrap_or_default().to_string();
            let max = started["max_seconds"].as_f64().unwrap_or(600.0);
            if !json {
                println!(
                    "drill {name} started (run {run}, by {by}); waiting for the result (at most {})",
                    format_duration(max)
                );
            }
            let deadline = Instant::now() + Duration::from_secs_f64(max + 30.0);
            let report: Report = loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let v = c.get(&path).await?;
                if v["last"]["run"].as_str() == Some(run.as_str()) {
                    break serde_json::from_value(v["last"].clone())?;
                }
                if Instant::now() > deadline {
                    bail!(
                        "drill {name} (run {run}) gave no result within {}; see `lookout timeline`",
                        format_duration(max + 30.0)
                    );
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report_text(&report));
            }
            Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// One row of `lookout drill list`.
fn list_row(d: &Value) -> Vec<String> {
    let every = d["every"]
        .as_f64()
        .map(|e| {
            let next = d["next_run_in"]
                .as_f64()
                .map(|n| format!(" (next in {})", format_duration(n)))
                .unwrap_or_default();
            format!("{}{next}", format_duration(e))
        })
        .unwrap_or_else(|| "by hand".into());
    vec![
        d["name"].as_str().unwrap_or_default().to_string(),
        d["fault"].as_str().unwrap_or_default().to_string(),
        every,
        last_result(d),
    ]
}

/// `passed 2026-12-05 12:00:00 UTC by alice: passed in 7.4s`, `running`, or `never run`.
pub fn last_result(d: &Value) -> String {
    let running = !d["running"].is_null() && d["running"] != json!(false);
    let last = match serde_json::from_value::<Report>(d["last"].clone()) {
        Ok(r) => format!(
            "{} {} by {}: {}",
            if r.passed { "PASS" } else { "FAIL" },
            format_utc(r.started_at),
            r.by,
            r.summary
        ),
        Err(_) => "never run".into(),
    };
    if running {
        format!("running now; last: {last}")
    } else {
        last
    }
}

/// The result of a run: one line per check with its measured time and limit.
pub fn report_text(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r.checks.iter().map(check_row).collect();
    let mut out = table(
        &["STEP", "WHAT", "RESULT", "TIME", "LIMIT", "DETAIL"],
        &rows,
    );
    out.push_str(&format!(
        "drill {} {} in {} (run {}, by {})\n",
        r.drill,
        if r.passed { "PASSED" } else { "FAILED" },
        secs(r.seconds),
        r.run,
        r.by
    ));
    out
}

fn check_row(c: &Check) -> Vec<String> {
    vec![
        c.step.clone(),
        c.what.clone(),
        if c.ok { "ok" } else { "FAILED" }.into(),
        c.seconds.map(secs).unwrap_or_else(|| "-".into()),
        c.limit.map(secs).unwrap_or_else(|| "-".into()),
        c.message.clone(),
    ]
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
