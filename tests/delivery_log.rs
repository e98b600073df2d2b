//! What the daemon logs about deliveries, at which level (issue 9 item 18): an alert firing
//! and a failed attempt are WARN; a resolution, a page being sent and a delivery that worked
//! are INFO.

mod kit;

use kit::{Daemon, Sink, is_event, write_config};
use std::time::Duration;

/// The log lines (tracing's format: `TIME LEVEL target: message fields`) that contain `what`.
fn lines_with<'a>(log: &'a str, what: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(what)).collect()
}

fn level(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or_default()
}

#[test]
fn successful_deliveries_and_resolutions_are_info_failures_warn() {
    let sink = Sink::start();
    sink.respond_with(500);
    let work = tempfile::tempdir().unwrap();
    let flag = work.path().join("broken");
    std::fs::write(&flag, "").unwrap();
    // A command probe that is critical while the flag file exists.
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[probe]]
id = "flag"
kind = "command"
argv = ["/bin/sh", "-c", "if [ -e {} ]; then echo 'CRITICAL: flag set'; exit 2; fi; echo OK"]
interval = "1s"
recover_after = 1

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"
"#,
            flag.display(),
            sink.url
        ),
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    // The first attempt fails (500) and is retried; then the receiver recovers.
    sink.wait_for("a first attempt", Duration::from_secs(15), |b| {
        is_event(b, "firing", "probe_status", Some("critical"))
    });
    sink.respond_with(200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !d.log_text().contains("delivered") {
        assert!(std::time::Instant::now() < deadline, "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&flag).unwrap();
    sink.wait_for("the resolution", Duration::from_secs(15), |b| {
        is_event(b, "resolved", "probe_status", None)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lines_with(&d.log_text(), "delivered").len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.log_text();

    let firing: Vec<&str> = lines_with(&log, "| probe_status on flag")
        .into_iter()
        .filter(|l| l.contains("[CRITICAL]"))
        .collect();
    assert!(!firing.is_empty(), "{log}");
    assert!(firing.iter().all(|l| level(l) == "WARN"), "{firing:#?}");
    let resolved: Vec<&str> = lines_with(&log, "| probe_status on flag")
        .into_iter()
        .filter(|l| l.contains("[RESOLVED]"))
        .collect();
    assert!(!resolved.is_empty(), "{log}");
    assert!(resolved.iter().all(|l| level(l) == "INFO"), "{resolved:#?}");
    let delivered = lines_with(&log, "delivered");
    assert_eq!(delivered.len(), 2, "{log}");
    assert!(
        delivered.iter().all(|l| level(l) == "INFO"),
        "{delivered:#?}"
    );
    let retries = lines_with(&log, "retrying");
    assert!(!retries.is_empty(), "{log}");
    assert!(retries.iter().all(|l| level(l) == "WARN"), "{retries:#?}");
}
