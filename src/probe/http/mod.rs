//! The `http` probe: one request with one total deadline (connect, headers **and** body), then
//! conditions on the status code, the body, JSON values, latency and the TLS certificate.
//!
//! `check.rs` holds the pure parts (conditions, messages that never show a query string);
//! `run.rs` makes the request; `client.rs` holds the clients probes share, so connections are
//! reused between runs and probes of one host share one keep-alive pool.

pub mod check;
pub mod client;
pub mod run;

pub use run::HttpProbe;

use crate::config::values::{Dur, Secret};
use crate::config::{KindConfig, KindDefaults};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;

/// `[[probe]] kind = "http"`: the request to make and what its answer must look like.
/// Its `Debug` shows the URL without query string or user info.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL to request, `http://` or `https://`. Required. Messages show only
    /// scheme://host:port/path: never the query string or user info, which may hold tokens.
    pub url: String,
    /// The request method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers; values are secrets (they print as `<secret>` and may be written as
    /// `"${ENV_VAR}"`). Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// The request body, a secret like header values. Default none (empty body).
    pub body: Option<Secret>,
    /// Status codes that count as success. Default: any 2xx.
    #[serde(default)]
    pub expected_status: Vec<u16>,
    /// The body must contain this text (searched in the first 1 MiB). Default: no condition.
    pub body_contains: Option<String>,
    /// Values the body, parsed as JSON, must hold, e.g.
    /// `json = [{ pointer = "/status", equals = "ok" }]`. Default: no condition.
    #[serde(default)]
    pub json: Vec<JsonCheck>,
    /// Warning when the whole exchange (connect, headers and body) takes longer. Default: none.
    pub warning_latency: Option<Dur>,
    /// Critical when the whole exchange takes longer. Default: none.
    pub critical_latency: Option<Dur>,
    /// Warning when the server's TLS certificate expires within this. Default `"14d"`.
    pub cert_warning_within: Option<Dur>,
    /// Critical when the server's TLS certificate expires within this. Default `"3d"`.
    pub cert_critical_within: Option<Dur>,
    /// Accept any certificate (self-signed, wrong name, expired). Its expiry is still measured.
    /// Default false.
    #[serde(default)]
    pub tls_insecure: bool,
    /// Follow redirects (up to 10). With `false` a redirect is judged by `expected_status`.
    /// Default true.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
}

/// One condition on the JSON body: the value at a JSON pointer (RFC 6901).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonCheck {
    /// Where the value is, e.g. `/status` or `/checks/0/ok`. Required.
    pub pointer: String,
    /// The value it must equal (string, number or boolean; numbers compare by value).
    /// Default: the value only has to exist.
    pub equals: Option<serde_json::Value>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = reqwest::Url::parse(&self.url)
            .map(|u| check::safe_url(&u))
            .unwrap_or_else(|_| "<invalid url>".into());
        f.debug_struct("HttpConfig")
            .field("url", &url)
            .field("method", &self.method)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("expected_status", &self.expected_status)
            .field("body_contains", &self.body_contains)
            .field("json", &self.json)
            .field("warning_latency", &self.warning_latency)
            .field("critical_latency", &self.critical_latency)
            .field("cert_warning_within", &self.cert_warning_within)
            .field("cert_critical_within", &self.cert_critical_within)
            .field("tls_insecure", &self.tls_insecure)
            .field("follow_redirects", &self.follow_redirects)
            .finish()
    }
}

fn default_method() -> String {
    "GET".into()
}

fn yes() -> bool {
    true
}

/// Default `cert_warning_within`: 14 days.
pub const CERT_WARNING_WITHIN: Dur = Dur::from_secs(14 * 86_400);
/// Default `cert_critical_within`: 3 days.
pub const CERT_CRITICAL_WITHIN: Dur = Dur::from_secs(3 * 86_400);

impl KindConfig for HttpConfig {
    const NAME: &'static str = "http";

    fn defaults() -> KindDefaults {
        // Two failed runs in a row page, as Gatus's failure-threshold: one blip (a restart,
        // a dropped connection) does not.
        KindDefaults::new(30, 10).fail_after(2)
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        for (message, hint) in self.problems() {
            errors.push(Some(span.clone()), Some(component), message, hint);
        }
    }

    fn build(&self, ctx: &super::BuildContext) -> super::Built {
        self.built(ctx.timeout)
    }
}

impl HttpConfig {
    /// The probe and its rules, for runs the scheduler ends after `timeout`.
    pub fn built(&self, timeout: std::time::Duration) -> super::Built {
        super::Built {
            probe: std::sync::Arc::new(HttpProbe::new(self.clone(), timeout)),
            rules: Box::new(crate::rule::NoRules),
        }
    }

    /// Every semantic problem, as (message, hint). Pure.
    pub fn problems(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        let mut bad = |m: String, h: Option<&str>| out.push((m, h.map(str::to_string)));
        match reqwest::Url::parse(&self.url) {
            Err(e) => bad(
                format!("url is not a valid URL: {e}"),
                Some("write a full URL such as \"https://example.org/health\""),
            ),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => bad(
                format!("url scheme {:?} is not http or https", u.scheme()),
                None,
            ),
            Ok(u) if u.host_str().is_none_or(str::is_empty) => bad("url has no host".into(), None),
            Ok(_) => {}
        }
        if reqwest::Method::from_bytes(self.method.as_bytes()).is_err() || self.method.is_empty() {
            bad(
                format!("method {:?} is not a valid HTTP method", self.method),
                Some("e.g. GET, HEAD, POST"),
            );
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                bad(format!("header name {name:?} is not valid"), None);
            }
            if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                // The value is a secret: name the header only.
                bad(
                    format!("the value of header {name:?} has characters a header cannot carry"),
                    Some("header values are visible ASCII text; no line breaks"),
                );
            }
        }
        for code in &self.expected_status {
            if !(100..=599).contains(code) {
                bad(
                    format!("expected_status {code} is not an HTTP status code (100–599)"),
                    None,
                );
            }
        }
        if self.body_contains.as_deref() == Some("") {
            bad("body_contains is empty".into(), None);
        }
        for j in &self.json {
            if !j.pointer.is_empty() && !j.pointer.starts_with('/') {
                bad(
                    format!("json pointer {:?} must start with \"/\"", j.pointer),
                    Some("a JSON pointer looks like \"/status\" or \"/checks/0/ok\""),
                );
            }
            if matches!(
                j.equals,
                Some(serde_json::Value::Array(_) | serde_json::Value::Object(_))
            ) {
                bad(
                    format!(
                        "json check at {:?}: equals must be a string, number or boolean",
                        j.pointer
                    ),
                    Some("point at a single value instead, e.g. \"/checks/0/ok\""),
                );
            }
        }
        if let (Some(w), Some(c)) = (self.warning_latency, self.critical_latency)
            && c < w
        {
            bad(
                "critical_latency is shorter than warning_latency".into(),
                Some("critical should be the higher latency, e.g. 500ms and 2s"),
            );
        }
        let (cw, cc) = self.cert_within();
        if cc > cw {
            bad(
                "cert_critical_within is longer than cert_warning_within".into(),
                Some("critical should be the nearer horizon, e.g. 3d and 14d"),
            );
        }
        out
    }

    /// (`cert_warning_within`, `cert_critical_within`) with defaults filled in.
    pub fn cert_within(&self) -> (Dur, Dur) {
        (
            self.cert_warning_within.unwrap_or(CERT_WARNING_WITHIN),
            self.cert_critical_within.unwrap_or(CERT_CRITICAL_WITHIN),
        )
    }

    /// The pure conditions of this probe, defaults filled in.
    pub fn conditions(&self) -> check::Conditions {
        let (cw, cc) = self.cert_within();
        check::Conditions {
            expected_status: self.expected_status.clone(),
            body_contains: self.body_contains.clone(),
            json: self.json.clone(),
            warning_latency: self.warning_latency.map(Dur::secs),
            critical_latency: self.critical_latency.map(Dur::secs),
            cert_warning_within: cw.secs(),
            cert_critical_within: cc.secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn errors(fields: &str) -> Vec<String> {
        let src = format!("[[probe]]\nid = \"web\"\nkind = \"http\"\n{fields}\n");
        match crate::config::parse_str(Path::new("t.toml"), &src) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.message.clone()).collect(),
        }
    }

    #[test]
    fn validation_names_every_problem() {
        let cases: &[(&str, &str)] = &[
            ("url = \"https://example.org/health\"", ""),
            (
                "url = \"https://example.org/\"\nmethod = \"POST\"\nheaders = { Authorization = \"Bearer x\" }\nbody = \"{}\"\nexpected_status = [200, 301]\nbody_contains = \"ok\"\njson = [{ pointer = \"/status\", equals = \"ok\" }, { pointer = \"/n\", equals = 3 }, { pointer = \"/up\" }]\nwarning_latency = \"500ms\"\ncritical_latency = \"2s\"\ncert_warning_within = \"30d\"\ncert_critical_within = \"7d\"\ntls_insecure = true\nfollow_redirects = false",
                "",
            ),
            ("", "missing field `url`"),
            ("url = \"example.org/health\"", "url is not a valid URL"),
            (
                "url = \"ftp://example.org/\"",
                "url scheme \"ftp\" is not http or https",
            ),
            (
                "url = \"http://x/\"\nmethod = \"GE T\"",
                "method \"GE T\" is not a valid HTTP method",
            ),
            (
                "url = \"http://x/\"\nheaders = { \"Bad Name\" = \"v\" }",
                "header name \"Bad Name\" is not valid",
            ),
            (
                "url = \"http://x/\"\nheaders = { X-Token = \"a\\nb\" }",
                "the value of header \"X-Token\" has characters",
            ),
            (
                "url = \"http://x/\"\nexpected_status = [200, 42]",
                "expected_status 42 is not an HTTP status code",
            ),
            (
                "url = \"http://x/\"\njson = [{ pointer = \"status\" }]",
                "json pointer \"status\" must start with \"/\"",
            ),
            (
                "url = \"http://x/\"\njson = [{ pointer = \"/a\", equals = [1] }]",
                "equals must be a string, number or boolean",
            ),
            (
                "url = \"http://x/\"\nwarning_latency = \"2s\"\ncritical_latency = \"1s\"",
                "critical_latency is shorter than warning_latency",
            ),
            (
                "url = \"http://x/\"\ncert_critical_within = \"30d\"",
                "cert_critical_within is longer than cert_warning_within",
            ),
            (
                "url = \"http://x/\"\nbody_contain = \"ok\"",
                "unknown field `body_contain`",
            ),
        ];
        for (fields, want) in cases {
            let got = errors(fields);
            if want.is_empty() {
                assert!(got.is_empty(), "{fields}: unexpected errors {got:?}");
            } else {
                assert!(
                    got.iter().any(|m| m.contains(want)),
                    "{fields}: wanted {want:?}, got {got:?}"
                );
            }
        }
    }

    #[test]
    fn debug_output_hides_query_user_info_and_header_values() {
        let c: super::HttpConfig = toml::from_str(
            "url = \"https://u:pw@example.org/h?token=abc\"\nheaders = { A = \"hunter2\" }",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("https://example.org:443/h"), "{shown}");
        for secret in ["token", "abc", "pw", "hunter2"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    #[test]
    fn a_bad_header_value_is_reported_without_showing_it() {
        let got = errors("url = \"http://x/\"\nheaders = { X-Token = \"hunter2\\nx\" }");
        assert!(!got.is_empty());
        assert!(got.iter().all(|m| !m.contains("hunter2")), "{got:?}");
    }
}
