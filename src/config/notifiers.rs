//! `[[notifier]]` entries: the fields every notifier has, and the registry of notifier kinds.

use crate::model::Severity;
use crate::notify::webhook::WebhookConfig;
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

/// The registry of notifier kinds.
#[derive(Debug, Clone)]
pub enum NotifierKindConfig {
    /// JSON POST to a URL, optionally HMAC-signed.
    Webhook(WebhookConfig),
}

impl NotifierKindConfig {
    /// Every kind name, for messages.
    pub const KINDS: &[&str] = &["webhook"];

    /// Deserializes a kind's own fields.
    pub fn parse(
        kind: &str,
        table: toml::Spanned<toml::de::DeValue<'_>>,
    ) -> Result<NotifierKindConfig, toml::de::Error> {
        use serde::de::IntoDeserializer;
        match kind {
            "webhook" => Ok(NotifierKindConfig::Webhook(WebhookConfig::deserialize(
                table.into_deserializer(),
            )?)),
            _ => unreachable!("kind checked by the caller"),
        }
    }

    /// The kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            NotifierKindConfig::Webhook(_) => "webhook",
        }
    }

    /// Reads `*_file` secrets.
    pub fn resolve_secret_files(&mut self) -> Result<(), String> {
        match self {
            NotifierKindConfig::Webhook(w) => w.resolve_secret_files(),
        }
    }
}

impl NotifierConfig {
    /// Whether this notifier wants an alert of this severity.
    pub fn wants(&self, severity: Severity) -> bool {
        severity >= self.common.min_severity.unwrap_or(Severity::Warning)
    }
}
