//! A real SMTP server: PyPI `aiosmtpd` in a venv under `$HOME/.cache/lookout-test/venv`
//! (created on first use), with a handler that parses each message with Python's `email`
//! package and writes it as JSON, and that can be told to answer with an SMTP error.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HANDLER: &str = r#"
import email, email.policy, itertools, json, os

class JsonDir:
    """Writes each message as JSON to a directory; answers with DIR/respond if it exists."""

    def __init__(self, directory):
        self.dir = directory
        self.count = itertools.count()

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        forced = os.path.join(self.dir, "respond")
        if os.path.exists(forced):
            with open(forced) as f:
                return f.read().strip()
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "subject": str(msg["subject"]),
            "content_type": msg.get_content_type(),
            "body": part.get_content() if part is not None else "",
        }
        path = os.path.join(self.dir, "msg-%d-%d.json" % (os.getpid(), next(self.count)))
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"
"#;

/// The venv's python, with aiosmtpd installed (made on first use).
pub fn python() -> PathBuf {
    super::venv::ensure("venv", &["aiosmtpd"], 300).join("bin/python")
}

/// A running aiosmtpd, killed by PID on drop.
pub struct Smtp {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    /// Starts `python -m aiosmtpd -n -l 127.0.0.1:PORT` with the JSON handler.
    pub fn start() -> Smtp {
        let python = python();
        let dir = tempfile::tempdir().unwrap();
        let module_dir = dir.path().join("py");
        let mail_dir = dir.path().join("mail");
        std::fs::create_dir_all(&module_dir).unwrap();
        std::fs::create_dir_all(&mail_dir).unwrap();
        std::fs::write(module_dir.join("lookout_smtp_sink.py"), HANDLER).unwrap();
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("aiosmtpd.log")).unwrap();
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "lookout_smtp_sink.JsonDir"])
            .arg(&mail_dir)
            .env("PYTHONPATH", &module_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start aiosmtpd");
        let s = Smtp { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen within 20 s: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// aiosmtpd's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("aiosmtpd.log")).unwrap_or_default()
    }

    /// Answer every later DATA with this SMTP reply (e.g. `451 4.3.0 try later`); `None`
    /// accepts again.
    pub fn respond_with(&self, reply: Option<&str>) {
        let p = self.mail_dir().join("respond");
        match reply {
            Some(r) => std::fs::write(p, r).unwrap(),
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// Every message accepted so far, parsed.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().map(|p| read_json(p)).collect()
    }

    /// Waits until a message matches; panics after `timeout` listing what arrived.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| pred(m)) {
                return m;
            }
            if Instant::now() > deadline {
                let subjects: Vec<String> = self
                    .messages()
                    .iter()
                    .map(|m| m["subject"].to_string())
                    .collect();
                panic!(
                    "no mail for {what} within {timeout:?}; got {subjects:#?}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
