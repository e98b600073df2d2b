// replaced by the kinds slice at merge (snapshot of wt-kinds taken 12:45 as a placeholder)
//! The `http` action: one request (method, URL, headers, body) through the one HTTP client,
//! with one deadline for the whole exchange; ok when the status is expected (default any 2xx).
//! The URL, header values and body are secrets: never shown, redacted from the answer.

use super::{Action, RunOutcome, TAIL_LIMIT, took};
use crate::config::actions::{ActionKind, FieldSpans};
use crate::config::error::Collector;
use crate::config::values::{Dur, Secret};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `[[action]] kind = "http"`: a request to make.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL, `http://` or `https://`. A secret (`"${ENV}"` allowed): messages show only its
    /// scheme and host. Required.
    pub url: Secret,
    /// The request method. Default `POST`.
    #[serde(default = "post")]
    pub method: String,
    /// The request body, a secret. Default: empty.
    pub body: Option<Secret>,
    /// Request headers; values are secrets. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Status codes that count as success. Default: any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
}

fn post() -> String {
    "POST".into()
}

impl ActionKind for HttpConfig {
    const NAME: &'static str = "http";
    const DEFAULT_TIMEOUT: Dur = Dur::from_secs(10);

    fn validate(&self, component: &str, at: &FieldSpans, errors: &mut Collector<'_>) {
        let mut err = |key: &str, m: String, hint: Option<&str>| {
            errors.push(Some(at.at(key)), Some(component), m, hint.map(String::from))
        };
        // The URL is a secret: say what is wrong with it, never what it is.
        match reqwest::Url::parse(self.url.expose()) {
            Err(e) => err(
                "url",
                format!("url is not a valid URL: {e}"),
                Some("write a full URL such as \"https://example.org/restart\""),
            ),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => err(
                "url",
                format!("url scheme {:?} is not http or https", u.scheme()),
                None,
            ),
            Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                err("url", "url has no host".into(), None)
            }
            Ok(_) => {}
        }
        if self.method.is_empty() || reqwest::Method::from_bytes(self.method.as_bytes()).is_err() {
            err(
                "method",
                format!("method {:?} is not a valid HTTP method", self.method),
                Some("e.g. POST, PUT, GET"),
            );
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                err(
                    &format!("headers.{name}"),
                    format!("header name {name:?} is not valid"),
                    None,
                );
            }
            if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                err(
                    &format!("headers.{name}"),
                    format!("the value of header {name:?} has characters a header cannot carry"),
                    Some("header values are visible ASCII text; no line breaks"),
                );
            }
        }
        for (i, code) in self.expect_status.iter().enumerate() {
            if !(100..=599).contains(code) {
                err(
                    &format!("expect_status[{i}]"),
                    format!("expect_status {code} is not an HTTP status code (100–599)"),
                    None,
                );
            }
        }
    }

    fn build(&self) -> Arc<dyn Action> {
        Arc::new(HttpAction {
            config: self.clone(),
        })
    }
}

/// The action.
pub struct HttpAction {
    config: HttpConfig,
}

/// `scheme://host[:port]` of a URL, and `/<secret>` when it has a path or query: what
/// messages may show of a secret URL.
pub fn shown_url(url: &Secret) -> String {
    match reqwest::Url::parse(url.expose()) {
        Err(_) => "<secret>".into(),
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() == "/" && u.query().is_none() {
                "/"
            } else {
                "/<secret>"
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
    }
}

impl HttpAction {
    fn secrets(&self) -> Vec<Secret> {
        let c = &self.config;
        let mut s = crate::notify::text::url_secrets(&c.url);
        s.extend(c.headers.values().cloned());
        s.extend(c.body.iter().cloned());
        s
    }

    fn expected(&self, status: u16) -> bool {
        if self.config.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.config.expect_status.contains(&status)
        }
    }

    fn expected_words(&self) -> String {
        let e = &self.config.expect_status;
        if e.is_empty() {
            "2xx".into()
        } else {
            let all: Vec<String> = e.iter().map(u16::to_string).collect();
            all.join(" or ")
        }
    }

    async fn exchange(&self, timeout: Duration) -> Result<(u16, Vec<u8>, bool), String> {
        let c = &self.config;
        let client = crate::http::client(timeout).map_err(|e| e.to_string())?;
        let method = reqwest::Method::from_bytes(c.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", c.method))?;
        let url = reqwest::Url::parse(c.url.expose()).map_err(|_| "invalid url".to_string())?;
        let mut req = client.request(method, url);
        for (name, value) in &c.headers {
            let mut v = reqwest::header::HeaderValue::from_str(value.expose())
                .map_err(|_| format!("the value of header {name:?} is not valid"))?;
            v.set_sensitive(true);
            req = req.header(name.as_str(), v);
        }
        if let Some(b) = &c.body {
            req = req.body(b.expose().to_string());
        }
        let mut resp = req.send().await.map_err(|e| crate::http::describe(&e))?;
        let status = resp.status().as_u16();
        // The last bytes of the answer, plus enough to redact a secret cut at the start.
        let cap = TAIL_LIMIT + super::margin(&self.secrets());
        let (mut body, mut dropped) = (Vec::new(), false);
        while let Some(chunk) = resp.chunk().await.map_err(|e| crate::http::describe(&e))? {
            body.extend_from_slice(&chunk);
            if body.len() > cap {
                body.drain(..body.len() - cap);
                dropped = true;
            }
        }
        Ok((status, body, dropped))
    }
}

#[async_trait]
impl Action for HttpAction {
    async fn run(&self, timeout: Duration) -> RunOutcome {
        let started = Instant::now();
        // The client's deadline covers the whole exchange; this one is a backstop.
        let result = tokio::time::timeout(timeout, self.exchange(timeout)).await;
        let seconds = started.elapsed().as_secs_f64();
        let secrets = self.secrets();
        let scrub = |s: String| crate::notify::text::redact(s, &secrets);
        match result {
            Err(_) => RunOutcome::failed(
                format!(
                    "timed out after {}",
                    crate::model::format_duration(timeout.as_secs_f64())
                ),
                seconds,
            ),
            Ok(Err(why)) => RunOutcome::failed(scrub(why), seconds),
            Ok(Ok((status, body, dropped))) => {
                let ok = self.expected(status);
                let mut summary = format!("HTTP {status} in {}", took(seconds));
                if !ok {
                    summary.push_str(&format!(", expected {}", self.expected_words()));
                }
                RunOutcome {
                    ok,
                    summary,
                    output_tail: super::redacted_tail(
                        &body,
                        dropped,
                        super::margin(&secrets),
                        &secrets,
                    ),
                    seconds,
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "http {} {}",
            self.config.method,
            shown_url(&self.config.url)
        )
    }
}
