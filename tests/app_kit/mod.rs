//! The kit app (issue 11): a small Python HTTP service that holds ONE PostgreSQL connection
//! (PyPI `pg8000`, in a venv under `$HOME/.cache/lookout-test/app-venv`, made on first use) and
//! never reconnects once it breaks, as Synapse did on 2017-05-12. See `app.py`.
//!
//! - `POST /write` inserts a row: 200 `ok`; once the connection broke, 503 `database connection
//!   lost: …` for good.
//! - `GET /health` answers 200 `up` while the process runs.
//! - It writes its pid to [`App::pid_file`] once it listens.
//! - A supervisor (a `/bin/sh` loop, like systemd `Restart=always`) starts it again 0.5 s after
//!   it exits, so killing the app's pid (an `exec` or `signal` action, or [`App::kill`])
//!   restarts it with a fresh connection.
//!
//! Dropping an [`App`] stops the supervisor, then the app, by PID. Fails loudly when python3,
//! its venv module or PyPI is missing.
#![allow(dead_code)]

#[allow(clippy::duplicate_mod)] // the kits share it; a test may load several
#[path = "../common/venv.rs"]
mod venv;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The app's source, written next to its pid file at start.
const APP_PY: &str = include_str!("app.py");

/// The supervisor: restarts the app whenever it exits; counts starts in `starts`.
const SUPERVISOR: &str = r#"#!/bin/sh
# $1 = python, $2 = app.py, $3 = the state dir, the rest = the app's arguments
py="$1"; app="$2"; dir="$3"; shift 3
while :; do
    echo start >> "$dir/starts"
    "$py" "$app" "$@" >> "$dir/app.log" 2>&1
    echo "exited with $?" >> "$dir/app.log"
    sleep 0.5
done
"#;

/// Where the app's database is.
#[derive(Clone, Debug)]
pub struct AppDb {
    /// Host (a loopback address).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Password (written to a file the app reads; never on a command line).
    pub password: String,
    /// Database.
    pub database: String,
}

impl AppDb {
    /// The `postgres` database as the `postgres` role on 127.0.0.1:`port`.
    pub fn postgres(port: u16, password: &str) -> AppDb {
        AppDb {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            password: password.into(),
            database: "postgres".into(),
        }
    }
}

/// The venv's python, with pg8000 installed (made on first use).
pub fn python() -> PathBuf {
    venv::ensure("app-venv", &["pg8000"], 300).join("bin/python")
}

/// A running kit app under its supervisor; both stopped by PID on drop.
pub struct App {
    supervisor: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl App {
    /// Starts the supervisor and waits (up to 30 s) until the app listens.
    pub fn start(db: &AppDb) -> App {
        let python = python();
        let dir = tempfile::Builder::new()
            .prefix("lookout-app")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("app.py"), APP_PY).unwrap();
        std::fs::write(d.join("supervisor.sh"), SUPERVISOR).unwrap();
        let pw = d.join("db-password");
        std::fs::write(&pw, format!("{}\n", db.password)).unwrap();
        let port = free_port();
        let supervisor = Command::new("/bin/sh")
            .arg(d.join("supervisor.sh"))
            .arg(&python)
            .arg(d.join("app.py"))
            .arg(d)
            .args(["--port", &port.to_string()])
            .args(["--db-host", &db.host])
            .args(["--db-port", &db.port.to_string()])
            .args(["--db-user", &db.user])
            .args(["--db-name", &db.database])
            .arg("--password-file")
            .arg(&pw)
            .arg("--pid-file")
            .arg(d.join("app.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the kit app's supervisor (/bin/sh)");
        let app = App {
            supervisor,
            port,
            dir,
        };
        app.wait_up(0, Duration::from_secs(30));
        app
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The file the app writes its pid to (for a `signal` action's `pid_file`).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("app.pid")
    }

    /// The running app's pid (from the pid file).
    pub fn pid(&self) -> i32 {
        read_pid(&self.pid_file()).unwrap_or_else(|| panic!("no app pid; log:\n{}", self.log()))
    }

    /// The supervisor's pid.
    pub fn supervisor_pid(&self) -> i32 {
        self.supervisor.id() as i32
    }

    /// How often the supervisor started the app again (starts after the first).
    pub fn restarts(&self) -> u32 {
        let starts = std::fs::read_to_string(self.dir.path().join("starts")).unwrap_or_default();
        (starts.lines().count() as u32).saturating_sub(1)
    }

    /// The app's output (and the supervisor's notes on each exit).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("app.log")).unwrap_or_default()
    }

    /// Waits until an app other than `old_pid` wrote its pid file and answers `GET /health`.
    pub fn wait_up(&self, old_pid: i32, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(pid) = read_pid(&self.pid_file())
                && pid != old_pid
                && alive(pid)
                && self
                    .request("GET", "/health")
                    .is_some_and(|(c, _)| c == 200)
            {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "the kit app did not come up within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to the app's pid (the supervisor starts it again); returns the old pid.
    pub fn kill(&self) -> i32 {
        let pid = self.pid();
        signal(pid, rustix::process::Signal::TERM);
        pid
    }

    /// `POST /write`: the status code and body, or `None` when nothing answered.
    pub fn write(&self) -> Option<(u16, String)> {
        self.request("POST", "/write")
    }

    /// One HTTP/1.0 request with a 5 s deadline: status code and body, or `None`.
    pub fn request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())?;
        Some((code, body))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // The supervisor first, so nothing starts the app again; then the app (by its pid file,
        // and the supervisor's children, in case one started but has not written it yet).
        let children = children_of(self.supervisor_pid());
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
        let pids = read_pid(&self.pid_file()).into_iter().chain(children);
        for pid in pids {
            if alive(pid) {
                signal(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// The pids whose parent is `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Whether a pid runs (a zombie does not count).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}
