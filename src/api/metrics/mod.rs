//! `/metrics`: the Prometheus text format, or OpenMetrics when the client asks for it.
//!
//! Written by hand rather than with `prometheus-client`: lookout's series are discovered at run
//! time (every probe's samples), which that crate's static registration does not fit, and the
//! format is a few lines of escaping. Every family has `# HELP` and `# TYPE`; counters end in
//! `_total`, units are suffixes; docs/metrics.md lists every family (a test checks it does).

pub mod catalog;
pub mod family;

use crate::daemon::core::Core;
use crate::model::Severity;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use catalog::Type;
use family::{Family, Format};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Renders every metric in `format`.
pub fn render(core: &Core, format: Format) -> String {
    let mut families = vec![build_info()];
    families.extend(probe_families(core));
    families.extend(sample_families(core));
    families.push(alert_family(core));
    families.extend(store_families(core));
    families.extend(notifier_families(core));
    let mut out = String::new();
    for f in &families {
        f.write(&mut out, format);
    }
    // The end marker OpenMetrics requires; a plain comment in the text format.
    out.push_str("# EOF\n");
    out
}

fn build_info() -> Family {
    let mut f = Family::gauge(
        "lookout_build_info",
        "Always 1; the version label names the running lookout.",
    );
    f.push([("version", env!("CARGO_PKG_VERSION"))], 1.0);
    f
}

/// Per probe: status, duration, last run, runs and timeouts.
fn probe_families(core: &Core) -> Vec<Family> {
    let mut status = Family::gauge(
        "lookout_probe_status",
        "Status of the probe's last run: 0 ok, 1 warning, 2 critical, 3 unknown.",
    );
    let mut duration = Family::gauge(
        "lookout_probe_duration_seconds",
        "How long the probe's last run took.",
    );
    let mut last_run = Family::gauge(
        "lookout_probe_last_run_timestamp_seconds",
        "Unix time of the probe's last run.",
    );
    for s in core.snapshots() {
        let code = f64::from(s.observation.status.code());
        status.push([("probe", s.id.as_str()), ("kind", s.kind.as_str())], code);
        duration.push([("probe", s.id.as_str())], s.observation.duration_seconds);
        last_run.push([("probe", s.id.as_str())], s.at);
    }
    let mut runs = Family::counter("lookout_probe_runs_total", "Runs of the probe.");
    let mut timeouts = Family::counter(
        "lookout_probe_timeouts_total",
        "Runs of the probe that timed out.",
    );
    let counts = core.counters.per_probe();
    for id in core.probe_kinds().keys() {
        let c = counts.get(id).copied().unwrap_or_default();
        runs.push([("probe", id.as_str())], c.runs as f64);
        timeouts.push([("probe", id.as_str())], c.timeouts as f64);
    }
    vec![status, duration, last_run, runs, timeouts]
}

/// Every probe sample, one family per sample name, labelled with the probe.
fn sample_families(core: &Core) -> Vec<Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for s in core.snapshots() {
        for sample in &s.observation.samples {
            let (name, kind, help) = match catalog::lookup(&sample.name) {
                Some(e) => (e.metric.to_string(), e.kind, e.help.to_string()),
                None => (
                    catalog::generic_name(&sample.name),
                    Type::Gauge,
                    format!("Sample {} as the probe reported it.", sample.name),
                ),
            };
            let family = families
                .entry(name.clone())
                .or_insert_with(|| Family::new(name, kind, help));
            let labels = sample
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "probe")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([("probe", s.id.as_str())]);
            family.push(labels, sample.value);
        }
    }
    families.into_values().collect()
}

fn alert_family(core: &Core) -> Family {
    let mut f = Family::gauge("lookout_alerts", "Alerts by state and severity.");
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    // Every open state × severity is a series, 0 when empty, so `sum(lookout_alerts{state=
    // "firing"})` is 0 rather than nothing when all is well.
    for state in ["pending", "firing", "acknowledged", "suppressed"] {
        for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
            counts.insert((state, sev.as_str()), 0);
        }
    }
    let alerts = core.alerts();
    for a in &alerts {
        *counts
            .entry((a.state.as_str(), a.severity.as_str()))
            .or_default() += 1;
    }
    for ((state, sev), n) in counts {
        f.push([("state", state), ("severity", sev)], n as f64);
    }
    f
}

fn store_families(core: &Core) -> Vec<Family> {
    let h = core.store.health();
    let mut up = Family::gauge(
        "lookout_store_up",
        "1 while the store takes writes, 0 while it fails.",
    );
    up.push([], f64::from(u8::from(h.ok)));
    let mut backlog = Family::gauge(
        "lookout_store_backlog",
        "Writes waiting in memory for the store.",
    );
    backlog.push([], h.backlog as f64);
    let mut dropped = Family::counter(
        "lookout_store_dropped_writes_total",
        "Writes dropped because the backlog of a failing store was full.",
    );
    dropped.push([], h.dropped as f64);
    vec![up, backlog, dropped]
}

/// Per notifier: deliveries that worked, failed for good, and retried attempts.
fn notifier_families(core: &Core) -> Vec<Family> {
    let d = core.dispatcher();
    let counts = d.counters.per_notifier();
    let mut delivered = Family::counter(
        "lookout_notifications_delivered_total",
        "Deliveries the notifier completed.",
    );
    let mut failed = Family::counter(
        "lookout_notifications_failed_total",
        "Deliveries that failed for good (after every attempt).",
    );
    let mut retried = Family::counter(
        "lookout_notifications_retries_total",
        "Delivery attempts that failed and were retried.",
    );
    for t in d.targets() {
        let c = counts.get(&t.config.id).copied().unwrap_or_default();
        let labels = [
            ("notifier", t.config.id.as_str()),
            ("kind", t.config.kind.name()),
        ];
        delivered.push(labels, c.delivered as f64);
        failed.push(labels, c.failed as f64);
        retried.push(labels, c.retried as f64);
    }
    vec![delivered, failed, retried]
}

/// The handler.
pub async fn metrics(State(core): State<Arc<Core>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        render(&core, format),
    )
}
