//! The end of a drill run: the `drill_finished` timeline entry, `drill_failed`, the last
//! result kept in `STATE_DIR/drills.json`, and runs a stop of lookout cut short (their restore
//! runs at the next start and they are reported as failed).

use super::runner::{DRILL_FAILED_RULE, Entry, Running};
use super::{Check, Report, secs};
use crate::config::drills::DrillConfig;
use crate::daemon::core::Core;
use crate::model::labels;
use crate::rule::Condition;
use crate::store::TimelineEntry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The file under the state directory that keeps the drills' last results and runs.
const STATE_FILE: &str = "drills.json";

/// What `STATE_DIR/drills.json` keeps.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Stored {
    /// The last result of every drill.
    #[serde(default)]
    pub last: BTreeMap<String, Report>,
    /// Runs in progress when it was written.
    #[serde(default)]
    pub running: BTreeMap<String, Running>,
}

/// Reads the state file (nothing when absent or unreadable).
pub(super) fn load(state_dir: &Path) -> Stored {
    std::fs::read_to_string(state_dir.join(STATE_FILE))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// Writes the state file (atomically; a failure is logged).
pub(super) fn save(core: &Core) {
    // One writer at a time: two runs finishing together must not interleave in the file.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let text = {
        let inner = core.drills.lock();
        serde_json::to_string_pretty(&serde_json::json!({
            "last": inner.last,
            "running": inner.running,
        }))
        .unwrap_or_default()
    };
    let path = core.state_dir.join(STATE_FILE);
    let tmp = core.state_dir.join(format!("{STATE_FILE}.tmp"));
    if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)) {
        tracing::warn!(path = %path.display(), "cannot keep the drills' results: {e}");
    }
}

/// Reports a finished run: timeline, `drill_failed` raised or resolved, last result kept.
pub(super) fn finish(core: &Core, config: &DrillConfig, report: Report) {
    let name = report.drill.clone();
    let detail: Vec<String> = report.checks.iter().map(|c| c.message.clone()).collect();
    core.timeline(TimelineEntry {
        ts: report.finished_at,
        kind: "drill_finished".into(),
        probe: None,
        alert_id: None,
        severity: None,
        actor: Some(report.by.clone()),
        message: format!(
            "drill {name} {} in {}: {}",
            if report.passed { "passed" } else { "failed" },
            secs(report.seconds),
            detail.join("; ")
        ),
    });
    let drill_labels = labels([("drill", name.as_str())]);
    core.set_internal(if report.passed {
        Condition::clear(
            DRILL_FAILED_RULE,
            drill_labels,
            format!("drill {name} passed"),
        )
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.message.as_str())
            .collect();
        Condition::active(
            DRILL_FAILED_RULE,
            drill_labels,
            config.severity(),
            format!("drill {name} failed: {}", failed.join("; ")),
        )
    });
    {
        let mut inner = core.drills.lock();
        inner.running.remove(&name);
        inner.last.insert(name, report);
    }
    save(core);
}

/// A run that was in progress when lookout stopped: its restore runs now, and it is reported
/// as failed (the fault may have stayed in place while nobody watched).
pub(super) async fn interrupted(core: Arc<Core>, entry: Entry, run: Running) {
    let name = entry.config.name.clone();
    let mut checks = vec![Check {
        step: "interrupted".into(),
        what: "the run".into(),
        ok: false,
        seconds: None,
        limit: None,
        message: format!(
            "lookout stopped during run {} (started by {} at {}) before it finished",
            run.run,
            run.by,
            crate::model::format_utc(run.started_at)
        ),
    }];
    if let Some(r) = &entry.restore {
        let out = r.action.run(r.timeout).await;
        checks.push(Check {
            step: "restore".into(),
            what: r.name.clone(),
            ok: out.ok,
            seconds: Some(out.seconds),
            limit: None,
            message: format!(
                "restore {} {} at the next start: {}",
                r.name,
                if out.ok { "ran" } else { "failed" },
                out.summary
            ),
        });
    }
    let now = core.clock.now().wall;
    let report = Report {
        drill: name,
        run: run.run,
        passed: false,
        by: run.by,
        started_at: run.started_at,
        finished_at: now,
        seconds: 0.0,
        summary: format!("failed: {}", checks[0].message),
        checks,
    };
    finish(&core, &entry.config, report);
}
