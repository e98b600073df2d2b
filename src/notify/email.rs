//! The `email` notifier: plain-text mail over SMTP (lettre) with STARTTLS, implicit TLS or, for
//! a trusted local relay only, no encryption. SMTP 4xx answers and network trouble are worth a
//! retry; 5xx answers are not.

use super::text::{details, redact};
use super::{Notification, Notifier, Outcome};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use async_trait::async_trait;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a trusted network (port 25).
    None,
}

/// `[[notifier]] kind = "email"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name (also the name its certificate must carry).
    pub host: String,
    /// Its port. Default 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: Option<u16>,
    /// `starttls`, `tls` or `none`. Default `starttls`.
    #[serde(default)]
    pub tls: TlsMode,
    /// User to log in as (with `password`). Default: no login.
    pub username: Option<Secret>,
    /// Password; `${ENV}` allowed.
    pub password: Option<Secret>,
    /// Read the password from this file instead.
    pub password_file: Option<PathBuf>,
    /// Sender, e.g. `"lookout <lookout@example.org>"`.
    pub from: String,
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// Deadline of one attempt: connect, TLS, login and sending. Default 30s.
    pub timeout: Option<Dur>,
    /// Attempts for retryable failures (4xx answers, network trouble). Default 4.
    pub max_attempts: Option<u32>,
}

impl crate::config::notifiers::NotifierKind for EmailConfig {
    const NAME: &'static str = "email";

    fn validate(&self, component: &str, span: Range<usize>, errors: &mut Collector<'_>) {
        let mut fail = |msg: String| errors.push(Some(span.clone()), Some(component), msg, None);
        if self.host.trim().is_empty() {
            fail("host is empty".into());
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            fail(format!("from {:?} is not a mail address: {e}", self.from));
        }
        if self.to.is_empty() {
            fail("to needs at least one recipient".into());
        }
        for to in &self.to {
            if let Err(e) = to.parse::<Mailbox>() {
                fail(format!("to {to:?} is not a mail address: {e}"));
            }
        }
        if self.password.is_some() && self.password_file.is_some() {
            fail("set either `password` or `password_file`, not both".into());
        }
        let password = self.password.is_some() || self.password_file.is_some();
        if self.username.is_some() != password {
            fail("login needs both `username` and `password` (or `password_file`)".into());
        }
        if self.port == Some(0) {
            fail("port must be 1–65535".into());
        }
        if self.timeout.is_some_and(|t| t.0.is_zero()) {
            fail("timeout must be more than 0s".into());
        }
        if self.max_attempts == Some(0) {
            fail("max_attempts must be at least 1".into());
        }
    }

    fn resolve_secret_files(&mut self) -> Result<(), String> {
        if let Some(p) = &self.password_file {
            self.password = Some(Secret::from_file(p)?);
        }
        Ok(())
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(4)
    }

    fn build(&self) -> anyhow::Result<std::sync::Arc<dyn Notifier>> {
        Ok(std::sync::Arc::new(Email::new(self.clone())?))
    }
}

/// The notifier.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    secrets: Vec<Secret>,
    timeout: Duration,
}

impl Email {
    /// An email notifier; connects per message (no pool: pages are rare).
    pub fn new(config: EmailConfig) -> anyhow::Result<Email> {
        crate::http::install_crypto_provider();
        let timeout = config
            .timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(30));
        let port = config.port.unwrap_or(match config.tls {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        });
        let tls = match config.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(TlsParameters::new(config.host.clone())?),
            TlsMode::Tls => Tls::Wrapper(TlsParameters::new(config.host.clone())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.expose().to_string(),
                password.expose().to_string(),
            ));
        }
        let from = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("from is not a mail address: {e}"))?;
        let to = config
            .to
            .iter()
            .map(|t| t.parse())
            .collect::<Result<Vec<Mailbox>, _>>()
            .map_err(|e| anyhow::anyhow!("to is not a mail address: {e}"))?;
        let secrets = [config.username, config.password]
            .into_iter()
            .flatten()
            .collect();
        Ok(Email {
            transport: builder.build(),
            from,
            to,
            secrets,
            timeout,
        })
    }

    /// The message for a notification.
    pub fn message(&self, n: &Notification) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.summary.replace(['\r', '\n'], " "))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(details(n))
            .map_err(|e| format!("cannot build the mail: {e}"))
    }
}

/// The outcome of an SMTP error: 4xx and network trouble retry, 5xx and client-side problems
/// (no STARTTLS offered, no usable login mechanism, a bad certificate) do not.
pub fn classify(e: &lettre::transport::smtp::Error) -> Outcome {
    let text = format!("SMTP: {e}");
    if e.is_transient() || e.is_timeout() {
        Outcome::Retryable(text)
    } else if e.is_permanent() {
        Outcome::Permanent(text)
    } else if e.is_client() && text.contains("STARTTLS") {
        Outcome::Permanent(
            "SMTP: the server does not offer STARTTLS; use tls = \"tls\" for implicit TLS \
             (port 465), or tls = \"none\" only for a trusted local relay"
                .into(),
        )
    } else if e.is_client() || e.is_tls() || e.is_response() {
        Outcome::Permanent(text)
    } else {
        Outcome::Retryable(text)
    }
}

#[async_trait]
impl Notifier for Email {
    async fn send(&self, message: &Notification) -> Outcome {
        let mail = match self.message(message) {
            Ok(m) => m,
            Err(e) => return Outcome::Permanent(e),
        };
        // lettre's timeout is per command; this one bounds the whole conversation.
        let outcome = match tokio::time::timeout(self.timeout, self.transport.send(mail)).await {
            Ok(Ok(_)) => Outcome::Delivered,
            Ok(Err(e)) => classify(&e),
            Err(_) => Outcome::Retryable(format!(
                "SMTP: timed out after {}",
                crate::model::format_duration(self.timeout.as_secs_f64())
            )),
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

    fn config(extra: &str) -> EmailConfig {
        toml::from_str(&format!(
            "host = \"127.0.0.1\"\nfrom = \"lookout <lookout@example.org>\"\nto = [\"ops@example.org\", \"b@example.org\"]\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn the_message_has_subject_recipients_and_details() {
        let e = Email::new(config("tls = \"none\"")).unwrap();
        let raw = String::from_utf8(e.message(&sample("firing")).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Subject: [CRITICAL] / is full in 2h | disk_full on root"),
            "{raw}"
        );
        assert!(raw.contains("To: ops@example.org, b@example.org"), "{raw}");
        assert!(raw.contains("lookout ack 0123456789abcdef"), "{raw}");
    }

    #[test]
    fn the_config_never_prints_its_secrets() {
        let c = config("username = \"US3R\"\npassword = \"PASSW0RD\"");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("US3R") && !shown.contains("PASSW0RD"),
            "{shown}"
        );
        assert_eq!(c.tls, TlsMode::Starttls);
    }
}
