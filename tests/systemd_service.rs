//! What `packaging/lookout.service` relies on, with the real binary: secrets handed over by
//! `LoadCredential=` (`${CREDENTIALS_DIRECTORY}` in `*_file` paths), and the notify protocol
//! of `Type=notify` (READY, RELOADING + MONOTONIC_USEC and READY again around a SIGHUP reload,
//! with ERRNO and STATUS when the new file is refused, STOPPING). systemd is not PID 1 here,
//! so the test plays systemd's part: it sets `CREDENTIALS_DIRECTORY` and binds the
//! `NOTIFY_SOCKET` itself, as systemd does for the unit.

mod kit;

use kit::fake::{Contract, Fake};
use kit::{free_port, lookout_bin, write_file};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn lookout(config: &Path, creds: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(lookout_bin());
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("CREDENTIALS_DIRECTORY");
    if let Some(c) = creds {
        cmd.env("CREDENTIALS_DIRECTORY", c);
    }
    let out = cmd.output().expect("run lookout");
    assert!(
        out.status.code().is_some(),
        "lookout died of a signal: {out:?}"
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A credentials directory as systemd makes it: one file per credential, read-only.
fn credentials(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, value) in files {
        let p = write_file(dir, name, value);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
}

#[test]
fn credentials_directory_expands_in_file_paths_and_the_secret_reaches_the_wire() {
    let work = tempfile::tempdir().unwrap();
    let ntfy = Fake::start(Contract::Ntfy);
    let creds = work.path().join("credentials");
    credentials(
        &creds,
        &[
            ("ntfy-token", "tk_from_a_credential\n"),
            ("api-token", "api_from_a_credential\n"),
        ],
    );
    let cfg = write_file(
        work.path(),
        "lookout.toml",
        &format!(
            r#"[api]
token_file = "${{CREDENTIALS_DIRECTORY}}/api-token"

[[notifier]]
id = "phone"
kind = "ntfy"
server = "{}"
topic = "lookout-test"
token_file = "${{CREDENTIALS_DIRECTORY}}/ntfy-token"
"#,
            ntfy.url()
        ),
    );

    // Under the unit: the variable is set, the file checks and the token is sent.
    let out = lookout(&cfg, Some(&creds), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lookout(&cfg, Some(&creds), &["notify", "test", "phone"]);
    assert!(out.status.success(), "{}", text(&out));
    let sent = ntfy.all();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].headers.get("authorization").map(String::as_str),
        Some("Bearer tk_from_a_credential")
    );
    assert!(
        !text(&out).contains("tk_from_a_credential"),
        "{}",
        text(&out)
    );

    // Outside it: a clear error at the value's line and column, with a hint, for each path.
    let out = lookout(&cfg, None, &["config", "check"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let file = cfg.display().to_string();
    assert!(
        shown.contains(&format!(
            "{file}:2:14: [api]: `token_file`: environment variable CREDENTIALS_DIRECTORY is not set"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "{file}:9:14: notifier \"phone\": `token_file`: environment variable CREDENTIALS_DIRECTORY is not set"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("hint: systemd sets CREDENTIALS_DIRECTORY for a unit with LoadCredential="),
        "{shown}"
    );

    // Set, but the credential is missing: the file is named, never a secret.
    let empty = work.path().join("no-credentials");
    credentials(&empty, &[]);
    let out = lookout(&cfg, Some(&empty), &["config", "check"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "{file}:2:1: [api]: cannot read secret file {}/api-token",
            empty.display()
        )),
        "{shown}"
    );

    // Made with `install -m 0600 /dev/null …` and never filled: refused, not sent as `Bearer `.
    let unfilled = work.path().join("unfilled");
    credentials(
        &unfilled,
        &[("ntfy-token", ""), ("api-token", "api_from_a_credential\n")],
    );
    let out = lookout(&cfg, Some(&unfilled), &["config", "check"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "{file}:9:1: notifier \"phone\": secret file {}/ntfy-token is empty",
            unfilled.display()
        )),
        "{shown}"
    );
}

/// The daemon under a stand-in systemd: its notify socket bound by the test.
struct Notified {
    child: Child,
    socket: UnixDatagram,
    log: std::path::PathBuf,
    port: u16,
}

impl Notified {
    fn start(work: &Path, config: &Path) -> Notified {
        let sock_path = work.join("notify.sock");
        let socket = UnixDatagram::bind(&sock_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let log = work.join("lookout.log");
        let logf = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let child = Command::new(lookout_bin())
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(work.join("state"))
            .arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("NOTIFY_SOCKET", &sock_path)
            .env_remove("WATCHDOG_USEC")
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("spawn lookout");
        Notified {
            child,
            socket,
            log,
            port,
        }
    }

    /// The next notification (one datagram), as its `KEY=VALUE` lines.
    fn next(&self) -> Vec<String> {
        let mut buf = vec![0u8; 8192];
        let n = self.socket.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no notification within 30 s ({e}); lookout's log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Waits until every probe of `ids` has reported (probes show in the status once run).
    fn wait_for_probes(&self, ids: &[&str]) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.probe_ids();
            if ids.iter().all(|id| seen.iter().any(|s| s == id)) {
                return seen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "probes {ids:?} did not all report within 30 s: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn probe_ids(&self) -> Vec<String> {
        let status = kit::http_get_json(&format!("http://127.0.0.1:{}/api/v1/status", self.port));
        let mut ids: Vec<String> = status["probes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has(msg: &[String], line: &str) -> bool {
    msg.iter().any(|l| l == line)
}

fn value<'a>(msg: &'a [String], key: &str) -> Option<&'a str> {
    msg.iter()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn disk_probes(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("[[probe]]\nid = \"{id}\"\nkind = \"disk\"\nmounts = [\"/\"]\n"))
        .collect()
}

#[test]
fn sighup_reports_reloading_then_ready_and_a_refused_reload_says_why() {
    let work = tempfile::tempdir().unwrap();
    let cfg = write_file(work.path(), "lookout.toml", &disk_probes(&["root"]));
    let d = Notified::start(work.path(), &cfg);

    let ready = d.next();
    assert!(has(&ready, "READY=1"), "{ready:?}");
    assert!(
        value(&ready, "STATUS").is_some_and(|s| s.starts_with("watching ")),
        "{ready:?}"
    );

    // A good new file: RELOADING=1 with the monotonic time, then READY=1 and what is in force.
    write_file(
        work.path(),
        "lookout.toml",
        &disk_probes(&["root", "root2"]),
    );
    d.signal(rustix::process::Signal::HUP);
    let reloading = d.next();
    assert!(has(&reloading, "RELOADING=1"), "{reloading:?}");
    let t1: u64 = value(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    let done = d.next();
    assert!(has(&done, "READY=1"), "{done:?}");
    assert!(value(&done, "ERRNO").is_none(), "{done:?}");
    assert!(
        value(&done, "STATUS").is_some_and(|s| s.starts_with("configuration reloaded from")),
        "{done:?}"
    );
    d.wait_for_probes(&["root", "root2"]);
    // The host's own probes show up after their first run: compare a settled list.
    std::thread::sleep(Duration::from_millis(1500));
    let in_force = d.probe_ids();

    // A broken file: RELOADING=1, then ERRNO and a STATUS naming the problem, and READY=1 again
    // with the previous configuration still in force.
    write_file(
        work.path(),
        "lookout.toml",
        "[[probe]]\nid = \"root\"\nkind = \"disk\"\nintervall = \"1s\"\n",
    );
    d.signal(rustix::process::Signal::HUP);
    let reloading = d.next();
    assert!(has(&reloading, "RELOADING=1"), "{reloading:?}");
    let t2: u64 = value(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(t2 > t1, "MONOTONIC_USEC went from {t1} to {t2}");
    let refused = d.next();
    assert!(has(&refused, "READY=1"), "{refused:?}");
    assert_eq!(value(&refused, "ERRNO"), Some("22"), "{refused:?}");
    let status = value(&refused, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("reload refused, the previous configuration is still in force:")
            && status.contains("unknown field `intervall`"),
        "{refused:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.probe_ids(),
        in_force,
        "the previous configuration runs on"
    );

    d.signal(rustix::process::Signal::TERM);
    let stopping = d.next();
    assert!(has(&stopping, "STOPPING=1"), "{stopping:?}");
}

/// The unit as shipped, checked by systemd's own parser (`systemd-analyze verify` works
/// without systemd as PID 1) with ExecStart pointed at the binary under test, and the
/// directives the docs promise.
#[test]
fn the_unit_file_parses_and_has_the_promised_settings() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/lookout.service"
    ))
    .unwrap();
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for wanted in [
        "Type=notify",
        "User=lookout",
        "Group=lookout",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
        "ProtectKernelLogs=yes",
        "ProtectProc=invisible",
        "UMask=0077",
        "StateDirectory=lookout",
        "StateDirectoryMode=0700",
    ] {
        assert!(
            directives.contains(&wanted),
            "{wanted} missing from the unit"
        );
    }
    assert!(
        !directives.iter().any(|d| d.starts_with("DynamicUser=")),
        "a fixed user, not DynamicUser"
    );
    assert!(
        unit.contains("LoadCredential="),
        "the unit documents LoadCredential="
    );
    let work = tempfile::tempdir().unwrap();
    let bin = lookout_bin();
    let local = unit.replace("/usr/bin/lookout", bin.to_str().unwrap());
    let path = write_file(work.path(), "lookout.service", &local);
    let out = Command::new("timeout")
        .args(["60", "systemd-analyze", "verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
