//! Cluster mode with etcd stopped entirely (docs/cluster.md, "etcd is gone for everyone"):
//! every node keeps probing, raises `cluster_unavailable` and pages its own critical alerts;
//! when etcd is back there is one pager again and nothing delivered is sent again.

mod cluster_kit;
mod cluster_nodes;
mod kit;

use cluster_kit::Etcd;
use cluster_nodes::{TTL, Trio};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn unavailable_on(t: &Trio, i: usize) -> Option<String> {
    let alerts = t.get(i, "/api/v1/alerts");
    alerts.as_array().unwrap().iter().find_map(|a| {
        (a["rule"] == "cluster_unavailable" && a["state"] == "firing")
            .then(|| a["message"].as_str().unwrap_or("").to_string())
    })
}

fn last_run_of_homeserver(t: &Trio, i: usize) -> String {
    let status = t.get(i, "/api/v1/status");
    status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "homeserver")
        .map(|p| p["at"].to_string())
        .unwrap_or_default()
}

#[test]
fn with_etcd_gone_every_node_pages_on_its_own_and_one_pager_returns() {
    kit::require_root("the cluster kit");
    let _serial = cluster_nodes::one_at_a_time();
    let mut etcd = Etcd::start(1);
    let t = Trio::start(vec![etcd.endpoints(); 3], "2s", ["", "", ""]);
    t.wait_leader(None, Duration::from_secs(15));
    std::fs::write(&t.flag, "down").unwrap();
    t.first_page();
    std::thread::sleep(Duration::from_secs(3));

    let stopped = Instant::now();
    etcd.stop_all();
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..3 {
        while unavailable_on(&t, i).is_none() {
            assert!(
                Instant::now() < deadline,
                "node {} raised no cluster_unavailable; logs:\n{}",
                t.nodes[i].name,
                t.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let raised = stopped.elapsed().as_secs_f64();
    // Probes keep running on every node.
    let before: Vec<String> = (0..3).map(|i| last_run_of_homeserver(&t, i)).collect();
    std::thread::sleep(Duration::from_secs(6));
    for (i, was) in before.iter().enumerate() {
        assert_ne!(
            &last_run_of_homeserver(&t, i),
            was,
            "node {} stopped probing without etcd",
            t.nodes[i].name
        );
    }
    let paging_nodes: BTreeSet<String> = t
        .triggers()
        .into_iter()
        .filter(|(at, _, _)| *at > stopped)
        .map(|(_, n, _)| n)
        .collect();
    assert_eq!(
        paging_nodes.len(),
        3,
        "every node pages its own critical alert without etcd: {paging_nodes:?}"
    );
    let unavailable_pages: BTreeSet<String> = t
        .sink
        .all()
        .iter()
        .filter(|r| r.body["event"] == "firing" && r.body["alert"]["rule"] == "cluster_unavailable")
        .map(|r| r.body["node"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(unavailable_pages.len(), 3, "{unavailable_pages:?}");

    etcd.start_all();
    let back = Instant::now();
    let leader = t.wait_leader(None, Duration::from_secs(20));
    let one_pager_at = back.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(8));
    let settled = back + Duration::from_secs_f64(one_pager_at + 0.5);
    let after: BTreeSet<String> = t
        .triggers()
        .into_iter()
        .filter(|(at, _, _)| *at > settled)
        .map(|(_, n, _)| n)
        .collect();
    assert_eq!(
        after,
        BTreeSet::from([t.nodes[leader].name.clone()]),
        "one pager again once etcd is back (a leader {:.1}s after); logs:\n{}",
        one_pager_at,
        t.logs()
    );
    // Nothing delivered was sent again, across the whole run.
    let mut count: BTreeMap<String, u32> = BTreeMap::new();
    for r in t.sink.all() {
        *count
            .entry(r.body["dedup_key"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    let again: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        again.is_empty(),
        "sent again after etcd came back: {again:?}"
    );
    for i in 0..3 {
        assert!(
            unavailable_on(&t, i).is_none(),
            "cluster_unavailable still open on {}",
            t.nodes[i].name
        );
    }
    eprintln!(
        "cluster_unavailable on all 3 nodes {raised:.1}s after etcd stopped; one pager {one_pager_at:.1}s after it came back (TTL {TTL}s)"
    );
}
