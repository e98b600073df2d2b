//! Runs an action's child process: in its own process group, standard input `/dev/null`,
//! standard output and error captured together (the last 4 KiB kept, secrets redacted), and
//! at the timeout SIGTERM to the whole group, SIGKILL 2 s later, the child reaped.
//!
//! A process the action leaves running in the background when it exits normally keeps
//! running (a restart script may start the service itself); only its output is no longer read.

use super::{TAIL_LIMIT, margin, redacted_tail};
use crate::config::Secret;
use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long the group has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long output is still read after the child exited (for what its pipes still hold).
const DRAIN: Duration = Duration::from_millis(300);

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// Program and arguments. An `argv[0]` without `/` is looked up on `PATH` (only the
    /// `systemctl` default does that; configuration requires absolute paths otherwise).
    pub argv: Vec<String>,
    /// Environment variables added to the daemon's own; values are secrets and are redacted
    /// from the output.
    pub env: BTreeMap<String, Secret>,
    /// Working directory (default: the daemon's).
    pub dir: Option<PathBuf>,
}

/// How a child ended.
#[derive(Debug)]
pub enum Ending {
    /// It exited (or was killed by a signal) on its own.
    Exited(ExitStatus),
    /// It was still running at the timeout; it and its process group were killed.
    TimedOut {
        /// Whether SIGTERM was not enough and SIGKILL was sent.
        needed_kill: bool,
    },
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub ending: Ending,
    /// The last 4 KiB of its output, secrets redacted.
    pub tail: String,
    /// How long it ran (monotonic).
    pub seconds: f64,
}

impl Finished {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        matches!(&self.ending, Ending::Exited(s) if s.success())
    }

    /// The ending in a few words: "exit 0", "killed by signal 9 (SIGKILL)", "killed after 60s
    /// timeout".
    pub fn describe(&self, timeout: Duration) -> String {
        match &self.ending {
            Ending::Exited(s) => match s.code() {
                Some(code) => format!("exit {code}"),
                None => {
                    crate::probe::command::child::describe_exit(s).replace("was killed", "killed")
                }
            },
            Ending::TimedOut { .. } => format!(
                "killed after {} timeout",
                crate::model::format_duration(timeout.as_secs_f64())
            ),
        }
    }
}

/// The last bytes of two pipes, as they came.
#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    dropped: bool,
    cap: usize,
}

impl Capture {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.dropped = true;
        }
    }
}

async fn pump<R: AsyncRead + Unpin>(pipe: Option<R>, into: Arc<Mutex<Capture>>) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => into
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&buf[..n]),
        }
    }
}

/// Runs `spec` for at most `timeout` (plus [`KILL_GRACE`] when the group ignores SIGTERM).
/// `Err` only when it could not be started, with the reason in words.
pub async fn run(spec: &Spec, timeout: Duration) -> Result<Finished, String> {
    let started = Instant::now();
    let program = spec.argv.first().cloned().unwrap_or_default();
    if program.is_empty() {
        return Err("the command is empty".into());
    }
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&spec.argv[1..])
        .envs(spec.env.iter().map(|(k, v)| (k, v.expose())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &spec.dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| spawn_reason(&e, spec))?;
    let pgid = child.id().and_then(|id| Pid::from_raw(id as i32));
    // Declared after `child`, so dropped before it: a run dropped half-way (the runner gave up
    // on it) kills the whole group while its leader is not yet reaped.
    let mut guard = GroupGuard(pgid);
    let secrets: Vec<Secret> = spec.env.values().cloned().collect();
    let margin = margin(&secrets);
    let capture = Arc::new(Mutex::new(Capture {
        cap: TAIL_LIMIT + margin,
        ..Capture::default()
    }));
    let readers = [
        tokio::spawn(pump(child.stdout.take(), capture.clone())),
        tokio::spawn(pump(child.stderr.take(), capture.clone())),
    ];
    let ending = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ending::Exited(status),
        Ok(Err(e)) => {
            kill_group(pgid, Signal::KILL);
            let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
            return Err(format!("waiting for {program} failed: {e}"));
        }
        Err(_) => {
            let needed_kill = !terminate_group(&mut child, pgid).await;
            Ending::TimedOut { needed_kill }
        }
    };
    guard.0 = None;
    // What the pipes still hold; a background process keeping them open is not waited for.
    let drain = tokio::time::sleep(DRAIN);
    tokio::pin!(drain);
    for r in readers {
        tokio::select! {
            _ = r => {}
            _ = &mut drain => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let c = capture.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Finished {
        ending,
        tail: redacted_tail(&c.buf, c.dropped, margin, &secrets),
        seconds,
    })
}

/// Kills a process group when dropped, unless disarmed (its pgid taken).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0.take(), Signal::KILL);
    }
}

fn kill_group(pgid: Option<Pid>, sig: Signal) {
    if let Some(p) = pgid {
        // ESRCH: the group is already gone.
        let _ = kill_process_group(p, sig);
    }
}

/// SIGTERM to the group; up to [`KILL_GRACE`] for the child to exit and the group to empty;
/// then SIGKILL to the group. The child is reaped either way. True when SIGTERM sufficed.
async fn terminate_group(child: &mut tokio::process::Child, pgid: Option<Pid>) -> bool {
    kill_group(pgid, Signal::TERM);
    let until = Instant::now() + KILL_GRACE;
    let mut reaped = false;
    while Instant::now() < until {
        if !reaped {
            reaped = matches!(child.try_wait(), Ok(Some(_)));
        }
        // A member that is a zombie still counts; a reaped leader does not.
        let empty = pgid.is_none_or(|p| test_kill_process_group(p).is_err());
        if reaped && empty {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill_group(pgid, Signal::KILL);
    let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
    false
}

fn spawn_reason(e: &std::io::Error, spec: &Spec) -> String {
    let program = spec.argv.first().map(String::as_str).unwrap_or("");
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => match &spec.dir {
            Some(dir) if !dir.exists() => {
                format!("working directory {} does not exist", dir.display())
            }
            _ if program.contains('/') => "no such file".into(),
            _ => "not found on PATH; give its absolute path".into(),
        },
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (is it executable? chmod 755)".into()
        }
        _ => e.to_string(),
    };
    format!("cannot run {program}: {why}")
}
