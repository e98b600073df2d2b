//! The zero-config daemon, its API and the CLI verbs that talk to it; reload and stop.

mod kit;

use kit::{Daemon, free_port, write_config};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(kit::lookout_bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn zero_config_serves_page_metrics_and_warns_that_nobody_is_paged() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let d = Daemon::start_with(None, &state, work.path(), free_port());
    let page = kit::http_get(&format!("{}/", d.url()));
    assert!(
        page.contains("<h1>lookout</h1>") && page.contains("disks"),
        "{page}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = kit::http_get(&format!("{}/metrics", d.url()));
        if m.contains("lookout_disk_avail_bytes{") || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The root filesystem's type is this machine's (ext4 here), read from the mount table.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let root_fstype = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"/")).then(|| f[2].to_string())
        })
        .next_back()
        .expect("/ in /proc/self/mounts");
    let series =
        format!("lookout_disk_avail_bytes{{fstype=\"{root_fstype}\",mount=\"/\",probe=\"disks\"}}");
    assert!(metrics.contains(&series), "{series} not in {metrics}");
    assert!(
        metrics.contains("lookout_probe_status{probe=\"disks\",kind=\"disk\"} "),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"));
    assert!(d.log_text().contains("NO NOTIFIER IS CONFIGURED"));
    let alerts = d.get("/api/v1/alerts");
    let warn = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "no_notifier")
        .expect("standing no_notifier warning");
    assert_eq!(warn["severity"], "warning");
    assert_eq!(warn["state"], "firing");

    // Ack: without the token the API refuses; the CLI reads the token from the state dir.
    let id = warn["id"].as_str().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(5)).unwrap();
        c.post(format!("{}/api/v1/alerts/{id}/ack", d.url()))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 401);
    let (code, out, err) = cli(&[
        "--api",
        &d.url(),
        "--state-dir",
        state.to_str().unwrap(),
        "ack",
        &id[..8],
        "--by",
        "alice",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acknowledged") && out.contains("as alice"),
        "{out}"
    );
    let (_, out, _) = cli(&["--api", &d.url(), "alerts", "--json"]);
    let alerts: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()["acked_by"],
        "alice"
    );
    let (_, out, _) = cli(&["--api", &d.url(), "timeline", "--since", "1h"]);
    assert!(
        out.contains("alice acknowledged no_notifier on lookout"),
        "{out}"
    );
    // docs/api.md: every key of a timeline entry is present, null when it does not apply.
    let timeline = d.get("/api/v1/timeline");
    let started = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "daemon_started")
        .unwrap_or_else(|| panic!("{timeline}"));
    for key in ["probe", "alert_id", "severity", "actor"] {
        assert_eq!(started.get(key), Some(&Value::Null), "{key}: {started}");
    }
    let (code, out, _) = cli(&["--api", &d.url(), "forecast"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("MOUNT") && out.lines().any(|l| l.starts_with("/ ")),
        "{out}"
    );
    let (code, out, _) = cli(&["--api", &d.url(), "status"]);
    assert_eq!(code, 0);
    assert!(out.contains("disks"), "{out}");
    assert!(d.terminate(Duration::from_secs(5)) < Duration::from_secs(5));
}

#[test]
fn check_once_json_lists_each_filesystem_with_space_reserve_and_inodes() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(kit::lookout_bin())
        .args(["check", "--once", "--json"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let disks = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "disk")
        .expect("a disk probe");
    for key in ["probe", "kind", "status", "message", "samples"] {
        assert!(disks.get(key).is_some(), "{key} missing");
    }
    let samples = disks["samples"].as_array().unwrap();
    for name in [
        "disk.size_bytes",
        "disk.avail_bytes",
        "disk.reserved_bytes",
        "disk.inodes_total",
        "disk.inodes_avail",
    ] {
        assert!(
            samples
                .iter()
                .any(|s| s["name"] == name && s["labels"]["mount"] == "/"),
            "{name} for / missing"
        );
    }
    for kind in ["clock", "route", "lint"] {
        assert!(
            rows.as_array().unwrap().iter().any(|r| r["kind"] == kind),
            "zero-config check lists a {kind} row: {rows}"
        );
    }
    let get = |n: &str| {
        samples
            .iter()
            .find(|s| s["name"] == n && s["labels"]["mount"] == "/")
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(
        get("disk.reserved_bytes"),
        get("disk.free_bytes") - get("disk.avail_bytes")
    );
}

#[test]
fn sighup_with_a_broken_file_keeps_the_old_config_and_warns() {
    let work = tempfile::tempdir().unwrap();
    let good = "[[probe]]\nid = \"root\"\nkind = \"disk\"\nmounts = [\"/\"]\ninterval = \"1s\"\n";
    let cfg = write_config(work.path(), "lookout.toml", good);
    let d = Daemon::start(&cfg, &work.path().join("state"), work.path());
    write_config(
        work.path(),
        "lookout.toml",
        "[[probe]]\nid = \"root\"\nkind = \"disk\"\nintervall = \"1s\"\n",
    );
    d.signal(rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        let alerts = d.get("/api/v1/alerts");
        if let Some(a) = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "config_invalid")
            .cloned()
        {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no config_invalid alert: {alerts}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `intervall`"),
        "{alert}"
    );
    // The timeline (which shows a message's first line) says why, too.
    let timeline = d.get("/api/v1/timeline");
    let entry = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["kind"] == "alert_firing"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("config_invalid")
        })
        .cloned()
        .unwrap_or_else(|| panic!("{timeline}"));
    assert!(
        entry["message"]
            .as_str()
            .unwrap()
            .contains("still in force: ")
            && entry["message"]
                .as_str()
                .unwrap()
                .contains("unknown field `intervall`"),
        "{entry}"
    );
    // The old probe keeps running (it may not have run once yet on a slow machine).
    let root_run_at = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = d.get("/api/v1/status");
            if let Some(at) = status["probes"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["id"] == "root"))
                .and_then(|p| p["at"].as_f64())
            {
                return at;
            }
            assert!(Instant::now() < deadline, "probe root never ran: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let before = root_run_at();
    std::thread::sleep(Duration::from_millis(2500));
    let after = root_run_at();
    assert!(after > before, "the old configuration still runs");
    // A fixed file clears the warning.
    write_config(work.path(), "lookout.toml", good);
    d.signal(rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = d.get("/api/v1/alerts");
        if alerts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["rule"] != "config_invalid")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "config_invalid still open after a valid reload: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.terminate(Duration::from_secs(5));
}

#[test]
fn a_pending_alert_shows_since_when_in_the_api_and_the_cli() {
    // Issue 9 item 18: a pending alert has no start yet, and its SINCE column was empty.
    let work = tempfile::tempdir().unwrap();
    // A floor of 100 % is always breached; `for = "1h"` keeps the alert pending.
    let config = write_config(
        work.path(),
        "lookout.toml",
        "[[probe]]\nid = \"root\"\nkind = \"disk\"\nmounts = [\"/\"]\ninterval = \"1s\"\nfor = \"1h\"\nwarning_free = \"100%\"\ncritical_free = \"100%\"\n",
    );
    let d = kit::Daemon::start(&config, &work.path().join("state"), work.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    let pending = loop {
        let alerts = d.get("/api/v1/alerts");
        if let Some(a) = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "disk_full" && a["state"] == "pending")
        {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no pending disk_full: {alerts}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(pending["started_at"], Value::Null, "{pending}");
    let since = pending["since"]
        .as_f64()
        .unwrap_or_else(|| panic!("no since: {pending}"));
    assert_eq!(pending["since"], pending["pending_since"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        since <= now && now - since < 30.0,
        "since {since}, now {now}"
    );

    let (code, out, err) = cli(&["--api", &d.url(), "alerts"]);
    assert_eq!(code, 0, "{out}{err}");
    let id = pending["id"].as_str().unwrap();
    let row = out
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("no row for {id}: {out}"));
    assert!(row.contains(" pending "), "{row}");
    assert!(
        row.contains(&format!(" {} ", lookout::model::format_utc(since))),
        "SINCE of the pending alert: {out}"
    );
}

/// Runs the CLI against a daemon with its state directory (for the token).
fn cli_with(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "--api".to_string(),
        d.url(),
        "--state-dir".to_string(),
        d.state_dir.to_str().unwrap().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    cli(&all)
}

#[test]
fn silences_take_an_id_prefix_say_what_they_match_and_show_in_alerts_and_on_the_page() {
    // Issue 10, trap 10: `silence expire` took no prefix, a silence matching nothing said
    // nothing, and a silenced alert looked like one that pages.
    let work = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(None, &work.path().join("state"), work.path(), free_port());
    let (code, out, err) = cli_with(
        &d,
        &[
            "silence",
            "add",
            "--match",
            "rule=no_notifer",
            "--for",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("it matches no open alert now (matchers: rule=no_notifer)"),
        "{out}"
    );
    let (code, out, err) = cli_with(
        &d,
        &[
            "silence",
            "add",
            "--match",
            "rule=no_notifier",
            "--for",
            "1h",
            "--comment",
            "setting up",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("it silences 1 open alert: no_notifier on lookout"),
        "{out}"
    );
    let sid = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no id in {out}"))
        .to_string();

    let (code, out, err) = cli_with(&d, &["alerts"]);
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.contains("no_notifier on lookout"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("firing, silenced"), "{row}");
    assert!(
        row.contains(&format!("[silenced: silence {sid} by ")),
        "{row}"
    );
    let page = kit::http_get(&format!("{}/", d.url()));
    assert!(
        page.contains(" class=silenced><td") && page.contains("firing, silenced"),
        "{page}"
    );

    let (code, out, err) = cli_with(&d, &["silence", "expire", &sid[..4], "--by", "erin"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), format!("silence {sid} expired"));
    let (_, out, _) = cli_with(&d, &["alerts"]);
    let row = out
        .lines()
        .find(|l| l.contains("no_notifier on lookout"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!row.contains("silenced"), "{row}");
    let page = kit::http_get(&format!("{}/", d.url()));
    assert!(!page.contains("<tr class=silenced>"), "{page}");
}

#[test]
fn status_and_forecast_agree_on_a_filesystems_size_and_forecast_says_why_there_is_no_eta() {
    // Issue 10, trap 10: `status` said "X of SIZE free for users" (root's reserve left out)
    // while `forecast` printed all blocks as SIZE; and a filesystem without an ETA showed `-`.
    let work = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(None, &work.path().join("state"), work.path(), free_port());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status_line = loop {
        let (_, out, _) = cli(&["--api", &d.url(), "status"]);
        if let Some(l) = out.lines().find_map(|l| {
            l.split_once(" /: ")
                .filter(|(_, rest)| rest.contains("free for users"))
                .map(|(_, rest)| rest.to_string())
        }) {
            break l;
        }
        assert!(Instant::now() < deadline, "no line for / in status: {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // "12.0 GiB of 20.0 GiB free for users (…)"
    let size_in_status = status_line
        .split(" of ")
        .nth(1)
        .and_then(|r| r.split(" free for users").next())
        .unwrap_or_else(|| panic!("{status_line}"))
        .to_string();
    let (code, out, err) = cli(&["--api", &d.url(), "forecast"]);
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("/ "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains(&format!(" {size_in_status} ")),
        "forecast's SIZE is status's {size_in_status}: {row}\n(status: {status_line})"
    );
    assert!(
        row.contains("not enough history for a forecast"),
        "FULL IN says why: {row}"
    );
}

#[test]
fn an_empty_listing_says_there_are_no_open_alerts() {
    // Issue 10, trap 10: an empty `lookout alerts` printed only its header.
    let sink = kit::Sink::start();
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            "[[probe]]\nid = \"always-ok\"\nkind = \"command\"\nargv = [\"/bin/true\"]\ninterval = \"1s\"\n\n[[notifier]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            sink.url
        ),
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    // Nothing is wrong here; the API lists nothing (a net_lint finding on this host's network
    // configuration would be an open alert: `lookout lint net` shows it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.get("/api/v1/status")["probes"]
        .as_array()
        .is_none_or(|p| p.is_empty())
    {
        assert!(Instant::now() < deadline, "the probe never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.get("/api/v1/alerts"), serde_json::json!([]));
    let (code, out, err) = cli(&["--api", &d.url(), "alerts"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "no open alerts\n");
}
