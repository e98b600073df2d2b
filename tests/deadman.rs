//! The outbound dead-man's switch through the real daemon: the outside monitor is pinged while
//! the paging path works; when a channel fails the pings stop and the fail URL is hit at once;
//! when the channel delivers again the pings resume. Both turns are on the timeline.

mod kit;

use kit::fake::{ALWAYS_CRITICAL, failing, wait_alert};
use kit::{Daemon, Sink, lookout_bin, write_config};
use std::time::{Duration, Instant};

fn pings_within(sink: &Sink, since: Instant) -> usize {
    sink.all().iter().filter(|r| r.at >= since).count()
}

#[test]
fn pings_stop_while_a_channel_fails_and_resume_when_it_delivers() {
    let work = tempfile::tempdir().unwrap();
    let pager = Sink::start();
    let chat = Sink::start();
    let monitor = Sink::start();
    let fail = Sink::start();
    pager.respond_with(500);
    let cfg = format!(
        r#"{ALWAYS_CRITICAL}
[[notifier]]
id = "pager"
kind = "webhook"
url = "{pager}"
max_attempts = 1

[[notifier]]
id = "chat"
kind = "webhook"
url = "{chat}"

[deadman]
url = "{monitor}"
fail_url = "{fail}"
interval = "1s"
timeout = "1s"
"#,
        pager = pager.url,
        chat = chat.url,
        monitor = monitor.url,
        fail = fail.url,
    );
    let cfg = write_config(work.path(), "lookout.toml", &cfg);
    let state = work.path().join("state");
    let d = Daemon::start(&cfg, &state, work.path());

    // The pager fails: notifier_failing opens, the pings stop and the fail URL is hit.
    wait_alert(&d, "pager failing", Duration::from_secs(20), |a| {
        failing(a, "pager")
    });
    fail.wait_for("fail ping", Duration::from_secs(10), |b| {
        b.as_str()
            .is_some_and(|s| s.contains("notifier pager cannot deliver"))
    });
    let quiet_from = Instant::now() + Duration::from_millis(1500);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        pings_within(&monitor, quiet_from),
        0,
        "pinged while the pager was failing:\n{}",
        d.log_text()
    );

    // The pager delivers again (the acknowledgement goes through it): the pings resume.
    pager.respond_with(200);
    let critical = wait_alert(&d, "disk alert", Duration::from_secs(5), |a| {
        a["rule"] == "disk_full"
    });
    let out = std::process::Command::new(lookout_bin())
        .arg("--state-dir")
        .arg(&state)
        .args(["--api", &d.url(), "ack", critical["id"].as_str().unwrap()])
        .args(["--by", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let resumed = Instant::now();
    let deadline = resumed + Duration::from_secs(10);
    while pings_within(&monitor, resumed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        pings_within(&monitor, resumed) >= 1,
        "no ping within 10 s of the recovery:\n{}",
        d.log_text()
    );
    let timeline = d.get("/api/v1/timeline?since=1h");
    let kinds: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"deadman_paused"), "{timeline}");
    assert!(kinds.contains(&"deadman_resumed"), "{timeline}");
    // The ping URLs are secrets: never in the log.
    let log = d.log_text();
    for url in [&monitor.url, &fail.url] {
        let port = url.rsplit(':').next().unwrap();
        assert!(!log.contains(port), "the log shows a ping URL:\n{log}");
    }
    d.terminate(Duration::from_secs(5));
}

#[test]
fn a_healthy_pipeline_pings_every_interval() {
    let work = tempfile::tempdir().unwrap();
    let chat = Sink::start();
    let monitor = Sink::start();
    let cfg = format!(
        r#"
[[probe]]
id = "root"
kind = "disk"
mounts = ["/"]
interval = "1s"

[[notifier]]
id = "chat"
kind = "webhook"
url = "{chat}"

[deadman]
url = "{monitor}"
interval = "1s"
timeout = "1s"
"#,
        chat = chat.url,
        monitor = monitor.url,
    );
    let cfg = write_config(work.path(), "lookout.toml", &cfg);
    let d = Daemon::start(&cfg, &work.path().join("state"), work.path());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let n = pings_within(&monitor, started);
    assert!((3..=8).contains(&n), "{n} pings in 6 s at a 1 s interval");
    let first = &monitor.all()[0].body;
    assert_eq!(first["source"], "lookout");
    d.terminate(Duration::from_secs(5));
}
