//! One round of the bridge probe: both directions at once, and the appservice ping.

use super::BridgeConfig;
use super::irc::{IrcTarget, IrcTransport};
use super::matrix::{Credentials, MatrixSide, PasswordSource};
use super::rules::{BridgeRules, DIRECTIONS, Thresholds, samples};
use super::transport::{Transport, wait_for};
use crate::config::values::Secret;
use crate::model::{Labels, Observation, Sample, Status, format_duration, labels};
use crate::probe::{Built, Fixed, Probe};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// How long a token may take to arrive, unless configured.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(15);

/// The part of the probe's `timeout` a round may use: the timeout less a margin (a tenth of it,
/// at most 1 s), so the round ends with its own message before the scheduler cuts it.
pub fn round_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_secs(1)))
}

/// The deadline a token gets: the configured one (default 15 s), at most the round's budget.
pub fn token_deadline(configured: Option<Duration>, timeout: Duration) -> Duration {
    configured
        .unwrap_or(DEFAULT_DEADLINE)
        .min(round_budget(timeout))
}

/// The probe and its rules.
pub fn built(cfg: &BridgeConfig, ctx: &crate::probe::BuildContext) -> Built {
    let rules = Box::new(BridgeRules::new(Thresholds {
        failed_rounds: cfg.failed_rounds.unwrap_or(2),
        latency_warning: cfg
            .latency_warning
            .map(|d| d.0.as_secs_f64())
            .unwrap_or(10.0),
        latency_critical: cfg.latency_critical.map(|d| d.0.as_secs_f64()),
    }));
    match BridgeProbe::new(cfg, ctx.timeout, ctx.interval) {
        Ok(p) => Built {
            probe: Arc::new(p),
            rules,
        },
        Err(e) => Built {
            probe: Arc::new(Fixed(Observation::new(
                Status::Unknown,
                format!("cannot set up the bridge probe: {e}"),
            ))),
            rules,
        },
    }
}

/// The `bridge` probe: a Matrix session and an IRC connection kept across rounds.
pub struct BridgeProbe {
    matrix: MatrixSide,
    irc_target: IrcTarget,
    irc: OnceLock<IrcTransport>,
    budget: Duration,
    deadline: Duration,
    appservice: Option<(String, AsToken)>,
    retry: Duration,
    last_round_failed: AtomicBool,
}

#[derive(Clone)]
enum AsToken {
    Value(Secret),
    File(std::path::PathBuf),
}

impl BridgeProbe {
    /// A probe whose rounds end within `timeout`, run every `interval`.
    pub fn new(
        cfg: &BridgeConfig,
        timeout: Duration,
        interval: Duration,
    ) -> anyhow::Result<BridgeProbe> {
        let budget = round_budget(timeout);
        let auth = match (&cfg.access_token, &cfg.access_token_file) {
            (Some(t), _) => Credentials::Token(t.clone()),
            (None, Some(f)) => {
                Credentials::Token(Secret::from_file(f).map_err(anyhow::Error::msg)?)
            }
            (None, None) => Credentials::Password {
                user: cfg.user.clone().unwrap_or_default(),
                password: match (&cfg.password, &cfg.password_file) {
                    (Some(p), _) => PasswordSource::Value(p.clone()),
                    (None, Some(f)) => PasswordSource::File(f.clone()),
                    (None, None) => anyhow::bail!("no Matrix credentials"),
                },
            },
        };
        let appservice = cfg.appservice_id.clone().and_then(|id| {
            let t = match (&cfg.as_token, &cfg.as_token_file) {
                (Some(t), _) => AsToken::Value(t.clone()),
                (None, Some(f)) => AsToken::File(f.clone()),
                (None, None) => return None,
            };
            Some((id, t))
        });
        Ok(BridgeProbe {
            matrix: MatrixSide::new(&cfg.homeserver, auth, &cfg.room, timeout)?,
            irc_target: IrcTarget {
                server: cfg.irc.server.clone(),
                port: cfg.irc.port(),
                tls: cfg.irc.tls,
                ca_file: cfg.irc.ca_file.clone(),
                nick: cfg.irc.nick.clone(),
                channel: cfg.irc.channel.clone(),
                password: cfg.irc.password.as_ref().map(|p| p.expose().to_string()),
                connect_timeout: budget.max(Duration::from_secs(5)),
            },
            irc: OnceLock::new(),
            budget,
            deadline: token_deadline(cfg.deadline.map(|d| d.0), timeout),
            appservice,
            retry: cfg.retry_interval.map_or(interval / 3, |d| d.0),
            last_round_failed: AtomicBool::new(false),
        })
    }

    fn irc(&self) -> &IrcTransport {
        self.irc
            .get_or_init(|| IrcTransport::start(self.irc_target.clone()))
    }

    /// Matrix→IRC: send as the Matrix user, watch lookout's IRC connection.
    async fn matrix_to_irc(&self, token: &str, end: Instant) -> Result<f64, String> {
        let mut rx = self.irc().subscribe();
        let sent = Instant::now();
        self.matrix
            .send(token, end)
            .await
            .map_err(|e| format!("send rejected or failed: {e}"))?;
        let by = end.min(sent + self.deadline);
        match wait_for(&mut rx, token, by).await {
            Some(at) => Ok(at.duration_since(sent).as_secs_f64()),
            None => Err(format!(
                "sent, not seen on IRC within {}",
                format_duration(by.duration_since(sent).as_secs_f64())
            )),
        }
    }

    /// IRC→Matrix: say it on IRC, watch the room through incremental sync.
    async fn irc_to_matrix(&self, token: &str, end: Instant) -> Result<f64, String> {
        let sent = Instant::now();
        self.irc().send(token).await?;
        let by = end.min(sent + self.deadline);
        match self.matrix.wait_for(token, by).await {
            Ok(Some(at)) => Ok(at.duration_since(sent).as_secs_f64()),
            Ok(None) => Err(format!(
                "said on IRC, not seen in the Matrix room within {}",
                format_duration(by.duration_since(sent).as_secs_f64())
            )),
            Err(e) => Err(format!("said on IRC, then Matrix sync failed: {e}")),
        }
    }

    async fn ping(&self, end: Instant) -> Option<Result<f64, String>> {
        let (id, token) = self.appservice.as_ref()?;
        let token = match token {
            AsToken::Value(t) => t.clone(),
            AsToken::File(f) => match Secret::from_file(f) {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            },
        };
        Some(self.matrix.ping_appservice(id, &token, end).await)
    }

    async fn round(&self, started: Instant) -> Observation {
        let end = started + self.budget;
        let (m, i) = tokio::join!(self.matrix.ready(end), self.irc().ready(end));
        let mut problems = Vec::new();
        if let Err(e) = m {
            problems.push(format!("Matrix: {e}"));
        }
        if let Err(e) = i {
            problems.push(format!("IRC: {e}"));
        }
        if !problems.is_empty() {
            let mut obs = Observation::failed(Status::Critical, problems.join("; "));
            // The ping still tells whether the homeserver reaches the bridge.
            if let Some(p) = self.ping(end).await {
                push_ping(&mut obs, p);
            }
            return obs;
        }
        let nonce: u32 = rand::random();
        let t_m2i = format!("lookout probe {nonce:08x} matrix_to_irc");
        let t_i2m = format!("lookout probe {nonce:08x} irc_to_matrix");
        // The ping gets the tokens' deadline too: a homeserver that waits on a wedged bridge
        // must not stretch the round (and the confirmation of a wedge) to the whole budget.
        let ping_by = end.min(Instant::now() + self.deadline);
        let (m2i, i2m, ping) = tokio::join!(
            self.matrix_to_irc(&t_m2i, end),
            self.irc_to_matrix(&t_i2m, end),
            self.ping(ping_by)
        );
        let mut obs = Observation::new(Status::Ok, String::new());
        let mut parts = Vec::new();
        for ((dir, words), r) in DIRECTIONS.iter().zip([m2i, i2m]) {
            let l = labels([("direction", dir)]);
            match r {
                Ok(lat) => {
                    obs.samples.push(Sample::new(samples::DELIVERED, &l, 1.0));
                    obs.samples.push(Sample::new(samples::LATENCY, &l, lat));
                    parts.push(format!("{words}: {}", format_duration(lat)));
                }
                Err(e) => {
                    obs.samples.push(Sample::new(samples::DELIVERED, &l, 0.0));
                    parts.push(format!("{words}: {e}"));
                }
            }
        }
        obs.message = parts.join("; ");
        if let Some(p) = ping {
            push_ping(&mut obs, p);
        }
        obs
    }
}

/// Whether a round saw something fail that the next round should confirm soon: the round
/// itself, a direction's token, or the homeserver's ping to the bridge.
fn round_failed(obs: &Observation) -> bool {
    obs.status != Status::Ok
        || obs
            .samples
            .iter()
            .any(|s| (s.name == samples::DELIVERED || s.name == samples::PING_OK) && s.value == 0.0)
}

/// Adds the appservice ping's samples and its part of the message (`e` is bare: "timed out").
fn push_ping(obs: &mut Observation, p: Result<f64, String>) {
    let none = Labels::new();
    let part = match p {
        Ok(s) => {
            obs.samples.push(Sample::new(samples::PING_OK, &none, 1.0));
            obs.samples.push(Sample::new(samples::PING, &none, s));
            format!("appservice ping: {}", format_duration(s))
        }
        Err(e) => {
            obs.samples.push(Sample::new(samples::PING_OK, &none, 0.0));
            format!("appservice ping: {e}")
        }
    };
    if obs.message.is_empty() {
        obs.message = part;
    } else {
        obs.message = format!("{}; {part}", obs.message);
    }
}

#[async_trait]
impl Probe for BridgeProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let mut obs = self.round(started).await;
        obs.duration_seconds = started.elapsed().as_secs_f64();
        self.last_round_failed
            .store(round_failed(&obs), Ordering::Relaxed);
        obs
    }

    fn retry_after(&self) -> Option<Duration> {
        self.last_round_failed
            .load(Ordering::Relaxed)
            .then_some(self.retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_round() -> Observation {
        let mut o = Observation::new(Status::Ok, "Matrix→IRC: 50ms; IRC→Matrix: 180ms");
        for (dir, _) in DIRECTIONS {
            let l = labels([("direction", dir)]);
            o.samples.push(Sample::new(samples::DELIVERED, &l, 1.0));
        }
        o
    }

    #[test]
    fn a_failed_ping_alone_is_confirmed_soon() {
        let mut o = ok_round();
        push_ping(&mut o, Ok(0.004));
        assert!(!round_failed(&o));
        let mut o = ok_round();
        push_ping(
            &mut o,
            Err("HTTP 502 M_CONNECTION_FAILED: failed to ping".into()),
        );
        assert!(round_failed(&o), "a failed ping asks for the retry round");
        assert_eq!(
            o.message,
            "Matrix→IRC: 50ms; IRC→Matrix: 180ms; appservice ping: HTTP 502 M_CONNECTION_FAILED: failed to ping"
        );
    }

    #[tokio::test]
    async fn a_timed_out_ping_names_its_step_once() {
        // A homeserver that accepts the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                held.push(c);
            }
        });
        let side = MatrixSide::new(
            &format!("http://127.0.0.1:{port}"),
            Credentials::Token(Secret::new("t")),
            "!room",
            Duration::from_secs(5),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        let e = side
            .ping_appservice("hb", &Secret::new("as"), deadline)
            .await
            .unwrap_err();
        assert_eq!(e, "timed out");
        let mut o = ok_round();
        push_ping(&mut o, Err(e));
        assert!(
            o.message.ends_with("; appservice ping: timed out"),
            "{}",
            o.message
        );
        hold.abort();
    }
}
