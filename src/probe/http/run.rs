//! The I/O half of the `http` probe: a client shared by probes with the same client settings
//! (see `client.rs`; connections are reused between runs), one deadline for the whole
//! exchange, split into phases so a timeout says where the server stalled.

use super::HttpConfig;
use super::check::{self, Answer, Conditions, MAX_BODY_KEPT, samples};
use crate::config::values::Secret;
use crate::model::{Labels, Observation, Sample, Status, format_bytes, format_duration};
use crate::probe::Probe;
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, timeout_at};

/// The `http` probe.
pub struct HttpProbe {
    request: Result<Prepared, String>,
    conditions: Conditions,
    timeout: Duration,
    connecting: Arc<AtomicUsize>,
}

/// Everything about the request that does not change between runs.
struct Prepared {
    client: reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Option<Secret>,
    /// `GET https://host:443/path`: what messages show.
    target: String,
}

impl HttpProbe {
    /// A probe whose every run ends within `timeout` (a little inside it, so that its own,
    /// more precise message wins over the scheduler's plain "timed out").
    pub fn new(config: HttpConfig, timeout: Duration) -> HttpProbe {
        let connecting = Arc::new(AtomicUsize::new(0));
        HttpProbe {
            request: prepare(&config),
            conditions: config.conditions(),
            timeout,
            connecting,
        }
    }

    /// How long a run may take: the timeout less a small margin.
    fn budget(&self) -> Duration {
        let margin = (self.timeout / 10).min(Duration::from_millis(250));
        self.timeout.saturating_sub(margin)
    }

    async fn exchange(&self, p: &Prepared, started: Instant) -> Observation {
        let deadline = started + self.budget();
        let timed_out = |phase: &str| {
            format!(
                "timed out after {} ({phase})",
                format_duration(self.timeout.as_secs_f64()),
            )
        };
        let mut req = p
            .client
            .request(p.method.clone(), p.url.clone())
            .headers(p.headers.clone())
            // A backstop only: the deadline below ends every run first.
            .timeout(self.timeout);
        if let Some(body) = &p.body {
            req = req.body(body.expose().to_string());
        }
        let mut send = std::pin::pin!(super::client::counting_attempts(
            self.connecting.clone(),
            req.send()
        ));
        let mut response = match timeout_at(deadline, &mut send).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let status = if e.is_timeout() {
                    Status::Unknown
                } else {
                    Status::Critical
                };
                return Observation::new(
                    status,
                    format!("{} ({})", crate::http::describe(&e), p.target),
                );
            }
            Err(_) => {
                // The request is still alive here, so the connector's count is current.
                let phase = if self.connecting.load(Ordering::SeqCst) > 0 {
                    "connecting"
                } else {
                    "no response headers"
                };
                return Observation::new(
                    Status::Unknown,
                    format!("{} ({})", timed_out(phase), p.target),
                );
            }
        };
        let code = response.status().as_u16();
        let none = Labels::new();
        let mut obs = Observation::new(Status::Ok, String::new());
        obs.samples
            .push(Sample::new(samples::STATUS_CODE, &none, code as f64));
        let mut cert_note = None;
        let cert_expires_in = match response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .map(check::cert_not_after)
        {
            Some(Ok(not_after)) => {
                let left = not_after as f64 - unix_now();
                obs.samples
                    .push(Sample::new(samples::CERT_EXPIRES_IN, &none, left));
                Some(left)
            }
            Some(Err(e)) => {
                cert_note = Some(e);
                None
            }
            None => None,
        };
        let announced = response.content_length();
        let mut body = Vec::new();
        let mut total = 0u64;
        let outcome = loop {
            match timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    total += chunk.len() as u64;
                    let room = MAX_BODY_KEPT.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(Ok(None)) => break None,
                Ok(Err(e)) => {
                    let of = announced
                        .map(|n| format!(" of the {} announced", format_bytes(n as f64)))
                        .unwrap_or_default();
                    break Some((
                        Status::Critical,
                        format!(
                            "{}, but the body broke off after {}{of}: {} ({})",
                            check::status_line(code),
                            format_bytes(total as f64),
                            crate::http::describe(&e),
                            p.target,
                        ),
                    ));
                }
                Err(_) => {
                    break Some((
                        Status::Unknown,
                        format!(
                            "{}; {}, {} of the body arrived ({})",
                            timed_out("headers received, body stalled"),
                            check::status_line(code),
                            format_bytes(total as f64),
                            p.target,
                        ),
                    ));
                }
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        obs.samples
            .push(Sample::new(samples::BODY_BYTES, &none, total as f64));
        if let Some((status, message)) = outcome {
            obs.status = status;
            obs.message = message;
            return obs;
        }
        obs.samples
            .push(Sample::new(samples::DURATION, &none, seconds));
        let (status, text) = check::judge(
            &self.conditions,
            &Answer {
                status: code,
                body: &body,
                body_bytes: total,
                seconds,
                cert_expires_in,
            },
            &p.target,
        );
        obs.status = status;
        obs.message = text;
        if let Some(note) = cert_note {
            // The unreadable certificate is the finding unless a worse one came first.
            if obs.status <= Status::Unknown {
                obs.message = format!("{note}; {}", obs.message);
            } else {
                obs.message.push_str(&format!("; {note}"));
            }
            obs.status = obs.status.max(Status::Unknown);
        }
        obs
    }
}

#[async_trait]
impl Probe for HttpProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let mut obs = match &self.request {
            Ok(p) => self.exchange(p, started).await,
            Err(e) => Observation::new(Status::Unknown, e.clone()),
        };
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}

fn unix_now() -> f64 {
    // Certificates expire by the wall clock, so wall time is the right clock here.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Builds the client and the fixed parts of the request; an error is the probe's message.
fn prepare(config: &HttpConfig) -> Result<Prepared, String> {
    let url = reqwest::Url::parse(&config.url).map_err(|e| format!("invalid url: {e}"))?;
    let method = reqwest::Method::from_bytes(config.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", config.method))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let mut value = HeaderValue::from_str(value.expose())
            .map_err(|_| format!("the value of header {name:?} is not valid"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let client = super::client::shared(super::client::ClientKey {
        tls_insecure: config.tls_insecure,
        follow_redirects: config.follow_redirects,
    })?;
    Ok(Prepared {
        target: format!("{method} {}", check::safe_url(&url)),
        client,
        method,
        url,
        headers,
        body: config.body.clone(),
    })
}
