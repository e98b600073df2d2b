// replaced by the kinds slice at merge
//! Actions: the trait every kind implements, and [`build`] (placeholder of the drills slice:
//! only `exec`, with a timeout and a kill of the process group; the kinds slice owns the real
//! module).

use crate::config::actions::{ActionConfig, ActionKindConfig};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run did.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Whether it succeeded.
    pub ok: bool,
    /// One line: "exit 0 in 1.2s".
    pub summary: String,
    /// The last 4 KiB of stdout+stderr.
    pub output_tail: String,
    /// How long it took (monotonic).
    pub seconds: f64,
}

/// One configured action.
#[async_trait]
pub trait Action: Send + Sync {
    /// Runs once. Must return within `timeout` (+ a kill grace of ≤ 2 s); never panics.
    async fn run(&self, timeout: Duration) -> RunOutcome;
    /// What a run would do, one line.
    fn describe(&self) -> String;
}

/// Builds the runnable action of a configuration.
pub fn build(config: &ActionConfig) -> Arc<dyn Action> {
    match &config.kind {
        ActionKindConfig::Exec(e) => Arc::new(Exec {
            argv: e.argv.clone(),
            env: e.env.clone().into_iter().collect(),
            dir: e.dir.clone(),
        }),
    }
}

struct Exec {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<std::path::PathBuf>,
}

const TAIL: usize = 4096;

#[async_trait]
impl Action for Exec {
    async fn run(&self, timeout: Duration) -> RunOutcome {
        let started = Instant::now();
        let done = |ok: bool, summary: String, out: &[u8]| {
            let s = String::from_utf8_lossy(&out[out.len().saturating_sub(TAIL)..]).into_owned();
            RunOutcome {
                ok,
                summary,
                output_tail: s,
                seconds: started.elapsed().as_secs_f64(),
            }
        };
        let Some(program) = self.argv.first() else {
            return done(false, "empty argv".into(), b"");
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.argv[1..])
            .envs(self.env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return done(false, format!("cannot start {program}: {e}"), b""),
        };
        let pid = child.id();
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                let mut all = out.stdout;
                all.extend_from_slice(&out.stderr);
                let secs = started.elapsed().as_secs_f64();
                let summary = match out.status.code() {
                    Some(c) => format!("exit {c} in {secs:.1}s"),
                    None => format!("killed by a signal in {secs:.1}s"),
                };
                done(out.status.success(), summary, &all)
            }
            Ok(Err(e)) => done(false, format!("cannot wait for {program}: {e}"), b""),
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                done(
                    false,
                    format!(
                        "killed after {} timeout",
                        humantime::format_duration(timeout)
                    ),
                    b"",
                )
            }
        }
    }

    fn describe(&self) -> String {
        format!("exec {}", self.argv.join(" "))
    }
}
