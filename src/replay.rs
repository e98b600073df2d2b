//! `lookout rules replay`: runs recorded samples through exactly the daemon's rule and alert
//! code and reports every alert transition.

use crate::alert::{AlertEventKind, AlertPolicy, Engine, ProbeSpec};
use crate::model::{Moment, Severity, labels};
use crate::rule::disk::{DiskRuleParams, DiskRules, observation_from_raw};
use serde::Serialize;
use std::io::BufRead;

/// The CSV header replay expects.
pub const DISK_HEADER: &str = "timestamp,size_bytes,avail_bytes,free_bytes";

/// One recorded disk sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskRow {
    /// Unix seconds.
    pub ts: f64,
    /// `f_blocks × f_frsize`.
    pub size: f64,
    /// `f_bavail × f_frsize`.
    pub avail: f64,
    /// `f_bfree × f_frsize`.
    pub free: f64,
}

/// One alert transition, in the JSON shape `--json` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    /// Unix seconds.
    pub at: f64,
    /// The alert (rule) name.
    pub alert: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// `warning` or `critical`.
    pub severity: Severity,
    /// Seconds until full at that moment, when estimated.
    pub eta_seconds: Option<f64>,
}

/// Reads the replay CSV; errors name the line.
pub fn read_disk_csv(input: impl BufRead) -> Result<Vec<DiskRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("line {n}: {e}"))?;
        let line = line.trim();
        if n == 1 {
            if line.replace(' ', "") != DISK_HEADER {
                return Err(format!(
                    "line 1: expected the header {DISK_HEADER:?}, found {line:?}"
                ));
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 4 {
            return Err(format!(
                "line {n}: expected 4 fields ({DISK_HEADER}), found {}",
                fields.len()
            ));
        }
        let mut v = [0.0f64; 4];
        for (j, f) in fields.iter().enumerate() {
            v[j] = f
                .parse()
                .map_err(|_| format!("line {n}: field {} ({f:?}) is not a number", j + 1))?;
        }
        let row = DiskRow {
            ts: v[0],
            size: v[1],
            avail: v[2],
            free: v[3],
        };
        if rows.last().is_some_and(|p: &DiskRow| row.ts <= p.ts) {
            return Err(format!("line {n}: timestamps must increase"));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Replays disk rows through the disk rules and the alert state machine.
pub fn replay_disk(
    rows: &[DiskRow],
    params: DiskRuleParams,
    policy: AlertPolicy,
) -> Vec<Transition> {
    let mut engine = Engine::new();
    let spec = ProbeSpec {
        id: "replay".into(),
        kind: "disk".into(),
        depends_on: vec![],
        policy,
        unknown_severity: Severity::Warning,
        labels: Default::default(),
        recover_within: 60.0,
        did_not_recover_severity: Severity::Critical,
    };
    engine.set_probe(spec, Box::new(DiskRules::new(params)));
    let l = labels([("mount", "replay")]);
    let mut out = Vec::new();
    for r in rows {
        let (_, events) = engine.ingest(
            "replay",
            observation_from_raw(&l, r.size, r.avail, r.free),
            Moment::replayed(r.ts),
        );
        for ev in events {
            let state = match ev.kind {
                AlertEventKind::Firing | AlertEventKind::SeverityChanged { .. } => "firing",
                AlertEventKind::Resolved => "resolved",
                _ => continue,
            };
            out.push(Transition {
                at: r.ts,
                alert: ev.alert.rule.clone(),
                state,
                severity: ev.alert.severity,
                eta_seconds: ev.alert.value,
            });
        }
    }
    out
}
