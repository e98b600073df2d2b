//! A real Matrix↔IRC stack in temp dirs on free loopback ports: ngIRCd, Synapse (SQLite) and
//! Heisenbridge, with switchable TCP proxies on both legs between Synapse and the bridge.
//! Synapse is `tests/matrix_kit`'s (its venv, `$HOME/.cache/lookout-test/matrix-venv`, also
//! holds heisenbridge). Every child is stopped by PID on drop.
//!
//! ```text
//!  lookout ──C-S API──▶ Synapse ──appservice push──▶ [push proxy] ──▶ Heisenbridge ──▶ ngIRCd
//!                          ▲                                            │             ▲
//!                          └────────────[hs proxy]◀──── C-S API ────────┘   lookout ──┘
//! ```

// Shared by tests/bridge.rs and tests/bridge_tls.rs, which use different parts.
#![allow(dead_code)]

pub mod proxy;
pub mod tls;

use super::matrix_kit::{self, Synapse, SynapseOptions};
use proxy::{Mode, Proxy};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The probe user (also the bridge's owner: Heisenbridge relays its owner's messages).
pub const OWNER: &str = "owner";
/// Its password.
pub const PASSWORD: &str = "owner-password-1";
/// The IRC channel.
pub const CHANNEL: &str = "#test";

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, within: Duration, what: &str, log: &Path) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within {within:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts ngIRCd on 127.0.0.1:`port` with its config, MOTD and log in `dir`, and waits until it
/// listens. It drops to `nobody` (so its PID file cannot be written, which it survives).
pub fn start_ircd(dir: &Path, port: u16) -> Proc {
    start_ircd_with(dir, port, None)
}

/// [`start_ircd`], and with `tls` = (port, certificate) also a TLS port serving that
/// certificate (waited for too).
pub fn start_ircd_with(dir: &Path, port: u16, tls: Option<(u16, &tls::TestCa)>) -> Proc {
    std::fs::write(dir.join("motd"), "lookout test\n").unwrap();
    let ssl = match tls {
        None => String::new(),
        Some((tls_port, ca)) => format!(
            "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {tls_port}\n",
            ca.cert_pem.display(),
            ca.key_pem.display()
        ),
    };
    std::fs::write(
        dir.join("ngircd.conf"),
        format!(
            "[Global]\nName = irc.localhost\nInfo = lookout test\nListen = 127.0.0.1\nPorts = {port}\n\
             MotdFile = {}\nPidFile = {}\n[Limits]\nMaxNickLength = 9\n\
             [Options]\nDNS = no\nIdent = no\nPAM = no\n{ssl}[Channel]\nName = {CHANNEL}\n",
            dir.join("motd").display(),
            dir.join("ngircd.pid").display()
        ),
    )
    .unwrap();
    let ircd = Proc::spawn(
        Command::new("ngircd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("ngircd.conf")),
        dir.join("ngircd.log"),
    );
    wait_port(port, Duration::from_secs(10), "ngircd", &ircd.log);
    if let Some((tls_port, _)) = tls {
        wait_port(tls_port, Duration::from_secs(10), "ngircd (TLS)", &ircd.log);
    }
    ircd
}

/// A child process stopped by PID on drop (SIGTERM, then SIGKILL after 5 s).
pub struct Proc {
    child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc {
            child: Some(child),
            log,
        }
    }

    /// Stops it now (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The whole stack.
pub struct Stack {
    /// Tokio runtime for the proxies and the owner's Matrix calls.
    pub rt: tokio::runtime::Runtime,
    /// Temp dir holding every config, database and log.
    pub dir: tempfile::TempDir,
    /// ngIRCd (held until the stack drops).
    _ircd: Proc,
    /// Its port.
    pub irc_port: u16,
    /// Synapse.
    pub synapse: Synapse,
    /// Its client-server API port.
    pub hs_port: u16,
    /// Heisenbridge (held until the stack drops).
    _bridge: Proc,
    /// Synapse → bridge (the registration's `url` points here).
    pub push: Proxy,
    /// Bridge → Synapse (the bridge's homeserver URL points here).
    pub hs: Proxy,
    /// The bridged room (`#test (local)`).
    pub room_id: String,
    /// A plain room of the owner's (an alias), for the `matrix` write probe.
    pub probe_room: String,
    /// The appservice id and `as_token` from the registration.
    pub appservice_id: String,
    /// The registration's `as_token`.
    pub as_token: String,
}

impl Stack {
    /// Brings everything up and bridges `#test`; ≈20 s with a warm venv.
    pub fn start() -> Stack {
        let python = matrix_kit::python();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();

        let irc_port = free_port();
        let ircd = start_ircd(&d, irc_port);

        // Heisenbridge's registration, its url moved to the push proxy.
        let bridge_port = free_port();
        let push = rt.block_on(Proxy::start(bridge_port));
        let registration = d.join("heisenbridge.yaml");
        run(
            Command::new("timeout")
                .arg("60")
                .arg(&python)
                .args(["-m", "heisenbridge", "-c"])
                .arg(&registration)
                .args([
                    "--generate",
                    "-l",
                    "127.0.0.1",
                    "-p",
                    &bridge_port.to_string(),
                ])
                .arg("http://127.0.0.1:8008"),
            "heisenbridge --generate",
        );
        let reg = std::fs::read_to_string(&registration).unwrap();
        let field = |name: &str| -> String {
            reg.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in the registration:\n{reg}"))
                .trim()
                .to_string()
        };
        let appservice_id = field("id");
        let as_token = field("as_token");
        let reg = reg.replace(
            &format!("url: http://127.0.0.1:{bridge_port}"),
            &format!("url: http://127.0.0.1:{}", push.port),
        );
        std::fs::write(&registration, reg).unwrap();

        let synapse = Synapse::start(SynapseOptions {
            app_service_config_files: vec![registration.clone()],
            ..SynapseOptions::default()
        });
        synapse.register(OWNER, PASSWORD, false);
        let hs_port = synapse.port;
        let hs = rt.block_on(Proxy::start(hs_port));

        let bridge = Proc::spawn(
            Command::new(&python)
                .args(["-m", "heisenbridge", "-c"])
                .arg(&registration)
                .args(["-l", "127.0.0.1", "-p", &bridge_port.to_string()])
                .args(["-o", &format!("@{OWNER}:localhost")])
                .arg(format!("http://127.0.0.1:{}", hs.port)),
            d.join("heisenbridge.log"),
        );
        wait_port(
            bridge_port,
            Duration::from_secs(60),
            "heisenbridge",
            &bridge.log,
        );

        let mut stack = Stack {
            rt,
            dir,
            _ircd: ircd,
            irc_port,
            synapse,
            hs_port,
            _bridge: bridge,
            push,
            hs,
            room_id: String::new(),
            probe_room: String::new(),
            appservice_id,
            as_token,
        };
        let started = Instant::now();
        stack.room_id = stack.rt.block_on(stack.bridge_channel());
        stack.probe_room = stack.rt.block_on(async {
            let m = Owner::login(&stack.hs_url()).await;
            // By alias: the `matrix` probe's validation wants "!id:server", and room version 12
            // ids (Synapse 1.163's default) have no server part.
            m.post(
                "/_matrix/client/v3/createRoom",
                json!({"preset": "private_chat", "room_alias_name": "lookout-probe"}),
            )
            .await;
            "#lookout-probe:localhost".to_string()
        });
        eprintln!("bridge_kit: #test bridged in {:?}", started.elapsed());
        stack
    }

    /// The homeserver's client-server URL.
    pub fn hs_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.hs_port)
    }

    /// Stops Synapse.
    pub fn stop_synapse(&mut self) {
        self.synapse.stop();
    }

    /// Starts Synapse again (same port and data) and waits until it answers.
    pub fn start_synapse(&mut self) {
        self.synapse.restart();
    }

    /// Sets the Synapse → bridge proxy's mode.
    pub fn push_mode(&self, m: Mode) {
        self.push.set(m);
    }

    /// Sets the bridge → Synapse proxy's mode.
    pub fn hs_mode(&self, m: Mode) {
        self.hs.set(m);
    }

    /// Every log of the stack, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("==== synapse (tail)\n{}\n", self.synapse.log_tail());
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let t = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(40).collect();
                out.push_str(&format!("==== {} (tail)\n", p.display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Drives Heisenbridge as its owner: control room, network, server, connect, join; returns
    /// the id of the room `#test (local)`.
    async fn bridge_channel(&self) -> String {
        let m = Owner::login(&self.hs_url()).await;
        let bot = "@heisenbridge:localhost";
        let control = m
            .post(
                "/_matrix/client/v3/createRoom",
                json!({"invite": [bot], "is_direct": true, "preset": "trusted_private_chat"}),
            )
            .await["room_id"]
            .as_str()
            .unwrap()
            .to_string();
        m.wait_joined(&control, bot, Duration::from_secs(30), self)
            .await;
        for cmd in [
            "ADDNETWORK local".to_string(),
            format!("ADDSERVER local 127.0.0.1 {}", self.irc_port),
            "OPEN local".to_string(),
        ] {
            m.say(&control, &cmd).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let network = m.join_invited("local", Duration::from_secs(30), self).await;
        for cmd in ["NICK owner", "CONNECT"] {
            m.say(&network, cmd).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // JOIN only once registered with the IRC server: retry until the room appears.
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            m.say(&network, &format!("JOIN {CHANNEL}")).await;
            if let Some(r) = m
                .try_join_invited(&format!("{CHANNEL} (local)"), Duration::from_secs(5))
                .await
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge never invited the owner to {CHANNEL} (local):\n{}",
                self.logs()
            );
        }
    }
}

/// The owner's Matrix session, for driving the bridge in the kit.
pub struct Owner {
    http: reqwest::Client,
    base: String,
    token: String,
    since: std::sync::Mutex<Option<String>>,
}

impl Owner {
    /// Logs in as [`OWNER`].
    pub async fn login(base: &str) -> Owner {
        let http = lookout::http::client(Duration::from_secs(30)).unwrap();
        let v: Value = http
            .post(format!("{base}/_matrix/client/v3/login"))
            .json(&json!({"type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": OWNER}, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Owner {
            http,
            base: base.to_string(),
            token: v["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("login: {v}"))
                .to_string(),
            since: Default::default(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// Sends a text message.
    pub async fn say(&self, room: &str, text: &str) {
        let txn = format!("kit-{}", rand_u64());
        let r = self
            .http
            .put(format!(
                "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                self.base,
                enc(room)
            ))
            .bearer_auth(&self.token)
            .json(&json!({"msgtype": "m.text", "body": text}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "send {text}: {}", r.status());
    }

    async fn sync(&self, wait_ms: u64) -> Value {
        let since = self.since.lock().unwrap().clone();
        let mut url = format!("{}/_matrix/client/v3/sync?timeout={wait_ms}", self.base);
        if let Some(s) = since {
            url.push_str(&format!("&since={}", enc(&s)));
        }
        let v: Value = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(n) = v["next_batch"].as_str() {
            *self.since.lock().unwrap() = Some(n.to_string());
        }
        v
    }

    async fn wait_joined(&self, room: &str, user: &str, within: Duration, stack: &Stack) {
        let deadline = Instant::now() + within;
        loop {
            let v: Value = self
                .http
                .get(format!(
                    "{}/_matrix/client/v3/rooms/{}/joined_members",
                    self.base,
                    enc(room)
                ))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["joined"].get(user).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{user} did not join {room}: {v}\n{}",
                stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn join_invited(&self, name: &str, within: Duration, stack: &Stack) -> String {
        match self.try_join_invited(name, within).await {
            Some(r) => r,
            None => panic!("no invite to a room named {name}:\n{}", stack.logs()),
        }
    }

    /// Joins the first room named `name` the owner is invited to (seen through sync).
    async fn try_join_invited(&self, name: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let v = self.sync(1000).await;
            if let Some(invites) = v["rooms"]["invite"].as_object() {
                for (room, data) in invites {
                    let named = data["invite_state"]["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == name);
                    if named {
                        self.post(&format!("/_matrix/client/v3/join/{}", enc(room)), json!({}))
                            .await;
                        return Some(room.clone());
                    }
                }
            }
        }
        None
    }
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
