//! The `command` probe: runs a Nagios/Monitoring-Plugins compatible check (argv, never a shell)
//! and maps its exit code and output to an observation: 0/1/2/3 → ok/warning/critical/unknown,
//! the first line up to `|` is the message, performance data become `command.<label>` samples.

pub mod child;
pub mod perfdata;

use super::{Built, Probe};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Labels, Observation, Sample, Status};
use async_trait::async_trait;
use child::Spec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of a plugin's standard output kept; the rest is read and thrown away.
pub const STDOUT_LIMIT: usize = 64 * 1024;

/// `[[probe]] kind = "command"`: a Nagios-compatible check plugin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments, e.g. `["/usr/lib/nagios/plugins/check_load", "-w",
    /// "5,4,3", "-c", "10,8,6"]`. Run directly, never through a shell; a bare program name is
    /// looked up on the daemon's `PATH`. Required.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Environment variables added to the daemon's own. Default: none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, an absolute path. Default: the daemon's.
    pub cwd: Option<String>,
}

impl KindConfig for CommandConfig {
    const NAME: &'static str = "command";

    fn defaults() -> KindDefaults {
        KindDefaults::new(60, 30)
    }

    fn host_warnings(
        &self,
        component: &str,
        table: usize,
        warnings: &mut crate::config::error::Collector<'_>,
    ) {
        use std::os::unix::fs::PermissionsExt;
        let Some(program) = self.argv.first().map(std::path::Path::new) else {
            return;
        };
        if !program.is_absolute() {
            return; // an error already
        }
        let why = match std::fs::metadata(program) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return,
            Ok(_) => "is not an executable file".to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
            Err(e) => format!("cannot be read ({e})"),
        };
        warnings.push_key(
            table,
            "argv",
            component,
            format!(
                "{} {why} on this host: every run will read unknown",
                program.display()
            ),
            Some("install the plugin (e.g. monitoring-plugins) or fix the path".into()),
        );
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        match self.argv.first() {
            None => errors.push(
                Some(span.clone()),
                Some(component),
                "argv is empty: there is no command to run",
                Some(r#"e.g. argv = ["/usr/lib/nagios/plugins/check_load", "-w", "5"]"#.into()),
            ),
            Some(p) if p.trim().is_empty() => errors.push(
                Some(span.clone()),
                Some(component),
                "argv[0], the program, is empty",
                None,
            ),
            Some(p) if p.contains(' ') && !p.contains('/') => errors.push(
                Some(span.clone()),
                Some(component),
                format!("argv[0] {p:?} contains a space; argv is not run through a shell"),
                Some(r#"split it: argv = ["check_foo", "-w", "5"]"#.into()),
            ),
            Some(_) => {}
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            errors.push(
                Some(span.clone()),
                Some(component),
                "argv contains a NUL character",
                None,
            );
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                errors.push(
                    Some(span.clone()),
                    Some(component),
                    format!("env name {k:?} is not a valid variable name"),
                    None,
                );
            }
        }
        if let Some(cwd) = &self.cwd
            && !cwd.starts_with('/')
        {
            errors.push(
                Some(span),
                Some(component),
                format!("cwd {cwd:?} is not an absolute path"),
                None,
            );
        }
    }

    fn build(&self, ctx: &super::BuildContext) -> Built {
        // Finish just before the scheduler's deadline, so the message says what was killed.
        let deadline = ctx.timeout.saturating_sub(Duration::from_millis(200));
        Built {
            probe: Arc::new(CommandProbe::new(self.clone(), Some(deadline))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}

/// The probe.
pub struct CommandProbe {
    spec: Spec,
    deadline: Option<Duration>,
}

impl CommandProbe {
    /// A probe for this configuration. With a `deadline`, a plugin still running then is
    /// killed with its process group and the run is `unknown`; without one the scheduler's
    /// timeout drops the run, which kills them just the same.
    pub fn new(config: CommandConfig, deadline: Option<Duration>) -> CommandProbe {
        CommandProbe {
            spec: Spec {
                argv: config.argv,
                env: config.env,
                cwd: config.cwd.map(PathBuf::from),
            },
            deadline,
        }
    }

    fn program(&self) -> String {
        child::base_name(self.spec.argv.first().map(String::as_str).unwrap_or(""))
    }
}

/// The observation for a finished plugin run (pure).
pub fn observe(program: &str, out: &child::Output) -> Observation {
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = perfdata::parse_output(&text);
    let status = match out.status.code() {
        Some(0) => Some(Status::Ok),
        Some(1) => Some(Status::Warning),
        Some(2) => Some(Status::Critical),
        Some(3) => Some(Status::Unknown),
        _ => None,
    };
    let stderr = child::first_line(&out.stderr);
    let mut message = match status {
        Some(_) if !parsed.text.is_empty() => parsed.text.clone(),
        Some(_) if !stderr.is_empty() => format!("{program} printed nothing; stderr: {stderr}"),
        Some(s) => format!("{program} returned {} and printed nothing", s.as_str()),
        None => {
            let said = if !parsed.text.is_empty() {
                format!(": {}", parsed.text)
            } else if !stderr.is_empty() {
                format!("; stderr: {stderr}")
            } else {
                String::new()
            };
            format!(
                "{program} {}, which is not a plugin status (0 ok, 1 warning, 2 critical, 3 unknown){said}",
                child::describe_exit(&out.status)
            )
        }
    };
    if out.stdout_dropped > 0 {
        message.push_str(&format!(
            " (output cut at {} KiB; {} more bytes ignored)",
            STDOUT_LIMIT / 1024,
            out.stdout_dropped
        ));
    }
    if !parsed.problems.is_empty() {
        message.push_str(&format!(
            " (perfdata ignored: {})",
            parsed.problems.join("; ")
        ));
    }
    let mut obs = Observation::new(status.unwrap_or(Status::Unknown), message);
    let none = Labels::new();
    for p in &parsed.perf {
        let name = perfdata::sample_name(&p.label);
        // A label repeated (or two that sanitise alike): the first wins.
        if obs.samples.iter().any(|s| s.name == name) {
            continue;
        }
        obs.samples.push(Sample::new(&name, &none, p.value));
    }
    obs
}

#[async_trait]
impl Probe for CommandProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let mut obs = match child::run(&self.spec, STDOUT_LIMIT, self.deadline).await {
            Ok(out) => observe(&self.program(), &out),
            Err(e) => Observation::new(Status::Unknown, e.to_string()),
        };
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn out(code: i32, stdout: &str) -> child::Output {
        child::Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stdout_dropped: 0,
            stderr: Vec::new(),
        }
    }

    #[test]
    fn exit_codes_map_to_statuses() {
        let cases = [
            (0, Status::Ok),
            (1, Status::Warning),
            (2, Status::Critical),
            (3, Status::Unknown),
            (4, Status::Unknown),
            (127, Status::Unknown),
        ];
        for (code, want) in cases {
            let o = observe("check_x", &out(code, "X | t=1s"));
            assert_eq!(o.status, want, "exit {code}");
        }
        let o = observe("check_x", &out(4, "weird"));
        assert_eq!(
            o.message,
            "check_x exited with code 4, which is not a plugin status (0 ok, 1 warning, 2 critical, 3 unknown): weird"
        );
        let killed = child::Output {
            status: std::process::ExitStatus::from_raw(9),
            ..out(0, "")
        };
        assert!(
            observe("check_x", &killed)
                .message
                .contains("killed by signal 9 (SIGKILL)")
        );
    }

    #[test]
    fn message_and_samples() {
        let o = observe(
            "check_http",
            &out(
                1,
                "HTTP WARNING: slow | time=1.5s;1;2;0 size=2KB 'in use'=50%\n",
            ),
        );
        assert_eq!(o.message, "HTTP WARNING: slow");
        assert_eq!(o.sample("command.time", &Labels::new()), Some(1.5));
        assert_eq!(o.sample("command.size", &Labels::new()), Some(2048.0));
        assert_eq!(o.sample("command.in_use", &Labels::new()), Some(50.0));
        let o = observe("check_x", &out(0, "OK | t=zz"));
        assert_eq!(o.status, Status::Ok);
        assert!(
            o.message.starts_with("OK (perfdata ignored: t: value"),
            "{}",
            o.message
        );
        let o = observe("check_x", &out(2, ""));
        assert_eq!(o.message, "check_x returned critical and printed nothing");
    }

    #[test]
    fn validation_names_each_problem() {
        let text = "x";
        let mut errs = crate::config::error::Collector::new(std::path::Path::new("f"), text);
        CommandConfig {
            argv: vec!["check_foo -w 5".into()],
            env: [("A=B".to_string(), "1".to_string())].into(),
            cwd: Some("rel".into()),
        }
        .validate("p", 0..1, &mut errs);
        let all = format!("{:?}", errs.errors);
        for want in [
            "contains a space",
            "not a valid variable name",
            "not an absolute path",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
    }
}
