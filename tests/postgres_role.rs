//! The postgres probe's role expectation (issue 9, item 5) and a standby's heartbeat findings
//! (item 2) against a real primary and streaming standby, driven through the library (the
//! daemon's code path without the daemon); `config check` for the option's values.

mod kit;
mod pg_common;
mod pg_kit;

use kit::{write_config, write_file};
use lookout::alert::AlertState;
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
            "role = \"any\"\nwrite_check = true\nexpected_standbys = [\"node2\"]",
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
    // Item 4: a mismatched probe acts as neither role: the "standby" probe on the primary
    // wrote no heartbeat (no table created), the "primary" probe on the standby read none.
    let (obs, _, _) = h.run("promoted");
    assert!(
        !obs.message.contains("heartbeat written")
            && obs
                .message
                .contains("the primary checks are skipped until the role matches"),
        "{}",
        obs.message
    );
    assert_eq!(
        primary.sql("SELECT to_regclass('lookout_heartbeat') IS NULL"),
        "t",
        "a probe expecting a standby wrote to the primary"
    );
    let (obs, _, _) = h.run("old-primary");
    assert!(
        !obs.message.contains("heartbeat from the primary")
            && !obs.message.contains("WAL receiver")
            && obs
                .message
                .contains("the standby checks are skipped until the role matches"),
        "{}",
        obs.message
    );
    assert!(h.open("old-primary", "pg_heartbeat_age").is_none());
    // Item 5: role = "any" on a standby says which primary-only options it skipped.
    let (obs, _, _) = h.run("follower");
    assert_eq!(obs.status, Status::Ok, "{}", obs.message);
    assert!(
        obs.message.contains(
            "note: role = \"any\" and this server is a standby: expected_standbys, \
             write_check not checked (only on a primary)"
        ),
        "{}",
        obs.message
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
    let cfg = write_config(
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

#[test]
fn the_documented_schema_variant_works_with_its_grants_only() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let standby = primary.standby("node2", "node2");
    // The recipe's role (its first two statements), then the schema variant, verbatim.
    let recipe = doc_sql("least-privilege recipe: tests/postgres_grants.rs");
    let role: String = recipe
        .lines()
        .filter(|l| l.starts_with("CREATE ROLE") || l.starts_with("GRANT pg_monitor"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(role.lines().count(), 2, "{recipe}");
    primary.sql(&role);
    primary.sql(&doc_sql("schema variant: tests/postgres_role.rs"));
    wait_for(
        "the table on the standby",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            (standby.sql("SELECT to_regclass('monitoring.lookout_heartbeat') IS NOT NULL") == "t")
                .then_some(())
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let pw = write_file(dir.path(), "pg-password", "change-me\n");
    let pw = pw.to_str().unwrap();
    let extra = "heartbeat = true\nheartbeat_table = \"monitoring.lookout_heartbeat\"";
    let mut h = Harness::new(
        &[
            probe_toml_as(
                "db1",
                &primary,
                "lookout",
                pw,
                "2s",
                &format!("{extra}\nwrite_check = true"),
            ),
            probe_toml_as("db2", &standby, "lookout", pw, "2s", extra),
        ]
        .concat(),
    );
    let (p, _, _) = h.run("db1");
    eprintln!("{}", p.message);
    assert_eq!(p.status, Status::Ok, "{}", p.message);
    assert!(
        p.message
            .contains("heartbeat written to monitoring.lookout_heartbeat")
            && p.message.contains("write check ok"),
        "{}",
        p.message
    );
    let age = wait_for(
        "a heartbeat age on the standby",
        Duration::from_secs(20),
        Duration::from_millis(300),
        || {
            let (s, _, _) = h.run("db2");
            sample(&s, "pg.heartbeat_age_seconds", &[])
        },
    );
    assert!(age < 10.0, "{age}");
}

#[test]
fn a_write_check_that_fails_is_the_first_line_of_the_page() {
    let primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let mut h = Harness::new(&probe_toml(
        "db1",
        &primary,
        &pw,
        "2s",
        "heartbeat = true\nwrite_check = true",
    ));
    assert_eq!(h.run("db1").0.status, Status::Ok);
    primary.sql("ALTER SYSTEM SET default_transaction_read_only = on");
    primary.sql("SELECT pg_reload_conf()");
    let alert = wait_for(
        "the write check alert",
        Duration::from_secs(20),
        Duration::from_millis(300),
        || {
            h.run("db1");
            h.open("db1", "probe_status")
                .filter(|a| a.severity == Severity::Critical)
        },
    );
    eprintln!("{}", alert.message);
    let first = alert.message.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "accepts connections but cannot write: cannot execute INSERT in a read-only transaction"
        ),
        "{}",
        alert.message
    );
    assert!(
        alert
            .message
            .lines()
            .any(|l| l.starts_with("primary (PostgreSQL ")),
        "the context follows: {}",
        alert.message
    );
}

/// Blocks every write of the heartbeat row on the primary (as revoking INSERT/UPDATE would,
/// but for the superuser the test logs in as).
const BLOCK_WRITES: &str = "CREATE FUNCTION block_hb() RETURNS trigger LANGUAGE plpgsql AS \
     $$BEGIN RAISE EXCEPTION 'heartbeat writes blocked by the test'; END$$; \
     CREATE TRIGGER block_hb BEFORE INSERT OR UPDATE ON lookout_heartbeat \
     FOR EACH ROW EXECUTE FUNCTION block_hb()";

#[test]
fn the_paged_heartbeat_alert_names_the_primary_probes_failure_first() {
    let mut primary = Cluster::primary("db1", None, &PrimaryOpts::default());
    // As `pg_basebackup -R` leaves it: application_name walreceiver, slot node2.
    let standby = primary.standby("walreceiver", "node2");
    let dir = tempfile::tempdir().unwrap();
    let pw = pw_file(dir.path());
    let text = [
        probe_toml("db1", &primary, &pw, "2s", "heartbeat = true"),
        probe_toml(
            "db1-expect",
            &primary,
            &pw,
            "2s",
            "expected_standbys = [\"node2\"]",
        ),
        // The standby's probe as the docs give it: depends_on the primary's probe.
        probe_toml(
            "db2-dep",
            &standby,
            &pw,
            "2s",
            "role = \"standby\"\ndepends_on = [\"db1\"]",
        ),
        // db1 pointed at the standby's port by mistake: nothing writes the heartbeat.
        probe_toml(
            "db1-wrong",
            &standby,
            &pw,
            "2s",
            "role = \"primary\"\nheartbeat = true",
        ),
        probe_toml(
            "db2",
            &standby,
            &pw,
            "2s",
            "role = \"standby\"\nheartbeat = true\nheartbeat_warning = \"1s\"\n\
             heartbeat_critical = \"1h\"",
        ),
    ]
    .concat();
    let mut h = Harness::new(&text);
    let (obs, _, _) = h.run("db1");
    assert_eq!(obs.status, Status::Ok, "{}", obs.message);
    wait_for(
        "the heartbeat row on the standby",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (standby.sql("SELECT count(*) FROM lookout_heartbeat") == "1").then_some(()),
    );
    // Item 3: the expected node2 streams as walreceiver from slot node2: say so.
    let (obs, _, _) = h.run("db1-expect");
    eprintln!("db1-expect ({:?}):\n{}", obs.status, obs.message);
    let hint = "a standby named walreceiver streams from slot node2: it is probably node2 \
                under another application_name; set application_name=node2 in primary_conninfo";
    assert!(
        obs.message
            .lines()
            .next()
            .unwrap_or_default()
            .contains(hint),
        "{}",
        obs.message
    );
    let a = h
        .open("db1-expect", "pg_standby_missing")
        .expect("node2 is missing");
    assert!(a.message.contains(hint), "{}", a.message);

    primary.sql(BLOCK_WRITES);
    let (obs, _, _) = h.run("db1");
    assert_eq!(obs.status, Status::Warning, "{}", obs.message);
    std::thread::sleep(Duration::from_millis(1500));
    let (obs, _, _) = h.run("db2");
    eprintln!("db2 ({:?}):\n{}", obs.status, obs.message);
    let a = h
        .open("db2", "pg_heartbeat_age")
        .expect("a heartbeat age alert on the standby");
    eprintln!("db2 pg_heartbeat_age: {}", a.message);
    assert!(
        a.message
            .contains("the primary's probe db1 has failed to write it since")
            && a.message.contains("heartbeat writes blocked by the test")
            && !a.message.contains("not replaying"),
        "the paged text names the known failure, not replication: {}",
        a.message
    );
    assert!(
        obs.message.starts_with("heartbeat from the primary is"),
        "finding first: {}",
        obs.message
    );

    // Item 6: writes work again, then nobody writes: the stale age is the first line.
    primary.sql("DROP TRIGGER block_hb ON lookout_heartbeat");
    let (obs, _, _) = h.run("db1");
    assert_eq!(obs.status, Status::Ok, "{}", obs.message);
    std::thread::sleep(Duration::from_millis(2000));
    let (obs, _, _) = h.run("db2");
    eprintln!("db2 ({:?}):\n{}", obs.status, obs.message);
    assert_eq!(obs.status, Status::Warning, "{}", obs.message);
    let first = obs.message.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("heartbeat from the primary is")
            && first.contains("(warning at 1.0s): this standby is not replaying"),
        "finding first: {}",
        obs.message
    );

    // Item 2 (second case) and 4: the primary's probe pointed at the standby writes nothing,
    // and the standby's alert says so instead of blaming replication.
    let (obs, _, _) = h.run("db1-wrong");
    assert!(
        h.open("db1-wrong", "pg_role_mismatch").is_some(),
        "{}",
        obs.message
    );
    let (obs, _, _) = h.run("db2");
    let a = h.open("db2", "pg_heartbeat_age").expect("still stale");
    eprintln!("db2:\n{}\nalert: {}", obs.message, a.message);
    assert!(
        a.message
            .contains("the primary's probe db1-wrong has failed to write it since")
            && a.message.contains("role mismatch: its server (127.0.0.1:")
            && a.message
                .contains("is a standby, so it does not write the heartbeat"),
        "{}",
        a.message
    );
    assert!(h.open("db1-wrong", "pg_heartbeat_age").is_none());

    // Item 11c: the primary stops. db1 pages; the standby's probe with depends_on = ["db1"]
    // holds its receiver alert (suppressed), where one without it fires a second page.
    let (obs, _, _) = h.run("db2-dep");
    assert_eq!(obs.status, Status::Ok, "{}", obs.message);
    primary.stop();
    let (obs, _, _) = h.run("db1");
    assert_eq!(obs.status, Status::Critical, "{}", obs.message);
    let a = wait_for(
        "the standby's receiver alert",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            h.run("db1");
            h.run("db2");
            let (obs, events, _) = h.run("db2-dep");
            assert!(
                events.iter().all(|e| e.alert.rule != "pg_wal_receiver_down"
                    || e.alert.state != AlertState::Firing),
                "db2-dep paged: {}",
                obs.message
            );
            h.open("db2-dep", "pg_wal_receiver_down")
        },
    );
    eprintln!("db2-dep pg_wal_receiver_down: {:?} {}", a.state, a.message);
    assert_eq!(a.state, AlertState::Suppressed, "{}", a.message);
    let b = h
        .open("db2", "pg_wal_receiver_down")
        .expect("without depends_on the standby's probe raises its own");
    assert_eq!(b.state, AlertState::Firing, "{}", b.message);

    // Item 11a: the standby is promoted; the role-change event does not repeat the probe's id
    // (the timeline prefixes it).
    standby.sql("SELECT pg_promote()");
    let obs = wait_for(
        "the role change",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let (obs, _, _) = h.run("db2-dep");
            obs.events
                .iter()
                .any(|e| e.contains("changed role"))
                .then_some(obs)
        },
    );
    eprintln!("db2-dep events: {:?}", obs.events);
    assert!(
        obs.events
            .iter()
            .any(|e| e == "changed role: standby → primary"),
        "{:?}",
        obs.events
    );
}
