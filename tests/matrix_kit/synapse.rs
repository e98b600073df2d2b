//! A real Synapse homeserver (server name `localhost`, SQLite) in a temp dir on a free
//! loopback port; stopped by PID on drop.

use super::venv_kit::run;
use super::{enc, free_port, python, request};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared secret for `register_new_matrix_user`.
const SHARED_SECRET: &str = "lookout-test-registration-secret";

/// Patches the generated homeserver.yaml: reads the settings as JSON from argv[2].
const PATCH: &str = r#"
import json, sys, yaml
path, patch = sys.argv[1], json.loads(sys.argv[2])
with open(path) as f:
    config = yaml.safe_load(f)
config.update(patch)
with open(path, "w") as f:
    yaml.safe_dump(config, f)
"#;

/// How to start Synapse.
#[derive(Clone, Debug, Default)]
pub struct SynapseOptions {
    /// Appservice registration files (`app_service_config_files`).
    pub app_service_config_files: Vec<PathBuf>,
    /// `rc_message` as (per_second, burst_count); default (1000, 1000).
    pub rc_message: Option<(f64, u32)>,
    /// More top-level settings, merged over everything else.
    pub extra: Vec<(String, Value)>,
}

/// A running Synapse.
pub struct Synapse {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Synapse {
    /// Generates a config in a temp dir, patches it (loopback listener, shared secret, no key
    /// servers, generous rate limits, the options) and starts Synapse; waits for `/versions`.
    pub fn start(opts: SynapseOptions) -> Synapse {
        let python = python();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.path().join("homeserver.yaml");
        run(
            Command::new("timeout")
                .arg("120")
                .arg(&python)
                .args(["-m", "synapse.app.homeserver", "--server-name", "localhost"])
                .arg("--config-path")
                .arg(&config)
                .args(["--generate-config", "--report-stats=no"])
                .arg("--data-directory")
                .arg(&data)
                .current_dir(dir.path()),
            "synapse --generate-config",
        );
        let fast = json!({"per_second": 1000, "burst_count": 1000});
        let (msg_rate, msg_burst) = opts.rc_message.unwrap_or((1000.0, 1000));
        let mut patch = json!({
            "listeners": [{
                "port": 0,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": false,
                "x_forwarded": false,
                "resources": [{"names": ["client"], "compress": false}],
            }],
            "registration_shared_secret": SHARED_SECRET,
            // Cheap password hashes: every login (each `check --once` logs in afresh) costs
            // milliseconds, not a quarter second of a busy CPU.
            "bcrypt_rounds": 4,
            "trusted_key_servers": [],
            "suppress_key_server_warning": true,
            "report_stats": false,
            "enable_metrics": false,
            "presence": {"enabled": false},
            "url_preview_enabled": false,
            "rc_message": {"per_second": msg_rate, "burst_count": msg_burst},
            "rc_joins": {"local": fast, "remote": fast},
            "rc_joins_per_room": fast,
            "rc_login": {"address": fast, "account": fast, "failed_attempts": fast},
            "rc_registration": fast,
            "rc_admin_redaction": fast,
            "rc_invites": {"per_room": fast, "per_user": fast, "per_issuer": fast},
            "rc_presence": {"per_user": fast},
            "app_service_config_files": opts
                .app_service_config_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        });
        for (k, v) in &opts.extra {
            patch[k] = v.clone();
        }
        let mut s = Synapse {
            child: None,
            port: 0,
            dir,
        };
        // A port chosen by `free_port` may be taken by another test before Synapse binds it:
        // then Synapse exits with "Address already in use" and we try a fresh port.
        for attempt in 1..=3 {
            s.port = free_port();
            patch["listeners"][0]["port"] = json!(s.port);
            run(
                Command::new("timeout")
                    .arg("60")
                    .arg(&python)
                    .args(["-c", PATCH])
                    .arg(&config)
                    .arg(patch.to_string()),
                "patch homeserver.yaml",
            );
            match s.try_spawn(Duration::from_secs(60)) {
                Ok(()) => return s,
                Err(log) if attempt < 3 && log.contains("Address already in use") => {
                    eprintln!("synapse: port {} was taken; trying another", s.port);
                }
                Err(log) => panic!("synapse did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn(Duration::from_secs(60)) {
            panic!("synapse did not start:\n{log}");
        }
    }

    /// Starts the process and waits until it says it listens on our port and answers
    /// `/versions`; on failure, kills it and returns its log.
    fn try_spawn(&mut self, within: Duration) -> Result<(), String> {
        let marks_before = self.listen_marks();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(python())
            .args(["-m", "synapse.app.homeserver", "--config-path"])
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start synapse");
        self.child = Some(child);
        let ready = self.wait_ready(within, marks_before);
        if ready.is_err() {
            self.kill();
        }
        ready
    }

    /// How often Synapse's own logs say it listens on our port (another process may answer
    /// there; a restart appends to the same logs).
    fn listen_marks(&self) -> usize {
        let marker = format!("now listening on TCP port {}", self.port);
        [self.log_path(), self.dir.path().join("homeserver.log")]
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|t| t.matches(&marker).count())
                    .unwrap_or(0)
            })
            .sum()
    }

    fn wait_ready(&mut self, within: Duration, marks_before: usize) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if self.listen_marks() > marks_before
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                let (status, _) = request("GET", &self.api("/_matrix/client/versions"), None, None);
                if status == 200 {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(exit))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!(
                    "synapse exited with {exit} while starting:\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "synapse did not answer /versions within {within:?}:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The homeserver's base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server name (`localhost`): user ids are `@NAME:localhost`.
    pub fn server_name(&self) -> &'static str {
        "localhost"
    }

    /// `@name:localhost`.
    pub fn user_id(&self, name: &str) -> String {
        format!("@{name}:localhost")
    }

    /// The temp dir (config, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated-and-patched homeserver.yaml.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("homeserver.yaml")
    }

    /// Where Synapse's stdout and stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("synapse-stdout.log")
    }

    /// The last 60 lines of Synapse's output and log file.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for p in [self.log_path(), self.dir.path().join("homeserver.log")] {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(60);
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                p.display(),
                lines[start..].join("\n")
            ));
        }
        out
    }

    /// `url() + path`.
    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Registers a user with `register_new_matrix_user` (shared secret); returns its user id.
    pub fn register(&self, user: &str, password: &str, admin: bool) -> String {
        let mut cmd = Command::new("timeout");
        cmd.arg("60")
            .arg(python())
            .args(["-m", "synapse._scripts.register_new_matrix_user", "-c"])
            .arg(self.config_path())
            .args(["-u", user, "-p", password])
            .arg(if admin { "--admin" } else { "--no-admin" })
            .arg(self.url());
        run(&mut cmd, &format!("register_new_matrix_user {user}"));
        self.user_id(user)
    }

    /// Logs in with a password; returns the access token.
    pub fn login(&self, user: &str, password: &str) -> String {
        let body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        });
        let v = self.ok("POST", "/_matrix/client/v3/login", None, Some(&body));
        v["access_token"].as_str().unwrap().to_string()
    }

    /// A request that must succeed (2xx); panics with the answer and Synapse's log otherwise.
    pub fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Value {
        let (status, v) = request(method, &self.api(path), token, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}\n{}",
            self.log_tail()
        );
        v
    }

    /// Creates a room (optionally with a local alias `#alias:localhost`, inviting users);
    /// returns its room id.
    pub fn create_room(&self, token: &str, alias: Option<&str>, invite: &[&str]) -> String {
        let mut body = json!({"preset": "private_chat", "invite": invite});
        if let Some(a) = alias {
            body["room_alias_name"] = json!(a);
        }
        let v = self.ok(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(token),
            Some(&body),
        );
        v["room_id"].as_str().unwrap().to_string()
    }

    /// Joins a room by id or alias; returns the room id.
    pub fn join(&self, token: &str, room: &str) -> String {
        let v = self.ok(
            "POST",
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            Some(token),
            Some(&json!({})),
        );
        v["room_id"].as_str().unwrap().to_string()
    }

    /// Sends any event; returns its event id.
    pub fn send(&self, token: &str, room_id: &str, event_type: &str, content: &Value) -> String {
        static TXN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let txn = format!(
            "kit{}-{}",
            std::process::id(),
            TXN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let v = self.ok(
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{}/send/{}/{txn}",
                enc(room_id),
                enc(event_type)
            ),
            Some(token),
            Some(content),
        );
        v["event_id"].as_str().unwrap().to_string()
    }

    /// Sends an `m.text` message; returns its event id.
    pub fn send_text(&self, token: &str, room_id: &str, body: &str) -> String {
        self.send(
            token,
            room_id,
            "m.room.message",
            &json!({"msgtype": "m.text", "body": body}),
        )
    }

    /// Reacts to an event with `key`; returns the reaction's event id.
    pub fn react(&self, token: &str, room_id: &str, event_id: &str, key: &str) -> String {
        self.send(
            token,
            room_id,
            "m.reaction",
            &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}),
        )
    }

    /// The newest `limit` events of a room, newest first.
    pub fn messages(&self, token: &str, room_id: &str, limit: u32) -> Vec<Value> {
        let v = self.ok(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}",
                enc(room_id)
            ),
            Some(token),
            None,
        );
        v["chunk"].as_array().cloned().unwrap_or_default()
    }

    /// Deactivates a user through the admin API (needs an admin's token).
    pub fn deactivate(&self, admin_token: &str, user_id: &str) {
        self.ok(
            "POST",
            &format!("/_synapse/admin/v1/deactivate/{}", enc(user_id)),
            Some(admin_token),
            Some(&json!({"erase": false})),
        );
    }

    /// SIGTERM, then SIGKILL after 10 s; waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (if running) and starts again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.kill();
    }
}
