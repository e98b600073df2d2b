//! Whether the last run of the daemon stopped cleanly, for the timeline.
//!
//! At start the daemon writes `STATE_DIR/running` (its pid and start time) and touches it every
//! [`TOUCH_EVERY`] while it runs; a clean stop (SIGTERM, SIGINT) removes it once the store is
//! flushed. A marker found at start therefore means the last run did not stop cleanly
//! (`kill -9`, a crash, a power cut, the OOM killer), and its modification time says when that
//! run was last seen alive (within [`TOUCH_EVERY`]). The timeline's start entry says so, and
//! what the new run took back from the store. The marker is wall-clock metadata for display
//! only; the touch interval runs on the monotonic clock.
//!
//! A state directory that cannot be written loses this knowledge (the next start reads as
//! clean) and is logged; it never stops the daemon.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// How often the marker is touched.
pub const TOUCH_EVERY: Duration = Duration::from_secs(5);

/// The marker's file name in the state directory.
const MARKER: &str = "running";

/// What a marker left by an earlier run says.
#[derive(Clone, Debug, PartialEq)]
pub struct UncleanStop {
    /// Unix seconds when that run was last seen alive (the marker's modification time).
    pub last_alive: f64,
    /// That run's process id, when the marker names it.
    pub pid: Option<u32>,
}

fn marker(state_dir: &Path) -> PathBuf {
    state_dir.join(MARKER)
}

/// Reads the marker an earlier run left behind, if any (blocking: call it at start).
pub fn previous_run(state_dir: &Path) -> Option<UncleanStop> {
    let path = marker(state_dir);
    let meta = std::fs::metadata(&path).ok()?;
    let last_alive = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let pid = std::fs::read_to_string(&path).ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("pid="))
            .and_then(|p| p.trim().parse().ok())
    });
    Some(UncleanStop { last_alive, pid })
}

/// Writes this run's marker (blocking: call it at start).
pub fn mark_running(state_dir: &Path, started: f64) {
    let text = format!("pid={}\nstarted={started:.3}\n", std::process::id());
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let tmp = state_dir.join(format!("{MARKER}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, marker(state_dir))
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, dir = %state_dir.display(), "cannot write the running marker: the next start cannot tell whether this run stopped cleanly");
    }
}

/// Touches the marker every [`TOUCH_EVERY`] until `stop` turns true.
pub async fn keep_touching(state_dir: PathBuf, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(TOUCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let path = marker(&state_dir);
        let touched = tokio::task::spawn_blocking(move || {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        })
        .await;
        if let Ok(Err(e)) = touched {
            tracing::debug!(error = %e, "cannot touch the running marker");
        }
    }
}

/// Removes the marker: this run stopped cleanly (blocking: call it last).
pub fn mark_stopped(state_dir: &Path) {
    if let Err(e) = std::fs::remove_file(marker(state_dir))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "cannot remove the running marker: the next start will read as after an unclean stop");
    }
}

/// The timeline's start entry: `head` (what started, with what), then whether the last run
/// stopped uncleanly and what was taken back from the store (pure).
pub fn started_message(
    head: &str,
    previous: Option<&UncleanStop>,
    escalations: usize,
    open_alerts: usize,
) -> String {
    let restored = format!(
        "restored {escalations} escalation{}, {open_alerts} open alert{}",
        if escalations == 1 { "" } else { "s" },
        if open_alerts == 1 { "" } else { "s" }
    );
    match previous {
        Some(p) => format!(
            "{head} after an unclean stop (last seen alive at {}{}); {restored}",
            crate::model::format_utc(p.last_alive),
            p.pid.map(|pid| format!(", pid {pid}")).unwrap_or_default()
        ),
        None if escalations + open_alerts > 0 => format!("{head}; {restored}"),
        None => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_entry_says_how_the_last_run_ended_and_what_came_back() {
        let head = "lookout 1.0 started with l.toml (2 probes)";
        assert_eq!(started_message(head, None, 0, 0), head);
        assert_eq!(
            started_message(head, None, 0, 2),
            "lookout 1.0 started with l.toml (2 probes); restored 0 escalations, 2 open alerts"
        );
        let p = UncleanStop {
            last_alive: 1_494_555_000.0,
            pid: Some(4242),
        };
        assert_eq!(
            started_message(head, Some(&p), 1, 1),
            "lookout 1.0 started with l.toml (2 probes) after an unclean stop (last seen alive at 2017-05-12T02:10:00Z, pid 4242); restored 1 escalation, 1 open alert"
        );
    }

    #[test]
    fn a_marker_is_found_until_a_clean_stop_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(previous_run(dir.path()), None);
        mark_running(dir.path(), 1.0);
        let found = previous_run(dir.path()).expect("a marker");
        assert_eq!(found.pid, Some(std::process::id()));
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - found.last_alive).abs() < 60.0, "{found:?}");
        mark_stopped(dir.path());
        assert_eq!(previous_run(dir.path()), None);
    }
}
