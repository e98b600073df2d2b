//! `lookout check --once`: every probe once, through the same rules as the daemon.

use super::output::table;
use crate::alert::Engine;
use crate::config::Config;
use crate::daemon::clock::{Clock, SystemClock};
use crate::daemon::scheduler::{Scheduled, run_once};
use crate::model::{Sample, Status};
use anyhow::Result;
use serde::Serialize;
use std::process::ExitCode;
use tokio::sync::Semaphore;

#[derive(Serialize)]
struct Row {
    probe: String,
    kind: &'static str,
    status: Status,
    message: String,
    samples: Vec<Sample>,
}

/// Runs every probe once, concurrently, each within its timeout.
pub async fn run(config: &Config, json: bool) -> Result<ExitCode> {
    crate::http::install_crypto_provider();
    let permits = Semaphore::new(config.daemon.max_concurrent_probes.max(1));
    let clock = SystemClock::default();
    let mut engine = Engine::new();
    let runs = config.probes.iter().map(|p| {
        let built = crate::probe::build(p);
        engine.set_probe(p.spec(), built.rules);
        let s = Scheduled {
            id: p.id.clone(),
            probe: built.probe,
            interval: p.interval().0,
            timeout: p.timeout().0,
        };
        let permits = &permits;
        async move { run_once(&s, permits).await }
    });
    let results = futures_join_all(runs).await;
    let mut rows = Vec::new();
    for (p, obs) in config.probes.iter().zip(results) {
        let (obs, _) = engine.ingest(&p.id, obs, clock.now());
        rows.push(Row {
            probe: p.id.clone(),
            kind: p.kind.name(),
            status: obs.status,
            message: obs.message,
            samples: obs.samples,
        });
    }
    rows.push(lint_row().await);
    let worst = rows.iter().map(|r| r.status).max().unwrap_or(Status::Ok);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let body: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.probe.clone(),
                    r.kind.into(),
                    r.status.to_string(),
                    r.message.clone(),
                ]
            })
            .collect();
        print!("{}", table(&["PROBE", "KIND", "STATUS", "MESSAGE"], &body));
    }
    Ok(ExitCode::from(worst.code()))
}

/// Why the `net_lint` row is there although no probe configures it.
const LINT_ROW_WHY: &str = "built in, whatever the configuration: the daemon lints this host's network configuration at start and raises net_lint (details: lookout lint net)";

/// The network-configuration lint as one more row. Nothing configures it: the daemon runs it
/// at start with every configuration and raises `net_lint`, so `check --once`, which shows what
/// the daemon would see, shows it too, and says so.
async fn lint_row() -> Row {
    let run = tokio::task::spawn_blocking(|| crate::lint::net::lint(&[]));
    let (status, message) =
        match tokio::time::timeout(std::time::Duration::from_secs(10), run).await {
            Ok(Ok(f)) if f.is_empty() => (Status::Ok, "no findings".to_string()),
            Ok(Ok(f)) => (
                Status::Warning,
                format!(
                    "{} finding(s)\n{}",
                    f.len(),
                    f.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            ),
            Ok(Err(e)) => (Status::Unknown, format!("the lint failed: {e}")),
            Err(_) => (
                Status::Unknown,
                "the lint did not finish within 10s".to_string(),
            ),
        };
    Row {
        probe: "net_lint".into(),
        kind: "lint",
        status,
        message: format!("{LINT_ROW_WHY}: {message}"),
        samples: Vec::new(),
    }
}

/// Awaits futures concurrently, results in order.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // Poll all together: each probe is bounded by its own timeout.
    let joined = async {
        let mut pending: Vec<_> = set.into_iter().map(Some).collect();
        let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut all = true;
            for (i, slot) in pending.iter_mut().enumerate() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            results[i] = Some(v);
                            *slot = None;
                        }
                        std::task::Poll::Pending => all = false,
                    }
                }
            }
            if all {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        results
    };
    for r in joined.await {
        out.push(r.expect("every future completed"));
    }
    out
}
