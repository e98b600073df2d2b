//! The `matrix` probe against a real Synapse: a healthy run with its latencies through
//! `lookout check --once --json`; in the daemon, sends refused by the room's power levels raise
//! an alert carrying `403 M_FORBIDDEN`, lifting the restriction resolves it, and a stopped
//! Synapse is "homeserver unreachable"; behind a proxy that hides `/sync` (and `/messages`) or
//! hangs sends, and with a wrong password, each failure has its own status and message.

mod kit;
mod matrix_kit;

use kit::fake::wait_alert;
use kit::{Daemon, lookout_bin, write_config, write_file};
use matrix_kit::{Synapse, SynapseOptions, enc};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Synapse with an admin `owner`, a `probe` user (password in a file) and a room
/// `#probes:localhost` the probe user is invited to. Returns (synapse, owner token, room id).
fn stack(work: &Path) -> (Synapse, String, String) {
    let hs = Synapse::start(SynapseOptions::default());
    hs.register("owner", "owner-password-1", true);
    hs.register("probe", "probe-password-1", false);
    let owner = hs.login("owner", "owner-password-1");
    let room = hs.create_room(&owner, Some("probes"), &["@probe:localhost"]);
    write_file(work, "probe.password", "probe-password-1\n");
    (hs, owner, room)
}

fn probe_toml(hs: &Synapse, work: &Path, common: &str) -> String {
    format!(
        r##"[[probe]]
id = "matrix-write"
kind = "matrix"
{common}
homeserver = "{url}"
user = "probe"
password_file = "{pw}"
room = "#probes:localhost"
visible_within = "3s"
"##,
        url = hs.url(),
        pw = work.join("probe.password").display()
    )
}

#[test]
fn a_healthy_run_shows_send_and_visibility_latency() {
    let work = tempfile::tempdir().unwrap();
    let (hs, owner, room) = stack(work.path());
    let config = write_config(
        work.path(),
        "lookout.toml",
        &probe_toml(&hs, work.path(), "timeout = \"10s\""),
    );
    let out = Command::new("timeout")
        .arg("60")
        .arg(lookout_bin())
        .arg("--config")
        .arg(&config)
        .args(["check", "--once", "--json"])
        .output()
        .expect("run lookout check");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["probe"] == "matrix-write")
        .unwrap_or_else(|| panic!("no matrix-write row: {rows:#}"))
        .clone();
    assert_eq!(row["status"], "ok", "{row:#}\n{}", hs.log_tail());
    assert!(
        row["message"]
            .as_str()
            .unwrap()
            .starts_with("sent and read back in "),
        "{row:#}"
    );
    let sample = |name: &str| -> f64 {
        row["samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no sample {name}: {row:#}"))["value"]
            .as_f64()
            .unwrap()
    };
    let (versions, send, visible) = (
        sample("matrix.versions_seconds"),
        sample("matrix.send_seconds"),
        sample("matrix.visible_seconds"),
    );
    eprintln!("versions {versions:.4}s send {send:.4}s visible {visible:.4}s");
    assert!(versions > 0.0 && versions < 5.0);
    assert!(send > 0.0 && send <= visible && visible < 3.0);
    // The token really is in the room, sent by the probe user.
    let recent = hs.messages(&owner, &room, 5);
    assert!(
        recent.iter().any(|e| e["sender"] == "@probe:localhost"
            && e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.starts_with("lookout probe matrix-write "))),
        "{recent:#?}"
    );
    // No secret in the output.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("probe-password-1"));
}

/// Waits until the probe has no active alert (resolved alerts leave `/api/v1/alerts`).
fn wait_resolved(d: &Daemon, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let alerts = d.get("/api/v1/alerts");
        let active = alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["probe"] == "matrix-write");
        if !active {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the probe's alert did not resolve within {within:?}: {alerts:#}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn set_send_level(hs: &Synapse, owner: &str, room: &str, level: u32) {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.power_levels",
        enc(room)
    );
    let mut levels = hs.ok("GET", &path, Some(owner), None);
    levels["events_default"] = json!(level);
    hs.ok("PUT", &path, Some(owner), Some(&levels));
}

#[test]
fn rejected_sends_carry_the_errcode_and_a_stopped_synapse_is_unreachable() {
    let work = tempfile::tempdir().unwrap();
    let (mut hs, owner, room) = stack(work.path());
    let config = write_config(
        work.path(),
        "lookout.toml",
        &probe_toml(
            &hs,
            work.path(),
            "interval = \"4s\"\ntimeout = \"4s\"\nrecover_after = 1",
        ),
    );
    let state = work.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let d = Daemon::start(&config, &state, work.path());
    let is_probe = |a: &Value| a["probe"] == "matrix-write" && a["rule"] == "probe_status";

    // Healthy first: the probe has joined and sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hs
        .messages(&owner, &room, 10)
        .iter()
        .any(|e| e["sender"] == "@probe:localhost" && e["type"] == "m.room.message")
    {
        assert!(
            Instant::now() < deadline,
            "no probe message\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Only power level 50 may send: Synapse answers 403 M_FORBIDDEN.
    set_send_level(&hs, &owner, &room, 50);
    let started = Instant::now();
    let a = wait_alert(&d, "send rejected", Duration::from_secs(30), |a| {
        is_probe(a) && a["state"] == "firing"
    });
    eprintln!(
        "send rejected alert after {:?}: {}",
        started.elapsed(),
        a["message"]
    );
    let msg = a["message"].as_str().unwrap();
    assert!(msg.starts_with("send rejected: 403 M_FORBIDDEN"), "{a:#}");
    assert_eq!(a["severity"], "critical", "{a:#}");

    // Allowed again: the probe rejoins if needed and the alert resolves.
    set_send_level(&hs, &owner, &room, 0);
    wait_resolved(&d, Duration::from_secs(30));

    // Synapse stopped: unreachable.
    hs.stop();
    let started = Instant::now();
    let a = wait_alert(&d, "unreachable", Duration::from_secs(30), |a| {
        is_probe(a)
            && a["state"] == "firing"
            && a["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("homeserver unreachable: "))
    });
    eprintln!(
        "unreachable alert after {:?}: {}",
        started.elapsed(),
        a["message"]
    );

    // Back: resolves again (same token, or a new login).
    hs.restart();
    wait_resolved(&d, Duration::from_secs(40));
    let log = d.log_text();
    assert!(
        !log.contains("probe-password-1"),
        "the password leaked into the log"
    );
}

/// What the proxy in front of Synapse does.
const PASS: u8 = 0;
/// `/sync` answers "nothing new" (after the long-poll wait); `/messages` passes.
const EMPTY_SYNC: u8 = 1;
/// `/sync` and `/messages` see nothing: the message is accepted but never visible.
const BLIND: u8 = 2;
/// Sends hang.
const HANG_SEND: u8 = 3;

/// An HTTP proxy to Synapse that can hide the read path or hang sends; its URL.
fn proxy(upstream: String, mode: std::sync::Arc<std::sync::atomic::AtomicU8>) -> String {
    use axum::extract::Request;
    use axum::response::{IntoResponse, Response};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let client = lookout::http::client(Duration::from_secs(60)).unwrap();
            let app = axum::Router::new().fallback(move |req: Request| {
                let client = client.clone();
                let upstream = upstream.clone();
                let mode = mode.load(Ordering::SeqCst);
                async move {
                    let path = req.uri().path().to_string();
                    let query = req.uri().query().unwrap_or("").to_string();
                    if path.ends_with("/sync") && mode != PASS && query.contains("since=") {
                        let wait = query
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("timeout="))
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0)
                            .min(3000);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        let since = query
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("since="))
                            .unwrap_or("s0")
                            .to_string();
                        return axum::Json(json!({"next_batch": since})).into_response();
                    }
                    if path.ends_with("/messages") && mode == BLIND {
                        return axum::Json(json!({"chunk": []})).into_response();
                    }
                    if path.contains("/send/") && mode == HANG_SEND {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    let method = req.method().clone();
                    let auth = req.headers().get("authorization").cloned();
                    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                        .await
                        .unwrap();
                    let target = if query.is_empty() {
                        format!("{upstream}{path}")
                    } else {
                        format!("{upstream}{path}?{query}")
                    };
                    let mut r = client
                        .request(method, target)
                        .header("content-type", "application/json")
                        .body(body);
                    if let Some(a) = auth {
                        r = r.header("authorization", a);
                    }
                    match r.send().await {
                        Ok(resp) => {
                            let status = resp.status();
                            let bytes = resp.bytes().await.unwrap_or_default();
                            Response::builder()
                                .status(status.as_u16())
                                .header("content-type", "application/json")
                                .body(axum::body::Body::from(bytes))
                                .unwrap()
                        }
                        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
                    }
                }
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

/// `lookout check --once --json` with this config; the probe's row.
fn check_once(config: &Path) -> Value {
    let out = Command::new("timeout")
        .arg("60")
        .arg(lookout_bin())
        .arg("--config")
        .arg(config)
        .args(["check", "--once", "--json"])
        .output()
        .expect("run lookout check");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["probe"] == "matrix-write")
        .cloned()
        .unwrap_or_else(|| panic!("no matrix-write row: {rows:#}"))
}

#[test]
fn a_hidden_read_path_and_a_hanging_send_have_their_own_messages() {
    let work = tempfile::tempdir().unwrap();
    let (hs, _owner, _room) = stack(work.path());
    let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(PASS));
    let url = proxy(hs.url(), mode.clone());
    let text = format!(
        r##"[[probe]]
id = "matrix-write"
kind = "matrix"
timeout = "8s"
homeserver = "{url}"
user = "probe"
password_file = "{pw}"
room = "#probes:localhost"
visible_within = "2s"
request_timeout = "2s"
"##,
        pw = work.path().join("probe.password").display()
    );
    let config = write_config(work.path(), "lookout.toml", &text);
    let cases: [(u8, &str, &str); 4] = [
        (PASS, "ok", "sent and read back in "),
        (
            EMPTY_SYNC,
            "warning",
            "sent; visible through /messages only (/sync did not deliver it within 2s)",
        ),
        (BLIND, "critical", "but not visible within 2s"),
        (HANG_SEND, "unknown", "send timed out after 2s"),
    ];
    for (m, status, text) in cases {
        mode.store(m, std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let row = check_once(&config);
        eprintln!(
            "mode {m}: {:?} {} {}",
            started.elapsed(),
            row["status"],
            row["message"]
        );
        assert_eq!(row["status"], status, "{row:#}");
        assert!(row["message"].as_str().unwrap().contains(text), "{row:#}");
    }

    // A wrong password: login failed, with the errcode.
    mode.store(PASS, std::sync::atomic::Ordering::SeqCst);
    write_file(work.path(), "probe.password", "not-the-password\n");
    let row = check_once(&config);
    assert_eq!(row["status"], "critical", "{row:#}");
    assert!(
        row["message"]
            .as_str()
            .unwrap()
            .starts_with("login failed: 403 M_FORBIDDEN"),
        "{row:#}"
    );
    assert!(!row.to_string().contains("not-the-password"));
}
