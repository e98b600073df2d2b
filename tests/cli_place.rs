//! Issue 10, traps 4 and 9: the CLI and the daemon agree where things are, and a broken
//! configuration never stops the verbs an incident needs (docs/cli.md).

mod kit;

use kit::{Daemon, free_port, lookout_bin, write_file};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the CLI in `cwd` with `envs`, with a deadline: (exit code, stdout, stderr).
fn cli(cwd: &Path, envs: &[(&str, &Path)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new("timeout");
    cmd.arg("30")
        .arg(lookout_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("LOOKOUT_STATE_DIR")
        .env_remove("LOOKOUT_API")
        .env_remove("LOOKOUT_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The id of the standing `no_notifier` alert of a zero-config daemon.
fn no_notifier_id(alerts: &Value) -> String {
    alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "no_notifier")
        .unwrap_or_else(|| panic!("no no_notifier alert in {alerts}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A zero-config daemon started as a user would, with `--listen localhost:PORT`; killed by
/// PID on drop.
struct Localhost {
    child: Child,
    log: std::path::PathBuf,
}

impl Localhost {
    fn start(state: &Path, cwd: &Path, port: u16) -> Localhost {
        let log = cwd.join("daemon.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(lookout_bin())
            .arg("--state-dir")
            .arg(state)
            .arg("run")
            .arg("--listen")
            .arg(format!("localhost:{port}"))
            .current_dir(cwd)
            .env("LOOKOUT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let mut d = Localhost { child, log };
        let ready = format!("status page: http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&d.log).unwrap_or_default();
            if text.contains(&ready) {
                return d;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("lookout run --listen localhost:{port} exited ({st}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "not listening within 20 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Localhost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_cli_finds_a_daemon_started_with_listen_localhost_through_its_state_directory() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let elsewhere = tempfile::tempdir().unwrap(); // the operator's shell, somewhere else
    let port = free_port();
    let _d = Localhost::start(&state, work.path(), port);
    let remembered = std::fs::read_to_string(state.join("api-address")).unwrap();
    assert_eq!(remembered.trim(), format!("http://127.0.0.1:{port}"));

    // No --api: the state directory (here from LOOKOUT_STATE_DIR) says where the daemon is,
    // and holds the token.
    let env = [("LOOKOUT_STATE_DIR", state.as_path())];
    let (code, out, err) = cli(elsewhere.path(), &env, &["alerts", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let id = no_notifier_id(&serde_json::from_str(&out).unwrap());
    let (code, out, err) = cli(elsewhere.path(), &env, &["ack", &id[..8], "--by", "carol"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acknowledged") && out.contains("as carol"),
        "{out}"
    );

    // A state directory without a token: the error names the file it looked for.
    let empty = elsewhere.path().join("not-the-state-dir");
    let url = format!("127.0.0.1:{port}");
    let (code, out, err) = cli(
        elsewhere.path(),
        &[],
        &[
            "--api",
            &url,
            "--state-dir",
            empty.to_str().unwrap(),
            "ack",
            &id,
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    let looked = empty.join("api-token");
    assert!(
        err.contains("no API token") && err.contains(looked.to_str().unwrap()),
        "{err}"
    );

    // A wrong token: the 401 names the file the token came from.
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(&looked, "not-the-token").unwrap();
    let (code, out, err) = cli(
        elsewhere.path(),
        &[],
        &[
            "--api",
            &url,
            "--state-dir",
            empty.to_str().unwrap(),
            "ack",
            &id,
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("refused the API token")
            && err.contains("401")
            && err.contains(looked.to_str().unwrap()),
        "{err}"
    );
    assert!(
        !err.contains("not-the-token"),
        "the token itself is never shown: {err}"
    );
}

#[test]
fn a_broken_lookout_toml_in_the_working_directory_does_not_stop_alerts_or_ack() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let d = Daemon::start_with(None, &state, work.path(), free_port());
    let id = no_notifier_id(&d.get("/api/v1/alerts"));

    // The operator's directory has a lookout.toml with a typo (`knd`), and its [api] listen
    // names the daemon.
    let shell = tempfile::tempdir().unwrap();
    write_file(
        shell.path(),
        "lookout.toml",
        &format!(
            "[api]\nlisten = \"localhost:{}\"\n\n[[probe]]\nid = \"root\"\nknd = \"disk\"\n",
            d.port
        ),
    );
    let (code, out, err) = cli(shell.path(), &[], &["--api", &d.url(), "alerts"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no_notifier"), "{out}");
    assert_eq!(
        err.lines().count(),
        1,
        "one warning line about the file: {err}"
    );
    assert!(
        // The line docs/cli.md shows.
        err.contains("lookout: warning: ignoring the invalid configuration ./lookout.toml (missing `kind` (unknown field `knd`); `lookout config check` lists every problem); using only its [api] listen and [daemon] state_dir"),
        "{err}"
    );

    let (code, out, err) = cli(
        shell.path(),
        &[],
        &[
            "--api",
            &d.url(),
            "--state-dir",
            state.to_str().unwrap(),
            "ack",
            &id[..8],
            "--by",
            "dave",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("as dave"), "{out}");

    // Without --api, and with a state directory that names no daemon: the broken file's
    // [api] listen (valid TOML) is still used.
    let other = shell.path().join("other-state");
    let (code, out, err) = cli(
        shell.path(),
        &[],
        &["--state-dir", other.to_str().unwrap(), "alerts", "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("using only its [api] listen"), "{err}");
    let alerts: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap()["acked_by"],
        "dave"
    );

    // The same file given with --config behaves the same.
    let (code, out, err) = cli(
        shell.path(),
        &[],
        &[
            "--config",
            "lookout.toml",
            "--api",
            &d.url(),
            "timeline",
            "--since",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dave acknowledged no_notifier"), "{out}");
}
