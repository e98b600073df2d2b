//! Issue 10, "the first hour": what a new user's first configuration does. A file keeps the
//! host view; a configuration that watches nothing says so loudly; the examples are safe to
//! copy; http and tcp do not page on one blip; a listener beyond loopback needs tokens.

mod http_tcp_servers;
mod kit;

use http_tcp_servers::Server;
use kit::{Daemon, Sink, is_event, lookout_bin, write_config, write_file};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `lookout config check --config FILE` from the repository root, with extra environment.
fn check_with(file: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(lookout_bin())
        .current_dir(root())
        .args(["config", "check", "--config"])
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn check(file: &Path) -> (i32, String) {
    check_with(file, &[])
}

const NOTIFIER_ONLY: &str = "[[notifier]]\nid = \"phone\"\nkind = \"ntfy\"\nserver = \"http://127.0.0.1:9\"\ntopic = \"t0p1c\"\n";

#[test]
fn a_file_with_only_a_notifier_still_watches_the_host() {
    // Exactly what the "no notifier" warning tells people to add: before, lookout then
    // watched 0 probes and `config check` said ok.
    let work = tempfile::tempdir().unwrap();
    let config = write_file(work.path(), "lookout.toml", NOTIFIER_ONLY);
    let (code, out) = check(&config);
    assert_eq!(code, 0, "{out}");
    assert!(
        // The one warning: without [api] public_url, acknowledgement links work on this host only.
        out.contains(": ok (3 probes (disk, clock, route), host view on, 1 notifier, 1 warning)")
            && out.contains("no public_url"),
        "{out}"
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    // A probe is listed once it has run.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = d.get("/api/v1/status");
        let mut ids: Vec<&str> = status["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        ids.sort();
        if ids == ["clock", "disks", "routes"] {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = d.log_text();
    let state = work.path().join("state");
    assert!(
        log.contains(&format!(
            "lookout is watching 3 probes (disk, clock, route), host view on; state directory {}; API token file {}; status page: http://127.0.0.1:{}/",
            state.display(),
            state.join("api-token").display(),
            d.port
        )),
        "the start banner names what is watched, the state directory and the token file:\n{log}"
    );
    assert!(!log.contains("WARNING: lookout watches nothing"), "{log}");
}

#[test]
fn a_configuration_that_watches_nothing_warns_everywhere() {
    let work = tempfile::tempdir().unwrap();
    let config = write_file(work.path(), "lookout.toml", "[host]\nwatch = false\n");
    let (code, out) = check(&config);
    assert_eq!(code, 0, "a warning, not an error: {out}");
    assert!(
        out.contains(&format!(
            "{}:2:1: warning: [host]: lookout watches nothing",
            config.display()
        )),
        "{out}"
    );
    assert!(out.contains("0 probes, host view off"), "{out}");
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    assert!(
        d.log_text().contains("WARNING: lookout watches nothing"),
        "{}",
        d.log_text()
    );
    let alerts = d.get("/api/v1/alerts");
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "watching_nothing")
        .unwrap_or_else(|| panic!("no watching_nothing alert: {alerts}"));
    assert_eq!(alert["probe"], "lookout");
    assert_eq!(alert["severity"], "warning");
}

#[test]
fn the_starter_passes_and_the_reference_needs_its_placeholders_filled() {
    let (code, out) = check(Path::new("examples/lookout.toml"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok (3 probes (disk, clock, route), host view on, 0 notifiers)"),
        "the starter watches the host and pages nobody: {out}"
    );
    let starter = std::fs::read_to_string(root().join("examples/lookout.toml")).unwrap();
    assert!(
        starter
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .all(|l| !l.contains("http")),
        "no live URL in the starter:\n{starter}"
    );

    let (code, out) = check(Path::new("examples/reference.toml"));
    assert_eq!(code, 1, "{out}");
    let reference = std::fs::read_to_string(root().join("examples/reference.toml")).unwrap();
    let topic_line = reference
        .lines()
        .position(|l| l.starts_with("topic = \"CHANGE-ME\""))
        .expect("the reference's ntfy topic is a placeholder")
        + 1;
    assert!(
        out.contains(&format!(
            "examples/reference.toml:{topic_line}:9: notifier \"phones\": `topic` still holds the placeholder CHANGE-ME\n  hint: replace it with your own value"
        )),
        "{out}"
    );
    // The example docs/configuration.md shows is what `config check` prints.
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let shown = doc
        .lines()
        .skip_while(|l| !l.contains("still holds the placeholder CHANGE-ME"))
        .take(2)
        .map(str::trim)
        .collect::<Vec<_>>();
    assert_eq!(
        shown.len(),
        2,
        "docs/configuration.md shows no placeholder error"
    );
    // Line and column move as the reference grows; the words must not.
    let lc = regex::Regex::new(r":\d+:\d+:").unwrap();
    assert!(
        lc.replace_all(&out, ":L:C:").contains(&format!(
            "{}\n  {}",
            lc.replace_all(shown[0], ":L:C:"),
            shown[1]
        )),
        "docs/configuration.md shows {shown:?}, config check prints:\n{out}"
    );
    for key in [
        "notifier \"pagerduty\": `routing_key`",
        "notifier \"chat\": `url`",
        "`deadman.url`",
    ] {
        assert!(out.contains(key), "{key}: {out}");
    }
    // Filled in, the reference is valid: every option in it is real.
    let work = tempfile::tempdir().unwrap();
    let filled = write_file(
        work.path(),
        "filled.toml",
        &reference.replace("CHANGE-ME", "x"),
    );
    let (code, out) = check(&filled);
    assert_eq!(code, 0, "{out}");

    let (code, out) = check_with(
        Path::new("examples/snippets/intake.toml"),
        &[
            ("LOOKOUT_ALERTMANAGER_TOKEN", "am-t0ken"),
            ("LOOKOUT_BACKUP_HEARTBEAT_TOKEN", "hb-t0ken"),
        ],
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn every_example_the_docs_name_exists() {
    let re = regex::Regex::new(r"examples/[A-Za-z0-9_./-]*[A-Za-z0-9_]").unwrap();
    let mut docs = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                docs.push(p);
            }
        }
    }
    let mut named = 0;
    for doc in docs.iter().chain([
        &root().join("examples/lookout.toml"),
        &root().join("examples/reference.toml"),
    ]) {
        let text = std::fs::read_to_string(doc).unwrap();
        for m in re.find_iter(&text) {
            named += 1;
            assert!(
                root().join(m.as_str()).exists(),
                "{} names {}, which does not exist",
                doc.display(),
                m.as_str()
            );
        }
    }
    assert!(named >= 5, "only {named} example paths found");
}

#[test]
fn a_listener_beyond_loopback_needs_tokens_or_an_explicit_yes() {
    let work = tempfile::tempdir().unwrap();
    let open = "# reachable from the LAN\n[api]\nlisten = \"0.0.0.0:9\"\n\n[[heartbeat]]\nname = \"backup\"\nperiod = \"1d\"\n";
    let config = write_config(work.path(), "open.toml", open);
    let (code, out) = check(&config);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:3:1: [api]: listening on 0.0.0.0:9, which is not a loopback address, while anyone who reaches it can raise pages without a token: POST /api/v1/alertmanager (no [intake] alertmanager_token), /api/v1/heartbeat/backup (no token)\n  hint: set [intake] alertmanager_token",
            config.display()
        )),
        "{out}"
    );
    assert!(out.contains("allow_unauthenticated = true"), "{out}");

    // `lookout run` refuses it before binding anything (port 9 is never listened on).
    let run = |config: &Path, listen: Option<&str>| {
        // `timeout` ends a daemon that would (wrongly) start.
        let mut cmd = Command::new("timeout");
        cmd.arg("20")
            .arg(lookout_bin())
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(work.path().join("state"))
            .arg("run");
        if let Some(l) = listen {
            cmd.args(["--listen", l]);
        }
        let started = Instant::now();
        let out = cmd.output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "lookout run did not exit at once"
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, text) = run(&config, None);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("not a loopback address"), "{text}");
    assert!(!text.contains("status page"), "{text}");

    // Tokens on every endpoint, or the explicit yes, pass the check.
    let tokens = open.replace(
        "period = \"1d\"\n",
        "period = \"1d\"\ntoken = \"hb-t0ken\"\n\n[intake]\nalertmanager_token = \"am-t0ken\"\n",
    );
    let (code, out) = check(&write_config(work.path(), "tokens.toml", &tokens));
    assert_eq!(code, 0, "{out}");
    let yes = open.replace(
        "listen = \"0.0.0.0:9\"\n",
        "listen = \"0.0.0.0:9\"\nallow_unauthenticated = true\n",
    );
    let (code, out) = check(&write_config(work.path(), "yes.toml", &yes));
    assert_eq!(code, 0, "{out}");
    // Allowed, but never silent.
    assert!(
        out.contains("warning: [api]: allow_unauthenticated: anyone who reaches 0.0.0.0:9 can raise pages without a token"),
        "{out}"
    );

    // `--listen` beyond loopback is judged the same way, before binding.
    let local = write_config(work.path(), "local.toml", "");
    let (code, text) = run(&local, Some("0.0.0.0:9"));
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("refusing to start: listening on 0.0.0.0:9, which is not a loopback address"),
        "{text}"
    );
}

/// A server for one probe that answers well or badly on demand and records when it answered
/// badly: an HTTP server (500 when failing) or a TCP server with a banner (`500 down` instead
/// of `220 ready` when failing).
struct Flaky {
    server: Server,
    /// Answer the next this many runs badly.
    fail_next: Arc<AtomicUsize>,
    /// Answer every run badly.
    failing: Arc<AtomicBool>,
    /// When each bad answer went out.
    failed_at: Arc<Mutex<Vec<Instant>>>,
}

impl Flaky {
    async fn start(http: bool) -> Flaky {
        let fail_next = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let failed_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (n, f, at) = (fail_next.clone(), failing.clone(), failed_at.clone());
        let server = Server::start(move |mut s, _| {
            let (n, f, at) = (n.clone(), f.clone(), at.clone());
            Box::pin(async move {
                if http {
                    // Read the request head before answering.
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match s.read(&mut b).await {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                }
                let bad = f.load(Ordering::SeqCst)
                    || n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1))
                        .is_ok();
                if bad {
                    at.lock().unwrap().push(Instant::now());
                }
                let answer: &[u8] = match (http, bad) {
                    (true, false) => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    (true, true) => b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown",
                    (false, false) => b"220 ready\r\n",
                    (false, true) => b"500 down\r\n",
                };
                let _ = s.write_all(answer).await;
                let _ = s.shutdown().await;
            })
        })
        .await;
        Flaky {
            server,
            fail_next,
            failing,
            failed_at,
        }
    }

    fn failures(&self) -> Vec<Instant> {
        self.failed_at.lock().unwrap().clone()
    }
}

fn probe_status(d: &Daemon, id: &str) -> Value {
    d.get("/api/v1/status")["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .map(|p| p["observation"].clone())
        .unwrap_or(Value::Null)
}

/// One failed run of an http or tcp probe with the kind's defaults does not page; two in a
/// row do, within 2 s of the second (interval + 2 s of the first).
fn one_blip_does_not_page_two_failed_runs_do(kind: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let flaky = rt.block_on(Flaky::start(kind == "http"));
    let sink = Sink::start();
    let target = match kind {
        "http" => format!("url = \"{}\"", flaky.server.url("/health")),
        _ => format!(
            "host = \"127.0.0.1\"\nport = {}\nexpect = \"220 \"",
            flaky.server.port
        ),
    };
    // Only interval and timeout are set: fail_after and the rest are the kind's defaults.
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            "[daemon]\njitter = 0.0\n\n[[probe]]\nid = \"svc\"\nkind = \"{kind}\"\n{target}\ninterval = \"1s\"\ntimeout = \"1s\"\n\n[[notifier]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            sink.url
        ),
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe_status(&d, "svc")["status"] != "ok" {
        assert!(Instant::now() < deadline, "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let firing = |b: &Value| is_event(b, "firing", "probe_status", Some("critical"));

    // One blip: one run answered badly, the next ones well.
    flaky.fail_next.store(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while flaky.failures().is_empty() {
        assert!(Instant::now() < deadline, "the probe did not run");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(4));
    let pages: Vec<Value> = sink.all().into_iter().map(|r| r.body).collect();
    assert!(
        !pages.iter().any(firing),
        "{kind}: one failed run paged: {pages:#?}"
    );
    assert_eq!(flaky.failures().len(), 1);
    assert_eq!(probe_status(&d, "svc")["status"], "ok");

    // A hard failure: every run fails from now on.
    flaky.failing.store(true, Ordering::SeqCst);
    let page = sink.wait_for(
        &format!("{kind} failing twice"),
        Duration::from_secs(10),
        firing,
    );
    let failures = flaky.failures();
    let first = failures[1];
    assert!(
        failures.len() >= 3,
        "{kind}: paged after {} failed run(s)",
        failures.len() - 1
    );
    let second = failures[2];
    assert!(
        page.at >= second,
        "{kind}: paged before the second failed run"
    );
    let after_second = page.at - second;
    let after_first = page.at - first;
    eprintln!(
        "{kind}: paged {after_second:?} after the second failed run, {after_first:?} after the first"
    );
    assert!(
        after_second <= Duration::from_secs(2),
        "{kind}: {after_second:?} after the second failed run"
    );
    assert!(
        after_first <= Duration::from_secs(3),
        "{kind}: {after_first:?} after the first failed run (budget: interval + 2 s)"
    );
    drop(d);
}

#[test]
fn http_one_blip_does_not_page_two_failed_runs_do() {
    one_blip_does_not_page_two_failed_runs_do("http");
}

#[test]
fn tcp_one_blip_does_not_page_two_failed_runs_do() {
    one_blip_does_not_page_two_failed_runs_do("tcp");
}

#[test]
fn a_discovered_filesystem_that_disappears_is_on_the_timeline() {
    kit::require_root("a loop mount");
    let fs = kit::LoopFs::new(16, 5);
    let work = tempfile::tempdir().unwrap();
    // The documented way to watch every real filesystem: a disk probe without `mounts`.
    let config = write_config(
        work.path(),
        "lookout.toml",
        "[[probe]]\nid = \"all-disks\"\nkind = \"disk\"\ninterval = \"1s\"\n",
    );
    let d = Daemon::start(&config, &work.path().join("state"), work.path());
    let mount = fs.path().to_string();
    // The loop mount was there before the daemon started: its first run watches it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe_status(&d, "all-disks")["status"].is_null() {
        assert!(Instant::now() < deadline, "the disk probe never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(fs);
    let want = format!(
        "all-disks: filesystem {mount} (ext4) is no longer mounted; lookout stopped watching it"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let timeline = d.get("/api/v1/timeline");
        if timeline.to_string().contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no timeline entry {want:?}: {timeline:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
