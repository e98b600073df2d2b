//! The postgres probe's role expectation (issue 9, item 5) and a standby's heartbeat findings
//! (item 2) against a real primary and streaming standby, driven through the library (the
//! daemon's code path without the daemon); `config check` for the option's values.

mod kit;
mod pg_common;
mod pg_kit;

use kit::write_file;
use lookout::model::{Severity, Status};
use pg_common::*;
use pg_kit::{Cluster, PrimaryOpts};
use std::time::Duration;

#[test]
fn a_probe_on_the_other_role_raises_pg_role_mismatch_naming_its_options() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let text = [
        // After a failover: the old primary's probe now looks at a standby (role inferred).
        probe_toml(
            "old-primary",
            &standby,
            &pw,
            "2s",
            "expected_standbys = [\"node2\"]\nwrite_check = true\nheartbeat = true",
        ),
        // A standby's probe that finds a primary (promoted).
        probe_toml(
            "promoted",
            &primary,
            &pw,
            "2s",
            "role = \"standby\"\nheartbeat = true",
        ),
        // role = "any" follows the role: no alert; matching roles: no alert.
        probe_toml(
            "follower",
            &standby,
            &pw,
            "2s",
            "role = \"any\"\nwrite_check = true",
        ),
        probe_toml("fine", &primary, &pw, "2s", "role = \"primary\""),
        probe_toml("fine-standby", &standby, &pw, "2s", "role = \"standby\""),
    ]
    .concat();
    let mut h = Harness::new(&text);
    for id in [
        "old-primary",
        "promoted",
        "follower",
        "fine",
        "fine-standby",
    ] {
        let (obs, _, _) = h.run(id);
        eprintln!("{id} ({:?}):\n{}\n", obs.status, obs.message);
    }
    let a = h
        .open("old-primary", "pg_role_mismatch")
        .expect("a mismatch alert for the old primary's probe");
    eprintln!("old-primary: {}", a.message);
    assert_eq!(a.severity, Severity::Critical);
    assert!(
        a.message.starts_with(
            "role mismatch: this server is a standby, but the probe expects a primary \
             (inferred from expected_standbys, write_check): expected_standbys, write_check, \
             heartbeat (writing it) cannot apply on a standby"
        ),
        "{}",
        a.message
    );
    let (obs, _, _) = h.run("old-primary");
    assert!(
        obs.message
            .starts_with("role mismatch: this server is a standby"),
        "the probe's message says it first: {}",
        obs.message
    );
    let a = h
        .open("promoted", "pg_role_mismatch")
        .expect("a mismatch alert for the promoted standby's probe");
    eprintln!("promoted: {}", a.message);
    assert!(
        a.message.starts_with(
            "role mismatch: this server is a primary, but the probe expects a standby \
             (role = \"standby\")"
        ) && a.message.contains("heartbeat (reading its age)"),
        "{}",
        a.message
    );
    for id in ["follower", "fine", "fine-standby"] {
        assert!(
            h.open(id, "pg_role_mismatch").is_none(),
            "{id}: no mismatch alert"
        );
    }
}

#[test]
fn a_standby_without_a_heartbeat_row_says_so_from_its_second_run() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    primary.sql("CREATE TABLE lookout_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)");
    wait_for(
        "the table on the standby",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            (standby.sql("SELECT to_regclass('lookout_heartbeat') IS NOT NULL") == "t")
                .then_some(())
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let mut h = Harness::new(&probe_toml("db2", &standby, &pw, "2s", "heartbeat = true"));
    let (first, _, _) = h.run("db2");
    assert_eq!(first.status, Status::Ok, "{}", first.message);
    let (second, _, _) = h.run("db2");
    eprintln!("{}", second.message);
    assert_eq!(second.status, Status::Warning, "{}", second.message);
    assert!(
        second
            .message
            .starts_with("no heartbeat row in lookout_heartbeat on this standby yet"),
        "{}",
        second.message
    );
    assert!(!second.message.contains("set heartbeat = true"));
    let alert = h.open("db2", "probe_status").expect("a warning");
    assert!(
        alert.message.starts_with("no heartbeat row"),
        "the page's first line: {}",
        alert.message
    );
}

#[test]
fn config_check_rejects_an_unknown_role_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "lookout.toml",
        "[[probe]]\nid = \"db1\"\nkind = \"postgres\"\nrole = \"replica\"\n\n\
         [[probe]]\nid = \"db2\"\nkind = \"postgres\"\nrole = \"standby\"\nwrite_check = true\n",
    );
    let out = std::process::Command::new("timeout")
        .arg("30")
        .arg(kit::lookout_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("lookout.toml:4:8")
            && text.contains("role \"replica\" is not one of primary, standby, any")
            && text.contains("did you mean \"standby\"?"),
        "{text}"
    );
}
