//! Shared helpers of the escalation tests: a probe whose status follows a flag file, the API
//! and CLI called as an operator would, Matrix room reads.
#![allow(dead_code)]

use super::kit::{Daemon, Sink, lookout_bin, write_config, write_file};
use super::matrix_kit::{Synapse, SynapseOptions};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-api-token";

/// A `command` probe that is critical while `flag` exists.
pub fn flag_probe(dir: &Path, id: &str, flag: &Path) -> String {
    let script = write_file(
        dir,
        &format!("{id}.sh"),
        &format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'CRITICAL: /var/lib/postgresql is full'; exit 2; fi\necho 'OK'\n",
            flag.display()
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        r#"
[[probe]]
id = "{id}"
kind = "command"
argv = ["{}"]
interval = "500ms"
timeout = "500ms"
"#,
        script.display()
    )
}

pub fn firing_for(r: &Value, rule: &str) -> bool {
    r["event"] == "firing" && r["alert"]["rule"] == rule
}

pub fn post(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    request("POST", url, token, Some(body))
}

pub fn request(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(10)).unwrap();
        let mut req = c.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn open_alert(d: &Daemon, probe: &str) -> Option<Value> {
    d.get("/api/v1/alerts")
        .as_array()?
        .iter()
        .find(|a| a["probe"] == probe)
        .cloned()
}

pub fn secs(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64()
}

/// Unix seconds now.
pub fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Events lookout's bot sent to the room whose body starts with `prefix`, oldest first.
pub fn bot_events(hs: &Synapse, token: &str, room: &str, prefix: &str) -> Vec<Value> {
    let mut v: Vec<Value> = hs
        .messages(token, room, 100)
        .into_iter()
        .filter(|e| {
            e["sender"] == "@lookout:localhost"
                && e["type"] == "m.room.message"
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.starts_with(prefix))
        })
        .collect();
    v.reverse();
    v
}

/// Waits for a bot message starting with `prefix`; returns it.
pub fn wait_bot_event(
    hs: &Synapse,
    token: &str,
    room: &str,
    prefix: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(e) = bot_events(hs, token, room, prefix).into_iter().next() {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} in the room within {within:?}: {:#?}",
            hs.messages(token, room, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seconds from unix time `t0` to a Matrix event's `origin_server_ts`.
pub fn event_after(e: &Value, t0: f64) -> f64 {
    e["origin_server_ts"].as_f64().unwrap() / 1000.0 - t0
}

pub fn cli(config: &Path, state: &Path, api: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(lookout_bin())
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .arg("--api")
        .arg(api)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn legacy_config(dir: &Path, flag: &Path, sink: &Sink, extra: &str) -> PathBuf {
    write_config(
        dir,
        "lookout.toml",
        &format!(
            "[api]\ntoken = \"{TOKEN}\"\n{}\n[[notifier]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n{extra}",
            flag_probe(dir, "db-disk", flag),
            sink.url
        ),
    )
}

/// A real Synapse with the bot `lookout`, alice (to be paged) and the owner of the room `ops`,
/// which the bot is invited to and alice has joined.
pub struct OpsRoom {
    pub hs: Synapse,
    /// The owner's access token.
    pub owner: String,
    /// Alice's access token.
    pub alice: String,
    /// The room id.
    pub room: String,
}

impl OpsRoom {
    /// Starts it; the bot's password is `bot_password`.
    pub fn start(bot_password: &str) -> OpsRoom {
        let hs = Synapse::start(SynapseOptions::default());
        hs.register("owner", "owner-password-1", true);
        hs.register("lookout", bot_password, false);
        hs.register("alice", "alice-password-1", false);
        let owner = hs.login("owner", "owner-password-1");
        let alice = hs.login("alice", "alice-password-1");
        let room = hs.create_room(
            &owner,
            Some("ops"),
            &["@lookout:localhost", "@alice:localhost"],
        );
        hs.join(&alice, &room);
        OpsRoom {
            hs,
            owner,
            alice,
            room,
        }
    }
}
