//! Test kit for the intake endpoints: a real Alertmanager (Debian `prometheus-alertmanager`)
//! in a temp dir on free loopback ports, stopped by PID on drop, and small HTTP helpers.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Alertmanager binary Debian installs.
pub const ALERTMANAGER: &str = "prometheus-alertmanager";

/// A request's status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("non-JSON answer ({e}): {}", self.body))
    }
}

/// A blocking request with a 10 s deadline: `method` GET or POST, optional body and bearer.
pub fn request(method: &str, url: &str, body: Option<&str>, bearer: Option<&str>) -> Answer {
    request_typed(method, url, body, Some("application/json"), bearer)
}

/// As [`request`], with the body's `Content-Type` chosen (`None`: no such header).
pub fn request_typed(
    method: &str,
    url: &str,
    body: Option<&str>,
    content_type: Option<&str>,
    bearer: Option<&str>,
) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(10)).unwrap();
        let mut req = match method {
            "GET" => c.get(url),
            _ => c.post(url),
        };
        if let Some(b) = body {
            req = req.body(b.to_string());
            if let Some(t) = content_type {
                req = req.header("Content-Type", t);
            }
        }
        if let Some(t) = bearer {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        Answer {
            status,
            body: resp.text().await.unwrap_or_default(),
        }
    })
}

/// A real Alertmanager with one webhook receiver, killed by PID on drop.
pub struct Alertmanager {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager (clustering off) whose only receiver posts to `webhook` with the
    /// bearer `token`; `group_wait: 0s`, `group_interval: 1s`, `repeat_interval: 1h`,
    /// `send_resolved: true`, alerts grouped by `alertname`.
    pub fn start(webhook: &str, token: &str) -> Alertmanager {
        Self::start_grouped(webhook, token, "['alertname']")
    }

    /// [`Alertmanager::start`] with another `group_by` (YAML list, e.g. `['...']`: every alert is
    /// a group of its own).
    pub fn start_grouped(webhook: &str, token: &str, group_by: &str) -> Alertmanager {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                r#"route:
  receiver: lookout
  group_by: {group_by}
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: lookout
    webhook_configs:
      - url: {webhook}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"#
            ),
        )
        .unwrap();
        let port = super::kit::free_port();
        let log = dir.path().join("alertmanager.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {ALERTMANAGER}: {e} (apt-get install -y prometheus-alertmanager; ./scripts/test installs it)")
            });
        let am = Alertmanager {
            child,
            port,
            log,
            _dir: dir,
        };
        am.wait_ready();
        am
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // A connection refused or reset while it starts is "not yet", not a failure.
            let url = format!("{}/-/ready", self.url());
            let ready = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::panic::catch_unwind(|| request("GET", &url, None, None).status == 200)
                    .unwrap_or(false);
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Alertmanager was not ready within 20 s; log:\n{}",
            self.log_text()
        );
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Posts alerts to its own API (`POST /api/v2/alerts`), as Prometheus does.
    pub fn post_alerts(&self, alerts: &Value) {
        let a = request(
            "POST",
            &format!("{}/api/v2/alerts", self.url()),
            Some(&alerts.to_string()),
            None,
        );
        assert_eq!(a.status, 200, "Alertmanager refused the alerts: {}", a.body);
    }

    /// The sum of one of its metrics (all label sets), 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        let text = request("GET", &format!("{}/metrics", self.url()), None, None).body;
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RFC 3339 UTC, `seconds_from_now` away.
pub fn rfc3339(seconds_from_now: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    lookout::model::format_utc(now + seconds_from_now)
}
