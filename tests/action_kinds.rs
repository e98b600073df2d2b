//! The action kinds against real processes, a real HTTP server and a stand-in `systemctl`
//! (systemd is not PID 1 here; the stand-in is a script, as in tests/systemd_probe.rs). Every
//! action is built from configuration text, as docs/actions.md writes it.

mod kit;

use kit::{Sink, write_file};
use lookout::action::{Action, RunOutcome};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds the one action of a configuration text; returns it and its effective timeout.
fn action(toml: &str) -> (Arc<dyn Action>, Duration) {
    let c = lookout::config::parse_str(Path::new("test.toml"), toml)
        .unwrap_or_else(|e| panic!("invalid configuration:\n{e}\n{toml}"));
    let a = &c.actions[0];
    (lookout::action::build(a), a.timeout().0)
}

fn run(a: &dyn Action, timeout: Duration) -> RunOutcome {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(a.run(timeout))
}

fn exec(argv: &str, extra: &str) -> (Arc<dyn Action>, Duration) {
    action(&format!(
        "[[action]]\nname = \"a\"\nkind = \"exec\"\nargv = {argv}\n{extra}\n"
    ))
}

/// Whether a pid is gone: no such process, or a zombie nobody reaped yet (it runs nothing).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && let Ok(p) = t.trim().parse()
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_captures_output_and_exit_code_with_secrets_redacted() {
    let (a, timeout) = exec(
        r#"["/bin/sh", "-c", "echo out; echo err >&2; echo token=$TOKEN; exit 3"]"#,
        "env = { TOKEN = \"s3cr3t-t0ken\" }",
    );
    assert_eq!(timeout, Duration::from_secs(60), "exec's default timeout");
    let o = run(a.as_ref(), timeout);
    assert!(!o.ok, "{o:?}");
    assert!(o.summary.starts_with("exit 3 in "), "{o:?}");
    assert!(o.output_tail.contains("out\n"), "{o:?}");
    assert!(o.output_tail.contains("err\n"), "{o:?}");
    assert!(o.output_tail.contains("token=<secret>"), "{o:?}");
    assert!(!o.output_tail.contains("s3cr3t"), "{o:?}");
    assert!(o.seconds < 5.0, "{o:?}");

    let dir = tempfile::tempdir().unwrap();
    let (a, t) = exec(
        r#"["/bin/sh", "-c", "pwd; head -c 100000 /dev/zero | tr '\\0' x; echo; echo last"]"#,
        &format!("dir = \"{}\"", dir.path().display()),
    );
    let o = run(a.as_ref(), t);
    assert!(o.ok, "{o:?}");
    assert!(o.summary.starts_with("exit 0 in "), "{o:?}");
    assert!(o.output_tail.len() <= 4096, "the tail is bounded");
    assert!(
        o.output_tail.ends_with("xx\nlast\n"),
        "the last bytes are kept"
    );
    assert_eq!(
        a.describe(),
        r#"exec /bin/sh -c 'pwd; head -c 100000 /dev/zero | tr '\''\0'\'' x; echo; echo last'"#
    );

    let (a, t) = exec(r#"["/nonexistent/restart-app"]"#, "");
    let o = run(a.as_ref(), t);
    assert!(!o.ok);
    assert_eq!(
        o.summary,
        "cannot run /nonexistent/restart-app: no such file"
    );
}

#[test]
fn a_hung_exec_is_killed_at_its_timeout_with_its_whole_process_group() {
    for (ignores_term, script) in [
        (
            false,
            "sleep 1000 & echo $! > {dir}/bg; echo $$ > {dir}/sh; sleep 1000",
        ),
        // SIGTERM ignored by the shell and its children: SIGKILL 2 s later.
        (
            true,
            "trap '' TERM; sleep 1000 & echo $! > {dir}/bg; echo $$ > {dir}/sh; sleep 1000",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let script = script.replace("{dir}", &dir.path().display().to_string());
        let (a, _) = exec(
            &format!("[\"/bin/sh\", \"-c\", {script:?}]"),
            "timeout = \"1s\"",
        );
        let started = Instant::now();
        let o = run(a.as_ref(), Duration::from_secs(1));
        let took = started.elapsed();
        assert!(!o.ok, "{o:?}");
        assert_eq!(o.summary, "killed after 1s timeout", "{o:?}");
        let (sh, bg) = (
            read_pid(&dir.path().join("sh")),
            read_pid(&dir.path().join("bg")),
        );
        assert!(gone(sh), "the shell {sh} still runs");
        assert!(gone(bg), "its child {bg} (same process group) still runs");
        if ignores_term {
            assert!(
                (Duration::from_millis(2900)..Duration::from_millis(4500)).contains(&took),
                "SIGKILL 2 s after SIGTERM: {took:?}"
            );
        } else {
            // SIGTERM at the timeout; the grace may still run out when an orphaned zombie
            // keeps the group alive (PID 1 of a container may not reap).
            assert!(
                (Duration::from_millis(950)..Duration::from_millis(4500)).contains(&took),
                "SIGTERM at the timeout: {took:?}"
            );
        }
    }
}

#[test]
fn a_relative_argv0_is_a_config_error_at_its_line_and_column() {
    let text = "[[action]]\nname = \"link-up\"\nkind = \"exec\"\nargv = [\"ip\", \"link\", \"set\", \"eth0\", \"up\"]\n";
    let e = lookout::config::parse_str(Path::new("a.toml"), text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a.toml:4:9: action \"link-up\": argv[0] \"ip\" is not an absolute path: PATH is not searched\n  hint: write the program's full path, e.g. \"/usr/sbin/ip\" (`command -v NAME` prints it)"
    );
}

/// A server that accepts connections and never answers.
fn silent_server() -> (String, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/restart", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        // Holds the first connections open until the test process ends.
        for c in l.incoming().take(4).flatten() {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(3600));
    });
    (url, h)
}

#[test]
fn http_expected_and_unexpected_status_and_a_timeout() {
    let sink = Sink::start();
    let config = |extra: &str| {
        format!(
            "[[action]]\nname = \"hook\"\nkind = \"http\"\nurl = \"{}\"\nbody = '{{\"restart\": \"app\"}}'\nheaders = {{ Authorization = \"Bearer t0ken-abc\" }}\n{extra}\n",
            sink.url
        )
    };
    let (a, timeout) = action(&config(""));
    assert_eq!(timeout, Duration::from_secs(10), "http's default timeout");
    assert_eq!(
        a.describe(),
        format!("http POST {}", sink.url.replace("/hook", "/<secret>"))
    );
    let o = run(a.as_ref(), timeout);
    assert!(o.ok, "{o:?}");
    assert!(o.summary.starts_with("HTTP 200 in "), "{o:?}");
    let got = sink.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["restart"], "app");

    sink.respond_with(503);
    let o = run(a.as_ref(), timeout);
    assert!(!o.ok, "{o:?}");
    assert!(o.summary.starts_with("HTTP 503 in "), "{o:?}");
    assert!(o.summary.ends_with(", expected 2xx"), "{o:?}");

    let (a, _) = action(&config("expect_status = [503]"));
    let o = run(a.as_ref(), timeout);
    assert!(o.ok, "503 expected: {o:?}");
    sink.respond_with(200);
    let o = run(a.as_ref(), timeout);
    assert!(!o.ok, "{o:?}");
    assert!(o.summary.ends_with(", expected 503"), "{o:?}");

    let (url, _server) = silent_server();
    let (a, t) = action(&format!(
        "[[action]]\nname = \"hook\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"1s\"\n"
    ));
    let started = Instant::now();
    let o = run(a.as_ref(), t);
    let took = started.elapsed();
    assert!(!o.ok, "{o:?}");
    assert!(o.summary.starts_with("timed out"), "{o:?}");
    assert!(
        !o.summary.contains("/restart"),
        "no URL in the summary: {o:?}"
    );
    assert!(took < Duration::from_millis(2000), "one deadline: {took:?}");
}

/// A copy of `sleep` under a name no other process has, so matching by name is safe on a
/// shared machine.
fn unique_sleeper(dir: &Path) -> (String, std::path::PathBuf) {
    let name = format!("lkact{}", std::process::id() % 100_000);
    let bin = dir.join(&name);
    std::fs::copy("/bin/sleep", &bin).unwrap();
    (name, bin)
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the process did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signal_by_pid_file_and_by_name() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (name, bin) = unique_sleeper(dir.path());

    let mut child = std::process::Command::new(&bin)
        .arg("1000")
        .spawn()
        .unwrap();
    let pid_file = write_file(dir.path(), "app.pid", &format!("{}\n", child.id()));
    let (a, timeout) = action(&format!(
        "[[action]]\nname = \"hup\"\nkind = \"signal\"\npid_file = \"{}\"\n",
        pid_file.display()
    ));
    assert_eq!(timeout, Duration::from_secs(5), "signal's default timeout");
    assert_eq!(
        a.describe(),
        format!("signal SIGTERM to the pid in {}", pid_file.display())
    );
    let o = run(a.as_ref(), timeout);
    assert!(o.ok, "{o:?}");
    assert_eq!(
        o.summary.split(" in ").next().unwrap(),
        format!("sent SIGTERM to {name} {}", child.id())
    );
    assert_eq!(wait_exit(&mut child).signal(), Some(15));
    // Its pid file now names a process that is gone.
    let o = run(a.as_ref(), timeout);
    assert!(!o.ok, "{o:?}");
    assert!(o.summary.contains("(stale pid file)"), "{o:?}");

    let mut one = std::process::Command::new(&bin)
        .arg("1000")
        .spawn()
        .unwrap();
    let mut other = std::process::Command::new(&bin).arg("999").spawn().unwrap();
    let (a, t) = action(&format!(
        "[[action]]\nname = \"usr1\"\nkind = \"signal\"\nprocess = \"{name}\"\ncmdline_contains = \"1000\"\nsignal = \"KILL\"\n"
    ));
    let o = run(a.as_ref(), t);
    assert!(o.ok, "{o:?}");
    assert_eq!(wait_exit(&mut one).signal(), Some(9));
    assert!(
        other.try_wait().unwrap().is_none(),
        "the other one does not match"
    );
    let _ = other.kill();
    let _ = other.wait();
    let o = run(a.as_ref(), t);
    assert!(!o.ok, "{o:?}");
    assert!(o.summary.starts_with("no process matches"), "{o:?}");
}

/// A stand-in `systemctl`: `VERB UNIT` does what `job` says, `is-active UNIT` prints the
/// contents of `state` (exit 0 when "active", else 3), like systemctl; every call is logged.
fn stand_in(dir: &Path) -> std::path::PathBuf {
    let d = dir.display();
    let p = write_file(
        dir,
        "systemctl",
        &format!(
            r#"#!/bin/sh
echo "$*" >> {d}/calls
if [ "$2" != app.service ]; then echo "stand-in: unexpected arguments: $*" >&2; exit 64; fi
case "$1" in
  restart|start|stop|reload) . {d}/job ;;
  is-active) s=$(cat {d}/state); echo "$s"; [ "$s" = active ] && exit 0; exit 3 ;;
  *) echo "stand-in: unexpected verb $1" >&2; exit 64 ;;
esac
"#
        ),
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn systemd_restart_success_failure_and_hang_with_a_stand_in_systemctl() {
    let dir = tempfile::tempdir().unwrap();
    let systemctl = stand_in(dir.path());
    let set = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
    let (a, timeout) = action(&format!(
        "[[action]]\nname = \"restart-app\"\nkind = \"systemd\"\nunit = \"app.service\"\nsystemctl = \"{}\"\n",
        systemctl.display()
    ));
    assert_eq!(
        timeout,
        Duration::from_secs(90),
        "systemd's default timeout"
    );
    assert_eq!(
        a.describe(),
        format!("{} restart app.service", systemctl.display())
    );

    set("job", "exit 0\n");
    set("state", "active\n");
    let o = run(a.as_ref(), timeout);
    assert!(o.ok, "{o:?}");
    assert!(
        o.summary
            .starts_with("systemctl restart app.service: done in "),
        "{o:?}"
    );
    assert!(o.summary.ends_with(", app.service is active"), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("calls")).unwrap(),
        "restart app.service\nis-active app.service\n"
    );

    // The job succeeds but the unit does not stay up.
    set("state", "failed\n");
    let o = run(a.as_ref(), timeout);
    assert!(!o.ok, "{o:?}");
    assert!(
        o.summary
            .ends_with("but app.service is failed, expected active"),
        "{o:?}"
    );

    set(
        "job",
        "echo 'Job for app.service failed because the control process exited with error code.' >&2; exit 1\n",
    );
    let o = run(a.as_ref(), timeout);
    assert!(!o.ok, "{o:?}");
    assert!(
        o.summary
            .starts_with("systemctl restart app.service: exit 1 in "),
        "{o:?}"
    );
    assert!(
        o.summary.ends_with(
            ": Job for app.service failed because the control process exited with error code."
        ),
        "{o:?}"
    );

    set("job", "sleep 1000\n");
    let started = Instant::now();
    let o = run(a.as_ref(), Duration::from_secs(1));
    assert!(!o.ok, "{o:?}");
    assert_eq!(
        o.summary,
        "systemctl restart app.service: killed after 1s timeout (the job may still be running in systemd)"
    );
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
}
