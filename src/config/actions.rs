// replaced by the kinds slice at merge
//! `[[action]]` entries (placeholder of the drills slice: only what drills need, in the shape
//! of docs/issue11-design; the kinds slice owns the real file).

use super::error::Collector;
use super::values::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;

/// One configured action.
#[derive(Debug, Clone)]
pub struct ActionConfig {
    /// Unique name.
    pub name: String,
    /// Where its table is in the file.
    pub span: Range<usize>,
    /// Fields every kind has.
    pub common: ActionCommon,
    /// The kind and its own fields.
    pub kind: ActionKindConfig,
}

/// How an action bound to alerts runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionMode {
    /// Records what it would do.
    DryRun,
    /// Proposes the run and waits for approval.
    #[default]
    Ask,
    /// Runs.
    Auto,
}

/// Fields every action has.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionCommon {
    /// Label matchers of the alerts that trigger it.
    pub on: BTreeMap<String, String>,
    /// dry_run | ask | auto.
    pub mode: ActionMode,
    /// Before the first run.
    pub delay: Dur,
    /// Probes that must be ok before a run.
    pub require_ok: Option<Vec<String>>,
    /// For this long.
    pub require_ok_for: Dur,
    /// Between two runs.
    pub cooldown: Dur,
    /// At most this many runs per window.
    pub max_runs: u32,
    /// The window.
    pub window: Dur,
    /// Re-run the triggering probe after a run.
    pub post_check: bool,
    /// Within this.
    pub post_check_within: Dur,
    /// A proposal expires after this.
    pub ask_deadline: Dur,
    /// The run's timeout.
    pub timeout: Option<Dur>,
}

impl Default for ActionCommon {
    fn default() -> Self {
        ActionCommon {
            on: BTreeMap::new(),
            mode: ActionMode::Ask,
            delay: Dur::from_secs(30),
            require_ok: None,
            require_ok_for: Dur::from_secs(60),
            cooldown: Dur::from_secs(300),
            max_runs: 3,
            window: Dur::from_secs(3600),
            post_check: true,
            post_check_within: Dur::from_secs(60),
            ask_deadline: Dur::from_secs(900),
            timeout: None,
        }
    }
}

/// The keys of [`ActionCommon`] plus `name` and `kind`.
pub const COMMON_FIELDS: &[&str] = &[
    "name",
    "kind",
    "on",
    "mode",
    "delay",
    "require_ok",
    "require_ok_for",
    "cooldown",
    "max_runs",
    "window",
    "post_check",
    "post_check_within",
    "ask_deadline",
    "timeout",
];

/// `kind = "exec"`: runs argv.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program (absolute path) and its arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub dir: Option<std::path::PathBuf>,
}

/// The kind of an action and its own fields.
#[derive(Debug, Clone)]
pub enum ActionKindConfig {
    /// `exec`.
    Exec(ExecConfig),
}

impl ActionKindConfig {
    /// The known kinds.
    pub const KINDS: &[&str] = &["exec"];

    /// The kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            ActionKindConfig::Exec(_) => "exec",
        }
    }
}

impl ActionConfig {
    /// The effective timeout of a run.
    pub fn timeout(&self) -> Dur {
        self.common.timeout.unwrap_or(match self.kind {
            ActionKindConfig::Exec(_) => Dur::from_secs(60),
        })
    }

    /// Checks of one action (placeholder: absolute, non-empty argv).
    pub fn validate(&self, errors: &mut Collector<'_>) {
        let component = format!("action {:?}", self.name);
        let ActionKindConfig::Exec(e) = &self.kind;
        match e.argv.first() {
            None => errors.push(
                Some(self.span.clone()),
                Some(&component),
                "`argv` is empty",
                Some("e.g. argv = [\"/usr/bin/systemctl\", \"restart\", \"app\"]".into()),
            ),
            Some(p) if !p.starts_with('/') => errors.push(
                Some(self.span.clone()),
                Some(&component),
                format!("argv[0] {p:?} is not an absolute path"),
                Some("PATH is not searched: write the full path".into()),
            ),
            _ => {}
        }
    }
}
