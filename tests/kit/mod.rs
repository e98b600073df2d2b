//! The test kit: real services in temp dirs on free loopback ports, stopped by PID on drop.
//!
//! Every helper fails loudly when what it needs is missing; nothing is skipped.
#![allow(dead_code)]

pub mod fake;
pub mod smtp;
#[allow(clippy::duplicate_mod)] // both kits share it; a test may load both
#[path = "../common/venv.rs"]
mod venv;

use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lookout binary under test.
pub fn lookout_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lookout"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Panics with a clear message unless running as root (loop mounts need it).
pub fn require_root(what: &str) {
    let uid = rustix::process::geteuid();
    assert!(
        uid.is_root(),
        "{what} needs root (loop mounts, setpriv); run ./scripts/test as root"
    );
}

/// Runs a command with a deadline; panics with its output on failure.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd}: {e} (is it installed? ./scripts/test installs it)")
        });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop-mounted ext4 filesystem in a temp dir, unmounted and removed on drop.
pub struct LoopFs {
    pub dir: tempfile::TempDir,
    pub mount: PathBuf,
}

impl LoopFs {
    /// `size_mib` MiB, `reserved_percent` % reserved for root (`mkfs.ext4 -m`).
    pub fn new(size_mib: u64, reserved_percent: u32) -> LoopFs {
        require_root("a loop-mounted filesystem");
        let dir = tempfile::tempdir().expect("temp dir");
        let img = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        sh(
            "truncate",
            &["-s", &format!("{size_mib}M"), img.to_str().unwrap()],
        );
        sh(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-m",
                &reserved_percent.to_string(),
                img.to_str().unwrap(),
            ],
        );
        sh(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), mount.to_str().unwrap()],
        );
        LoopFs { dir, mount }
    }

    /// The mount point as a string.
    pub fn path(&self) -> &str {
        self.mount.to_str().unwrap()
    }

    /// (f_bfree − f_bavail) × f_frsize, measured now.
    pub fn reserved_bytes(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.mount).unwrap();
        (st.f_bfree - st.f_bavail) * st.f_frsize
    }

    /// f_bavail × f_frsize, measured now.
    pub fn avail_bytes(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.mount).unwrap();
        st.f_bavail * st.f_frsize
    }

    /// Fills every block, as root (the reserve too), with one file.
    pub fn fill_completely(&self, name: &str) {
        let path = self.mount.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 1 << 20];
        loop {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        // Partial blocks: top up with small writes.
        let small = vec![0u8; 4096];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let m = self.mount.to_str().unwrap().to_string();
        for _ in 0..20 {
            let ok = Command::new("umount")
                .arg(&m)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let _ = Command::new("umount").args(["-l", &m]).status();
    }
}

/// A lookout daemon started by the test, killed by PID on drop.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub state_dir: PathBuf,
}

impl Daemon {
    /// Starts `lookout run` with this config file and state dir on a free port (another port is
    /// tried when another process took the chosen one between choosing and binding).
    pub fn start(config: &Path, state_dir: &Path, log_dir: &Path) -> Daemon {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(Some(config), state_dir, log_dir, free_port()) {
                Ok(d) => return d,
                Err(log) if log.contains("cannot listen") => last = log,
                Err(log) => panic!("lookout exited at start; log:\n{log}"),
            }
        }
        panic!("lookout found no free port in 3 tries; last log:\n{last}")
    }

    /// Starts `lookout run` (with or without a config) on `port`.
    pub fn start_with(
        config: Option<&Path>,
        state_dir: &Path,
        log_dir: &Path,
        port: u16,
    ) -> Daemon {
        Self::try_start(config, state_dir, log_dir, port)
            .unwrap_or_else(|log| panic!("lookout exited at start; log:\n{log}"))
    }

    /// Starts the daemon and waits until it listens; `Err(log)` when it exited first.
    fn try_start(
        config: Option<&Path>,
        state_dir: &Path,
        log_dir: &Path,
        port: u16,
    ) -> Result<Daemon, String> {
        let log = log_dir.join(format!(
            "lookout-{}.log",
            Instant::now().elapsed().as_nanos() ^ (port as u128)
        ));
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(lookout_bin());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("--state-dir")
            .arg(state_dir)
            .arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(log_dir)
            .env("LOOKOUT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        let child = cmd.spawn().expect("spawn lookout");
        let mut d = Daemon {
            child,
            port,
            log,
            state_dir: state_dir.to_path_buf(),
        };
        d.wait_ready()?;
        Ok(d)
    }

    /// The API base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until this daemon (not another process on the port) listens: its own start-up
    /// line names the port and the port answers. `Err(log)` when it exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = format!("status page: http://127.0.0.1:{}/", self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.log_text());
            }
            if self.log_text().contains(&started)
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "lookout did not listen within 20 s; log:\n{}",
            self.log_text()
        );
    }

    /// Everything the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a JSON API path; a failure panics with the daemon's log (and whether it still runs).
    pub fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.url());
        match std::panic::catch_unwind(|| http_get_json(&url)) {
            Ok(v) => v,
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "request failed".into());
                let alive = std::path::Path::new(&format!("/proc/{}", self.child.id())).exists();
                panic!(
                    "{why}\n(lookout pid {} {}); its log:\n{}",
                    self.child.id(),
                    if alive { "still exists" } else { "is gone" },
                    self.log_text()
                )
            }
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by PID.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// SIGTERM and wait up to `within`; returns how long the exit took.
    pub fn terminate(mut self, within: Duration) -> Duration {
        let started = Instant::now();
        self.signal(rustix::process::Signal::TERM);
        while started.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "lookout did not exit within {within:?} of SIGTERM; log:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET that decodes JSON, with a 10 s deadline.
pub fn http_get_json(url: &str) -> Value {
    let body = http_get(url);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url} answered non-JSON ({e}): {body}"))
}

/// A blocking GET returning the body, with a 10 s deadline.
pub fn http_get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(10)).unwrap();
        c.get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .text()
            .await
            .unwrap()
    })
}

/// One request the webhook sink received.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub body: Value,
    pub signature: Option<String>,
}

/// A real HTTP server that records webhook deliveries and answers with a settable status.
pub struct Sink {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    _rt: tokio::runtime::Runtime,
}

impl Sink {
    /// Starts the sink on a free loopback port.
    pub fn start() -> Sink {
        use axum::routing::post;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (r, s) = (received.clone(), status.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: axum::http::HeaderMap, body: String| {
                let (r, s) = (r.clone(), s.clone());
                async move {
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                    let signature = headers
                        .get("x-lookout-signature")
                        .map(|v| v.to_str().unwrap().to_string());
                    r.lock().unwrap().push(Received {
                        at: Instant::now(),
                        body,
                        signature,
                    });
                    axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Sink {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
            status,
            _rt: rt,
        }
    }

    /// Answer every later request with this HTTP status.
    pub fn respond_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a request matches; panics after `timeout` listing what arrived.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.all().into_iter().find(|r| pred(&r.body)) {
                return r;
            }
            if Instant::now() > deadline {
                let got: Vec<String> = self
                    .all()
                    .iter()
                    .map(|r| r.body["summary"].to_string())
                    .collect();
                panic!("no webhook for {what} within {timeout:?}; received: {got:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether a webhook body is `event` for `rule`, optionally at `severity`.
pub fn is_event(body: &Value, event: &str, rule: &str, severity: Option<&str>) -> bool {
    body["event"] == event
        && body["alert"]["rule"] == rule
        && severity.is_none_or(|s| body["alert"]["severity"] == s)
}

/// The lines [`write_config`] appends: the documented way to turn the host view off
/// (docs/configuration.md).
pub const HOST_VIEW_OFF: &str = "\n# the test watches only what it set up\n[host]\nwatch = false\n";

/// Writes a lookout configuration with the host view turned off (`[host] watch = false`, as
/// docs/configuration.md says), so a test's daemon watches only what the test set up and not
/// the loop mounts, namespaces and clocks of tests running beside it; returns its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    write_file(dir, name, &format!("{text}{HOST_VIEW_OFF}"))
}

/// Writes a file and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
