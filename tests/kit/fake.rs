//! Local HTTP servers that speak the request contracts of PagerDuty's Events API v2, ntfy and
//! Slack-compatible incoming webhooks (see REFERENCE.md): they validate each request, record
//! it, and answer like the real service — or with a chosen failure, or not at all.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which service a fake imitates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Contract {
    /// `POST /v2/enqueue`, JSON event, 202.
    PagerDuty,
    /// `POST /TOPIC`, body = message, headers Title/Priority/Tags/Click, 200 JSON.
    Ntfy,
    /// `POST /services/…`, JSON `{"text": …}`, 200 `ok`.
    Slack,
}

/// How the fake answers valid requests.
pub const HANG: u16 = 0;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    /// Its path.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: String,
    /// The body as JSON, or Null.
    pub json: Value,
    /// What the request got wrong about the contract, if anything.
    pub violation: Option<String>,
    /// The status answered (HANG when it got none).
    pub answered: u16,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A fake service on a free loopback port.
pub struct Fake {
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    contract: Contract,
    received: Arc<Mutex<Vec<Request>>>,
    status: Arc<AtomicU16>,
    echo: Arc<AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

fn validate(
    contract: Contract,
    path: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
) -> Result<Value, String> {
    match contract {
        Contract::PagerDuty => {
            if path != "/v2/enqueue" {
                return Err(format!("wrong path {path}"));
            }
            let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
            let key = v["routing_key"].as_str().ok_or("routing_key missing")?;
            if key.is_empty() {
                return Err("routing_key empty".into());
            }
            let action = v["event_action"].as_str().ok_or("event_action missing")?;
            if !["trigger", "acknowledge", "resolve"].contains(&action) {
                return Err(format!("bad event_action {action}"));
            }
            if v["dedup_key"]
                .as_str()
                .is_none_or(|d| d.is_empty() || d.len() > 255)
            {
                return Err("dedup_key missing or too long".into());
            }
            if action == "trigger" {
                let p = &v["payload"];
                let summary = p["summary"].as_str().ok_or("payload.summary missing")?;
                if summary.is_empty() || summary.chars().count() > 1024 {
                    return Err("payload.summary empty or over 1024 characters".into());
                }
                if p["source"].as_str().is_none_or(str::is_empty) {
                    return Err("payload.source missing".into());
                }
                let sev = p["severity"].as_str().unwrap_or("");
                if !["critical", "error", "warning", "info"].contains(&sev) {
                    return Err(format!("bad payload.severity {sev:?}"));
                }
            }
            Ok(v)
        }
        Contract::Ntfy => {
            if path.len() < 2 || path[1..].contains('/') {
                return Err(format!("wrong path {path}"));
            }
            if body.is_empty() {
                return Err("empty message".into());
            }
            if let Some(p) = headers.get("priority")
                && ![
                    "1", "2", "3", "4", "5", "min", "low", "default", "high", "max", "urgent",
                ]
                .contains(&p.as_str())
            {
                return Err(format!("bad Priority {p}"));
            }
            if let Some(a) = headers.get("actions") {
                ntfy_actions(a)?;
            }
            Ok(Value::Null)
        }
        Contract::Slack => {
            if !path.starts_with("/services/") {
                return Err(format!("wrong path {path}"));
            }
            if headers
                .get("content-type")
                .is_none_or(|c| !c.starts_with("application/json"))
            {
                return Err("not application/json".into());
            }
            let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
            if v["text"].as_str().is_none_or(str::is_empty) {
                return Err("text missing".into());
            }
            Ok(v)
        }
    }
}

/// Checks an ntfy `Actions` header as ntfy's server does (`server/actions.go`): the JSON form
/// (it starts with `[`) or the simple one; at most 3 actions, each `view`, `http` or
/// `broadcast` with a label, a URL for `view` and `http`, no body on an `http` GET or HEAD.
fn ntfy_actions(header: &str) -> Result<(), String> {
    let h = header.trim();
    let actions: Vec<Value> = if h.starts_with('[') {
        serde_json::from_str(h).map_err(|e| format!("Actions is not JSON: {e}"))?
    } else {
        h.split(';')
            .map(|a| {
                let parts: Vec<&str> = a.split(',').map(str::trim).collect();
                let mut v =
                    json!({"action": parts[0], "label": parts.get(1).copied().unwrap_or("")});
                for (i, p) in parts.iter().enumerate().skip(2) {
                    match p.split_once('=') {
                        Some((k, val)) if !k.contains("//") => v[k] = json!(val),
                        _ if i == 2 => v["url"] = json!(p),
                        _ => v["bad"] = json!(p),
                    }
                }
                v
            })
            .collect()
    };
    if actions.len() > 3 {
        return Err("only 3 actions allowed".into());
    }
    for a in &actions {
        let kind = a["action"].as_str().unwrap_or("").to_lowercase();
        if !["view", "http", "broadcast"].contains(&kind.as_str()) {
            return Err(format!("action {kind:?} unknown"));
        }
        if a["label"].as_str().is_none_or(str::is_empty) {
            return Err("parameter 'label' is required".into());
        }
        if kind != "broadcast" && a["url"].as_str().is_none_or(str::is_empty) {
            return Err(format!("parameter 'url' is required for action '{kind}'"));
        }
        let method = a["method"].as_str().unwrap_or("POST").to_uppercase();
        if kind == "http"
            && ["GET", "HEAD"].contains(&method.as_str())
            && a["body"].as_str().is_some_and(|b| !b.is_empty())
        {
            return Err(format!(
                "parameter 'body' cannot be set if method is {method}"
            ));
        }
        if !a["clear"].is_null() && !a["clear"].is_boolean() && a["clear"].as_str().is_none() {
            return Err("clear must be a boolean".into());
        }
        if a.get("bad").is_some() {
            return Err(format!("term {} unknown", a["bad"]));
        }
    }
    Ok(())
}

fn answer(contract: Contract, status: u16, v: &Value, path: &str, body: &str) -> (u16, String) {
    match (contract, status) {
        (Contract::PagerDuty, 200..=299) => (
            202,
            json!({"status": "success", "message": "Event processed", "dedup_key": v["dedup_key"]})
                .to_string(),
        ),
        (Contract::PagerDuty, 400) => (
            400,
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}).to_string(),
        ),
        (Contract::PagerDuty, 429) => (
            429,
            json!({"status": "throttle exceeded", "message": "Requests for this service are arriving too quickly.  Please retry later."}).to_string(),
        ),
        (Contract::Ntfy, 200..=299) => (
            200,
            json!({"id": "xE73Iyuabi", "time": 1673542291, "event": "message", "topic": &path[1..], "message": body}).to_string(),
        ),
        (Contract::Ntfy, s @ 400..=499) => (
            s,
            json!({"code": s as u32 * 100 + 1, "http": s, "error": "invalid request"}).to_string(),
        ),
        (Contract::Slack, 200..=299) => (200, "ok".into()),
        (Contract::Slack, 400) => (400, "invalid_payload".into()),
        (Contract::Slack, 429) => (429, "rate_limited".into()),
        (_, s) => (s, "internal error".into()),
    }
}

impl Fake {
    /// Starts a fake answering valid requests with success.
    pub fn start(contract: Contract) -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let received: Arc<Mutex<Vec<Request>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let echo = Arc::new(AtomicBool::new(false));
        let (r, s, e) = (received.clone(), status.clone(), echo.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler = move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let (r, s, e) = (r.clone(), s.clone(), e.clone());
            async move {
                let path = uri.path().to_string();
                let headers: BTreeMap<String, String> = headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let (json, violation) = match validate(contract, &path, &headers, &body) {
                    Ok(v) => (v, None),
                    Err(e) => (Value::Null, Some(e)),
                };
                let mode = s.load(Ordering::SeqCst);
                let status = if violation.is_some() { 400 } else { mode };
                let (code, mut text) = if status == HANG {
                    (HANG, String::new())
                } else {
                    answer(contract, status, &json, &path, &body)
                };
                r.lock().unwrap().push(Request {
                    at: Instant::now(),
                    path: path.clone(),
                    headers: headers.clone(),
                    body: body.clone(),
                    json: json.clone(),
                    violation,
                    answered: code,
                });
                if code == HANG {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                if e.load(Ordering::SeqCst) && code >= 300 {
                    // A careless server that echoes the whole request in its error.
                    let auth = headers.get("authorization").cloned().unwrap_or_default();
                    let key = json["routing_key"].as_str().unwrap_or("");
                    text = format!(
                        "refused {uri} for {auth:?} key {key:?}; {text}; headers={headers:?} body={body}"
                    );
                }
                (axum::http::StatusCode::from_u16(code).unwrap(), text)
            }
        };
        let app = axum::Router::new().fallback(axum::routing::post(handler));
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake {
            base: format!("http://127.0.0.1:{port}"),
            contract,
            received,
            status,
            echo,
            _rt: rt,
        }
    }

    /// The URL a notifier should be configured with.
    pub fn url(&self) -> String {
        match self.contract {
            Contract::PagerDuty => format!("{}/v2/enqueue", self.base),
            Contract::Ntfy => self.base.clone(),
            Contract::Slack => format!("{}/services/T000/B000/XXXX", self.base),
        }
    }

    /// Answer later valid requests with this status (`HANG`: never answer).
    pub fn respond_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Echo the whole request (headers, body, URL) in error answers.
    pub fn echo_requests(&self) {
        self.echo.store(true, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Request> {
        self.received.lock().unwrap().clone()
    }

    /// Requests that matched `pred`.
    pub fn matching(&self, pred: impl Fn(&Request) -> bool) -> Vec<Request> {
        self.all().into_iter().filter(|r| pred(r)).collect()
    }

    /// Panics when any request broke the contract.
    pub fn assert_contract_kept(&self) {
        for r in self.all() {
            assert!(
                r.violation.is_none(),
                "{:?} contract broken: {:?}\n{r:#?}",
                self.contract,
                r.violation
            );
        }
    }

    /// Waits until `n` requests match; panics after `timeout` listing what arrived.
    pub fn wait_for(
        &self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Request) -> bool,
    ) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.matching(&pred);
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .all()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} -> {} {}",
                            r.path,
                            r.body.chars().take(300).collect::<String>(),
                            r.answered,
                            r.violation.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                panic!(
                    "{:?}: {what}: wanted {n} within {timeout:?}, got {}; received: {seen:#?}",
                    self.contract,
                    got.len()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether a PagerDuty request is about `rule` with this action.
pub fn pd_is(r: &Request, action: &str, rule: &str) -> bool {
    r.json["event_action"] == action && (action != "trigger" || r.json["payload"]["group"] == rule)
}

/// Whether an ntfy or Slack request mentions `needle` (the alert's rule or id).
pub fn mentions(r: &Request, needle: &str) -> bool {
    r.body.contains(needle) || r.header("title").is_some_and(|t| t.contains(needle))
}

/// A probe whose alert is critical from its first run (a 100 % free-space floor on `/`).
pub const ALWAYS_CRITICAL: &str = r#"
[[probe]]
id = "root"
kind = "disk"
mounts = ["/"]
interval = "1s"
for = "0s"
warning_free = "100%"
critical_free = "100%"
"#;

/// Waits until an alert in `/api/v1/alerts` matches; panics with the alerts and the log.
pub fn wait_alert(
    d: &super::Daemon,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let alerts = d.get("/api/v1/alerts");
        if let Some(a) = alerts.as_array().and_then(|a| a.iter().find(|a| pred(a))) {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no alert for {what} within {timeout:?}: {alerts:#}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether an alert is the `notifier_failing` alert of notifier `id`.
pub fn failing(a: &Value, id: &str) -> bool {
    a["rule"] == "notifier_failing" && a["labels"]["notifier"] == id
}
