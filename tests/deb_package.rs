//! The Debian package, installed for real: `scripts/deb` builds it (from the binary under test,
//! so the suite compiles nothing twice), `dpkg -i` installs it on this machine, the test checks
//! what docs/install.md promises (the `lookout` system user, the files and their modes, the
//! conffile, the unit enabled and not started), runs the installed `/usr/bin/lookout run` as
//! the `lookout` user with the installed configuration and state directory on a free loopback
//! port, stops it by PID, and `dpkg --purge` leaves the machine as it was (also when an
//! assertion fails).

mod kit;

use kit::{free_port, lookout_bin, require_root};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs a command with a deadline (coreutils `timeout`), returning its output.
fn run(secs: u32, cmd: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn ok(secs: u32, cmd: &str, args: &[&str]) -> String {
    let out = run(secs, cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package is purged (and a daemon it started stopped) however the test ends.
struct Installed {
    daemon: Option<Child>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let out = run(120, "dpkg", &["--purge", "lookout"]);
        if !out.status.success() {
            eprintln!(
                "dpkg --purge lookout failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Builds the package with `scripts/deb --no-build --fast` from a copy of the binary under
/// test in a target directory of its own. Returns the .deb and how long it took.
fn build_deb(work: &Path) -> (PathBuf, Duration) {
    let started = Instant::now();
    let target = work.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(lookout_bin(), target.join("release/lookout")).unwrap();
    let out = Command::new("timeout")
        .args([
            "600",
            &format!("{REPO}/scripts/deb"),
            "--no-build",
            "--fast",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run scripts/deb");
    assert!(
        out.status.success(),
        "scripts/deb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(target.join("debian"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb in {}: {debs:?}", target.display());
    (debs[0].clone(), started.elapsed())
}

fn mode(p: &str) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

fn owner(p: &str) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    (m.uid(), m.gid())
}

/// `getent passwd lookout`, split: name, x, uid, gid, gecos, home, shell.
fn lookout_user() -> Option<Vec<String>> {
    let out = run(10, "getent", &["passwd", "lookout"]);
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_string)
            .collect()
    })
}

fn systemd_is_pid1() -> bool {
    std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
}

/// Processes running the installed binary.
fn installed_daemons() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe == Path::new("/usr/bin/lookout"))
        })
        .collect()
}

#[test]
fn the_deb_installs_runs_as_lookout_and_purges_clean() {
    require_root("installing the .deb");
    assert!(
        Command::new("dpkg").arg("--version").output().is_ok(),
        "dpkg is missing: the package test needs a Debian or Ubuntu machine"
    );
    let status = run(10, "dpkg-query", &["-W", "-f=${Status}", "lookout"]);
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "a lookout package is already installed here; the test installs and purges its own \
         build and will not replace yours (remove it with `dpkg --purge lookout`)"
    );
    assert!(
        lookout_user().is_none(),
        "a user `lookout` exists already; the package test creates and removes its own \
         (remove it with `userdel lookout` if it is a leftover)"
    );

    let work = tempfile::tempdir().unwrap();
    let (deb, took) = build_deb(work.path());
    eprintln!("built {} in {took:.1?}", deb.display());
    let mut installed = Installed { daemon: None };
    ok(300, "dpkg", &["-i", deb.to_str().unwrap()]);

    // The user: a system account with no login shell, home in the state directory.
    let user = lookout_user().expect("the package creates the lookout user");
    let uid: u32 = user[2].parse().unwrap();
    let gid: u32 = user[3].parse().unwrap();
    assert!(uid < 1000, "a system uid: {user:?}");
    assert_eq!(user[5], "/var/lib/lookout", "{user:?}");
    assert!(
        user[6] == "/usr/sbin/nologin" || user[6] == "/bin/false",
        "no login shell: {user:?}"
    );

    // Files, owners and modes.
    assert_eq!(mode("/usr/bin/lookout"), 0o755);
    assert_eq!(owner("/var/lib/lookout"), (uid, gid));
    assert_eq!(mode("/var/lib/lookout"), 0o700);
    assert_eq!(owner("/etc/lookout/credentials"), (0, 0));
    assert_eq!(mode("/etc/lookout/credentials"), 0o700);
    assert_eq!(owner("/etc/lookout/lookout.toml"), (0, gid));
    assert_eq!(mode("/etc/lookout/lookout.toml"), 0o640);
    assert_eq!(
        std::fs::read_to_string("/etc/lookout/lookout.toml").unwrap(),
        std::fs::read_to_string(format!("{REPO}/examples/lookout.toml")).unwrap(),
        "the configuration is the starter from examples/lookout.toml"
    );
    let conffiles = ok(10, "dpkg-query", &["-W", "-f=${Conffiles}", "lookout"]);
    assert!(
        conffiles.contains("/etc/lookout/lookout.toml"),
        "a conffile: {conffiles}"
    );
    for doc in [
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "copyright",
        "docs/install.md",
    ] {
        let p = format!("/usr/share/doc/lookout/{doc}");
        assert!(Path::new(&p).is_file(), "{p} is installed");
    }
    for (path, needle) in [
        ("/usr/share/bash-completion/completions/lookout", "lookout"),
        (
            "/usr/share/zsh/vendor-completions/_lookout",
            "#compdef lookout",
        ),
        (
            "/usr/share/fish/vendor_completions.d/lookout.fish",
            "complete -c lookout",
        ),
    ] {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text.contains(needle), "{path} is a completion script");
    }

    // The unit: as in packaging/, parsed clean by systemd, enabled, not started.
    let unit = [
        "/lib/systemd/system/lookout.service",
        "/usr/lib/systemd/system/lookout.service",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("the unit is installed");
    assert_eq!(
        std::fs::read_to_string(unit).unwrap(),
        std::fs::read_to_string(format!("{REPO}/packaging/lookout.service")).unwrap()
    );
    let verify = run(60, "systemd-analyze", &["verify", "--man=no", unit]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify {unit}: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    if systemd_is_pid1() {
        assert_eq!(
            ok(10, "systemctl", &["is-enabled", "lookout.service"]).trim(),
            "enabled"
        );
        let active = run(10, "systemctl", &["is-active", "lookout.service"]);
        assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "inactive");
    } else {
        let link = "/etc/systemd/system/multi-user.target.wants/lookout.service";
        let to = std::fs::read_link(link).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert!(
            to.ends_with("systemd/system/lookout.service"),
            "{link} -> {}",
            to.display()
        );
        // deb-systemd-helper answers only maintainer scripts: say which package asks.
        ok(
            10,
            "env",
            &[
                "DPKG_MAINTSCRIPT_PACKAGE=lookout",
                "deb-systemd-helper",
                "--quiet",
                "was-enabled",
                "lookout.service",
            ],
        );
    }
    assert_eq!(
        installed_daemons(),
        Vec::<u32>::new(),
        "installing starts nothing"
    );

    // The installed binary, as the lookout user, with the installed configuration.
    let port = free_port();
    let log = work.path().join("installed.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new("setpriv")
        .args(["--reuid=lookout", "--regid=lookout", "--init-groups", "--"])
        .args(["/usr/bin/lookout", "--config", "/etc/lookout/lookout.toml"])
        .args(["--state-dir", "/var/lib/lookout", "run", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .current_dir("/var/lib/lookout")
        .env("HOME", "/var/lib/lookout")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawn setpriv (util-linux)");
    let pid = child.id();
    installed.daemon = Some(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(c) = installed.daemon.as_mut()
            && let Ok(Some(exit)) = c.try_wait()
        {
            panic!(
                "the installed lookout exited ({exit}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break kit::http_get_json(&format!("{base}/api/v1/status"));
        }
        assert!(
            Instant::now() < deadline,
            "the installed lookout did not listen within 30 s; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status["probes"].is_array(), "{status}");
    assert_eq!(
        installed_daemons(),
        vec![pid],
        "setpriv execs the daemon in place"
    );
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        proc_status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "runs as lookout: {proc_status}"
    );
    let token = "/var/lib/lookout/api-token";
    assert_eq!(owner(token), (uid, gid));
    assert_eq!(mode(token), 0o600);

    // Stop it by PID, then purge: nothing of it is left.
    let mut child = installed.daemon.take().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let stopped = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "the installed lookout did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(installed);
    assert!(lookout_user().is_none(), "purge removes the lookout user");
    for gone in [
        "/usr/bin/lookout",
        "/etc/lookout",
        "/var/lib/lookout",
        "/etc/systemd/system/multi-user.target.wants/lookout.service",
        unit,
    ] {
        assert!(
            std::fs::symlink_metadata(gone).is_err(),
            "{gone} is left after dpkg --purge"
        );
    }
    let status = run(10, "dpkg-query", &["-W", "-f=${Status}", "lookout"]);
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "still known to dpkg: {}",
        String::from_utf8_lossy(&status.stdout)
    );
}
