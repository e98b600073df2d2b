//! `[[action]]` entries: the fields every action has (binding, mode, guards), and the registry
//! of action kinds. Parsing collects every error; validation is pure.

use super::error::{Collector, suggest};
use super::values::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One configured action.
#[derive(Debug, Clone)]
pub struct ActionConfig {
    /// Unique name, `[a-z0-9_-]+`: `lookout action run NAME`, timeline entries, alerts.
    pub name: String,
    /// Where the action's table is in the file (for validation messages).
    pub span: Range<usize>,
    /// Fields every kind has.
    pub common: ActionCommon,
    /// The kind and its own fields.
    pub kind: ActionKindConfig,
    /// Where each field's value is, for validation messages.
    pub fields: FieldSpans,
}

/// Whether an action runs, asks first, or only says what it would do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionMode {
    /// Record on the timeline what would run; run nothing.
    DryRun,
    /// Propose the run to a person and wait for an approval (the default).
    #[default]
    Ask,
    /// Run when the guards allow.
    Auto,
}

impl ActionMode {
    /// The configuration word: `dry_run`, `ask`, `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionMode::DryRun => "dry_run",
            ActionMode::Ask => "ask",
            ActionMode::Auto => "auto",
        }
    }
}

impl std::fmt::Display for ActionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fields every action kind has: what triggers it and the guards around a run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionCommon {
    /// Label matchers (exact) an alert must carry to trigger it, e.g. `{ rule =
    /// "did_not_recover", probe = "app-write" }`. Default empty: never triggered by an alert,
    /// only run by hand (`lookout action run NAME`).
    pub on: BTreeMap<String, String>,
    /// `dry_run`, `ask` or `auto`. Default `ask`.
    pub mode: ActionMode,
    /// Wait before the first run after the alert fires. Default 30s.
    pub delay: Dur,
    /// Probes that must be ok before a run. Default: the triggering probe's `depends_on`.
    pub require_ok: Option<Vec<String>>,
    /// ... continuously, for this long. Default 60s.
    pub require_ok_for: Dur,
    /// At least this long between two runs of this action. Default 5m.
    pub cooldown: Dur,
    /// At most this many runs per `window`; then the action stops and pages
    /// `remediation_exhausted`. Default 3.
    pub max_runs: u32,
    /// The window of `max_runs`. Default 1h.
    pub window: Dur,
    /// Re-run the triggering probe after a run. Default true.
    pub post_check: bool,
    /// The probe must read ok within this after the run. Default 60s.
    pub post_check_within: Dur,
    /// An unanswered proposal (`mode = "ask"`) expires after this. Default 15m.
    pub ask_deadline: Dur,
    /// How long one run may take before it is killed. Default per kind (exec 60s, systemd
    /// 90s, http 10s, signal 5s).
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

/// The keys of [`ActionCommon`] plus `name` and `kind`, split off before the kind's own fields.
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

/// Where the values of an entry's fields are in the file: `key`, `key[i]` for array items and
/// `key.sub` for inline-table entries (e.g. `argv[0]`, `on.probe`, `require_ok[1]`).
#[derive(Debug, Clone, Default)]
pub struct FieldSpans {
    entry: Range<usize>,
    fields: BTreeMap<String, Range<usize>>,
}

impl FieldSpans {
    /// Records the spans of a table's values.
    pub fn of(entry: Range<usize>, table: &DeTable<'_>) -> FieldSpans {
        let mut fields = BTreeMap::new();
        for (k, v) in table.iter() {
            let key = k.get_ref().to_string();
            match v.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        fields.insert(format!("{key}[{i}]"), item.span());
                    }
                }
                DeValue::Table(t) => {
                    for (sk, sv) in t.iter() {
                        fields.insert(format!("{key}.{}", sk.get_ref()), sv.span());
                    }
                }
                _ => {}
            }
            fields.insert(key, v.span());
        }
        FieldSpans { entry, fields }
    }

    /// The span of a field's value, else of the whole entry.
    pub fn at(&self, key: &str) -> Range<usize> {
        self.fields
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.entry.clone())
    }
}

/// What every action kind's configuration provides: its name, default timeout, pure
/// validation, a description, and the runnable action.
pub trait ActionKind: for<'de> Deserialize<'de> + Clone + std::fmt::Debug {
    /// The `kind = "…"` name.
    const NAME: &'static str;
    /// The run's timeout when `timeout` is not set.
    const DEFAULT_TIMEOUT: Dur;
    /// Semantic checks (pure; no I/O); `at` finds a field's position.
    fn validate(&self, component: &str, at: &FieldSpans, errors: &mut Collector<'_>);
    /// The runnable action.
    fn build(&self) -> Arc<dyn crate::action::Action>;
}

macro_rules! action_kinds {
    ($($variant:ident => $module:ident :: $config:ident),* $(,)?) => {
        /// The registry of action kinds: one line per kind, each with its own config struct.
        #[derive(Debug, Clone)]
        pub enum ActionKindConfig {
            $(
                #[doc = concat!("`kind = \"", stringify!($module), "\"`")]
                $variant(crate::action::$module::$config),
            )*
        }

        impl ActionKindConfig {
            /// Every kind name, for messages.
            pub const KINDS: &[&str] = &[$(<crate::action::$module::$config as ActionKind>::NAME),*];

            /// Deserializes a kind's own fields (everything but [`COMMON_FIELDS`]), with every
            /// bad field.
            pub fn parse(kind: &str, table: Spanned<DeValue<'_>>) -> Result<ActionKindConfig, Vec<toml::de::Error>> {
                $(
                    if kind == <crate::action::$module::$config as ActionKind>::NAME {
                        return Ok(ActionKindConfig::$variant(super::parse::deserialize_all::<crate::action::$module::$config>(table)?));
                    }
                )*
                unreachable!("kind checked by the caller")
            }

            /// The kind's name.
            pub fn name(&self) -> &'static str {
                match self { $(ActionKindConfig::$variant(_) => <crate::action::$module::$config as ActionKind>::NAME),* }
            }

            /// The kind's default timeout.
            pub fn default_timeout(&self) -> Dur {
                match self { $(ActionKindConfig::$variant(_) => <crate::action::$module::$config as ActionKind>::DEFAULT_TIMEOUT),* }
            }

            /// Semantic checks of the kind's fields.
            pub fn validate(&self, component: &str, at: &FieldSpans, errors: &mut Collector<'_>) {
                match self { $(ActionKindConfig::$variant(c) => c.validate(component, at, errors)),* }
            }

            /// The runnable action.
            pub fn build(&self) -> Arc<dyn crate::action::Action> {
                match self { $(ActionKindConfig::$variant(c) => c.build()),* }
            }
        }
    };
}

action_kinds! {
    Exec => exec::ExecConfig,
    Systemd => systemd::SystemdConfig,
    Http => http::HttpConfig,
    Signal => signal::SignalConfig,
}

impl ActionConfig {
    /// The effective timeout of a run: `timeout`, else the kind's default.
    pub fn timeout(&self) -> Dur {
        self.common
            .timeout
            .unwrap_or_else(|| self.kind.default_timeout())
    }

    /// The component name in messages: `action "restart-app"`.
    pub fn component(&self) -> String {
        format!("action {:?}", self.name)
    }

    /// The probes that must be ok before a run triggered by an alert of `probe`: `require_ok`,
    /// else that probe's `depends_on` (none for an unknown probe or a manual run).
    pub fn preconditions(&self, config: &super::Config, probe: Option<&str>) -> Vec<String> {
        if let Some(r) = &self.common.require_ok {
            return r.clone();
        }
        probe
            .and_then(|id| config.probes.iter().find(|p| p.id == id))
            .map(|p| {
                p.common
                    .depends_on
                    .iter()
                    .map(|d| d.get_ref().clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses one `[[action]]` table; its problems go to `errors`.
pub(super) fn parse(
    entry: Spanned<DeTable<'_>>,
    errors: &mut Collector<'_>,
) -> Option<ActionConfig> {
    let span = entry.span();
    let mut table = entry.into_inner();
    let fields = FieldSpans::of(span.clone(), &table);
    let name = match table
        .remove("name")
        .map(|v| (v.span(), v.get_ref().as_str().map(String::from)))
    {
        Some((_, Some(n))) => n,
        Some((s, None)) => {
            errors.push(Some(s), Some("action"), "`name` must be a string", None);
            return None;
        }
        None => {
            errors.push(
                Some(span),
                Some("action"),
                "missing `name`",
                Some("give every action a unique name, e.g. name = \"restart-app\"".into()),
            );
            return None;
        }
    };
    let component = format!("action {name:?}");
    let kinds = ActionKindConfig::KINDS;
    let kind = match table
        .remove("kind")
        .map(|v| (v.span(), v.get_ref().as_str().map(String::from)))
    {
        Some((s, Some(k))) if !kinds.contains(&k.as_str()) => {
            let hint = suggest(&k, kinds)
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("known kinds: {}", kinds.join(", ")));
            errors.push(
                Some(s),
                Some(&component),
                format!("unknown kind `{k}`"),
                Some(hint),
            );
            return None;
        }
        Some((_, Some(k))) => k,
        Some((s, None)) => {
            errors.push(Some(s), Some(&component), "`kind` must be a string", None);
            return None;
        }
        None => {
            errors.push(
                Some(span),
                Some(&component),
                "missing `kind`",
                Some(format!("known kinds: {}", kinds.join(", "))),
            );
            return None;
        }
    };
    let mut common = DeTable::new();
    let keys: Vec<_> = table
        .keys()
        .filter(|k| COMMON_FIELDS.contains(&k.get_ref().as_ref()))
        .cloned()
        .collect();
    for k in keys {
        if let Some((key, value)) = table.remove_entry(&k) {
            common.insert(key, value);
        }
    }
    let push_all = |errors: &mut Collector<'_>, all: Vec<toml::de::Error>, extra: &[&str]| {
        for e in &all {
            errors.push_toml(e, Some(&component), span.clone(), extra);
        }
    };
    let common = super::parse::deserialize_all::<ActionCommon>(Spanned::new(
        span.clone(),
        DeValue::Table(common),
    ))
    .map_err(|all| push_all(errors, all, &[]))
    .ok();
    let kind = ActionKindConfig::parse(&kind, Spanned::new(span.clone(), DeValue::Table(table)))
        .map_err(|all| push_all(errors, all, COMMON_FIELDS))
        .ok();
    if let (None, Some(kind)) = (&common, &kind) {
        // The kind's own checks do not need the common fields: report their problems too.
        kind.validate(&component, &fields, errors);
    }
    Some(ActionConfig {
        name,
        span,
        common: common?,
        kind: kind?,
        fields,
    })
}

/// Records every semantic problem of the configured actions (pure).
pub(super) fn validate(config: &super::Config, errors: &mut Collector<'_>) {
    let probes: Vec<&str> = config.probes.iter().map(|p| p.id.as_str()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for a in &config.actions {
        let component = a.component();
        let at = &a.fields;
        let mut err = |key: &str, message: String, hint: Option<String>| {
            errors.push(Some(at.at(key)), Some(&component), message, hint)
        };
        if !seen.insert(a.name.as_str()) {
            err(
                "name",
                "duplicate action name".into(),
                Some("every action needs a unique name".into()),
            );
        }
        if a.name.is_empty()
            || !a
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            err(
                "name",
                format!("name {:?} may only hold a-z, 0-9, '-' and '_'", a.name),
                Some("e.g. name = \"restart-app\"".into()),
            );
        }
        let c = &a.common;
        let unknown_probe = |id: &str| {
            let hint = suggest(id, &probes)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("configured probes: {}", probes.join(", "))));
            (format!("names unknown probe {id:?}"), hint)
        };
        if let Some(p) = c.on.get("probe")
            && !probes.contains(&p.as_str())
        {
            let (m, h) = unknown_probe(p);
            err("on.probe", format!("on.probe {m}"), h);
        }
        for (i, p) in c.require_ok.iter().flatten().enumerate() {
            if !probes.contains(&p.as_str()) {
                let (m, h) = unknown_probe(p);
                err(&format!("require_ok[{i}]"), format!("require_ok {m}"), h);
            }
        }
        for (k, v) in &c.on {
            if k.is_empty() || v.is_empty() {
                err(
                    &format!("on.{k}"),
                    format!(
                        "on: {k:?} = {v:?} matches nothing; label names and values are not empty"
                    ),
                    None,
                );
            }
        }
        if c.max_runs == 0 {
            err(
                "max_runs",
                "max_runs must be at least 1".into(),
                Some("an action that may never run is a dry run: set mode = \"dry_run\"".into()),
            );
        }
        for (key, d) in [
            ("window", Some(c.window)),
            ("post_check_within", Some(c.post_check_within)),
            ("ask_deadline", Some(c.ask_deadline)),
            ("timeout", c.timeout),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                err(key, format!("{key} must be longer than 0s"), None);
            }
        }
        if c.window < c.cooldown {
            err(
                "window",
                format!(
                    "window {} is shorter than the cooldown {}",
                    c.window, c.cooldown
                ),
                Some(
                    "max_runs counts runs per window; the window must hold at least one cooldown"
                        .into(),
                ),
            );
        }
        a.kind.validate(&component, at, errors);
    }
}

#[cfg(test)]
mod tests;
