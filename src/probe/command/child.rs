//! Runs a child process for a probe: never through a shell, in its own process group, with
//! bounded output and an optional deadline. Dropping the future (the scheduler's timeout)
//! kills the child and everything it started in its group.

use rustix::process::{Pid, Signal, kill_process_group};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// Program and arguments; `argv[0]` is looked up on `PATH` unless it contains a `/`.
    pub argv: Vec<String>,
    /// Environment variables added to the daemon's own.
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the daemon's).
    pub cwd: Option<PathBuf>,
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// The first `limit` bytes of its standard output.
    pub stdout: Vec<u8>,
    /// Bytes of standard output read and thrown away past the limit.
    pub stdout_dropped: u64,
    /// The first bytes of its standard error.
    pub stderr: Vec<u8>,
}

/// Why a child gave no [`Output`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// The error in words.
        reason: String,
    },
    /// It did not end within the deadline; it and its process group were killed.
    #[error("{program} did not finish within {after}; killed it and its child processes")]
    TimedOut {
        /// `argv[0]`.
        program: String,
        /// The deadline, formatted.
        after: String,
    },
    /// Waiting for it failed.
    #[error("waiting for {program} failed: {reason}")]
    Wait {
        /// `argv[0]`.
        program: String,
        /// The error in words.
        reason: String,
    },
}

/// Bytes of standard error kept.
pub const STDERR_LIMIT: usize = 4096;

/// Kills a process group once, on demand or on drop.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (the group is already gone) is the normal case after a clean exit.
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a pipe to its end, keeping the first `limit` bytes; returns them and how many more
/// were read and dropped. A chatty child costs CPU, never memory.
async fn read_bounded<R: AsyncRead + Unpin>(pipe: Option<R>, limit: usize) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let Some(mut pipe) = pipe else {
        return (kept, dropped);
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += (n - room) as u64;
            }
        }
    }
    (kept, dropped)
}

/// Runs `spec` to completion, keeping at most `stdout_limit` bytes of its output. With a
/// `deadline`, a child still running then is killed with its whole process group and the
/// result is [`RunError::TimedOut`]. When the child exits, whatever it left running in its
/// process group is killed too, so its pipes close and nothing lingers.
pub async fn run(
    spec: &Spec,
    stdout_limit: usize,
    deadline: Option<Duration>,
) -> Result<Output, RunError> {
    run_with_stdin(spec, None, stdout_limit, deadline).await
}

/// [`run`], writing `stdin` to the child's standard input and closing it (a child that does
/// not read it gets a broken pipe, which is not an error here). Without `stdin`, standard input
/// is `/dev/null`.
pub async fn run_with_stdin(
    spec: &Spec,
    stdin: Option<&[u8]>,
    stdout_limit: usize,
    deadline: Option<Duration>,
) -> Result<Output, RunError> {
    let program = spec.argv.first().cloned().unwrap_or_default();
    if program.is_empty() {
        return Err(RunError::Spawn {
            program,
            reason: "the command is empty".into(),
        });
    }
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&spec.argv[1..])
        .envs(&spec.env)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| RunError::Spawn {
        program: program.clone(),
        reason: spawn_reason(&e, spec),
    })?;
    // Declared after `child`, so dropped before it: the group is killed while its leader is
    // not yet reaped, and its id cannot have been reused.
    let mut guard = GroupGuard {
        pgid: child.id().and_then(|id| Pid::from_raw(id as i32)),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(bytes)) = (input, stdin) {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(bytes).await;
            let _ = pipe.shutdown().await;
        }
    };
    let work = async {
        let waiting = async {
            let status = child.wait().await;
            guard.kill();
            status
        };
        let (out, err, (), status) = tokio::join!(
            read_bounded(stdout, stdout_limit),
            read_bounded(stderr, STDERR_LIMIT),
            feed,
            waiting
        );
        (out, err, status)
    };
    let ((out, dropped), (err, _), status) = match deadline {
        Some(d) => match tokio::time::timeout(d, work).await {
            Ok(r) => r,
            Err(_) => {
                return Err(RunError::TimedOut {
                    program: base_name(&program),
                    after: crate::model::format_duration(d.as_secs_f64()),
                });
            }
        },
        None => work.await,
    };
    let status = status.map_err(|e| RunError::Wait {
        program: base_name(&program),
        reason: e.to_string(),
    })?;
    Ok(Output {
        status,
        stdout: out,
        stdout_dropped: dropped,
        stderr: err,
    })
}

/// The last component of a program path (`/usr/lib/nagios/plugins/check_load` → `check_load`).
pub fn base_name(program: &str) -> String {
    program.rsplit('/').next().unwrap_or(program).to_string()
}

fn spawn_reason(e: &std::io::Error, spec: &Spec) -> String {
    let program = spec.argv.first().map(String::as_str).unwrap_or("");
    match e.kind() {
        std::io::ErrorKind::NotFound if program.contains('/') => "no such file".into(),
        std::io::ErrorKind::NotFound => {
            let path = std::env::var("PATH").unwrap_or_default();
            match &spec.cwd {
                Some(dir) if !dir.exists() => {
                    format!("working directory {} does not exist", dir.display())
                }
                _ => format!("not found on PATH ({path}); give its absolute path"),
            }
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (is it executable? chmod 755)".into()
        }
        _ => e.to_string(),
    }
}

/// The exit in words: `exited with code 4`, `was killed by signal 9 (SIGKILL)`.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    match status.signal() {
        Some(sig) => match signal_name(sig) {
            Some(name) => format!("was killed by signal {sig} ({name})"),
            None => format!("was killed by signal {sig}"),
        },
        None => "ended in an unknown way".into(),
    }
}

/// The usual name of a signal number.
fn signal_name(raw: i32) -> Option<&'static str> {
    let names = [
        (Signal::HUP, "SIGHUP"),
        (Signal::INT, "SIGINT"),
        (Signal::QUIT, "SIGQUIT"),
        (Signal::ILL, "SIGILL"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::BUS, "SIGBUS"),
        (Signal::FPE, "SIGFPE"),
        (Signal::KILL, "SIGKILL"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::ALARM, "SIGALRM"),
        (Signal::TERM, "SIGTERM"),
    ];
    names
        .iter()
        .find(|(s, _)| s.as_raw() == raw)
        .map(|(_, n)| *n)
}

/// The first non-empty line of some output, trimmed, lossily decoded.
pub fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str]) -> Spec {
        Spec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn output_is_bounded_and_drained() {
        let out = run(
            &spec(&["/bin/sh", "-c", "head -c 300000 /dev/zero"]),
            1000,
            None,
        )
        .await
        .unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert_eq!(out.stdout_dropped, 299_000);
        assert!(out.status.success());
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error_in_words() {
        let e = run(&spec(&["no-such-plugin-xyz"]), 100, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not found on PATH"), "{e}");
        let e = run(&spec(&["/nonexistent/check"]), 100, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        let e = run(&spec(&[]), 100, None).await.unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[tokio::test]
    async fn signals_are_described() {
        let out = run(&spec(&["/bin/sh", "-c", "kill -9 $$"]), 100, None)
            .await
            .unwrap();
        assert_eq!(
            describe_exit(&out.status),
            "was killed by signal 9 (SIGKILL)"
        );
    }
}
