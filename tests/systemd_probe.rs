//! The `systemd` probe. systemd does not run in this container (PID 1 is not systemd), so the
//! real `systemctl` can only show how the probe reports that: unknown, with systemctl's own
//! words. Unit states are exercised with a stand-in: a script written by the test that checks
//! its arguments and prints recorded `systemctl show` output.

mod kit;

use kit::write_file;
use lookout::model::{Labels, Observation, Status};
use lookout::probe::Probe;
use lookout::probe::systemd::{SystemdConfig, SystemdProbe, samples};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn run(p: &SystemdProbe) -> Observation {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(p.run())
}

fn probe(systemctl: Option<&Path>, unit: &str, deadline: Option<Duration>) -> SystemdProbe {
    SystemdProbe::new(
        SystemdConfig {
            unit: unit.into(),
            expect: None,
            systemctl: systemctl.map(|p| p.to_str().unwrap().to_string()),
        },
        deadline,
    )
}

/// A stand-in `systemctl` that answers `show UNIT --property=… --no-pager` with the contents
/// of `answer` (rewritten by the test between runs) and fails on any other arguments.
fn stand_in(dir: &Path) -> (PathBuf, PathBuf) {
    let answer = dir.join("answer");
    let p = write_file(
        dir,
        "systemctl",
        &format!(
            r#"#!/bin/sh
if [ "$1" != show ] || [ "$2" != synapse.service ] || [ "$3" != "--property=LoadState,ActiveState,SubState,NRestarts,Result,ExecMainStatus" ] || [ "$4" != --no-pager ]; then
  echo "stand-in systemctl: unexpected arguments: $*" >&2
  exit 64
fi
cat {}
"#,
            answer.display()
        ),
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    (p, answer)
}

#[test]
fn the_real_systemctl_here_gives_unknown_with_its_own_words() {
    assert!(
        Path::new("/usr/bin/systemctl").exists() || Path::new("/bin/systemctl").exists(),
        "systemctl is needed for this test: apt-get install -y systemd"
    );
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    assert_ne!(
        comm.trim(),
        "systemd",
        "this test expects a machine without systemd as PID 1 (a container)"
    );
    let o = run(&probe(None, "cron.service", Some(Duration::from_secs(5))));
    assert_eq!(o.status, Status::Unknown, "{}", o.message);
    assert!(
        o.message.starts_with("cannot read the state of cron.service: systemctl exited with code 1: System has not been booted with systemd as init system (PID 1). Can't operate."),
        "{}",
        o.message
    );
}

#[test]
fn stand_in_states_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (systemctl, answer) = stand_in(dir.path());
    let p = probe(
        Some(&systemctl),
        "synapse.service",
        Some(Duration::from_secs(5)),
    );
    let say = |text: &str| std::fs::write(&answer, text).unwrap();

    say(
        "Result=success\nNRestarts=0\nExecMainStatus=0\nLoadState=loaded\nActiveState=active\nSubState=running\n",
    );
    let o = run(&p);
    assert_eq!(
        (o.status, o.message.as_str()),
        (Status::Ok, "synapse.service is active (running)")
    );
    assert_eq!(o.sample(samples::RESTARTS, &Labels::new()), Some(0.0));
    assert!(o.events.is_empty());

    say(
        "Result=exit-code\nNRestarts=1\nExecMainStatus=1\nLoadState=loaded\nActiveState=activating\nSubState=auto-restart\n",
    );
    let o = run(&p);
    assert_eq!(o.status, Status::Warning);
    assert_eq!(
        o.events,
        vec!["synapse.service was restarted by systemd once (NRestarts 0 → 1)"]
    );
    assert_eq!(o.sample(samples::RESTARTS, &Labels::new()), Some(1.0));

    say(
        "Result=exit-code\nNRestarts=5\nExecMainStatus=1\nLoadState=loaded\nActiveState=failed\nSubState=failed\n",
    );
    let o = run(&p);
    assert_eq!(o.status, Status::Critical);
    assert_eq!(
        o.message,
        "synapse.service is failed (failed), expected active: Result=exit-code, main process exit status 1"
    );
    assert_eq!(
        o.events,
        vec!["synapse.service was restarted by systemd 4 times (NRestarts 1 → 5)"]
    );

    say(
        "Result=success\nNRestarts=0\nExecMainStatus=0\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n",
    );
    let o = run(&p);
    assert_eq!(o.status, Status::Critical);
    assert_eq!(
        o.message,
        "synapse.service does not exist (LoadState=not-found)"
    );

    say("Failed to get properties: Access denied\n");
    let o = run(&p);
    assert_eq!(o.status, Status::Unknown);
    assert!(
        o.message.contains("printed no ActiveState"),
        "{}",
        o.message
    );

    // Arguments the stand-in does not expect: its complaint is passed on.
    let o = run(&probe(Some(&systemctl), "other.service", None));
    assert_eq!(o.status, Status::Unknown);
    assert!(
        o.message
            .contains("exited with code 64: stand-in systemctl: unexpected arguments"),
        "{}",
        o.message
    );
}

#[test]
fn a_hanging_or_missing_systemctl_is_unknown_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let hang = write_file(dir.path(), "systemctl-hang", "#!/bin/sh\nsleep 1000\n");
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let o = run(&probe(
        Some(&hang),
        "synapse.service",
        Some(Duration::from_secs(1)),
    ));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(o.status, Status::Unknown);
    assert_eq!(
        o.message,
        "systemctl-hang did not finish within 1s; killed it and its child processes"
    );
    let o = run(&probe(
        Some(Path::new("/nonexistent/systemctl")),
        "x.service",
        None,
    ));
    assert_eq!(o.status, Status::Unknown);
    assert_eq!(o.message, "cannot run /nonexistent/systemctl: no such file");
}
