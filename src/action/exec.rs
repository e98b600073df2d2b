//! The `exec` action: runs a program (argv, never a shell; `argv[0]` an absolute path) with
//! extra environment variables and a working directory, in its own process group, killed with
//! its group at the timeout; ok when it exits 0.

use super::child::{self, Spec};
use super::{Action, RunOutcome, took};
use crate::config::actions::{ActionKind, FieldSpans};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `[[action]] kind = "exec"`: a program to run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments, e.g. `["/usr/local/bin/restart-app", "--now"]`. Run
    /// directly, never through a shell; `argv[0]` must be an absolute path (`PATH` is not
    /// searched). Required.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Environment variables added to the daemon's own. Values are secrets (`"${ENV}"`
    /// allowed) and are replaced by `<secret>` in the captured output. Default: none.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Working directory, an absolute path. Default: the daemon's.
    pub dir: Option<String>,
}

impl ActionKind for ExecConfig {
    const NAME: &'static str = "exec";
    const DEFAULT_TIMEOUT: Dur = Dur::from_secs(60);

    fn validate(&self, component: &str, at: &FieldSpans, errors: &mut Collector<'_>) {
        let mut err = |key: &str, m: String, hint: Option<&str>| {
            errors.push(Some(at.at(key)), Some(component), m, hint.map(String::from))
        };
        match self.argv.first() {
            None => err(
                "argv",
                "argv is empty: there is no program to run".into(),
                Some(r#"e.g. argv = ["/usr/local/bin/restart-app", "--now"]"#),
            ),
            Some(p) if !p.starts_with('/') => err(
                "argv[0]",
                format!("argv[0] {p:?} is not an absolute path: PATH is not searched"),
                Some(
                    "write the program's full path, e.g. \"/usr/sbin/ip\" (`command -v NAME` prints it)",
                ),
            ),
            Some(_) => {}
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            err("argv", "argv contains a NUL character".into(), None);
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                err(
                    &format!("env.{k}"),
                    format!("env name {k:?} is not a valid variable name"),
                    None,
                );
            }
        }
        if let Some(dir) = &self.dir
            && !dir.starts_with('/')
        {
            err("dir", format!("dir {dir:?} is not an absolute path"), None);
        }
    }

    fn build(&self) -> Arc<dyn Action> {
        Arc::new(ExecAction {
            spec: Spec {
                argv: self.argv.clone(),
                env: self.env.clone(),
                dir: self.dir.as_ref().map(PathBuf::from),
            },
        })
    }
}

/// The action.
pub struct ExecAction {
    spec: Spec,
}

impl ExecAction {
    /// An action running `spec` (for callers that build one without a configuration).
    pub fn new(spec: Spec) -> ExecAction {
        ExecAction { spec }
    }
}

/// An argument as a shell would need it to read the same: quoted when it has spaces or quotes.
pub fn shell_word(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.,:=@%+".contains(&b))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

#[async_trait]
impl Action for ExecAction {
    async fn run(&self, timeout: Duration) -> RunOutcome {
        match child::run(&self.spec, timeout).await {
            Err(why) => RunOutcome::failed(why, 0.0),
            Ok(done) => RunOutcome {
                ok: done.success(),
                summary: match done.ending {
                    child::Ending::TimedOut { .. } => done.describe(timeout),
                    child::Ending::Exited(_) => {
                        format!("{} in {}", done.describe(timeout), took(done.seconds))
                    }
                },
                output_tail: done.tail,
                seconds: done.seconds,
            },
        }
    }

    fn describe(&self) -> String {
        let words: Vec<String> = self.spec.argv.iter().map(|a| shell_word(a)).collect();
        format!("exec {}", words.join(" "))
    }
}
