//! The cluster's view of its open alerts, pure: every node's published alerts merged (any node
//! that sees an alert keeps it open; probes with `observers` need a majority of the live
//! observers), and the events that take the leader's paging from one view to the next.

use crate::alert::{Alert, AlertEvent, AlertEventKind, AlertState};
use std::collections::{BTreeMap, BTreeSet};

/// One node's published open alert (`PREFIX/alerts/ID/NODE`).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The node that sees it.
    pub node: String,
    /// The alert as that node sees it.
    pub alert: Alert,
}

/// Who observes a probe with `observers`: the named nodes, or `None` for every live node.
pub type Observers = Option<BTreeSet<String>>;

/// The open alerts of the cluster, by id.
pub type View = BTreeMap<String, Alert>;

/// Merges the published records: an alert of an ordinary probe is open while any node
/// publishes it (a dead node's alerts stay: missing data is not good news); an alert of a
/// probe in `quorum` is open only while more than half of its live observers publish it.
pub fn merge(
    records: &[Record],
    live: &BTreeSet<String>,
    quorum: &BTreeMap<String, Observers>,
) -> View {
    let mut by_id: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_id.entry(r.alert.id.as_str()).or_default().push(r);
    }
    let mut view = View::new();
    for (id, rs) in by_id {
        let probe = &rs[0].alert.probe;
        let mut alert = match quorum.get(probe) {
            None => most_severe(&rs).clone(),
            Some(observers) => {
                let live_observers: BTreeSet<&String> = live
                    .iter()
                    .filter(|n| observers.as_ref().is_none_or(|o| o.contains(*n)))
                    .collect();
                let seeing: Vec<&Record> = rs
                    .iter()
                    .copied()
                    .filter(|r| live_observers.contains(&r.node))
                    .collect();
                if live_observers.is_empty() || seeing.len() * 2 <= live_observers.len() {
                    continue;
                }
                let mut a = most_severe(&seeing).clone();
                let names: Vec<&str> = seeing.iter().map(|r| r.node.as_str()).collect();
                a.message = format!(
                    "{} (seen failing by {} of {} live observers: {})",
                    a.message,
                    seeing.len(),
                    live_observers.len(),
                    names.join(", ")
                );
                a
            }
        };
        if let Some(acked) = rs
            .iter()
            .find(|r| r.alert.state == AlertState::Acknowledged)
        {
            alert.state = AlertState::Acknowledged;
            alert.acked_by = acked.alert.acked_by.clone();
            alert.acked_at = acked.alert.acked_at;
        }
        view.insert(id.to_string(), alert);
    }
    view
}

fn most_severe<'a>(rs: &[&'a Record]) -> &'a Alert {
    rs.iter()
        .map(|r| &r.alert)
        .max_by_key(|a| a.severity)
        .expect("at least one record")
}

/// The events that take paging from `old` to `new`, at wall time `at`.
pub fn diff(old: &View, new: &View, at: f64) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    for (id, a) in new {
        match old.get(id) {
            None => {
                out.push(event(AlertEventKind::Firing, a, AlertState::Firing, at));
                if a.state == AlertState::Acknowledged {
                    out.push(acked(a, at));
                }
            }
            Some(o) => {
                if o.severity != a.severity {
                    out.push(event(
                        AlertEventKind::SeverityChanged { from: o.severity },
                        a,
                        a.state,
                        at,
                    ));
                }
                if o.state != AlertState::Acknowledged && a.state == AlertState::Acknowledged {
                    out.push(acked(a, at));
                }
            }
        }
    }
    for (id, o) in old {
        if !new.contains_key(id) {
            let mut a = o.clone();
            a.resolved_at = Some(at);
            a.lasted_seconds = o.started_at.map(|s| (at - s).max(0.0));
            out.push(event(
                AlertEventKind::Resolved,
                &a,
                AlertState::Resolved,
                at,
            ));
        }
    }
    out
}

fn acked(a: &Alert, at: f64) -> AlertEvent {
    let by = a.acked_by.clone().unwrap_or_else(|| "someone".into());
    event(
        AlertEventKind::Acknowledged { by },
        a,
        AlertState::Acknowledged,
        at,
    )
}

fn event(kind: AlertEventKind, a: &Alert, state: AlertState, at: f64) -> AlertEvent {
    let mut alert = a.clone();
    alert.state = state;
    AlertEvent { kind, alert, at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn alert(id: &str, probe: &str, sev: Severity) -> Alert {
        let mut a: Alert = serde_json::from_value(serde_json::json!({
            "id": id, "rule": "probe_failed", "probe": probe, "labels": {},
            "state": "firing", "severity": sev.as_str(), "message": "down", "value": null,
            "started_at": 100.0, "changed_at": 100.0, "resolved_at": null, "acked_by": null,
            "acked_at": null, "pending_since": null, "active_streak": 1, "inactive_streak": 0,
            "sequence": 1
        }))
        .unwrap();
        a.severity = sev;
        a
    }

    fn rec(node: &str, a: &Alert) -> Record {
        Record {
            node: node.into(),
            alert: a.clone(),
        }
    }

    fn live(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_ordinary_alert_is_open_while_any_node_publishes_it_and_takes_the_worst_severity() {
        let w = alert("x", "root-disk", Severity::Warning);
        let c = alert("x", "root-disk", Severity::Critical);
        let v = merge(
            &[rec("a", &w), rec("dead", &c)],
            &live(&["a"]),
            &BTreeMap::new(),
        );
        assert_eq!(v["x"].severity, Severity::Critical);
    }

    #[test]
    fn a_quorum_alert_needs_a_majority_of_the_live_observers() {
        let a = alert("h", "homeserver", Severity::Critical);
        let q = BTreeMap::from([("homeserver".to_string(), None)]);
        let three = live(&["a", "b", "c"]);
        assert!(merge(&[rec("c", &a)], &three, &q).is_empty());
        let v = merge(&[rec("b", &a), rec("c", &a)], &three, &q);
        assert!(v["h"].message.contains("2 of 3 live observers: b, c"));
        // A dead observer neither counts for nor against: 1 of 1 live is a majority.
        assert!(!merge(&[rec("c", &a)], &live(&["c"]), &q).is_empty());
        // Named observers: a node outside the list does not count.
        let named = BTreeMap::from([("homeserver".to_string(), Some(live(&["a", "b"])))]);
        assert!(merge(&[rec("c", &a)], &three, &named).is_empty());
    }

    #[test]
    fn the_diff_fires_acknowledges_escalates_and_resolves() {
        let a = alert("x", "p", Severity::Warning);
        let empty = View::new();
        let one = View::from([("x".to_string(), a.clone())]);
        let ev = diff(&empty, &one, 200.0);
        assert!(matches!(ev[0].kind, AlertEventKind::Firing));
        let mut worse = a.clone();
        worse.severity = Severity::Critical;
        worse.state = AlertState::Acknowledged;
        worse.acked_by = Some("ann".into());
        let two = View::from([("x".to_string(), worse)]);
        let ev = diff(&one, &two, 201.0);
        assert!(matches!(ev[0].kind, AlertEventKind::SeverityChanged { .. }));
        assert!(matches!(&ev[1].kind, AlertEventKind::Acknowledged { by } if by == "ann"));
        let ev = diff(&two, &empty, 300.0);
        assert!(matches!(ev[0].kind, AlertEventKind::Resolved));
        assert_eq!(ev[0].alert.lasted_seconds, Some(200.0));
    }
}
