//! Reading what the cluster loop lists from etcd: published alerts, acknowledgements,
//! escalations, and which members run a different configuration.

use super::Member;
use super::etcd::Entry;
use super::view::{Record, View};
use std::collections::BTreeMap;

pub(super) fn parse_records(entries: &[Entry]) -> Vec<Record> {
    entries
        .iter()
        .filter_map(|e| {
            let mut parts = e.key.splitn(3, '/');
            let (_, _id, node) = (parts.next()?, parts.next()?, parts.next()?);
            let alert = serde_json::from_slice(&e.value).ok()?;
            Some(Record {
                node: node.to_string(),
                alert,
            })
        })
        .collect()
}

pub(super) fn parse_acks(entries: &[Entry]) -> BTreeMap<String, (String, f64)> {
    entries
        .iter()
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.value).ok()?;
            Some((
                e.key.trim_start_matches("acks/").to_string(),
                (
                    v["by"].as_str()?.to_string(),
                    v["at"].as_f64().unwrap_or(0.0),
                ),
            ))
        })
        .collect()
}

pub(super) fn parse_escalations(entries: &[Entry]) -> Vec<crate::escalation::Escalation> {
    entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect()
}

/// An acknowledgement recorded in etcd acknowledges the open alert in the view.
pub(super) fn apply_acks(view: &mut View, acks: &BTreeMap<String, (String, f64)>) {
    for (id, (by, at)) in acks {
        if let Some(a) = view.get_mut(id)
            && a.state == crate::alert::AlertState::Firing
        {
            a.state = crate::alert::AlertState::Acknowledged;
            a.acked_by = Some(by.clone());
            a.acked_at = Some(*at);
        }
    }
}

/// Nodes whose configuration hash differs from the most common one (ties: the smallest hash).
pub(super) fn drifted(members: &[Member]) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members {
        *count.entry(m.config_hash.as_str()).or_default() += 1;
    }
    let Some(main) = count
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(h, _)| *h)
    else {
        return Vec::new();
    };
    members
        .iter()
        .filter(|m| m.config_hash != main)
        .map(|m| m.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, hash: &str) -> Member {
        Member {
            name: name.into(),
            api: String::new(),
            version: String::new(),
            config_hash: hash.into(),
            started_at: 0.0,
        }
    }

    #[test]
    fn drift_names_the_nodes_off_the_common_configuration() {
        assert!(drifted(&[m("a", "1"), m("b", "1")]).is_empty());
        assert_eq!(drifted(&[m("a", "1"), m("b", "2"), m("c", "1")]), ["b"]);
    }
}
