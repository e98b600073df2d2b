//! The `clock` probe against real parts: a tiny SNTP server written here (UDP on 127.0.0.1,
//! answering with a settable offset), the real daemon paging through a webhook, `lookout check`,
//! and a real wall-clock step of the lookout process alone under libfaketime.

mod kit;

use kit::{Daemon, Sink, free_port, is_event, lookout_bin, write_config};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds between the NTP era (1900) and the unix epoch.
const NTP_UNIX_DELTA: f64 = 2_208_988_800.0;

/// An SNTP server on 127.0.0.1 whose clock runs `offset` milliseconds from this machine's.
struct SntpServer {
    port: u16,
    offset_ms: Arc<AtomicI64>,
    _rt: tokio::runtime::Runtime,
}

impl SntpServer {
    fn start(offset_seconds: i64) -> SntpServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let socket = rt
            .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
            .expect("bind the SNTP server");
        let port = socket.local_addr().unwrap().port();
        let offset_ms = Arc::new(AtomicI64::new(offset_seconds * 1000));
        let offset = offset_ms.clone();
        rt.spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if n < 48 {
                    continue;
                }
                let reply = answer(&buf[..48], offset.load(Ordering::SeqCst) as f64 / 1000.0);
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        SntpServer {
            port,
            offset_ms,
            _rt: rt,
        }
    }

    fn set_offset(&self, seconds: i64) {
        self.offset_ms.store(seconds * 1000, Ordering::SeqCst);
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// An NTP timestamp (64-bit fixed point since 1900) of a unix time.
fn ntp_timestamp(unix: f64) -> [u8; 8] {
    let t = unix + NTP_UNIX_DELTA;
    let secs = t.floor() as u32;
    let frac = ((t - t.floor()) * 4_294_967_296.0) as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&secs.to_be_bytes());
    out[4..].copy_from_slice(&frac.to_be_bytes());
    out
}

/// A server-mode reply (RFC 4330) to `request`, with the server's clock `offset` seconds off.
fn answer(request: &[u8], offset: f64) -> [u8; 48] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + offset;
    let mut r = [0u8; 48];
    r[0] = 0b00_100_100; // no leap warning, version 4, mode 4 (server)
    r[1] = 2; // stratum
    r[2] = request[2]; // poll
    r[3] = 0xEC; // precision 2^-20
    r[12..16].copy_from_slice(&[127, 0, 0, 1]); // reference id: the upstream's address
    r[16..24].copy_from_slice(&ntp_timestamp(now - 10.0)); // reference time
    r[24..32].copy_from_slice(&request[40..48]); // originate = the client's transmit time
    r[32..40].copy_from_slice(&ntp_timestamp(now)); // receive
    r[40..48].copy_from_slice(&ntp_timestamp(now)); // transmit
    r
}

fn clock_probe_config(servers: &[String], extra: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    format!(
        r#"
[[probe]]
id = "clock"
kind = "clock"
interval = "1s"
servers = [{}]
server_timeout = "500ms"
config_files = []
{extra}
"#,
        list.join(", ")
    )
}

#[test]
fn nine_minutes_off_pages_critical_and_back_in_step_resolves() {
    let ntp = SntpServer::start(-540);
    let sink = Sink::start();
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            "{}\n[[notifier]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            clock_probe_config(&[ntp.addr()], ""),
            sink.url
        ),
    );
    let daemon = Daemon::start(&config, &work.path().join("state"), work.path());
    let is_clock = |b: &Value| b["alert"]["probe"] == "clock";
    let page = sink.wait_for("the clock page", Duration::from_secs(8), |b| {
        is_event(b, "firing", "probe_status", Some("critical")) && is_clock(b)
    });
    let message = page.body["alert"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("clock is 9m00s ahead (per {}", ntp.addr())),
        "page message: {message}\n{}",
        daemon.log_text()
    );

    ntp.set_offset(0);
    sink.wait_for("the clock page resolved", Duration::from_secs(8), |b| {
        is_event(b, "resolved", "probe_status", None) && is_clock(b)
    });
    let status = daemon.get("/api/v1/status");
    let clock = status["probes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == "clock"))
        .unwrap_or_else(|| panic!("no clock probe in {status}"));
    assert_eq!(clock["kind"], "clock");
    assert_eq!(clock["observation"]["status"], "ok", "{clock}");
    let offset = clock["observation"]["samples"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["name"] == "clock.median_offset_seconds")
        })
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no median offset in {clock}"));
    assert!(offset.abs() < 0.1, "offset after the fix: {offset}");
}

/// Runs `lookout check --once --json` on a config; returns the exit code, the clock row, and
/// how long it took.
fn check_once(work: &Path, toml: &str) -> (i32, Value, Duration) {
    let config = write_config(work, "check.toml", toml);
    let started = Instant::now();
    let out = Command::new(lookout_bin())
        .args([
            "--config",
            config.to_str().unwrap(),
            "check",
            "--once",
            "--json",
        ])
        .current_dir(work)
        .output()
        .expect("run lookout check");
    let took = started.elapsed();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let row = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["probe"] == "clock"))
        .cloned()
        .unwrap_or_else(|| panic!("no clock row: {rows}"));
    (out.status.code().unwrap_or(-1), row, took)
}

#[test]
fn check_once_shows_the_offset_of_each_server() {
    let behind = SntpServer::start(90);
    let also = SntpServer::start(90);
    let work = tempfile::tempdir().unwrap();
    let (code, row, _) = check_once(
        work.path(),
        &clock_probe_config(&[behind.addr(), also.addr()], ""),
    );
    assert_eq!(row["kind"], "clock");
    assert_eq!(row["status"], "critical", "{row}");
    assert_eq!(code, 2, "critical exits 2");
    let message = row["message"].as_str().unwrap();
    assert!(
        message.starts_with("clock is 1m30s behind (median of 2 servers: "),
        "{message}"
    );
    let samples = row["samples"].as_array().unwrap();
    let value = |name: &str, server: Option<&str>| -> f64 {
        samples
            .iter()
            .find(|s| s["name"] == name && server.is_none_or(|srv| s["labels"]["server"] == srv))
            .and_then(|s| s["value"].as_f64())
            .unwrap_or_else(|| panic!("no {name} for {server:?}: {row}"))
    };
    for server in [behind.addr(), also.addr()] {
        let offset = value("clock.offset_seconds", Some(&server));
        assert!((offset - 90.0).abs() < 0.2, "offset {offset}");
        let rtt = value("clock.rtt_seconds", Some(&server));
        assert!((0.0..0.2).contains(&rtt), "rtt {rtt}");
    }
    assert!((value("clock.median_offset_seconds", None) - 90.0).abs() < 0.2);
    assert_eq!(value("clock.servers_answering", None), 2.0);
}

#[test]
fn servers_that_do_not_answer_are_named_with_the_reason_within_their_timeout() {
    // One bound socket that never answers, one port where nothing listens.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let closed = format!("127.0.0.1:{}", {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    });
    let work = tempfile::tempdir().unwrap();
    let (code, row, took) = check_once(
        work.path(),
        &clock_probe_config(&[silent_addr.clone(), closed.clone()], ""),
    );
    assert_eq!(row["status"], "unknown", "{row}");
    assert_eq!(code, 3);
    assert_eq!(
        row["message"],
        format!(
            "no time server answered ({silent_addr} failed: no answer within 500ms; {closed} failed: connection refused (no time server listens there))"
        )
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The daemon under libfaketime: its wall clock follows the timestamp file, its monotonic
/// clock is the real one. Killed by PID on drop.
struct FakedDaemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl FakedDaemon {
    fn start(config: &Path, work: &Path, timestamp_file: &Path) -> FakedDaemon {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: apt-get install -y faketime (./scripts/test installs it)"
        );
        let port = free_port();
        let log = work.join("faked.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(lookout_bin())
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(work.join("state"))
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(work)
            .env("LOOKOUT_LOG", "info")
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", timestamp_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("spawn lookout under libfaketime");
        let d = FakedDaemon { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "lookout under libfaketime did not listen within 20 s; log:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn timeline(&self) -> Vec<String> {
        let v = kit::http_get_json(&format!("http://127.0.0.1:{}/api/v1/timeline", self.port));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["message"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for FakedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces the timestamp file in one step (libfaketime re-reads it on every clock call).
fn set_fake_offset(file: &Path, spec: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{spec}\n")).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

#[test]
fn a_real_wall_clock_step_of_the_process_is_a_timeline_event() {
    let work = tempfile::tempdir().unwrap();
    let stamp = work.path().join("faketime.rc");
    set_fake_offset(&stamp, "+0");
    let config = write_config(
        work.path(),
        "lookout.toml",
        r#"
[[probe]]
id = "clock"
kind = "clock"
interval = "1s"
servers = []
config_files = []
"#,
    );
    let daemon = FakedDaemon::start(&config, work.path(), &stamp);
    std::thread::sleep(Duration::from_secs(3)); // a few runs set the baseline
    let before = daemon.timeline();
    assert!(
        !before.iter().any(|m| m.contains("wall clock stepped")),
        "a step before the clock moved: {before:#?}\n{}",
        daemon.log_text()
    );
    set_fake_offset(&stamp, "+9m");
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let entries = daemon.timeline();
        if let Some(e) = entries.iter().find(|m| m.contains("wall clock stepped")) {
            assert!(
                e.starts_with("clock: wall clock stepped +9m"),
                "timeline entry: {e}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no step on the timeline within 8 s: {entries:#?}\nlog:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Without jump_severity a step is an event only: nothing pages.
    let alerts = kit::http_get_json(&format!("http://127.0.0.1:{}/api/v1/alerts", daemon.port));
    let clock_alerts: Vec<&Value> = alerts
        .as_array()
        .map(|a| a.iter().filter(|a| a["probe"] == "clock").collect())
        .unwrap_or_default();
    assert!(clock_alerts.is_empty(), "{clock_alerts:#?}");
}

/// The timeline as the API returns it: (message, wall time as recorded).
fn timeline_rows(port: u16) -> Vec<(String, f64)> {
    let v = kit::http_get_json(&format!("http://127.0.0.1:{port}/api/v1/timeline"));
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e["message"].as_str()?.to_string(), e["ts"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until a timeline entry contains `text`; returns its index and the entry.
fn wait_entry(d: &FakedDaemon, text: &str, nth: usize) -> (usize, String, f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = timeline_rows(d.port);
        if let Some((i, (m, ts))) = rows
            .iter()
            .enumerate()
            .filter(|(_, (m, _))| m.contains(text))
            .nth(nth)
        {
            return (i, m.clone(), *ts);
        }
        assert!(
            Instant::now() < deadline,
            "no timeline entry #{nth} with {text:?} within 15 s: {rows:#?}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 9, item 16: the daemon's wall clock steps +9 min while an alert is open and −9 min
/// later (monotonic time unfaked, as a VM's stepped clock). The alert that lasted seconds
/// does not "resolve after 9m…", the timeline lists entries in the order they happened with
/// the wall times as recorded, and both steps are on it.
#[test]
fn a_stepped_wall_clock_neither_stretches_durations_nor_reorders_the_timeline() {
    let work = tempfile::tempdir().unwrap();
    let stamp = work.path().join("faketime.rc");
    set_fake_offset(&stamp, "+0");
    let flag = work.path().join("broken");
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[[probe]]
id = "clock"
kind = "clock"
interval = "1s"
servers = []
config_files = []

[[probe]]
id = "svc"
kind = "command"
argv = ["/usr/bin/test", "!", "-e", "{}"]
interval = "1s"
timeout = "1s"
for = "0s"
recover_after = 1
"#,
            flag.display()
        ),
    );
    let daemon = FakedDaemon::start(&config, work.path(), &stamp);
    std::thread::sleep(Duration::from_secs(3)); // the jump detector's baseline

    std::fs::write(&flag, "").unwrap();
    let (fired, _, fired_ts) = wait_entry(&daemon, "probe_status on svc fired", 0);
    let open = Instant::now();
    set_fake_offset(&stamp, "+9m");
    let (up, up_msg, _) = wait_entry(&daemon, "wall clock stepped +9m", 0);
    std::thread::sleep(Duration::from_secs(3));
    std::fs::remove_file(&flag).unwrap();
    let (resolved, resolved_msg, resolved_ts) =
        wait_entry(&daemon, "probe_status on svc resolved", 0);
    let lasted = open.elapsed();
    assert!(
        resolved_ts - fired_ts > 500.0,
        "the wall clock did step: {fired_ts} → {resolved_ts}"
    );
    let after = resolved_msg
        .split(" resolved after ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or_else(|| panic!("no duration in {resolved_msg:?}"));
    assert!(
        !after.contains('m') && !after.contains('h'),
        "an alert open {lasted:?} (monotonic) {resolved_msg:?}"
    );

    set_fake_offset(&stamp, "+0");
    let (down, down_msg, _) = wait_entry(&daemon, "wall clock stepped -9m", 0);
    std::fs::write(&flag, "").unwrap();
    let (again, _, again_ts) = wait_entry(&daemon, "probe_status on svc fired", 1);
    assert!(
        again_ts < resolved_ts,
        "the wall clock went back: {again_ts} vs {resolved_ts}"
    );
    let order = [fired, up, resolved, down, again];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "timeline out of the order things happened ({order:?}): {:#?}",
        timeline_rows(daemon.port)
    );
    eprintln!("steps on the timeline: {up_msg} / {down_msg}; {resolved_msg}");
}
