//! The `systemd` action: `systemctl VERB UNIT` (restart, start, stop or reload), which waits
//! for the job to finish, then `systemctl is-active UNIT`: ok when the job succeeded and the
//! unit is active (inactive after a stop).

use super::child::{self, Spec};
use super::{Action, RunOutcome, took};
use crate::config::actions::{ActionKind, FieldSpans};
use crate::config::error::Collector;
use crate::config::values::Dur;
use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The verbs an action may give `systemctl`.
pub const VERBS: &[&str] = &["restart", "start", "stop", "reload"];

/// `[[action]] kind = "systemd"`: a job on one unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdConfig {
    /// The unit, e.g. `"matrix-synapse.service"`. Required.
    #[serde(default)]
    pub unit: String,
    /// `restart`, `start`, `stop` or `reload`. Default `restart`.
    #[serde(default = "restart")]
    pub verb: String,
    /// The `systemctl` program. Default `"systemctl"` (looked up on `PATH`, as the systemd
    /// probe does).
    #[serde(default = "systemctl")]
    pub systemctl: String,
}

fn restart() -> String {
    "restart".into()
}

fn systemctl() -> String {
    "systemctl".into()
}

impl ActionKind for SystemdConfig {
    const NAME: &'static str = "systemd";
    const DEFAULT_TIMEOUT: Dur = Dur::from_secs(90);

    fn validate(&self, component: &str, at: &FieldSpans, errors: &mut Collector<'_>) {
        let mut err = |key: &str, m: String, hint: Option<String>| {
            errors.push(Some(at.at(key)), Some(component), m, hint)
        };
        let u = &self.unit;
        if u.is_empty() {
            err(
                "unit",
                "unit is not set".into(),
                Some(r#"e.g. unit = "matrix-synapse.service""#.into()),
            );
        } else if u.starts_with('-') || u.chars().any(|c| c.is_whitespace() || c == '\0') {
            err("unit", format!("unit {u:?} is not a unit name"), None);
        }
        if !VERBS.contains(&self.verb.as_str()) {
            let hint = crate::config::error::suggest(&self.verb, VERBS)
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("one of {}", VERBS.join(", ")));
            err(
                "verb",
                format!(
                    "verb {:?} is not a systemctl job this action runs",
                    self.verb
                ),
                Some(hint),
            );
        }
        if self.systemctl.is_empty() {
            err("systemctl", "systemctl is empty".into(), None);
        }
    }

    fn build(&self) -> Arc<dyn Action> {
        Arc::new(SystemdAction {
            config: self.clone(),
        })
    }
}

/// The action.
pub struct SystemdAction {
    config: SystemdConfig,
}

impl SystemdAction {
    fn spec(&self, verb: &str) -> Spec {
        Spec {
            argv: vec![
                self.config.systemctl.clone(),
                verb.into(),
                self.config.unit.clone(),
            ],
            env: [(
                "SYSTEMD_COLORS".to_string(),
                crate::config::Secret::new("0"),
            )]
            .into(),
            dir: None,
        }
    }
}

#[async_trait]
impl Action for SystemdAction {
    async fn run(&self, timeout: Duration) -> RunOutcome {
        let started = Instant::now();
        let c = &self.config;
        let job = format!("systemctl {} {}", c.verb, c.unit);
        let done = match child::run(&self.spec(&c.verb), timeout).await {
            Err(why) => return RunOutcome::failed(why, started.elapsed().as_secs_f64()),
            Ok(d) => d,
        };
        if !done.success() {
            let seconds = started.elapsed().as_secs_f64();
            let how = done.describe(timeout);
            let said = child_said(&done.tail);
            return RunOutcome {
                ok: false,
                summary: match done.ending {
                    child::Ending::TimedOut { .. } => {
                        format!("{job}: {how} (the job may still be running in systemd)")
                    }
                    child::Ending::Exited(_) => format!("{job}: {how} in {}{said}", took(seconds)),
                },
                output_tail: done.tail,
                seconds,
            };
        }
        // What the unit is now, in what is left of the timeout (at least half a second).
        let left = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(500));
        let state = child::run(&self.spec("is-active"), left).await;
        let seconds = started.elapsed().as_secs_f64();
        let want = if c.verb == "stop" {
            "inactive"
        } else {
            "active"
        };
        let mut tail = done.tail;
        let (ok, summary) = match state {
            Err(why) => (false, format!("{job}: done, but {why}")),
            Ok(s) => {
                let now = s.tail.lines().next().unwrap_or("").trim().to_string();
                if !s.tail.is_empty() {
                    if !tail.is_empty() && !tail.ends_with('\n') {
                        tail.push('\n');
                    }
                    tail.push_str(&s.tail);
                }
                let ok = now == want || (c.verb == "reload" && now == "reloading");
                let now = if now.is_empty() {
                    format!("unknown ({})", s.describe(left))
                } else {
                    now
                };
                let summary = if ok {
                    format!("{job}: done in {}, {} is {now}", took(seconds), c.unit)
                } else {
                    format!(
                        "{job}: done in {}, but {} is {now}, expected {want}",
                        took(seconds),
                        c.unit
                    )
                };
                (ok, summary)
            }
        };
        RunOutcome {
            ok,
            summary,
            output_tail: super::redacted_tail(tail.as_bytes(), false, 0, &[]),
            seconds,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {}",
            self.config.systemctl, self.config.verb, self.config.unit
        )
    }
}

/// ": " and the last non-empty line of some output, or nothing.
fn child_said(tail: &str) -> String {
    tail.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}
