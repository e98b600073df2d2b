//! Cluster mode against real etcd and three real lookout daemons (docs/cluster.md): one pager
//! through leader kills, a leader cut off from etcd, an acknowledgement on a follower, and
//! configuration drift. The escalation pages every 2 s (1 s for the cut-off test); the lease
//! TTL is the 2 s minimum.

mod cluster_kit;
mod cluster_nodes;
mod kit;

use cluster_kit::{Etcd, TcpProxy};
use cluster_nodes::{TTL, Trio, slot};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn same_endpoints(etcd: &Etcd) -> Vec<Vec<String>> {
    vec![etcd.endpoints(); 3]
}

/// Waits for the first trigger page of the homeserver's escalation.
fn first_page(t: &Trio) -> Instant {
    t.first_page().at
}

/// Test 1: SIGKILL the leader 20 times at random moments while an escalation pages every
/// 2 s. Every page of the escalation still comes (none lost), one escalation throughout, each
/// at most TTL + 1 s after its nominal time; duplicates at most one per kill; the timeline
/// says who led when.
#[test]
fn killing_the_leader_twenty_times_loses_no_step() {
    kit::require_root("the cluster kit");
    let _serial = cluster_nodes::one_at_a_time();
    let etcd = Etcd::start(3);
    let mut t = Trio::start(same_endpoints(&etcd), "2s", ["", "", ""]);
    t.wait_leader(None, Duration::from_secs(15));
    std::fs::write(&t.flag, "down").unwrap();
    let t0 = first_page(&t);
    let kills = 20;
    let mut killed_at = Vec::new();
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(300 + rand::random::<u64>() % 2_700));
        let leader = t.wait_leader(None, Duration::from_secs(10));
        t.kill(leader);
        killed_at.push(Instant::now());
        let next = t.wait_leader(Some(leader), Duration::from_secs(10));
        eprintln!(
            "kill {k}: killed {}, {} leads",
            t.nodes[leader].name, t.nodes[next].name
        );
        t.start_node(leader);
    }
    // Two more pages after the last kill, then judge every page since the first.
    std::thread::sleep(Duration::from_secs(5));
    let pages = t.triggers();
    let starts: std::collections::BTreeSet<String> =
        pages.iter().map(|(_, _, k)| slot(k).0).collect();
    assert_eq!(
        starts.len(),
        1,
        "one escalation throughout, resumed by each new leader: {starts:?}"
    );
    let mut first_arrival: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut count: BTreeMap<u32, u32> = BTreeMap::new();
    for (at, _, key) in &pages {
        let n = slot(key).1;
        first_arrival.entry(n).or_insert(*at);
        *count.entry(n).or_default() += 1;
    }
    let last = *first_arrival.keys().last().unwrap();
    let lost: Vec<u32> = (0..=last)
        .filter(|n| !first_arrival.contains_key(n))
        .collect();
    assert!(lost.is_empty(), "pages lost: {lost:?} of 0..={last}");
    let mut worst = 0.0f64;
    for (n, at) in &first_arrival {
        let nominal = t0 + Duration::from_secs(2 * *n as u64);
        let late = at.saturating_duration_since(nominal).as_secs_f64();
        worst = worst.max(late);
        let since_kill = killed_at
            .iter()
            .filter(|k| **k <= *at)
            .map(|k| at.duration_since(*k).as_secs_f64())
            .fold(f64::MAX, f64::min);
        assert!(
            late <= TTL + 1.0,
            "page {n} came {late:.2}s after its nominal time, {since_kill:.2}s after the last kill (limit: TTL + 1 s)"
        );
    }
    let dups: u32 = count.values().map(|c| c - 1).sum();
    assert!(
        dups <= kills && count.values().all(|&c| c <= 2),
        "duplicates: {dups} over {kills} kills ({count:?})"
    );
    eprintln!(
        "{} pages, 0 lost, {dups} duplicates over {kills} kills, worst lateness {worst:.2}s",
        last + 1
    );
    // The timeline of a node says who led when.
    let live = t.wait_leader(None, Duration::from_secs(10));
    let timeline = t.get(live, "/api/v1/timeline?since=1h&limit=5000");
    let leads = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "cluster_leader")
        .count();
    assert!(
        leads >= 5,
        "the timeline names the leaders: {leads} entries"
    );
}

/// Test 2: the leader is cut off from etcd (the proxy between them drops every connection).
/// At no moment do two nodes page; a new leader pages within TTL + 1 s; the cut-off node stays
/// quiet after the proxy is back.
#[test]
fn a_leader_cut_off_from_etcd_never_pages_beside_its_successor() {
    kit::require_root("the cluster kit");
    let _serial = cluster_nodes::one_at_a_time();
    let etcd = Etcd::start(1);
    let proxies: Vec<TcpProxy> = (0..3).map(|_| TcpProxy::start(&etcd.endpoint(0))).collect();
    let endpoints = proxies.iter().map(|p| vec![p.url()]).collect();
    let t = Trio::start(endpoints, "1s", ["", "", ""]);
    let leader = t.wait_leader(None, Duration::from_secs(15));
    std::fs::write(&t.flag, "down").unwrap();
    first_page(&t);
    std::thread::sleep(Duration::from_secs(3));
    let cut = Instant::now();
    proxies[leader].cut();
    let next = t.wait_leader(Some(leader), Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    proxies[leader].restore();
    let restored = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let old = t.nodes[leader].name.clone();
    let new = t.nodes[next].name.clone();
    let pages = t.triggers();
    let last_old = pages
        .iter()
        .filter(|(_, n, _)| *n == old)
        .map(|(at, _, _)| *at)
        .max()
        .unwrap();
    let first_new = pages
        .iter()
        .filter(|(at, n, _)| *n != old && *at > cut)
        .map(|(at, _, _)| *at)
        .min()
        .expect("the new leader pages");
    assert!(
        last_old < first_new,
        "two nodes paged at once: {old} until {:?} after the cut, {new} from {:?}",
        last_old.saturating_duration_since(cut),
        first_new.saturating_duration_since(cut)
    );
    assert!(
        pages
            .iter()
            .filter(|(at, n, _)| *n != old && *at > cut)
            .all(|(_, n, _)| *n == new),
        "only the new leader pages after the cut"
    );
    let resumed = first_new.duration_since(cut).as_secs_f64();
    assert!(
        resumed <= TTL + 1.0,
        "the new leader paged {resumed:.2}s after the cut (limit TTL + 1 s)"
    );
    let after_restore = pages
        .iter()
        .filter(|(at, n, _)| *n == old && *at > restored)
        .count();
    assert_eq!(after_restore, 0, "the cut-off node paged again once back");
    let still = pages
        .iter()
        .filter(|(at, n, _)| *n == new && *at > restored)
        .count();
    assert!(
        still > 0,
        "the new leader keeps paging once the old one is back"
    );
    let timeline = t.get(leader, "/api/v1/timeline?since=1h");
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "cluster_isolated"
                || e["kind"] == "cluster_leader"
                    && e["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("stopped paging")),
        "the cut-off node's timeline says it stopped paging"
    );
    eprintln!("paging resumed {resumed:.2}s after the cut, on node {new}");
}

/// Test 3: an acknowledgement given on a follower stops the leader's escalation within one
/// cluster tick (250 ms), plus the time to deliver.
#[test]
fn an_ack_on_a_follower_stops_the_leaders_escalation() {
    kit::require_root("the cluster kit");
    let _serial = cluster_nodes::one_at_a_time();
    let etcd = Etcd::start(1);
    let t = Trio::start(same_endpoints(&etcd), "2s", ["", "", ""]);
    let leader = t.wait_leader(None, Duration::from_secs(15));
    std::fs::write(&t.flag, "down").unwrap();
    let first = t.first_page();
    let id = first.body["alert"]["id"].as_str().unwrap().to_string();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let acked = Instant::now();
    let r = cluster_kit::blocking(Duration::from_secs(5))
        .post(format!(
            "http://127.0.0.1:{}/api/v1/alerts/{id}/ack",
            t.nodes[follower].port
        ))
        .bearer_auth(t.token(follower))
        .json(&serde_json::json!({"by": "alice"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    let ack = t
        .sink
        .wait_for("the acknowledgement page", Duration::from_secs(5), |b| {
            b["event"] == "acknowledged" && b["alert"]["probe"] == "homeserver"
        });
    let took = ack.at.duration_since(acked).as_secs_f64();
    std::thread::sleep(Duration::from_secs(5));
    let late: Vec<_> = t
        .triggers()
        .into_iter()
        .filter(|(at, _, _)| at.saturating_duration_since(acked) > Duration::from_millis(250))
        .collect();
    assert!(late.is_empty(), "pages after the acknowledgement: {late:?}");
    assert!(
        took < 1.0,
        "the leader told the paged people {took:.2}s after the acknowledgement"
    );
    eprintln!(
        "acknowledged on a follower; the leader's acknowledgement page came {took:.3}s later"
    );
}

/// Test 6: a node with a different configuration is named in a warning, on every node, and
/// `lookout cluster status` shows it.
#[test]
fn configuration_drift_is_a_warning_naming_the_node() {
    kit::require_root("the cluster kit");
    let _serial = cluster_nodes::one_at_a_time();
    let etcd = Etcd::start(1);
    let extra = "\n[[probe]]\nid = \"only-on-c\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 1\ninterval = \"30s\"\n";
    let t = Trio::start(same_endpoints(&etcd), "2s", ["", "", extra]);
    t.wait_leader(None, Duration::from_secs(15));
    let page = t
        .sink
        .wait_for("the drift warning", Duration::from_secs(20), |b| {
            b["event"] == "firing" && b["alert"]["rule"] == "cluster_config_drift"
        });
    let message = page.body["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains("nodes c run a different configuration"),
        "{message}"
    );
    assert_eq!(page.body["alert"]["severity"], "warning");
    let out = std::process::Command::new(kit::lookout_bin())
        .arg("--state-dir")
        .arg(&t.nodes[0].state)
        .args(["cluster", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("configuration drift: c"), "{text}");
}
