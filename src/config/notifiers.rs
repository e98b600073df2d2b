//! `[[notifier]]` entries: the fields every notifier has, and the registry of notifier kinds.

use crate::model::Severity;
use serde::Deserialize;
use std::ops::Range;

/// One configured notifier.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Unique id.
    pub id: String,
    /// Where its table is in the file.
    pub span: Range<usize>,
    /// Fields every kind has.
    pub common: NotifierCommon,
    /// The kind and its own fields.
    pub kind: NotifierKindConfig,
}

/// Fields every notifier kind has.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierCommon {
    /// Only alerts at least this severe are sent. Default warning.
    pub min_severity: Option<Severity>,
    /// Send resolutions too. Default true.
    pub send_resolved: Option<bool>,
}

/// The keys split off before the kind's own fields.
pub const COMMON_FIELDS: &[&str] = &["id", "kind", "min_severity", "send_resolved"];

/// What every notifier kind's configuration provides.
pub trait NotifierKind: for<'de> Deserialize<'de> + Clone + std::fmt::Debug {
    /// The `kind = "…"` name.
    const NAME: &'static str;
    /// Semantic checks (pure; no I/O).
    fn validate(
        &self,
        _component: &str,
        _span: Range<usize>,
        _errors: &mut super::error::Collector<'_>,
    ) {
    }
    /// Reads `*_file` secrets (the only I/O before building).
    fn resolve_secret_files(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Attempts for retryable failures. Default 4.
    fn attempts(&self) -> u32 {
        4
    }
    /// The channel.
    fn build(&self) -> anyhow::Result<std::sync::Arc<dyn crate::notify::Notifier>>;
}

macro_rules! notifier_kinds {
    ($($variant:ident => $module:ident :: $config:ident),* $(,)?) => {
        /// The registry of notifier kinds: one line per kind.
        #[derive(Debug, Clone)]
        pub enum NotifierKindConfig {
            $(
                #[doc = concat!("`kind = \"", stringify!($module), "\"`")]
                $variant(crate::notify::$module::$config),
            )*
        }

        impl NotifierKindConfig {
            /// Every kind name, for messages.
            pub const KINDS: &[&str] = &[$(<crate::notify::$module::$config as NotifierKind>::NAME),*];

            /// Deserializes a kind's own fields, with every bad field.
            pub fn parse(kind: &str, table: toml::Spanned<toml::de::DeValue<'_>>) -> Result<NotifierKindConfig, Vec<toml::de::Error>> {
                $(
                    if kind == <crate::notify::$module::$config as NotifierKind>::NAME {
                        return Ok(NotifierKindConfig::$variant(super::parse::deserialize_all::<crate::notify::$module::$config>(table)?));
                    }
                )*
                unreachable!("kind checked by the caller")
            }

            /// The kind's name.
            pub fn name(&self) -> &'static str {
                match self { $(NotifierKindConfig::$variant(_) => <crate::notify::$module::$config as NotifierKind>::NAME),* }
            }

            /// Semantic checks of the kind's fields.
            pub fn validate(&self, component: &str, span: Range<usize>, errors: &mut super::error::Collector<'_>) {
                match self { $(NotifierKindConfig::$variant(c) => c.validate(component, span, errors)),* }
            }

            /// Reads `*_file` secrets.
            pub fn resolve_secret_files(&mut self) -> Result<(), String> {
                match self { $(NotifierKindConfig::$variant(c) => c.resolve_secret_files()),* }
            }

            /// Attempts for retryable failures.
            pub fn attempts(&self) -> u32 {
                match self { $(NotifierKindConfig::$variant(c) => c.attempts()),* }
            }

            /// Builds the channel.
            pub fn build(&self) -> anyhow::Result<std::sync::Arc<dyn crate::notify::Notifier>> {
                match self { $(NotifierKindConfig::$variant(c) => c.build()),* }
            }
        }
    };
}

notifier_kinds! {
    Webhook => webhook::WebhookConfig,
    Email => email::EmailConfig,
    PagerDuty => pagerduty::PagerDutyConfig,
    Ntfy => ntfy::NtfyConfig,
    Slack => slack::SlackConfig,
    Exec => exec::ExecConfig,
    Matrix => matrix::MatrixNotifierConfig,
}

impl NotifierConfig {
    /// Whether this notifier wants an alert of this severity.
    pub fn wants(&self, severity: Severity) -> bool {
        severity >= self.common.min_severity.unwrap_or(Severity::Warning)
    }
}
