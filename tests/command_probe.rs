//! The `command` probe against real plugin scripts written by the test: every exit code,
//! perfdata in several forms, a plugin that hangs (killed with its children within the
//! deadline), one that prints megabytes, and one through the real daemon to a webhook and
//! `/metrics`.

mod kit;

use kit::{Daemon, Sink, http_get, is_event, write_config, write_file};
use lookout::model::{Labels, Observation, Status};
use lookout::probe::Probe;
use lookout::probe::command::{CommandConfig, CommandProbe};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes an executable `#!/bin/sh` script.
fn plugin(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = write_file(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn probe(argv: &[&str], deadline: Option<Duration>) -> CommandProbe {
    CommandProbe::new(
        CommandConfig {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        deadline,
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn run(p: &CommandProbe) -> Observation {
    rt().block_on(p.run())
}

fn get(o: &Observation, name: &str) -> f64 {
    o.sample(name, &Labels::new())
        .unwrap_or_else(|| panic!("no sample {name} in {:?}", o.samples))
}

/// Whether a pid is gone (or only a zombie waiting for its reaper).
fn pid_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: i32, within: Duration) {
    let deadline = Instant::now() + within;
    while !pid_gone(pid) {
        if Instant::now() > deadline {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("pid {pid}, started by the plugin, still runs {within:?} after the probe ended");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exit_codes_become_statuses_with_the_first_line_as_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (0, Status::Ok, "FOO OK - all fine"),
        (1, Status::Warning, "FOO WARNING - load 6"),
        (2, Status::Critical, "FOO CRITICAL - load 12"),
        (
            3,
            Status::Unknown,
            "FOO UNKNOWN - cannot read /proc/loadavg",
        ),
    ];
    for (code, status, text) in cases {
        let p = plugin(
            dir.path(),
            &format!("check_{code}"),
            &format!("echo '{text} | load1=1'\necho 'second line'\nexit {code}"),
        );
        let o = run(&probe(&[p.to_str().unwrap()], None));
        assert_eq!(o.status, status, "exit {code}: {o:?}");
        assert_eq!(o.message, text, "exit {code}");
        assert_eq!(get(&o, "command.load1"), 1.0);
    }
    // Any other exit, and a signal: unknown, in words.
    let p = plugin(dir.path(), "check_4", "echo 'half-broken plugin'\nexit 4");
    let o = run(&probe(&[p.to_str().unwrap()], None));
    assert_eq!(o.status, Status::Unknown);
    assert_eq!(
        o.message,
        "check_4 exited with code 4, which is not a plugin status (0 ok, 1 warning, 2 critical, 3 unknown): half-broken plugin"
    );
    let p = plugin(dir.path(), "check_segv", "kill -SEGV $$");
    let o = run(&probe(&[p.to_str().unwrap()], None));
    assert_eq!(o.status, Status::Unknown);
    assert!(
        o.message
            .contains("check_segv was killed by signal 11 (SIGSEGV)"),
        "{}",
        o.message
    );
    // No output at all: stderr is shown.
    let p = plugin(
        dir.path(),
        "check_quiet",
        "echo 'oops: no config' >&2\nexit 2",
    );
    let o = run(&probe(&[p.to_str().unwrap()], None));
    assert_eq!(o.status, Status::Critical);
    assert_eq!(
        o.message,
        "check_quiet printed nothing; stderr: oops: no config"
    );
    // Not executable, and not there.
    let p = write_file(dir.path(), "check_noexec", "#!/bin/sh\nexit 0\n");
    let o = run(&probe(&[p.to_str().unwrap()], None));
    assert_eq!(o.status, Status::Unknown);
    assert!(o.message.contains("permission denied"), "{}", o.message);
    let o = run(&probe(&["check_that_does_not_exist"], None));
    assert!(o.message.contains("not found on PATH"), "{}", o.message);
}

#[test]
fn argv_env_and_cwd_reach_the_plugin_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(
        dir.path(),
        "check_args",
        "echo \"args=[$1][$2] env=$FOO cwd=$(pwd)\"",
    );
    let probe = CommandProbe::new(
        CommandConfig {
            argv: vec![p.to_str().unwrap().into(), "a b".into(), "$HOME;x".into()],
            env: [("FOO".to_string(), "bar".to_string())].into(),
            cwd: Some("/tmp".into()),
        },
        None,
    );
    let o = run(&probe);
    assert_eq!(o.message, "args=[a b][$HOME;x] env=bar cwd=/tmp");
}

#[test]
fn perfdata_forms_become_samples_with_normalised_units() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(
        dir.path(),
        "check_perf",
        r#"echo "HTTP OK: 200 in 0.25 s | time=250ms;1;2;0 size=2KB;;;0 'in use'=42.5%;80;90 'it''s'=3c rtt=0.5s"
echo "long text line 1"
echo "long text line 2 | big=1.5GB"
echo "tiny=10us"
echo "undetermined=U"
exit 0"#,
    );
    let o = run(&probe(&[p.to_str().unwrap()], None));
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.message, "HTTP OK: 200 in 0.25 s");
    assert_eq!(get(&o, "command.time"), 0.25);
    assert_eq!(get(&o, "command.size"), 2048.0);
    assert_eq!(get(&o, "command.in_use"), 42.5);
    assert_eq!(get(&o, "command.it_s"), 3.0);
    assert_eq!(get(&o, "command.rtt"), 0.5);
    assert_eq!(get(&o, "command.big"), 1.5 * 1024.0 * 1024.0 * 1024.0);
    assert!((get(&o, "command.tiny") - 1e-5).abs() < 1e-12);
    assert_eq!(o.samples.len(), 7, "U gives no sample: {:?}", o.samples);

    // Malformed perfdata: the status stands, the message says what was ignored.
    let p = plugin(
        dir.path(),
        "check_badperf",
        "echo \"DISK WARNING | ok=1 broken 'open=2 \"\nexit 1",
    );
    let o = run(&probe(&[p.to_str().unwrap()], None));
    assert_eq!(o.status, Status::Warning);
    assert!(
        o.message.starts_with("DISK WARNING (perfdata ignored: \"broken\" is not label=value; unclosed quote in label \"'open=2\")"),
        "{}",
        o.message
    );
    assert_eq!(get(&o, "command.ok"), 1.0);
}

/// A plugin that hangs, with a child of its own (holding its stdout open).
fn hanging_plugin(dir: &Path) -> (PathBuf, PathBuf) {
    let pidfile = dir.join("child.pid");
    let p = plugin(
        dir,
        "check_hang",
        &format!(
            "sleep 1000 &\necho $! > {}\necho 'starting'\nsleep 1000",
            pidfile.display()
        ),
    );
    (p, pidfile)
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && let Ok(pid) = t.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the plugin never wrote {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_hanging_plugin_is_killed_with_its_children_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (p, pidfile) = hanging_plugin(dir.path());
    let started = Instant::now();
    let o = run(&probe(&[p.to_str().unwrap()], Some(Duration::from_secs(1))));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} with a 1 s deadline"
    );
    assert_eq!(o.status, Status::Unknown);
    assert_eq!(
        o.message,
        "check_hang did not finish within 1s; killed it and its child processes"
    );
    wait_gone(read_pid(&pidfile), Duration::from_millis(500));
}

#[test]
fn dropping_the_run_at_the_schedulers_timeout_kills_the_plugin_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let (p, pidfile) = hanging_plugin(dir.path());
    let probe = probe(&[p.to_str().unwrap()], None);
    let started = Instant::now();
    // What the scheduler does: the run inside tokio::time::timeout.
    let r =
        rt().block_on(async { tokio::time::timeout(Duration::from_secs(1), probe.run()).await });
    let took = started.elapsed();
    assert!(r.is_err(), "a plugin sleeping forever finished: {r:?}");
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} with a 1 s timeout"
    );
    wait_gone(read_pid(&pidfile), Duration::from_millis(500));
}

#[test]
fn a_plugin_printing_megabytes_costs_at_most_the_output_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(
        dir.path(),
        "check_chatty",
        "echo 'CHATTY OK | lines=100000'\nyes 'filler line of a chatty plugin' | head -c 8000000\nexit 0",
    );
    let started = Instant::now();
    let o = run(&probe(
        &[p.to_str().unwrap()],
        Some(Duration::from_secs(20)),
    ));
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert!(
        o.message.starts_with("CHATTY OK (output cut at 64 KiB;"),
        "{}",
        o.message
    );
    assert_eq!(get(&o, "command.lines"), 100000.0);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_critical_plugin_pages_through_the_daemon_and_its_perfdata_is_in_metrics() {
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let p = plugin(
        work.path(),
        "check_queue",
        "echo 'QUEUE CRITICAL - 512 messages waiting | depth=512;100;500;0 age=2500ms'\nexit 2",
    );
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[probe]]
id = "queue"
kind = "command"
argv = ["{}", "-w", "100"]
interval = "1s"
timeout = "1s"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"
"#,
            p.display(),
            sink.url
        ),
    );
    let daemon = Daemon::start(&config, &work.path().join("state"), work.path());
    let page = sink.wait_for("the plugin's critical page", Duration::from_secs(15), |b| {
        is_event(b, "firing", "probe_status", Some("critical"))
    });
    assert_eq!(page.body["alert"]["probe"], "queue");
    assert_eq!(
        page.body["summary"],
        "[CRITICAL] QUEUE CRITICAL - 512 messages waiting | probe_status on queue"
    );
    let metrics = http_get(&format!("{}/metrics", daemon.url()));
    for line in [
        "lookout_command_depth{probe=\"queue\"} 512",
        "lookout_command_age{probe=\"queue\"} 2.5",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from /metrics:\n{metrics}"
        );
    }
    daemon.terminate(Duration::from_secs(5));
}
