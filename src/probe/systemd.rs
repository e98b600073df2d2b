//! The `systemd` probe: a unit's `ActiveState` and `NRestarts`, read with `systemctl show`
//! (a child process with a deadline, killed when the run is dropped).

use super::command::child::{self, Spec};
use super::{Built, Probe};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Labels, Observation, Sample, Status};
use async_trait::async_trait;
use serde::Deserialize;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sample names.
pub mod samples {
    /// The unit's `NRestarts` (automatic restarts since it was last started by hand).
    pub const RESTARTS: &str = "systemd.restarts";
    /// 1 when the unit is in the expected state, else 0.
    pub const EXPECTED: &str = "systemd.in_expected_state";
}

/// The properties asked for.
pub const PROPERTIES: &str = "LoadState,ActiveState,SubState,NRestarts,Result,ExecMainStatus";

/// The values `ActiveState` can take.
pub const ACTIVE_STATES: &[&str] = &[
    "active",
    "reloading",
    "inactive",
    "failed",
    "activating",
    "deactivating",
    "maintenance",
    "refreshing",
];

/// `[[probe]] kind = "systemd"`: one systemd unit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdConfig {
    /// The unit, e.g. `"matrix-synapse.service"`. Required.
    #[serde(default)]
    pub unit: String,
    /// The `ActiveState` that is ok. Default `"active"`. Use `"inactive"` for a oneshot unit
    /// run by a timer (then a failed last run, `Result` other than `success`, is critical).
    pub expect: Option<String>,
    /// The `systemctl` program. Default `"systemctl"` (looked up on `PATH`).
    pub systemctl: Option<String>,
}

impl KindConfig for SystemdConfig {
    const NAME: &'static str = "systemd";

    fn defaults() -> KindDefaults {
        KindDefaults::new(30, 5)
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        let u = &self.unit;
        if u.is_empty() {
            errors.push(
                Some(span.clone()),
                Some(component),
                "unit is not set",
                Some(r#"e.g. unit = "matrix-synapse.service""#.into()),
            );
        } else if u.starts_with('-') || u.chars().any(|c| c.is_whitespace() || c == '\0') {
            errors.push(
                Some(span.clone()),
                Some(component),
                format!("unit {u:?} is not a unit name"),
                None,
            );
        }
        if let Some(e) = &self.expect
            && !ACTIVE_STATES.contains(&e.as_str())
        {
            errors.push(
                Some(span.clone()),
                Some(component),
                format!("expect {e:?} is not an ActiveState"),
                Some(format!("one of {}", ACTIVE_STATES.join(", "))),
            );
        }
        if self.systemctl.as_deref() == Some("") {
            errors.push(Some(span), Some(component), "systemctl is empty", None);
        }
    }

    fn build(&self, ctx: &super::BuildContext) -> Built {
        // Finish just before the scheduler's deadline, so the message says what was killed.
        let deadline = ctx.timeout.saturating_sub(Duration::from_millis(200));
        Built {
            probe: Arc::new(SystemdProbe::new(self.clone(), Some(deadline))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}

/// What `systemctl show` said about a unit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnitState {
    /// `LoadState` (`loaded`, `not-found`, `masked`, …).
    pub load_state: Option<String>,
    /// `ActiveState`.
    pub active_state: String,
    /// `SubState` (`running`, `dead`, `auto-restart`, …).
    pub sub_state: Option<String>,
    /// `NRestarts` (services only).
    pub n_restarts: Option<u64>,
    /// `Result` (`success`, `exit-code`, `signal`, `timeout`, …; services only).
    pub result: Option<String>,
    /// `ExecMainStatus` (services only).
    pub exec_main_status: Option<i64>,
}

/// Parses `systemctl show` output (`Key=Value` lines; order and unknown keys do not matter).
pub fn parse_show(text: &str) -> Result<UnitState, String> {
    let mut s = UnitState::default();
    let mut active = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let opt = || (!v.is_empty()).then(|| v.to_string());
        match k.trim() {
            "LoadState" => s.load_state = opt(),
            "ActiveState" => active = opt(),
            "SubState" => s.sub_state = opt(),
            "NRestarts" => s.n_restarts = v.parse().ok(),
            "Result" => s.result = opt(),
            "ExecMainStatus" => s.exec_main_status = v.parse().ok(),
            _ => {}
        }
    }
    s.active_state = active.ok_or_else(|| {
        let shown: String = text.trim().chars().take(120).collect();
        format!("systemctl show printed no ActiveState: {shown:?}")
    })?;
    Ok(s)
}

/// Judges a unit's state against the expected `ActiveState` (pure).
pub fn judge(unit: &str, s: &UnitState, expect: &str) -> (Status, String) {
    let sub = s
        .sub_state
        .as_deref()
        .map(|x| format!(" ({x})"))
        .unwrap_or_default();
    if let Some(load) = s.load_state.as_deref().filter(|l| *l != "loaded") {
        let what = match load {
            "not-found" => "does not exist (LoadState=not-found)".to_string(),
            "masked" => "is masked (LoadState=masked)".to_string(),
            other => format!("is not loaded (LoadState={other})"),
        };
        // An inactive unit that is expected inactive may legitimately be unloaded.
        if !(expect == "inactive" && s.active_state == "inactive" && load != "not-found") {
            return (Status::Critical, format!("{unit} {what}"));
        }
    }
    let failure = || {
        let mut why = Vec::new();
        if let Some(r) = s.result.as_deref().filter(|r| *r != "success") {
            why.push(format!("Result={r}"));
        }
        if let Some(code) = s.exec_main_status.filter(|c| *c != 0) {
            why.push(format!("main process exit status {code}"));
        }
        if why.is_empty() {
            String::new()
        } else {
            format!(": {}", why.join(", "))
        }
    };
    let state = &s.active_state;
    if state == expect {
        let failed_run =
            expect == "inactive" && s.result.as_deref().is_some_and(|r| r != "success");
        return if failed_run {
            (
                Status::Critical,
                format!(
                    "{unit} is inactive{sub} but its last run failed{}",
                    failure()
                ),
            )
        } else {
            (Status::Ok, format!("{unit} is {state}{sub}"))
        };
    }
    let transitional = matches!(
        state.as_str(),
        "activating" | "reloading" | "deactivating" | "refreshing" | "maintenance"
    );
    if transitional {
        (
            Status::Warning,
            format!("{unit} is {state}{sub}, expected {expect}{}", failure()),
        )
    } else {
        (
            Status::Critical,
            format!("{unit} is {state}{sub}, expected {expect}{}", failure()),
        )
    }
}

/// The probe.
pub struct SystemdProbe {
    config: SystemdConfig,
    deadline: Option<Duration>,
    last_restarts: Mutex<Option<u64>>,
}

impl SystemdProbe {
    /// A probe for this configuration; `deadline` bounds `systemctl` itself (the scheduler's
    /// timeout bounds the whole run either way).
    pub fn new(config: SystemdConfig, deadline: Option<Duration>) -> SystemdProbe {
        SystemdProbe {
            config,
            deadline,
            last_restarts: Mutex::new(None),
        }
    }

    /// Turns `systemctl`'s answer into an observation (pure but for the restart memory).
    pub fn observe(&self, stdout: &str) -> Observation {
        let unit = &self.config.unit;
        let state = match parse_show(stdout) {
            Ok(s) => s,
            Err(e) => return Observation::new(Status::Unknown, e),
        };
        let expect = self.config.expect.as_deref().unwrap_or("active");
        let (status, message) = judge(unit, &state, expect);
        let mut obs = Observation::new(status, message);
        let none = Labels::new();
        obs.samples.push(Sample::new(
            samples::EXPECTED,
            &none,
            if state.active_state == expect {
                1.0
            } else {
                0.0
            },
        ));
        if let Some(n) = state.n_restarts {
            let mut last = self.last_restarts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(before) = *last
                && n > before
            {
                let times = n - before;
                obs.events.push(format!(
                    "{unit} was restarted by systemd {} (NRestarts {before} → {n})",
                    if times == 1 {
                        "once".to_string()
                    } else {
                        format!("{times} times")
                    }
                ));
            }
            *last = Some(n);
            obs.samples
                .push(Sample::new(samples::RESTARTS, &none, n as f64));
        }
        obs
    }
}

#[async_trait]
impl Probe for SystemdProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let systemctl = self
            .config
            .systemctl
            .clone()
            .unwrap_or_else(|| "systemctl".into());
        let spec = Spec {
            argv: vec![
                systemctl.clone(),
                "show".into(),
                self.config.unit.clone(),
                format!("--property={PROPERTIES}"),
                "--no-pager".into(),
            ],
            env: [("SYSTEMD_COLORS".to_string(), "0".to_string())].into(),
            cwd: None,
        };
        let mut obs = match child::run(&spec, 64 * 1024, self.deadline).await {
            Err(e) => Observation::new(Status::Unknown, e.to_string()),
            Ok(out) if !out.status.success() => {
                let err = String::from_utf8_lossy(&out.stderr);
                let said: Vec<&str> = err
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                let said = if said.is_empty() {
                    child::first_line(&out.stdout)
                } else {
                    said.join(" ")
                };
                Observation::new(
                    Status::Unknown,
                    format!(
                        "cannot read the state of {}: {systemctl} {}: {said}",
                        self.config.unit,
                        child::describe_exit(&out.status)
                    ),
                )
            }
            Ok(out) => self.observe(&String::from_utf8_lossy(&out.stdout)),
        };
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `systemctl show` prints properties in systemd's own order (service properties first,
    /// then the unit's), not in the order asked for.
    const RUNNING: &str = "Result=success\nNRestarts=0\nExecMainStatus=0\nLoadState=loaded\nActiveState=active\nSubState=running\n";
    const FAILED: &str = "Result=exit-code\nNRestarts=5\nExecMainStatus=1\nLoadState=loaded\nActiveState=failed\nSubState=failed\n";
    const AUTO_RESTART: &str = "Result=exit-code\nNRestarts=3\nExecMainStatus=1\nLoadState=loaded\nActiveState=activating\nSubState=auto-restart\n";
    const NOT_FOUND: &str = "Result=success\nNRestarts=0\nExecMainStatus=0\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n";
    const STOPPED: &str = "Result=success\nNRestarts=0\nExecMainStatus=0\nLoadState=loaded\nActiveState=inactive\nSubState=dead\n";
    const ONESHOT_FAILED: &str = "Result=exit-code\nNRestarts=0\nExecMainStatus=2\nLoadState=loaded\nActiveState=inactive\nSubState=dead\n";
    /// A mount unit has no service properties.
    const MOUNT: &str = "LoadState=loaded\nActiveState=active\nSubState=mounted\n";

    #[test]
    fn parser_reads_fixtures() {
        let s = parse_show(FAILED).unwrap();
        assert_eq!(
            s,
            UnitState {
                load_state: Some("loaded".into()),
                active_state: "failed".into(),
                sub_state: Some("failed".into()),
                n_restarts: Some(5),
                result: Some("exit-code".into()),
                exec_main_status: Some(1),
            }
        );
        let m = parse_show(MOUNT).unwrap();
        assert_eq!(m.n_restarts, None);
        assert!(parse_show("").unwrap_err().contains("no ActiveState"));
        assert!(parse_show("garbage\nno equals\n").is_err());
    }

    #[test]
    fn states_are_judged() {
        let u = "synapse.service";
        let cases: &[(&str, &str, Status, &str)] = &[
            (
                RUNNING,
                "active",
                Status::Ok,
                "synapse.service is active (running)",
            ),
            (
                FAILED,
                "active",
                Status::Critical,
                "synapse.service is failed (failed), expected active: Result=exit-code, main process exit status 1",
            ),
            (
                AUTO_RESTART,
                "active",
                Status::Warning,
                "synapse.service is activating (auto-restart), expected active: Result=exit-code, main process exit status 1",
            ),
            (
                NOT_FOUND,
                "active",
                Status::Critical,
                "synapse.service does not exist (LoadState=not-found)",
            ),
            (
                STOPPED,
                "active",
                Status::Critical,
                "synapse.service is inactive (dead), expected active",
            ),
            (
                STOPPED,
                "inactive",
                Status::Ok,
                "synapse.service is inactive (dead)",
            ),
            (
                ONESHOT_FAILED,
                "inactive",
                Status::Critical,
                "synapse.service is inactive (dead) but its last run failed: Result=exit-code, main process exit status 2",
            ),
            (
                MOUNT,
                "active",
                Status::Ok,
                "synapse.service is active (mounted)",
            ),
        ];
        for (text, expect, status, message) in cases {
            let s = parse_show(text).unwrap();
            assert_eq!(
                judge(u, &s, expect),
                (*status, message.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn restarts_become_events() {
        let p = SystemdProbe::new(
            SystemdConfig {
                unit: "synapse.service".into(),
                ..Default::default()
            },
            None,
        );
        let o = p.observe(RUNNING);
        assert!(o.events.is_empty());
        assert_eq!(o.sample(samples::RESTARTS, &Labels::new()), Some(0.0));
        let o = p.observe(AUTO_RESTART);
        assert_eq!(
            o.events,
            vec!["synapse.service was restarted by systemd 3 times (NRestarts 0 → 3)"]
        );
        let o = p.observe(AUTO_RESTART);
        assert!(o.events.is_empty());
    }
}
