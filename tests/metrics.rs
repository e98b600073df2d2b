//! `/metrics` of a real daemon with two probes and two notifiers (one working, one failing),
//! checked by the real `promtool check metrics` (Debian's `prometheus` package) and for the
//! per-probe, per-notifier and build series.

mod kit;

use kit::{Daemon, Sink, is_event, write_file};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Pipes `text` to `promtool check metrics`; returns its exit status and everything it said.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("timeout")
        .args(["30", "promtool", "check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run timeout");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.code() != Some(127),
        "promtool is not installed: apt-get install prometheus (./scripts/test installs it)"
    );
    (out.status.success(), said)
}

/// Asserts docs/metrics.md has a row for every family of a scrape.
fn assert_documented(metrics: &str) {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            let documented = doc.contains(&format!("| `{name}` | "))
                || (name.starts_with("lookout_command_") && doc.contains("perfdata"));
            assert!(documented, "docs/metrics.md does not list {name}");
        }
    }
}

/// The value of the series written exactly as `series` (name and labels), if present.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `pred` holds (or panics after `within` with the last scrape).
fn scrape_until(d: &Daemon, within: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let m = kit::http_get(&format!("{}/metrics", d.url()));
        if pred(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "not within {within:?}:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_pass_promtool_and_carry_per_probe_and_per_notifier_series() {
    let (good, bad) = (Sink::start(), Sink::start());
    bad.respond_with(500);
    let work = tempfile::tempdir().unwrap();
    let plugin = write_file(
        work.path(),
        "check_queue",
        "#!/bin/sh\necho 'QUEUE CRITICAL - 512 waiting | depth=512;100;500;0'\nexit 2\n",
    );
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port: u16 = good
        .url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let config = kit::write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[probe]]
id = "queue"
kind = "command"
argv = ["{}"]
interval = "1s"

[[probe]]
id = "sink_port"
kind = "tcp"
host = "127.0.0.1"
port = {port}
interval = "1s"

[[notifier]]
id = "good"
kind = "webhook"
url = "{}"

[[notifier]]
id = "bad"
kind = "webhook"
url = "{}"
max_attempts = 2
"#,
            plugin.display(),
            good.url,
            bad.url
        ),
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    good.wait_for("the queue's page", Duration::from_secs(15), |b| {
        is_event(b, "firing", "probe_status", Some("critical"))
    });
    // The failing notifier: one attempt, one retry after 1 s, then failed for good.
    let bad_failed = "lookout_notifications_failed_total{notifier=\"bad\",kind=\"webhook\"}";
    let m = scrape_until(&d, Duration::from_secs(15), |m| {
        value(m, bad_failed) == Some(1.0)
            && value(m, "lookout_probe_runs_total{probe=\"sink_port\"}").unwrap_or(0.0) >= 2.0
    });

    let (ok, said) = promtool_check(&m);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{m}");
    assert_documented(&m);

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&m, &format!("lookout_build_info{{version=\"{version}\"}}")),
        Some(1.0),
        "{m}"
    );
    let get = |s: &str| value(&m, s).unwrap_or_else(|| panic!("{s} missing:\n{m}"));
    assert_eq!(
        get("lookout_probe_status{probe=\"queue\",kind=\"command\"}"),
        2.0
    );
    assert_eq!(
        get("lookout_probe_status{probe=\"sink_port\",kind=\"tcp\"}"),
        0.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for probe in ["queue", "sink_port"] {
        let last = get(&format!(
            "lookout_probe_last_run_timestamp_seconds{{probe=\"{probe}\"}}"
        ));
        assert!(
            before <= last && last <= now,
            "{probe}: {before} <= {last} <= {now}"
        );
        assert!(get(&format!("lookout_probe_runs_total{{probe=\"{probe}\"}}")) >= 1.0);
        assert_eq!(
            get(&format!(
                "lookout_probe_timeouts_total{{probe=\"{probe}\"}}"
            )),
            0.0
        );
        let took = get(&format!(
            "lookout_probe_duration_seconds{{probe=\"{probe}\"}}"
        ));
        assert!((0.0..5.0).contains(&took), "{probe} took {took}");
    }
    assert_eq!(get("lookout_command_depth{probe=\"queue\"}"), 512.0);
    assert_eq!(get(bad_failed), 1.0);
    assert_eq!(
        get("lookout_notifications_retries_total{notifier=\"bad\",kind=\"webhook\"}"),
        1.0
    );
    assert_eq!(
        get("lookout_notifications_delivered_total{notifier=\"bad\",kind=\"webhook\"}"),
        0.0
    );
    assert_eq!(bad.all().len(), 2, "the bad sink saw both attempts");
    assert_eq!(
        get("lookout_notifications_delivered_total{notifier=\"good\",kind=\"webhook\"}"),
        good.all().len() as f64
    );
    assert_eq!(
        get("lookout_notifications_failed_total{notifier=\"good\",kind=\"webhook\"}"),
        0.0
    );
}

#[test]
fn zero_config_metrics_pass_promtool() {
    let work = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(
        None,
        &work.path().join("state"),
        work.path(),
        kit::free_port(),
    );
    let m = scrape_until(&d, Duration::from_secs(15), |m| {
        ["disks", "clock", "routes"].iter().all(|p| {
            m.contains(&format!(
                "lookout_probe_last_run_timestamp_seconds{{probe=\"{p}\"}}"
            ))
        })
    });
    let (ok, said) = promtool_check(&m);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{m}");
    assert!(m.contains("lookout_disk_inodes{"), "{m}");
    // No critical alert is open: the series says 0 rather than being absent.
    assert!(
        m.contains("lookout_alerts{state=\"firing\",severity=\"critical\"} 0\n"),
        "{m}"
    );
    assert_documented(&m);
}

#[test]
fn prometheus_gets_openmetrics_with_counters_typed_by_family() {
    let work = tempfile::tempdir().unwrap();
    let config = kit::write_config(
        work.path(),
        "lookout.toml",
        "[[probe]]\nid = \"closed\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 9\ninterval = \"1s\"\n",
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The Accept header Prometheus 2.x sends.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (ctype, body) = rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(10)).unwrap();
        let r = c
            .get(format!("{}/metrics", d.url()))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        (ctype, r.text().await.unwrap())
    });
    assert!(
        ctype.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ctype}"
    );
    assert!(
        body.contains("# TYPE lookout_probe_runs counter\n"),
        "{body}"
    );
    assert!(body.contains("# HELP lookout_probe_runs "), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    let plain = kit::http_get(&format!("{}/metrics", d.url()));
    assert!(
        plain.contains("# TYPE lookout_probe_runs_total counter\n"),
        "{plain}"
    );
}
