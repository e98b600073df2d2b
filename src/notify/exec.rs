//! The `exec` notifier: runs a program (never a shell) with the notification JSON on its
//! standard input. Exit 0 = delivered, 75 (`EX_TEMPFAIL`) = try again, anything else = failed
//! for good. The program runs in its own process group, killed as a whole at the deadline.

use super::text::redact;
use super::{Notification, Notifier, Outcome};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use crate::probe::command::child::{self, RunError, Spec};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// The exit code that asks for a retry (`EX_TEMPFAIL` from `sysexits.h`).
pub const EX_TEMPFAIL: i32 = 75;

/// `[[notifier]] kind = "exec"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Program and arguments, e.g. `["/usr/local/bin/page", "--team", "ops"]`; run directly,
    /// never through a shell. `argv[0]` is looked up on `PATH` unless it contains a `/`.
    pub argv: Vec<String>,
    /// Environment variables added to the daemon's own. Values are secrets; `${ENV}` allowed.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Working directory. Default the daemon's.
    pub cwd: Option<PathBuf>,
    /// Deadline of one run; the program and its process group are killed then. Default 10s.
    pub timeout: Option<Dur>,
    /// Attempts for retryable failures (exit 75, timeouts). Default 4.
    pub max_attempts: Option<u32>,
}

impl crate::config::notifiers::NotifierKind for ExecConfig {
    const NAME: &'static str = "exec";

    fn validate(&self, component: &str, span: Range<usize>, errors: &mut Collector<'_>) {
        let mut fail = |msg: &str| errors.push(Some(span.clone()), Some(component), msg, None);
        if self.argv.first().is_none_or(|p| p.trim().is_empty()) {
            fail("argv must name a program, e.g. [\"/usr/local/bin/page\"]");
        }
        if self.timeout.is_some_and(|t| t.0.is_zero()) {
            fail("timeout must be more than 0s");
        }
        if self.max_attempts == Some(0) {
            fail("max_attempts must be at least 1");
        }
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(4)
    }

    fn build(&self) -> anyhow::Result<std::sync::Arc<dyn Notifier>> {
        Ok(std::sync::Arc::new(Exec::new(self.clone())))
    }
}

/// The notifier.
pub struct Exec {
    spec: Spec,
    secrets: Vec<Secret>,
    timeout: Duration,
}

impl Exec {
    /// An exec notifier.
    pub fn new(config: ExecConfig) -> Exec {
        let secrets = config.env.values().cloned().collect();
        Exec {
            spec: Spec {
                env: config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
                argv: config.argv,
                cwd: config.cwd,
            },
            secrets,
            timeout: config
                .timeout
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(10)),
        }
    }
}

/// The outcome of a finished run.
pub fn judge(program: &str, output: &child::Output) -> Outcome {
    if output.status.success() {
        return Outcome::Delivered;
    }
    let mut text = format!("{program} {}", child::describe_exit(&output.status));
    let line = child::first_line(&output.stderr);
    if !line.is_empty() {
        text.push_str(": ");
        text.push_str(&super::text::truncate(&line, 300));
    }
    match output.status.code() {
        Some(EX_TEMPFAIL) => Outcome::Retryable(text),
        Some(_) => Outcome::Permanent(text),
        // Killed by a signal (the OOM killer, a reboot): worth another try.
        None => Outcome::Retryable(text),
    }
}

#[async_trait]
impl Notifier for Exec {
    async fn send(&self, message: &Notification) -> Outcome {
        let input = match serde_json::to_vec(message) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent(format!("cannot encode the message: {e}")),
        };
        let program = child::base_name(self.spec.argv.first().map(String::as_str).unwrap_or(""));
        let outcome =
            match child::run_with_stdin(&self.spec, Some(&input), 64 * 1024, Some(self.timeout))
                .await
            {
                Ok(out) => judge(&program, &out),
                Err(e @ RunError::TimedOut { .. }) => Outcome::Retryable(e.to_string()),
                Err(e @ RunError::Wait { .. }) => Outcome::Retryable(e.to_string()),
                Err(e @ RunError::Spawn { .. }) => Outcome::Permanent(e.to_string()),
            };
        match outcome {
            Outcome::Delivered => Outcome::Delivered,
            Outcome::Retryable(e) => Outcome::Retryable(redact(e, &self.secrets)),
            Outcome::Permanent(e) => Outcome::Permanent(redact(e, &self.secrets)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::sample;

    fn exec(script: &str, timeout: &str) -> Exec {
        let c: ExecConfig = toml::from_str(&format!(
            "argv = [\"/bin/sh\", \"-c\", {script:?}]\ntimeout = \"{timeout}\"\nenv = {{ TOKEN = \"S3CR3TV4L\" }}"
        ))
        .unwrap();
        Exec::new(c)
    }

    #[tokio::test]
    async fn exit_codes_map_to_outcomes() {
        let n = sample("firing");
        let ok = exec(
            "grep -q 0123456789abcdef && test \"$TOKEN\" = S3CR3TV4L",
            "5s",
        );
        assert_eq!(ok.send(&n).await, Outcome::Delivered);
        let temp = exec("cat >/dev/null; echo busy >&2; exit 75", "5s");
        assert_eq!(
            temp.send(&n).await,
            Outcome::Retryable("sh exited with code 75: busy".into())
        );
        let bad = exec("echo \"bad token $TOKEN\" >&2; exit 3", "5s");
        assert_eq!(
            bad.send(&n).await,
            Outcome::Permanent("sh exited with code 3: bad token <secret>".into())
        );
    }

    #[tokio::test]
    async fn a_hung_program_is_killed_at_the_deadline() {
        let started = std::time::Instant::now();
        let hang = exec("sleep 30 & sleep 30", "500ms");
        let out = hang.send(&sample("firing")).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        match out {
            Outcome::Retryable(e) => assert!(e.contains("did not finish within"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_program_is_permanent() {
        let c: ExecConfig = toml::from_str("argv = [\"/nonexistent/page\"]").unwrap();
        match Exec::new(c).send(&sample("firing")).await {
            Outcome::Permanent(e) => assert!(e.contains("no such file"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
