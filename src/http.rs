//! The HTTP client every outbound call uses: one total deadline per request (connect, headers
//! and body), rustls with the ring provider, and error texts that never carry a URL.

use crate::notify::Outcome;
use std::time::Duration;

/// Installs ring as the process-wide rustls provider (once; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The process-wide TLS client configuration: the platform's root certificates, loaded once.
///
/// Every HTTP client shares it: a verifier per client would parse the system's root store once
/// per probe (≈100 KiB each; 1,000 `http` probes cost ≈110 MiB that way).
pub fn shared_tls_config() -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    static CONFIG: std::sync::OnceLock<Result<rustls::ClientConfig, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            install_crypto_provider();
            let mut config = rustls::ClientConfig::builder()
                .with_platform_verifier()
                .map_err(|e| format!("cannot load the platform's root certificates: {e}"))?
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(config)
        })
        .clone()
}

/// A client whose every request must finish, body included, within `timeout`.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(shared_tls_config().map_err(anyhow::Error::msg)?)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Maps a response (body read to the end, within the client's deadline) to an outcome.
pub async fn classify(result: reqwest::Result<reqwest::Response>) -> Outcome {
    classify_redacted(result, &[]).await
}

/// [`classify`], scrubbing these secrets from the server's answer before it is cut short for
/// the error text (so no part of one survives at the cut).
pub async fn classify_redacted(
    result: reqwest::Result<reqwest::Response>,
    secrets: &[crate::config::values::Secret],
) -> Outcome {
    match result {
        Err(e) => Outcome::Retryable(describe(&e)),
        Ok(resp) => {
            let status = resp.status();
            let body = match resp.text().await {
                Ok(b) => b,
                Err(e) => return Outcome::Retryable(describe(&e)),
            };
            let body = crate::notify::text::redact(body, secrets);
            let snippet: String = body.chars().take(200).collect();
            if status.is_success() {
                Outcome::Delivered
            } else if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
                Outcome::Retryable(format!("HTTP {status}: {snippet}"))
            } else {
                Outcome::Permanent(format!("HTTP {status}: {snippet}"))
            }
        }
    }
}

/// A reqwest error in words, without its URL (URLs can embed tokens).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "failed reading the response"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
