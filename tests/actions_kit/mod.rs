//! Shared by the action runner tests (tests/actions.rs, tests/action_ask.rs): a `command`
//! probe toggled by a file, exec actions written as shell scripts, a webhook sink, and helpers
//! for the timeline, the API and proposals.
#![allow(dead_code)]

use super::kit::{Daemon, Sink, write_config, write_file};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes an executable `#!/bin/sh` script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = write_file(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A directory with a probe `app` that is ok while the file `app-ok` exists.
pub struct Setup {
    /// The work directory.
    pub work: tempfile::TempDir,
    /// The webhook receiver.
    pub sink: Sink,
}

impl Setup {
    pub fn new() -> Setup {
        let work = tempfile::tempdir().unwrap();
        let d = work.path().display().to_string();
        script(
            work.path(),
            "check_app",
            &format!(
                "if [ -f {d}/app-ok ]; then echo 'APP OK - writes work'; exit 0; fi\necho 'APP CRITICAL - database connection lost'; exit 2"
            ),
        );
        script(
            work.path(),
            "check_db",
            &format!(
                "if [ -f {d}/db-ok ]; then echo 'DB OK'; exit 0; fi\necho 'DB CRITICAL - connection refused'; exit 2"
            ),
        );
        Setup {
            work,
            sink: Sink::start(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        script(self.work.path(), name, body)
    }

    /// Starts the daemon with the probes, the webhook and `action` (an `[[action]]` table).
    pub fn start(&self, action: &str) -> Daemon {
        let d = self.work.path().display();
        let config = write_config(
            self.work.path(),
            "lookout.toml",
            &format!(
                r#"
[[probe]]
id = "app"
kind = "command"
argv = ["{d}/check_app"]
interval = "1s"
timeout = "1s"

[[probe]]
id = "db"
kind = "command"
argv = ["{d}/check_db"]
interval = "1s"
timeout = "1s"

[[notifier]]
id = "hook"
kind = "webhook"
url = "{}"

{action}
"#,
                self.sink.url
            ),
        );
        Daemon::start(&config, &self.path("state"), self.work.path())
    }
}

/// The timeline entries of `kind` (all kinds when empty).
pub fn timeline(d: &Daemon, kind: &str) -> Vec<Value> {
    d.get("/api/v1/timeline?since=1h")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| kind.is_empty() || e["kind"] == kind)
        .cloned()
        .collect()
}

/// Waits for a timeline entry of `kind` whose message contains `text`.
pub fn wait_entry(d: &Daemon, kind: &str, text: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(e) = timeline(d, kind)
            .into_iter()
            .find(|e| e["message"].as_str().unwrap_or("").contains(text))
        {
            return e;
        }
        if Instant::now() > deadline {
            let all: Vec<String> = timeline(d, "")
                .iter()
                .map(|e| format!("{} {}", e["kind"], e["message"]))
                .collect();
            panic!("no {kind} entry with {text:?} within {within:?}; timeline:\n{all:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn token(d: &Daemon) -> String {
    std::fs::read_to_string(d.state_dir.join("api-token")).unwrap()
}

/// POST JSON with the daemon's token; (status, body).
pub fn post(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(20)).unwrap();
        let r = c
            .post(format!("{}{path}", d.url()))
            .bearer_auth(token(d))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    })
}

pub fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

/// The one proposal, once made.
pub fn wait_proposal(d: &Daemon) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = d
            .get("/api/v1/actions/proposals")
            .as_array()
            .unwrap()
            .first()
        {
            return p.clone();
        }
        assert!(Instant::now() < deadline, "no proposal within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
