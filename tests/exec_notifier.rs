//! The exec notifier through the real daemon with real scripts: the JSON arrives on stdin with
//! the configured environment; exit 75 is retried; another exit fails for good with stderr's
//! first line, reported through the other channel; a hung script is killed with its process
//! group at the timeout.

mod kit;

use kit::fake::{ALWAYS_CRITICAL, failing, wait_alert};
use kit::{Daemon, write_config, write_file};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = write_file(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

fn inputs(dir: &Path) -> Vec<Value> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("in-"))
        .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
        .collect()
}

fn wait_input(dir: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = inputs(dir).into_iter().find(|v| pred(v)) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the script never got {what}: {:#?}",
            inputs(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a process exists and is not a zombie (an orphan may wait for a busy init to reap it).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn scripts_get_json_on_stdin_and_their_exit_decides() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let pager = script(
        work.path(),
        "pager.sh",
        r#"out="$(mktemp "$SPOOL/in-XXXXXX")"
cat > "$out"
[ "$PAGER_TOKEN" = "pt-123" ] || { echo "no token" >&2; exit 2; }
if mkdir "$SPOOL/failed-once" 2>/dev/null; then echo "relay busy" >&2; exit 75; fi
exit 0"#,
    );
    let broken = script(
        work.path(),
        "broken.sh",
        "cat >/dev/null\necho 'cannot reach the pager gateway' >&2\necho 'second line' >&2\nexit 2",
    );
    let hung = script(
        work.path(),
        "hung.sh",
        &format!(
            "sleep 300 &\necho $! > {}/grandchild.pid\nsleep 300",
            work.path().display()
        ),
    );
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"{ALWAYS_CRITICAL}
[[notifier]]
id = "pager"
kind = "exec"
argv = ["{pager}"]
env = {{ SPOOL = "{spool}", PAGER_TOKEN = "pt-123" }}

[[notifier]]
id = "broken"
kind = "exec"
argv = ["{broken}", "--flag"]

[[notifier]]
id = "hung"
kind = "exec"
argv = ["{hung}"]
timeout = "1s"
max_attempts = 1
"#,
            spool = spool.display()
        ),
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let alert = wait_alert(&d, "disk_full", Duration::from_secs(15), |a| {
        a["rule"] == "disk_full" && a["state"] == "firing"
    });
    let id = alert["id"].as_str().unwrap();

    // The notification JSON on stdin, as the webhook sends it.
    let got = wait_input(&spool, "the page", |v| v["alert"]["id"] == id);
    assert_eq!(got["event"], "firing");
    assert_eq!(got["alert"]["severity"], "critical");
    assert!(
        got["summary"]
            .as_str()
            .unwrap()
            .contains(" | disk_full on ")
    );

    // A non-zero exit other than 75 fails for good with stderr's first line, and the
    // failure goes out through the working script.
    let meta = wait_alert(&d, "broken failing", Duration::from_secs(15), |a| {
        failing(a, "broken")
    });
    let why = meta["message"].as_str().unwrap();
    assert!(
        why.contains("broken.sh exited with code 2: cannot reach the pager gateway"),
        "{why}"
    );
    assert!(!why.contains("second line"), "{why}");
    wait_input(&spool, "the broken-channel alert", |v| {
        v["alert"]["rule"] == "notifier_failing" && v["alert"]["labels"]["notifier"] == "broken"
    });

    // The hung script is killed at its timeout, with what it started.
    let meta = wait_alert(&d, "hung failing", Duration::from_secs(15), |a| {
        failing(a, "hung")
    });
    let why = meta["message"].as_str().unwrap();
    assert!(why.contains("did not finish within 1s"), "{why}");
    let pid: i32 = std::fs::read_to_string(work.path().join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !alive(pid),
        "the script's background child {pid} survived the timeout"
    );

    // Exit 75 was retried: the first call failed, its retry delivered, nothing failed.
    let log = d.log_text();
    assert!(
        log.contains("exited with code 75: relay busy") && log.contains("retrying"),
        "{log}"
    );
    let alerts = d.get("/api/v1/alerts");
    assert!(
        !alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| failing(a, "pager")),
        "{alerts:#}"
    );
    // The retry runs after a backoff, which may still be pending when the log says "retrying".
    let twice = |all: &[Value]| {
        all.iter()
            .filter(|v| {
                all.iter()
                    .filter(|w| w["dedup_key"] == v["dedup_key"])
                    .count()
                    == 2
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while twice(&inputs(&spool)) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = inputs(&spool);
    assert_eq!(
        twice(&all),
        2,
        "exactly one message was sent twice: {all:#?}"
    );
    d.terminate(Duration::from_secs(5));
}
