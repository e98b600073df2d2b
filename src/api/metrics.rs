//! `/metrics` in the OpenMetrics text format.
//!
//! Written by hand rather than with `prometheus-client`: lookout's series are discovered at run
//! time (every probe's samples), which that crate's static registration does not fit, and the
//! format is a few lines of escaping.

use crate::daemon::core::Core;
use crate::model::Labels;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Makes a dotted sample name a valid metric name: `disk.avail_bytes` → `lookout_disk_avail_bytes`.
fn metric_name(name: &str) -> String {
    let mut out = String::from("lookout_");
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_str(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{}=\"{}\"",
                k.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"),
                escape(v)
            )
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Renders every metric.
pub fn render(core: &Core) -> String {
    let mut out = String::new();
    let snaps = core.snapshots();
    let _ = writeln!(
        out,
        "# TYPE lookout_probe_status gauge\n# HELP lookout_probe_status Probe status: 0 ok, 1 warning, 2 critical, 3 unknown."
    );
    for s in &snaps {
        let _ = writeln!(
            out,
            "lookout_probe_status{{probe=\"{}\",kind=\"{}\"}} {}",
            escape(&s.id),
            s.kind,
            s.observation.status.code()
        );
    }
    let _ = writeln!(
        out,
        "# TYPE lookout_probe_duration_seconds gauge\n# HELP lookout_probe_duration_seconds How long the last run took."
    );
    for s in &snaps {
        let _ = writeln!(
            out,
            "lookout_probe_duration_seconds{{probe=\"{}\"}} {}",
            escape(&s.id),
            s.observation.duration_seconds
        );
    }
    let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &snaps {
        for sample in &s.observation.samples {
            let mut l = sample.labels.clone();
            l.insert("probe".into(), s.id.clone());
            families
                .entry(metric_name(&sample.name))
                .or_default()
                .push(format!(
                    "{}{} {}",
                    metric_name(&sample.name),
                    label_str(&l),
                    sample.value
                ));
        }
    }
    for (name, lines) in families {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
    let alerts = core.alerts();
    let _ = writeln!(
        out,
        "# TYPE lookout_alerts gauge\n# HELP lookout_alerts Alerts by state and severity."
    );
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for a in &alerts {
        *counts
            .entry((a.state.as_str(), a.severity.as_str()))
            .or_default() += 1;
    }
    for ((state, sev), n) in counts {
        let _ = writeln!(
            out,
            "lookout_alerts{{state=\"{state}\",severity=\"{sev}\"}} {n}"
        );
    }
    let h = core.store.health();
    let _ = writeln!(
        out,
        "# TYPE lookout_store_up gauge\nlookout_store_up {}",
        u8::from(h.ok)
    );
    let _ = writeln!(
        out,
        "# TYPE lookout_store_backlog gauge\nlookout_store_backlog {}",
        h.backlog
    );
    let _ = writeln!(
        out,
        "# TYPE lookout_store_dropped_writes counter\nlookout_store_dropped_writes_total {}",
        h.dropped
    );
    let c = &core.counters;
    let _ = writeln!(
        out,
        "# TYPE lookout_probe_runs counter\nlookout_probe_runs_total {}",
        c.probe_runs.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE lookout_probe_timeouts counter\nlookout_probe_timeouts_total {}",
        c.probe_timeouts.load(Ordering::Relaxed)
    );
    let d = core.dispatcher();
    let _ = writeln!(
        out,
        "# TYPE lookout_notifications_delivered counter\nlookout_notifications_delivered_total {}",
        d.counters.delivered.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE lookout_notifications_failed counter\nlookout_notifications_failed_total {}",
        d.counters.failed.load(Ordering::Relaxed)
    );
    out.push_str("# EOF\n");
    out
}

/// The handler.
pub async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&core),
    )
}
