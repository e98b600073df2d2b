//! The `bridge` probe against a real stack (ngIRCd, Synapse, Heisenbridge; see
//! `tests/bridge_kit`), brought up once for every scenario of issue 6 but the write-path one:
//! 1. healthy: both directions delivered, each with its latency (daemon and `check --once`);
//! 2. the seed's wedge on Synapse→bridge (200 OK headers, then silence): only Matrix→IRC fires,
//!    and the homeserver's appservice ping says it cannot reach the bridge; releasing resolves;
//! 3. the same wedge on bridge→Synapse: only IRC→Matrix fires; the first failed round reads
//!    `warning` (not `ok`) while it is confirmed; released while a token is in flight, that
//!    late token raises no latency page (issue 9 #19);
//! 4. Synapse→bridge delayed 5 s: a latency warning, not a delivery alert;
//! 7. the homeserver's pings to the bridge refused (Synapse answers 502) while tokens flow: the
//!    first failed ping reads `warning`, and the alert comes at `retry_interval`, not a whole
//!    interval later (issue 9 #19);
//! 6. Synapse stopped: one page (the `matrix` write probe's), the bridge's alerts suppressed.
//!
//! Detection times are printed (`cargo test --test bridge -- --nocapture`).

mod bridge_kit;
mod kit;
mod matrix_kit;

use bridge_kit::proxy::Mode;
use bridge_kit::{OWNER, PASSWORD, Stack};
use kit::{Daemon, Received, Sink, write_config, write_file};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// The bridge probe's interval. Tokens get `DEADLINE_S` to arrive (the 5 s delay of scenario 4
/// must still count as delivered); after a failed round the next comes at once, so two failed
/// rounds fit in two periods however the wedge falls between rounds: at worst one period plus
/// two deadlines (18 + 2 × 7 = 32 s of the 36 s), which leaves room for a loaded machine.
const INTERVAL_S: u64 = 18;
const DEADLINE_S: u64 = 7;

fn bridge_probe(stack: &Stack, dir: &std::path::Path, id: &str, nick: &str, extra: &str) -> String {
    let password = write_file(dir, &format!("{id}-password"), PASSWORD);
    let as_token = write_file(dir, &format!("{id}-as-token"), &stack.as_token);
    format!(
        r##"
[[probe]]
id = "{id}"
kind = "bridge"
interval = "{INTERVAL_S}s"
timeout = "{INTERVAL_S}s"
homeserver = "{hs}"
user = "@{OWNER}:localhost"
password_file = "{password}"
room = "{room}"
latency_warning = "3s"
deadline = "{DEADLINE_S}s"
appservice_id = "{asid}"
as_token_file = "{as_token}"
{extra}
[probe.irc]
server = "127.0.0.1"
port = {irc}
channel = "#test"
nick = "{nick}"
"##,
        hs = stack.hs_url(),
        password = password.display(),
        room = stack.room_id,
        asid = stack.appservice_id,
        as_token = as_token.display(),
        irc = stack.irc_port,
    )
}

fn direction(body: &Value) -> &str {
    body["alert"]["labels"]["direction"].as_str().unwrap_or("")
}

fn is(body: &Value, event: &str, rule: &str, dir: Option<&str>) -> bool {
    body["event"] == event
        && body["alert"]["rule"] == rule
        && dir.is_none_or(|d| direction(body) == d)
}

/// Pages (firing events) received after `since`, as "probe/rule{direction}".
fn pages_since(sink: &Sink, since: Instant) -> Vec<String> {
    sink.all()
        .iter()
        .filter(|r| r.at >= since && r.body["event"] == "firing")
        .map(|r| {
            format!(
                "{}/{}{{{}}}",
                r.body["alert"]["probe"].as_str().unwrap_or(""),
                r.body["alert"]["rule"].as_str().unwrap_or(""),
                direction(&r.body)
            )
        })
        .collect()
}

/// The first webhook received after `since` that matches; panics after `within`.
fn wait_since(
    sink: &Sink,
    since: Instant,
    what: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Received {
    let deadline = Instant::now() + within;
    loop {
        if let Some(r) = sink
            .all()
            .into_iter()
            .find(|r| r.at >= since && pred(&r.body))
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no webhook for {what} within {within:?}; pages since: {:?}",
            pages_since(sink, since)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sample of an observation (JSON), by name and optional `direction`.
fn sample(obs: &Value, name: &str, dir: Option<&str>) -> Option<f64> {
    obs["samples"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name && dir.is_none_or(|d| s["labels"]["direction"] == d))?["value"]
        .as_f64()
}

/// Polls the daemon until the bridge probe's latest observation satisfies `pred`; returns when
/// it was seen and the observation.
fn wait_observation(
    d: &Daemon,
    what: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> (Instant, Value) {
    let deadline = Instant::now() + within;
    loop {
        let status = d.get("/api/v1/status");
        let obs = status["probes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == "libera")
            .map(|p| p["observation"].clone())
            .unwrap_or(Value::Null);
        if pred(&obs) {
            return (Instant::now(), obs);
        }
        assert!(
            Instant::now() < deadline,
            "no observation with {what} within {within:?}; last: {obs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bridge_probe_sees_each_direction_on_its_own() {
    let t = Instant::now();
    let mut stack = Stack::start();
    eprintln!("stack up in {:.1}s", t.elapsed().as_secs_f64());
    let work = tempfile::tempdir().unwrap();

    // `lookout check --once`: both directions with their latency, and the ping.
    let once = write_config(
        work.path(),
        "once.toml",
        &bridge_probe(&stack, work.path(), "once", "lkonce", ""),
    );
    let t = Instant::now();
    let out = Command::new("timeout")
        .arg("60")
        .arg(kit::lookout_bin())
        .arg("--config")
        .arg(&once)
        .args(["check", "--once", "--json"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            stack.logs()
        )
    });
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "bridge")
        .expect("a bridge row")
        .clone();
    eprintln!(
        "check --once in {:.1}s: {} {}",
        t.elapsed().as_secs_f64(),
        row["status"],
        row["message"]
    );
    assert_eq!(row["status"], "ok", "{row:#}\n{}", stack.logs());
    let message = row["message"].as_str().unwrap();
    assert!(
        message.starts_with("Matrix→IRC: ") && message.contains("; IRC→Matrix: "),
        "{message}"
    );
    for dir in ["matrix_to_irc", "irc_to_matrix"] {
        let lat = row["samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "bridge.latency_seconds" && s["labels"]["direction"] == dir)
            .unwrap_or_else(|| panic!("no latency for {dir}: {row:#}"));
        let v = lat["value"].as_f64().unwrap();
        assert!(v > 0.0 && v < 3.0, "{dir} latency {v}");
    }
    // Scenario 1's table: whether Synapse and Heisenbridge support the appservice ping.
    let ping = row["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "bridge.appservice_ping_ok")
        .map(|s| s["value"].clone());
    eprintln!("appservice ping ok: {ping:?}");

    // The daemon: Synapse's write path (the `matrix` probe), the IRC server's port, the bridge
    // depending on both.
    let sink = Sink::start();
    let config = write_config(
        work.path(),
        "lookout.toml",
        &format!(
            r#"
[daemon]
jitter = 0.0

[[probe]]
id = "matrix-write"
kind = "matrix"
interval = "3s"
timeout = "3s"
homeserver = "{hs}"
user = "{OWNER}"
password_file = "{password}"
room = "{probe_room}"
visible_within = "2s"
request_timeout = "2s"

[[probe]]
id = "ircd"
kind = "tcp"
host = "127.0.0.1"
port = {irc}
interval = "2s"
{bridge}

[[notifier]]
id = "hook"
kind = "webhook"
url = "{url}"
"#,
            hs = stack.hs_url(),
            password = work.path().join("libera-password").display(),
            probe_room = stack.probe_room,
            irc = stack.irc_port,
            bridge = bridge_probe(
                &stack,
                work.path(),
                "libera",
                "lookout",
                "depends_on = [\"matrix-write\", \"ircd\"]"
            ),
            url = sink.url,
        ),
    );
    let state = work.path().join("state");
    let d = Daemon::start(&config, &state, work.path());

    // 1. healthy: two rounds, no pages.
    std::thread::sleep(Duration::from_secs(2 * INTERVAL_S + 2));
    let healthy = pages_since(&sink, Instant::now() - Duration::from_secs(3600));
    assert!(
        healthy.is_empty(),
        "pages on a healthy stack: {healthy:?}\n{}",
        d.log_text()
    );
    let status = d.get("/api/v1/status");
    let bridge = status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "libera")
        .unwrap_or_else(|| panic!("no bridge probe in {status}"));
    let obs = &bridge["observation"];
    eprintln!("healthy: {} {}", obs["status"], obs["message"]);
    assert_eq!(obs["status"], "ok", "{obs}");
    for dir in ["matrix_to_irc", "irc_to_matrix"] {
        let has = |name: &str| {
            obs["samples"].as_array().unwrap().iter().any(|s| {
                s["name"] == name
                    && s["labels"]["direction"] == dir
                    && s["value"].as_f64() > Some(0.0)
            })
        };
        assert!(
            has("bridge.delivered") && has("bridge.latency_seconds"),
            "{dir}: {obs}"
        );
    }

    // 2. Synapse→bridge wedged: Matrix→IRC fires, IRC→Matrix does not.
    let t = Instant::now();
    stack.push_mode(Mode::Wedge);
    let fired = sink.wait_for(
        "Matrix→IRC delivery alert",
        Duration::from_secs(5 * INTERVAL_S),
        |b| is(b, "firing", "bridge_delivery", Some("matrix_to_irc")),
    );
    let detect2 = fired.at.duration_since(t);
    let msg = fired.body["alert"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    eprintln!("scenario 2 (wedge Synapse→bridge): fired after {detect2:.1?}: {msg}");
    assert!(
        msg.starts_with("Matrix→IRC: nothing delivered for 2 rounds")
            && msg.contains("IRC→Matrix fine ("),
        "{msg}"
    );
    assert!(
        detect2 <= Duration::from_secs(2 * INTERVAL_S + 1),
        "within two probe periods of the wedge: {detect2:?}\n{}",
        d.log_text()
    );
    let ping = sink.wait_for(
        "appservice ping alert",
        Duration::from_secs(3 * INTERVAL_S),
        |b| is(b, "firing", "bridge_appservice_ping", None),
    );
    eprintln!(
        "scenario 2: ping alert after {:.1?}: {}",
        ping.at.duration_since(t),
        ping.body["alert"]["message"]
    );
    let during = pages_since(&sink, t);
    assert!(
        !during.iter().any(|p| p.contains("irc_to_matrix")),
        "IRC→Matrix stays fine: {during:?}"
    );
    assert!(
        stack.push.wedged.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the proxy wedged Synapse's pushes"
    );
    let t = Instant::now();
    stack.push_mode(Mode::Pass);
    let resolved = sink.wait_for(
        "Matrix→IRC resolved",
        Duration::from_secs(8 * INTERVAL_S),
        |b| is(b, "resolved", "bridge_delivery", Some("matrix_to_irc")),
    );
    eprintln!(
        "scenario 2: released; resolved after {:.1?}",
        resolved.at.duration_since(t)
    );
    let after = pages_since(&sink, t);
    assert!(
        !after.iter().any(|p| p.contains("bridge_latency")),
        "no latency page from the tokens in flight at the release: {after:?}"
    );

    // 3. bridge→Synapse wedged: IRC→Matrix fires, Matrix→IRC does not.
    sink_settle(
        &sink,
        "bridge_appservice_ping",
        Duration::from_secs(6 * INTERVAL_S),
    );
    let t = Instant::now();
    stack.hs_mode(Mode::Wedge);
    // The first failed round is not "ok": it reads warning while the next round confirms it.
    let (_, first) = wait_observation(
        &d,
        "a failed IRC→Matrix round",
        Duration::from_secs(2 * INTERVAL_S),
        |o| sample(o, "bridge.delivered", Some("irc_to_matrix")) == Some(0.0),
    );
    eprintln!(
        "scenario 3: first failed round: {} {}",
        first["status"], first["message"]
    );
    assert_eq!(first["status"], "warning", "{first}");
    assert!(
        first["message"]
            .as_str()
            .is_some_and(|m| m.contains("(failed round 1 of 2; confirming)")),
        "{first}"
    );
    let fired = sink.wait_for(
        "IRC→Matrix delivery alert",
        Duration::from_secs(5 * INTERVAL_S),
        |b| {
            is(b, "firing", "bridge_delivery", Some("irc_to_matrix"))
                && b["alert"]["started_at"].as_f64().is_some()
        },
    );
    let detect3 = fired.at.duration_since(t);
    let msg = fired.body["alert"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    eprintln!("scenario 3 (wedge bridge→Synapse): fired after {detect3:.1?}: {msg}");
    assert!(
        msg.starts_with("IRC→Matrix: nothing delivered for 2 rounds"),
        "{msg}"
    );
    assert!(
        detect3 <= Duration::from_secs(2 * INTERVAL_S + 1),
        "within two probe periods of the wedge: {detect3:?}"
    );
    let during = pages_since(&sink, t);
    eprintln!("scenario 3: pages {during:?}");
    assert!(
        !during.iter().any(|p| p.contains("matrix_to_irc")),
        "Matrix→IRC stays fine: {during:?}\n{}",
        stack.logs()
    );
    assert!(
        stack.hs.wedged.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the proxy wedged the bridge's requests"
    );
    // Release while the next round's token is in flight: a failed round is retried at once,
    // so that round began as the alert fired; 4 s later its token has waited 4 s of its 7.
    std::thread::sleep(
        (fired.at + Duration::from_secs(4)).saturating_duration_since(Instant::now()),
    );
    let t = Instant::now();
    stack.hs_mode(Mode::Pass);
    let (_, back) = wait_observation(
        &d,
        "IRC→Matrix delivered again",
        Duration::from_secs(3 * INTERVAL_S),
        |o| sample(o, "bridge.delivered", Some("irc_to_matrix")) == Some(1.0),
    );
    let late = sample(&back, "bridge.latency_seconds", Some("irc_to_matrix"));
    eprintln!(
        "scenario 3: the first token delivered after the release took {late:?} s (latency_warning 3 s): {} {}",
        back["status"], back["message"]
    );
    let resolved = sink.wait_for(
        "IRC→Matrix resolved",
        Duration::from_secs(8 * INTERVAL_S),
        |b| is(b, "resolved", "bridge_delivery", Some("irc_to_matrix")),
    );
    eprintln!(
        "scenario 3: released; resolved after {:.1?}",
        resolved.at.duration_since(t)
    );
    let after = pages_since(&sink, t);
    assert!(
        !after.iter().any(|p| p.contains("bridge_latency")),
        "no latency page from the token in flight at the release: {after:?}\n{}",
        d.log_text()
    );

    // 4. Synapse→bridge delayed 5 s: a latency warning, not a wedge.
    let t = Instant::now();
    stack.push_mode(Mode::Delay(Duration::from_secs(5)));
    let fired = sink.wait_for(
        "Matrix→IRC latency warning",
        Duration::from_secs(4 * INTERVAL_S),
        |b| is(b, "firing", "bridge_latency", Some("matrix_to_irc")),
    );
    let detect4 = fired.at.duration_since(t);
    eprintln!(
        "scenario 4 (delay 5 s): fired after {detect4:.1?}: {} {}",
        fired.body["alert"]["severity"], fired.body["alert"]["message"]
    );
    assert_eq!(fired.body["alert"]["severity"], "warning");
    std::thread::sleep(Duration::from_secs(INTERVAL_S));
    let during = pages_since(&sink, t);
    assert!(
        !during.iter().any(|p| p.contains("bridge_delivery")),
        "slow is not a wedge: {during:?}"
    );
    stack.push_mode(Mode::Pass);
    sink.wait_for(
        "latency resolved",
        Duration::from_secs(6 * INTERVAL_S),
        |b| is(b, "resolved", "bridge_latency", Some("matrix_to_irc")),
    );

    // 7. The homeserver's pings to the bridge refused (Synapse answers 502) while tokens flow.
    let t = Instant::now();
    stack.push_mode(Mode::Refuse("/_matrix/app/v1/ping"));
    let (first_at, first) = wait_observation(
        &d,
        "a failed appservice ping",
        Duration::from_secs(2 * INTERVAL_S),
        |o| sample(o, "bridge.appservice_ping_ok", None) == Some(0.0),
    );
    let msg = first["message"].as_str().unwrap_or("").to_string();
    eprintln!(
        "scenario 7 (pings refused): first failed ping after {:.1?}: {} {msg}",
        first_at.duration_since(t),
        first["status"]
    );
    assert_eq!(first["status"], "warning", "{first}");
    assert!(msg.contains("(failed ping 1 of 2; confirming)"), "{msg}");
    assert!(!msg.contains("appservice ping: appservice ping"), "{msg}");
    let fired = wait_since(
        &sink,
        t,
        "appservice ping alert",
        Duration::from_secs(2 * INTERVAL_S),
        |b| is(b, "firing", "bridge_appservice_ping", None),
    );
    let confirm7 = fired.at.duration_since(first_at);
    eprintln!(
        "scenario 7: ping alert {confirm7:.1?} after the first failed ping: {}",
        fired.body["alert"]["message"]
    );
    // retry_interval is a third of the interval (6 s); without it the alert waited 18 s more.
    assert!(
        confirm7 < Duration::from_secs(INTERVAL_S * 2 / 3),
        "the failed ping is confirmed at retry_interval: {confirm7:?}"
    );
    stack.push_mode(Mode::Pass);

    // 6. Synapse stopped: one page, the homeserver's.
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    stack.stop_synapse();
    sink.wait_for("synapse down", Duration::from_secs(15), |b| {
        b["event"] == "firing" && b["alert"]["probe"] == "matrix-write"
    });
    std::thread::sleep(Duration::from_secs(3 * INTERVAL_S + 2));
    let during = pages_since(&sink, t);
    eprintln!("scenario 6 (Synapse stopped): pages {during:?}");
    assert_eq!(
        during.len(),
        1,
        "one page, not one per probe: {during:?}\n{}",
        d.log_text()
    );
    let alerts = d.get("/api/v1/alerts");
    let suppressed: Vec<String> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["probe"] == "libera")
        .map(|a| {
            format!(
                "{}{{{}}} {}",
                a["rule"],
                direction(&serde_json::json!({"alert": a})),
                a["state"]
            )
        })
        .collect();
    eprintln!("scenario 6: the bridge's alerts: {suppressed:?}");
    stack.start_synapse();
    sink.wait_for("synapse back", Duration::from_secs(30), |b| {
        b["event"] == "resolved" && b["alert"]["probe"] == "matrix-write"
    });
    // No secret in the daemon's log or API answers.
    let api = format!("{}{}", d.get("/api/v1/status"), d.get("/api/v1/alerts"));
    for (name, secret) in [
        ("password", PASSWORD),
        ("as_token", stack.as_token.as_str()),
    ] {
        assert!(
            !d.log_text().contains(secret),
            "the {name} is in the daemon's log"
        );
        assert!(!api.contains(secret), "the {name} is in an API answer");
    }
    eprintln!(
        "detection: wedge Synapse→bridge {detect2:.1?}, wedge bridge→Synapse {detect3:.1?}, delay 5 s {detect4:.1?}, failed ping confirmed {confirm7:.1?} (interval {INTERVAL_S}s, failed_rounds 2)"
    );
    drop(d);
}

/// Waits until the rule has no firing alert left on the sink's record (its last event is not
/// `firing`).
fn sink_settle(sink: &Sink, rule: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let last = sink
            .all()
            .into_iter()
            .rev()
            .find(|r| r.body["alert"]["rule"] == rule)
            .map(|r| r.body["event"].clone());
        if last.is_none_or(|e| e != "firing") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{rule} still firing after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// lookout's own IRC connection: fits NICKLEN when its nick is taken, sees what another client
/// says, and reconnects (with backoff) after the server restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_irc_connection_takes_another_nick_and_reconnects() {
    use lookout::probe::bridge::irc::{IrcTarget, IrcTransport};
    use lookout::probe::bridge::transport::{Transport, wait_for};
    let dir = tempfile::tempdir().unwrap();
    let port = bridge_kit::free_port();
    let mut ircd = bridge_kit::start_ircd(dir.path(), port);
    let target = |nick: &str| IrcTarget {
        server: "127.0.0.1".into(),
        port,
        tls: false,
        ca_file: None,
        nick: nick.into(),
        channel: "#test".into(),
        password: None,
        connect_timeout: Duration::from_secs(5),
    };
    let a = IrcTransport::start(target("lookout-bridge-probe"));
    let b = IrcTransport::start(target("lookout-bridge-probe"));
    let soon = || tokio::time::Instant::now() + Duration::from_secs(10);
    a.ready(soon()).await.expect("a joins");
    b.ready(soon()).await.expect("b joins under another nick");
    let log = std::fs::read_to_string(dir.path().join("ngircd.log")).unwrap_or_default();
    eprintln!(
        "nicks: {:?}",
        lookout::probe::bridge::irc::nicks("lookout-bridge-probe")
    );
    let mut rx = b.subscribe();
    a.send("hello from a").await.unwrap();
    assert!(
        wait_for(&mut rx, "hello from a", soon()).await.is_some(),
        "b sees a's line\n{log}"
    );

    ircd.stop();
    let noticed = Instant::now() + Duration::from_secs(5);
    let down = loop {
        let r = a
            .ready(tokio::time::Instant::now() + Duration::from_millis(200))
            .await;
        if r.is_err() || Instant::now() > noticed {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("while the server is down: {down:?}");
    assert!(down.is_err(), "the closed connection is noticed");
    let t = Instant::now();
    let _ircd = bridge_kit::start_ircd(dir.path(), port);
    a.ready(tokio::time::Instant::now() + Duration::from_secs(40))
        .await
        .expect("a reconnects");
    b.ready(tokio::time::Instant::now() + Duration::from_secs(40))
        .await
        .expect("b reconnects");
    eprintln!("reconnected {:.1?} after the server came back", t.elapsed());
    let mut rx = a.subscribe();
    b.send("hello again").await.unwrap();
    assert!(wait_for(&mut rx, "hello again", soon()).await.is_some());
}
