//! The `webhook` notifier: a JSON POST, with an HMAC-SHA256 signature when a secret is set.

use super::{Notification, Notifier, Outcome};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

/// The header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Lookout-Signature";

/// `[[notifier]] kind = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST. Treated as a secret (chat webhook URLs embed tokens); `${ENV}` allowed.
    pub url: Secret,
    /// Extra headers, e.g. `Authorization`; values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// HMAC-SHA256 key for the signature header; `${ENV}` allowed.
    pub secret: Option<Secret>,
    /// Read the HMAC key from this file instead.
    pub secret_file: Option<PathBuf>,
    /// Deadline of one attempt, connect to last byte. Default 10s.
    pub timeout: Option<Dur>,
    /// Attempts for retryable failures. Default 4.
    pub max_attempts: Option<u32>,
}

impl crate::config::notifiers::NotifierKind for WebhookConfig {
    const NAME: &'static str = "webhook";

    fn validate(&self, component: &str, span: Range<usize>, errors: &mut Collector<'_>) {
        let url = self.url.expose();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            errors.push(
                Some(span.clone()),
                Some(component),
                "url must start with http:// or https://",
                None,
            );
        }
        if self.secret.is_some() && self.secret_file.is_some() {
            errors.push(
                Some(span.clone()),
                Some(component),
                "set either `secret` or `secret_file`, not both",
                None,
            );
        }
        if self.max_attempts == Some(0) {
            errors.push(
                Some(span),
                Some(component),
                "max_attempts must be at least 1",
                None,
            );
        }
    }

    fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.secret_file {
            self.secret = Some(Secret::from_file(p)?);
        }
        Ok(())
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(4)
    }

    fn build(&self) -> anyhow::Result<std::sync::Arc<dyn Notifier>> {
        Ok(std::sync::Arc::new(Webhook::new(self.clone())?))
    }
}

/// The notifier.
pub struct Webhook {
    config: WebhookConfig,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook notifier with its own connection pool.
    pub fn new(config: WebhookConfig) -> anyhow::Result<Webhook> {
        let timeout = config
            .timeout
            .map(|d| d.0)
            .unwrap_or(std::time::Duration::from_secs(10));
        let client = crate::http::client(timeout)?;
        Ok(Webhook { config, client })
    }
}

/// `sha256=<hex>` of the body under the key.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Notifier for Webhook {
    async fn send(&self, message: &Notification) -> Outcome {
        let body = match serde_json::to_vec(message) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent(format!("cannot encode the message: {e}")),
        };
        let mut req = self
            .client
            .post(self.config.url.expose())
            .header("Content-Type", "application/json");
        for (k, v) in &self.config.headers {
            req = req.header(k, v.expose());
        }
        if let Some(secret) = &self.config.secret {
            req = req.header(
                SIGNATURE_HEADER,
                signature(secret.expose().as_bytes(), &body),
            );
        }
        // A server that echoes the URL, a header or the key back must not leak it into errors.
        let mut secrets = super::text::url_secrets(&self.config.url);
        secrets.extend(self.config.headers.values().cloned());
        secrets.extend(self.config.secret.clone());
        crate::http::classify_redacted(req.body(body).send().await, &secrets).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_config_never_prints_its_secrets() {
        let c: WebhookConfig = toml::from_str("url = \"https://hooks.example/T0K3N\"\nsecret = \"s3cr3t\"\nheaders = { Authorization = \"Bearer abc123\" }").unwrap();
        let shown = format!("{c:?}");
        for leak in ["T0K3N", "s3cr3t", "abc123"] {
            assert!(!shown.contains(leak), "{shown}");
        }
    }
}
