//! Issue 10, trap 2: two daemons on one state directory both paged. The second `lookout run`
//! on a locked state directory exits at once, naming the pid that holds it; the first keeps
//! running and the page goes out once.

mod kit;

use kit::{Daemon, Sink, free_port, is_event, lookout_bin};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_second_daemon_on_the_same_state_directory_exits_naming_the_first_and_nobody_is_paged_twice() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    // A floor of 100 % is always breached: a critical page from the first run.
    let config = kit::write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[probe]]
id = "root"
kind = "disk"
mounts = ["/"]
interval = "1s"
for = "0s"
warning_free = "100%"
critical_free = "100%"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"
"#,
            sink.url
        ),
    );
    let state = work.path().join("state");
    let first = Daemon::start(&config, &state, work.path());
    let page = sink.wait_for("the first page", Duration::from_secs(15), |b| {
        is_event(b, "firing", "disk_full", Some("critical"))
    });
    let id = page.body["alert"]["id"].as_str().unwrap().to_string();

    // The second daemon: same configuration and state directory, its own port.
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("30")
        .arg(lookout_bin())
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .arg("run")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .current_dir(work.path())
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "the second daemon must exit by itself, non-zero: {:?} after {took:?}\n{stderr}",
        out.status
    );
    assert!(
        took < Duration::from_secs(5),
        "exits at once, not after {took:?}"
    );
    let holder = format!("pid {}", first.child.id());
    assert!(
        stderr.contains("another lookout") && stderr.contains(&holder),
        "names the holder ({holder}): {stderr}"
    );
    let lock = std::fs::read_to_string(state.join("lock")).unwrap();
    assert_eq!(lock.trim(), first.child.id().to_string());

    // The first keeps running and paging is not repeated.
    std::thread::sleep(Duration::from_secs(4));
    let health = first.get("/healthz");
    assert_eq!(health["status"], "ok");
    let firings = sink
        .all()
        .iter()
        .filter(|r| r.body["alert"]["id"] == id.as_str() && r.body["event"] == "firing")
        .count();
    assert_eq!(firings, 1, "paged once:\n{}", first.log_text());
    assert!(first.terminate(Duration::from_secs(5)) < Duration::from_secs(5));

    // Once the first stopped, the directory is free for the next daemon.
    let next = Daemon::start(&config, &state, work.path());
    let lock = std::fs::read_to_string(state.join("lock")).unwrap();
    assert_eq!(lock.trim(), next.child.id().to_string());
}
