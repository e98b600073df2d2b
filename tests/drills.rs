//! Drills against a real process: a small HTTP server (`python3 -m http.server`) under a
//! supervisor shell loop that restarts it when it exits (like systemd `Restart=always`),
//! watched by an `http` probe. The fault is an `exec` action that kills the server; it stays
//! down 3 s, across several runs of the 1 s probe, as docs/drills.md asks of a fault.

mod kit;

use kit::{Daemon, Sink, is_event, write_config};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server and its supervisor; both stopped by PID on drop.
struct Supervised {
    supervisor: Child,
    port: u16,
    pid_file: PathBuf,
    /// While this file exists the supervisor does not restart the server.
    hold: PathBuf,
}

impl Supervised {
    /// Starts the supervisor loop; waits (at most 15 s) until the server answers.
    fn start(dir: &Path) -> Supervised {
        let port = kit::free_port();
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "ok\n").unwrap();
        let pid_file = dir.join("web.pid");
        let hold = dir.join("hold");
        let script = format!(
            "while true; do \
               if [ ! -e '{hold}' ]; then \
                 python3 -m http.server {port} --bind 127.0.0.1 --directory '{www}' >/dev/null 2>&1 & \
                 echo $! > '{pid}'; wait $!; \
               fi; \
               sleep 3; \
             done",
            hold = hold.display(),
            www = www.display(),
            pid = pid_file.display(),
        );
        let supervisor = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("supervisor.log")).unwrap())
            .spawn()
            .expect("start the supervisor shell loop");
        let s = Supervised {
            supervisor,
            port,
            pid_file,
            hold,
        };
        s.wait_up(Duration::from_secs(15));
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn server_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn wait_up(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the supervised http.server did not listen on {} within {within:?} (is python3 installed?)",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
        if let Some(pid) = self.server_pid()
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// The configuration of the tests: the http probe on the supervised server, a webhook, and
/// drills whose fault kills the server only while the file `armed` exists.
fn config(dir: &Path, web: &Supervised, hook: &str, extra: &str) -> PathBuf {
    let armed = dir.join("armed");
    write_config(
        dir,
        "lookout.toml",
        &format!(
            r#"
[[probe]]
id = "web"
kind = "http"
url = "{url}"
interval = "1s"
timeout = "1s"
fail_after = 1
recover_after = 1

[[notifier]]
id = "hook"
kind = "webhook"
url = "{hook}"

# kills the server while {armed} exists; the supervisor restarts it 3 s later
[[action]]
name = "kill-web"
kind = "exec"
argv = ["/bin/sh", "-c", "if [ -e '{armed}' ]; then kill $(cat '{pid}'); else echo not armed; fi"]
timeout = "10s"

# kills the server and keeps the supervisor from restarting it
[[action]]
name = "kill-and-hold"
kind = "exec"
argv = ["/bin/sh", "-c", "touch '{hold}'; kill $(cat '{pid}')"]

[[action]]
name = "release"
kind = "exec"
argv = ["/bin/rm", "-f", "{hold}"]

[[drill]]
name = "web-restart"
fault = "kill-web"
expect = [ {{ rule = "probe_status", probe = "web", within = "8s" }} ]
recover = ["web"]
recover_within = "30s"

[[drill]]
name = "web-stays-down"
fault = "kill-and-hold"
restore = "release"
expect = [ {{ rule = "probe_status", probe = "web", within = "8s" }} ]
recover = ["web"]
recover_within = "4s"
severity = "critical"
{extra}
"#,
            url = web.url(),
            armed = armed.display(),
            pid = web.pid_file.display(),
            hold = web.hold.display(),
        ),
    )
}

fn cli(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(kit::lookout_bin())
        .arg("--api")
        .arg(d.url())
        .arg("--state-dir")
        .arg(&d.state_dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn drill<'a>(d: &Daemon, name: &str, list: &'a Value) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no drill {name} in {list}; log:\n{}", d.log_text()))
}

fn check<'a>(report: &'a Value, step: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == step)
        .unwrap_or_else(|| panic!("no {step} check in {report:#}"))
}

#[test]
fn a_drill_that_kills_the_server_passes_with_measured_times_in_the_cli_and_the_api() {
    let work = tempfile::tempdir().unwrap();
    let web = Supervised::start(work.path());
    let sink = Sink::start();
    let cfg = config(work.path(), &web, &sink.url, "");
    std::fs::write(work.path().join("armed"), "").unwrap();
    let d = Daemon::start(&cfg, &work.path().join("state"), work.path());
    let before = web.server_pid();

    let started = Instant::now();
    let (code, out, err) = cli(&d, &["drill", "run", "web-restart", "--by", "alice"]);
    let took = started.elapsed();
    eprintln!("{out}{err}");
    assert_eq!(
        code,
        0,
        "the drill must pass:\n{out}{err}\nlog:\n{}",
        d.log_text()
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_ne!(
        web.server_pid(),
        before,
        "the fault killed the server and it was restarted"
    );
    // Each expectation with its measured time and its limit.
    let line = |step: &str| {
        out.lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("no {step} line in:\n{out}"))
            .to_string()
    };
    assert!(
        line("fault").contains("kill-web") && line("fault").contains(" ok "),
        "{out}"
    );
    let expect = line("expect");
    assert!(
        expect.contains("probe_status on web")
            && expect.contains(" ok ")
            && expect.contains("8.0s"),
        "{out}"
    );
    let recover = line("recover");
    assert!(recover.contains("web") && recover.contains(" ok "), "{out}");
    assert!(
        recover.contains("of the last expected alert (probe_status on web at +"),
        "{out}"
    );
    assert!(out.contains("drill web-restart PASSED in "), "{out}");

    // The API: the last result with each measured time, and in /api/v1/status.
    let list = d.get("/api/v1/drills");
    let last = &drill(&d, "web-restart", &list)["last"];
    assert_eq!(last["passed"], true, "{last:#}");
    assert_eq!(last["by"], "alice");
    let fired = check(last, "expect")["seconds"].as_f64().unwrap();
    let ok = check(last, "recover")["seconds"].as_f64().unwrap();
    assert!(fired > 0.0 && fired <= 8.0, "{last:#}");
    // The supervisor waits 3 s before the restart: the probe cannot be ok sooner.
    assert!(ok > fired && (2.5..30.0).contains(&ok), "{last:#}");
    eprintln!("measured: alert after {fired:.1}s, web ok after {ok:.1}s");
    let status = d.get("/api/v1/status");
    let s = &status["drills"][0];
    assert_eq!(s["name"], "web-restart", "{status:#}");
    assert_eq!(s["last"]["passed"], true, "{status:#}");
    let (_, out, _) = cli(&d, &["status"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("web-restart") && l.contains("PASS") && l.contains("by alice")),
        "{out}"
    );
    let (code, out, _) = cli(&d, &["drill", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("web-restart") && out.contains("kill-web"),
        "{out}"
    );
    assert!(
        out.contains("web-stays-down") && out.contains("never run"),
        "{out}"
    );

    // The timeline tells the story with the actor.
    let tl = d.get("/api/v1/timeline?since=1h");
    let entries = tl.as_array().unwrap();
    let started = entries
        .iter()
        .find(|e| e["kind"] == "drill_started")
        .expect("drill_started");
    assert_eq!(started["actor"], "alice");
    let finished = entries
        .iter()
        .find(|e| e["kind"] == "drill_finished")
        .expect("drill_finished");
    let m = finished["message"].as_str().unwrap();
    assert!(
        m.contains("drill web-restart passed in") && m.contains("probe_status on web fired"),
        "{m}"
    );
    // A passed drill raised nothing.
    assert!(
        !sink
            .all()
            .iter()
            .any(|r| r.body["alert"]["rule"] == "drill_failed")
    );
}

#[test]
fn a_failed_expectation_raises_drill_failed_naming_it_and_a_later_pass_resolves_it() {
    let work = tempfile::tempdir().unwrap();
    let web = Supervised::start(work.path());
    let sink = Sink::start();
    let cfg = config(work.path(), &web, &sink.url, "");
    let d = Daemon::start(&cfg, &work.path().join("state"), work.path());

    // Not armed: the fault does nothing, the alert never comes.
    let (code, out, err) = cli(&d, &["drill", "run", "web-restart", "--by", "bob"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("expect") && l.contains("FAILED")),
        "{out}"
    );
    assert!(out.contains("drill web-restart FAILED"), "{out}");
    let page = sink.wait_for("drill_failed firing", Duration::from_secs(15), |b| {
        is_event(b, "firing", "drill_failed", Some("warning"))
    });
    let msg = page.body["alert"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("expected probe_status on web within 8.0s of the fault: it did not fire"),
        "{:#}",
        page.body
    );
    assert_eq!(
        page.body["alert"]["labels"]["drill"], "web-restart",
        "{:#}",
        page.body
    );
    let list = d.get("/api/v1/drills");
    let last = &drill(&d, "web-restart", &list)["last"];
    assert_eq!(last["passed"], false);
    assert!(
        last["summary"].as_str().unwrap().contains("did not fire"),
        "{last:#}"
    );

    // Armed, through the API this time: 202 and a run id, then poll.
    std::fs::write(work.path().join("armed"), "").unwrap();
    let token = std::fs::read_to_string(d.state_dir.join("api-token")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body): (u16, Value) = rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(10)).unwrap();
        let unauth = c
            .post(format!("{}/api/v1/drills/web-restart/run", d.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(unauth.status().as_u16(), 401);
        let r = c
            .post(format!("{}/api/v1/drills/web-restart/run", d.url()))
            .bearer_auth(token.trim())
            .json(&serde_json::json!({"by": "carol"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    });
    assert_eq!(status, 202, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let v = d.get("/api/v1/drills/web-restart");
        if v["last"]["run"] == run.as_str() {
            break v["last"].clone();
        }
        assert!(Instant::now() < deadline, "no result for run {run}: {v:#}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(last["passed"], true, "{last:#}\nlog:\n{}", d.log_text());
    assert_eq!(last["by"], "carol");
    sink.wait_for("drill_failed resolved", Duration::from_secs(15), |b| {
        is_event(b, "resolved", "drill_failed", None)
    });
}

#[test]
fn a_probe_that_stays_down_fails_the_recover_expectation_and_the_restore_runs() {
    let work = tempfile::tempdir().unwrap();
    let web = Supervised::start(work.path());
    let sink = Sink::start();
    let cfg = config(work.path(), &web, &sink.url, "");
    let d = Daemon::start(&cfg, &work.path().join("state"), work.path());

    let (code, out, err) = cli(&d, &["drill", "run", "web-stays-down", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check(&report, "expect")["ok"], true, "{report:#}");
    let fired = check(&report, "expect")["seconds"].as_f64().unwrap();
    let recover = check(&report, "recover");
    assert_eq!(recover["ok"], false, "{report:#}");
    // The kill returns at once, the alert comes later: the words name it and its time.
    let words = format!(
        "expected web ok within 4.0s of the last expected alert (probe_status on web at +{fired:.1}s): it was not; its last result: "
    );
    assert!(
        recover["message"].as_str().unwrap().starts_with(&words),
        "{words}\n{report:#}"
    );
    assert_eq!(check(&report, "restore")["ok"], true, "{report:#}");
    assert!(!web.hold.exists(), "the restore removed the hold file");
    let page = sink.wait_for("drill_failed firing", Duration::from_secs(15), |b| {
        is_event(b, "firing", "drill_failed", Some("critical"))
    });
    assert!(
        page.body["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("expected web ok within 4.0s"),
        "{:#}",
        page.body
    );
    // The restore let the supervisor bring the server back.
    web.wait_up(Duration::from_secs(15));
}

#[test]
fn config_check_names_a_drill_whose_fault_is_not_an_action() {
    let work = tempfile::tempdir().unwrap();
    let cfg = write_config(
        work.path(),
        "lookout.toml",
        r#"
[[probe]]
id = "web"
kind = "http"
url = "http://127.0.0.1:9/"

[[action]]
name = "restart-web"
kind = "exec"
argv = ["/bin/true"]

[[drill]]
name = "web-restart"
fault = "restart-wbe"
restore = "bring-back"
recover = ["web"]
"#,
    );
    let out = Command::new(kit::lookout_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "{}:14:9: drill \"web-restart\": fault names unknown action \"restart-wbe\"\n  hint: did you mean `restart-web`?",
            cfg.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "restore names unknown action \"bring-back\"\n  hint: known actions: restart-web"
        ),
        "{text}"
    );
}

#[test]
fn a_scheduled_drill_runs_one_period_after_the_start_as_lookout() {
    let work = tempfile::tempdir().unwrap();
    let web = Supervised::start(work.path());
    let sink = Sink::start();
    let schedule = r#"
[[drill]]
name = "weekly-ish"
fault = "kill-web"
expect = [ { rule = "probe_status", probe = "web", within = "8s" } ]
recover = ["web"]
recover_within = "30s"
every = "1m"
"#;
    let cfg = config(work.path(), &web, &sink.url, schedule);
    std::fs::write(work.path().join("armed"), "").unwrap();
    let d = Daemon::start(&cfg, &work.path().join("state"), work.path());
    let started = Instant::now();
    let list = d.get("/api/v1/drills");
    let w = drill(&d, "weekly-ish", &list);
    assert_eq!(w["every"], 60.0, "{w:#}");
    let next = w["next_run_in"].as_f64().unwrap();
    assert!(next > 50.0 && next <= 60.0, "{w:#}");
    let (_, out, _) = cli(&d, &["drill", "list"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("weekly-ish") && l.contains("1m00s (next in")),
        "{out}"
    );
    let last = loop {
        let v = d.get("/api/v1/drills/weekly-ish");
        if v["last"].is_object() {
            break v["last"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(110),
            "no scheduled run within 110 s: {v:#}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let at = started.elapsed();
    assert!(
        at > Duration::from_secs(55),
        "ran after {at:?}, before its period"
    );
    assert_eq!(last["by"], "lookout", "{last:#}");
    assert_eq!(last["passed"], true, "{last:#}\nlog:\n{}", d.log_text());
    let tl = d.get("/api/v1/timeline?since=1h");
    assert!(
        tl.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "drill_finished" && e["actor"] == "lookout"),
        "{tl:#}"
    );
}

#[test]
fn a_run_cut_short_by_a_crash_is_restored_at_the_next_start_and_reported() {
    let work = tempfile::tempdir().unwrap();
    let web = Supervised::start(work.path());
    let sink = Sink::start();
    let cfg = config(work.path(), &web, &sink.url, "");
    let state = work.path().join("state");
    let d = Daemon::start(&cfg, &state, work.path());
    let token = std::fs::read_to_string(state.join("api-token")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body: Value = rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(10)).unwrap();
        let r = c
            .post(format!("{}/api/v1/drills/web-stays-down/run", d.url()))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        r.json().await.unwrap()
    });
    let run = body["run"].as_str().unwrap().to_string();
    // The fault holds the server down; lookout dies before the restore.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !web.hold.exists() {
        assert!(Instant::now() < deadline, "the fault did not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    d.kill9();
    let d = Daemon::start(&cfg, &state, work.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let v = d.get("/api/v1/drills/web-stays-down");
        if v["last"]["run"] == run.as_str() {
            break v["last"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the interrupted run was not reported: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(last["passed"], false, "{last:#}");
    assert_eq!(check(&last, "interrupted")["ok"], false, "{last:#}");
    assert_eq!(check(&last, "restore")["ok"], true, "{last:#}");
    assert!(!web.hold.exists(), "the restore ran at the next start");
    sink.wait_for(
        "drill_failed for the interrupted run",
        Duration::from_secs(15),
        |b| {
            is_event(b, "firing", "drill_failed", None)
                && b["alert"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("lookout stopped during run"))
        },
    );
    web.wait_up(Duration::from_secs(15));
}
