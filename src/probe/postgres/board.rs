//! What the primaries' probes in this lookout process last saw when writing the heartbeat,
//! per cluster. The key is PostgreSQL's system identifier (`pg_control_system()`), which a
//! primary and its physical standbys share, so a standby's probe can name the primary's
//! failure ("the primary's probe db1 reports: …") instead of guessing a cause.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// The last heartbeat write of one primary's probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The probe's id.
    pub probe: String,
    /// `None` when the write succeeded; the failure in words otherwise.
    pub failure: Option<String>,
    /// Wall time since which the outcome has been the same (for display).
    pub since: f64,
}

fn board() -> &'static Mutex<BTreeMap<String, Write>> {
    static B: OnceLock<Mutex<BTreeMap<String, Write>>> = OnceLock::new();
    B.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Records the outcome of a heartbeat write on the cluster `system` by `probe`.
pub fn record(system: &str, probe: &str, failure: Option<String>, now_wall: f64) {
    let mut b = board().lock().unwrap_or_else(|e| e.into_inner());
    let since = match b.get(system) {
        Some(w) if w.probe == probe && w.failure.is_some() == failure.is_some() => w.since,
        _ => now_wall,
    };
    b.insert(
        system.to_string(),
        Write {
            probe: probe.to_string(),
            failure,
            since,
        },
    );
}

/// The failing heartbeat write on cluster `system`, if a probe here last saw one.
pub fn failing(system: &str) -> Option<Write> {
    let b = board().lock().unwrap_or_else(|e| e.into_inner());
    b.get(system).filter(|w| w.failure.is_some()).cloned()
}

/// A clause naming the primary's failure for a standby's message (empty when none is known).
pub fn clause(system: Option<&str>) -> String {
    let Some(w) = system.and_then(failing) else {
        return String::new();
    };
    format!(
        " — the primary's probe {} has failed to write it since {}: {}",
        w.probe,
        crate::model::format_utc(w.since),
        w.failure.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_start_and_a_success_clears_it() {
        record("sys-test-1", "db1", Some("permission denied".into()), 100.0);
        record("sys-test-1", "db1", Some("permission denied".into()), 130.0);
        let w = failing("sys-test-1").unwrap();
        assert_eq!((w.probe.as_str(), w.since), ("db1", 100.0));
        assert!(clause(Some("sys-test-1")).contains("db1 has failed to write it since"));
        record("sys-test-1", "db1", None, 160.0);
        assert_eq!(failing("sys-test-1"), None);
        assert_eq!(clause(Some("sys-test-1")), "");
        assert_eq!(clause(None), "");
    }
}
