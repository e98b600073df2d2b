//! lookout's own store on a filesystem that fills up: it keeps evaluating and notifying from
//! memory, raises an alert about its store, and recovers (writing what it held) when space
//! comes back.

mod kit;

use kit::{Daemon, LoopFs, Sink, is_event, write_config};
use std::time::Duration;

#[test]
fn a_full_store_disk_is_alerted_and_paging_goes_on() {
    let fs = LoopFs::new(16, 0);
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let state = fs.mount.join("state");
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[probe]]
id = "statedisk"
kind = "disk"
mounts = ["{mount}"]
interval = "1s"
for = "0s"
recover_after = 1

[[notifier]]
id = "hook"
kind = "webhook"
url = "{url}"
"#,
            mount = fs.path(),
            url = sink.url
        ),
    );
    let daemon = Daemon::start(&config, &state, work.path());
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        daemon.get("/healthz")["store_ok"].as_bool().unwrap(),
        "store works at first"
    );

    fs.fill_completely("filler");
    // Paging goes on: the full disk itself is announced...
    sink.wait_for(
        "disk_full on the state disk",
        Duration::from_secs(20),
        |b| is_event(b, "firing", "disk_full", Some("critical")),
    );
    // ...and so is the store's failure.
    let store_alert = sink.wait_for("store_failing", Duration::from_secs(30), |b| {
        is_event(b, "firing", "store_failing", Some("critical"))
    });
    let msg = store_alert.body["alert"]["message"].as_str().unwrap();
    assert!(msg.contains("held in memory"), "{msg}");
    assert!(!daemon.get("/healthz")["store_ok"].as_bool().unwrap());

    std::fs::remove_file(fs.mount.join("filler")).unwrap();
    sink.wait_for("store_failing resolved", Duration::from_secs(30), |b| {
        is_event(b, "resolved", "store_failing", None)
    });
    sink.wait_for("disk_full resolved", Duration::from_secs(20), |b| {
        is_event(b, "resolved", "disk_full", None)
    });
    // Nothing was lost: what happened while the store failed is in the store now.
    std::thread::sleep(Duration::from_secs(2));
    let conn = lookout::store::open_read_only(&state).unwrap();
    let timeline = lookout::store::load_timeline(&conn, 0.0, 1000).unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.entry.kind == "alert_firing" && e.entry.message.contains("store_failing")),
        "the store_failing entry made while the store failed was written later: {timeline:#?}"
    );
    drop(conn);
    daemon.terminate(Duration::from_secs(5));
}
