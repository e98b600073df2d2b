//! The `signal` action: sends a signal to the processes the `process` probe would find (by
//! pid file, or by name and command line); ok when every one of them got it.

use super::{Action, RunOutcome, took};
use crate::config::actions::{ActionKind, FieldSpans};
use crate::config::error::Collector;
use crate::config::values::Dur;
use crate::probe::process::{self, ProcessConfig};
use async_trait::async_trait;
use rustix::process::{Pid, Signal, kill_process};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The signals an action may send.
pub const SIGNALS: &[&str] = &["HUP", "INT", "TERM", "KILL", "USR1", "USR2"];

/// `[[action]] kind = "signal"`: which processes, and the signal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    /// A file holding the pid, e.g. `/run/app.pid`. Default: none (then `name` is required).
    pub pid_file: Option<String>,
    /// The process name, matched as the `process` probe matches its `name` (`/proc/PID/comm`
    /// or the base name of `argv[0]`); with `pid_file`, the pid's process must have it too.
    /// Every matching process gets the signal. Called `process` because `name` is the
    /// action's own name. Default: none.
    pub process: Option<String>,
    /// Only processes whose command line contains this text. Default: none.
    pub cmdline_contains: Option<String>,
    /// `HUP`, `INT`, `TERM`, `KILL`, `USR1` or `USR2` (a `SIG` prefix is allowed). Default
    /// `TERM`.
    #[serde(default = "term")]
    pub signal: String,
}

fn term() -> String {
    "TERM".into()
}

/// The signal a configured name stands for (`TERM`, `SIGTERM`).
pub fn parse_signal(name: &str) -> Option<Signal> {
    let n = name.strip_prefix("SIG").unwrap_or(name);
    Some(match n {
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "KILL" => Signal::KILL,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        _ => return None,
    })
}

impl SignalConfig {
    fn process(&self) -> ProcessConfig {
        ProcessConfig {
            pid_file: self.pid_file.clone(),
            name: self.process.clone(),
            cmdline_contains: self.cmdline_contains.clone(),
            min_count: None,
            max_count: None,
        }
    }

    fn sig_name(&self) -> String {
        format!(
            "SIG{}",
            self.signal.strip_prefix("SIG").unwrap_or(&self.signal)
        )
    }
}

impl ActionKind for SignalConfig {
    const NAME: &'static str = "signal";
    const DEFAULT_TIMEOUT: Dur = Dur::from_secs(5);

    fn validate(&self, component: &str, at: &FieldSpans, errors: &mut Collector<'_>) {
        // The process probe's own checks, pointed at this action's fields.
        let mut from_probe = Collector::new(std::path::Path::new(""), "");
        crate::config::KindConfig::validate(&self.process(), component, 0..0, &mut from_probe);
        for e in from_probe.errors {
            let key = if e.message.starts_with("pid_file") {
                "pid_file"
            } else if e.message.starts_with("name") {
                "process"
            } else {
                ""
            };
            let words = |t: &str| {
                t.replace("to watch", "to signal")
                    .replace("neither pid_file nor name", "neither pid_file nor process")
                    .replace("name \"", "process \"")
                    .replace("e.g. name =", "e.g. process =")
            };
            errors.push(
                Some(at.at(key)),
                Some(component),
                words(&e.message),
                e.hint.as_deref().map(words),
            );
        }
        if parse_signal(&self.signal).is_none() {
            errors.push(
                Some(at.at("signal")),
                Some(component),
                format!("signal {:?} is not one this action sends", self.signal),
                Some(format!("one of {}", SIGNALS.join(", "))),
            );
        }
    }

    fn build(&self) -> Arc<dyn Action> {
        Arc::new(SignalAction {
            config: self.clone(),
            proc_root: PathBuf::from("/proc"),
        })
    }
}

/// The action.
pub struct SignalAction {
    config: SignalConfig,
    proc_root: PathBuf,
}

#[async_trait]
impl Action for SignalAction {
    async fn run(&self, timeout: Duration) -> RunOutcome {
        let started = Instant::now();
        let Some(sig) = parse_signal(&self.config.signal) else {
            return RunOutcome::failed(format!("unknown signal {:?}", self.config.signal), 0.0);
        };
        let (config, root) = (self.config.process(), self.proc_root.clone());
        // /proc reads are blocking syscalls: keep them off the runtime.
        let found = tokio::time::timeout(
            timeout,
            tokio::task::spawn_blocking(move || process::matching(&config, &root)),
        )
        .await;
        let seconds = || started.elapsed().as_secs_f64();
        let procs = match found {
            Err(_) => return RunOutcome::failed("timed out reading /proc", seconds()),
            Ok(Err(e)) => return RunOutcome::failed(format!("failed: {e}"), seconds()),
            Ok(Ok(Err(why))) => return RunOutcome::failed(why, seconds()),
            Ok(Ok(Ok(p))) if p.is_empty() => {
                return RunOutcome::failed(
                    format!("no process matches {}", self.target()),
                    seconds(),
                );
            }
            Ok(Ok(Ok(p))) => p,
        };
        let name = self.config.sig_name();
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        for p in &procs {
            let result = Pid::from_raw(p.pid)
                .ok_or(rustix::io::Errno::SRCH)
                .and_then(|pid| kill_process(pid, sig));
            match result {
                Ok(()) => sent.push(format!("{} {}", p.comm, p.pid)),
                Err(e) => failed.push(format!("{} {}: {e}", p.comm, p.pid)),
            }
        }
        let took = took(seconds());
        let summary = match (sent.is_empty(), failed.is_empty()) {
            (_, true) => format!("sent {name} to {} in {took}", sent.join(", ")),
            (true, false) => format!("could not send {name}: {}", failed.join("; ")),
            (false, false) => format!(
                "sent {name} to {}, but not to {}",
                sent.join(", "),
                failed.join("; ")
            ),
        };
        RunOutcome {
            ok: failed.is_empty(),
            summary,
            output_tail: String::new(),
            seconds: seconds(),
        }
    }

    fn describe(&self) -> String {
        format!("signal {} to {}", self.config.sig_name(), self.target())
    }
}

impl SignalAction {
    /// A signal action reading processes under `proc_root` instead of `/proc`.
    pub fn with_proc_root(config: SignalConfig, proc_root: PathBuf) -> SignalAction {
        SignalAction { config, proc_root }
    }

    fn target(&self) -> String {
        let c = &self.config;
        let mut parts = Vec::new();
        if let Some(f) = &c.pid_file {
            parts.push(format!("the pid in {f}"));
        }
        if let Some(n) = &c.process {
            parts.push(format!("processes named {n}"));
        }
        if let Some(s) = &c.cmdline_contains {
            parts.push(format!("with {s:?} in the command line"));
        }
        parts.join(", ")
    }
}
