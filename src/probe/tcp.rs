//! The `tcp` probe: connect to host:port within the deadline, optionally send a few bytes and
//! expect a text in what comes back (a banner or an answer).

use super::Probe;
use super::http::check::snippet;
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Labels, Observation, Sample, Status, format_duration};
use async_trait::async_trait;
use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// Sample names of the `tcp` probe.
pub mod samples {
    /// Seconds to resolve the host and connect.
    pub const CONNECT: &str = "tcp.connect_seconds";
    /// Seconds for the whole run (connect, send, expect).
    pub const DURATION: &str = "tcp.duration_seconds";
}

/// Bytes read while looking for `expect`; past this the answer is judged as it is.
pub const MAX_READ: usize = 64 * 1024;

/// `[[probe]] kind = "tcp"`: where to connect and what to exchange.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Host name or IP address. Required.
    pub host: String,
    /// TCP port. Required.
    pub port: u16,
    /// Bytes to send once connected, e.g. `"PING\r\n"`. Besides TOML's own escapes, the
    /// escapes `\n`, `\r`, `\t`, `\0`, `\\` and `\xHH` are understood in 'literal' strings too.
    /// Default: send nothing.
    pub send: Option<String>,
    /// Text that must appear in what the server sends (after `send`, if any) within the
    /// timeout, e.g. `"SSH-2.0-"`. Same escapes as `send`. Default: connecting is enough.
    pub expect: Option<String>,
}

impl KindConfig for TcpConfig {
    const NAME: &'static str = "tcp";

    fn defaults() -> KindDefaults {
        // Two failed runs in a row page: one blip does not (see docs/probes/tcp.md).
        KindDefaults::new(30, 5).fail_after(2)
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

impl TcpConfig {
    /// The probe and its rules, for runs the scheduler ends after `timeout`.
    pub fn built(&self, timeout: Duration) -> super::Built {
        super::Built {
            probe: std::sync::Arc::new(TcpProbe::new(self.clone(), timeout)),
            rules: Box::new(crate::rule::NoRules),
        }
    }

    /// Every semantic problem, as (message, hint). Pure.
    pub fn problems(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        if self.host.trim().is_empty() {
            out.push(("host is empty".to_string(), None));
        }
        if self.port == 0 {
            out.push(("port 0 cannot be connected to".to_string(), None));
        }
        for (name, value) in [("send", &self.send), ("expect", &self.expect)] {
            match value.as_deref().map(unescape) {
                Some(Err(e)) => out.push((
                    format!("{name}: {e}"),
                    Some("escapes are \\n, \\r, \\t, \\0, \\\\ and \\xHH (two hex digits)".into()),
                )),
                Some(Ok(b)) if b.is_empty() => out.push((format!("{name} is empty"), None)),
                _ => {}
            }
        }
        out
    }
}

/// Turns `\n`, `\r`, `\t`, `\0`, `\\` and `\xHH` into bytes.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("\\x{hex} is not \\x followed by two hex digits"))?;
                out.push(byte);
            }
            Some(other) => return Err(format!("unknown escape \\{other}")),
            None => return Err("a lone \\ at the end".into()),
        }
    }
    Ok(out)
}

/// The `tcp` probe.
pub struct TcpProbe {
    host: String,
    port: u16,
    send: Result<Option<Vec<u8>>, String>,
    expect: Result<Option<Vec<u8>>, String>,
    timeout: Duration,
}

impl TcpProbe {
    /// A probe whose every run ends within `timeout` (a little inside it, so its own message
    /// says which phase stalled).
    pub fn new(config: TcpConfig, timeout: Duration) -> TcpProbe {
        let parse = |v: Option<String>| v.as_deref().map(unescape).transpose();
        TcpProbe {
            send: parse(config.send),
            expect: parse(config.expect),
            host: config.host,
            port: config.port,
            timeout,
        }
    }

    fn budget(&self) -> Duration {
        let margin = (self.timeout / 10).min(Duration::from_millis(250));
        self.timeout.saturating_sub(margin)
    }

    async fn exchange(&self, started: Instant) -> Observation {
        let (send, expect) = match (&self.send, &self.expect) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(e), _) | (_, Err(e)) => return Observation::new(Status::Unknown, e.clone()),
        };
        let deadline = started + self.budget();
        let target = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let timed_out = |phase: &str| {
            Observation::new(
                Status::Unknown,
                format!(
                    "timed out after {} ({phase}) ({target})",
                    format_duration(self.timeout.as_secs_f64())
                ),
            )
        };
        let mut stream = match timeout_at(
            deadline,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Err(_) => return timed_out("connecting"),
            Ok(Err(e)) => {
                return Observation::new(
                    Status::Critical,
                    format!("cannot connect to {target}: {e}"),
                );
            }
            Ok(Ok(s)) => s,
        };
        let none = Labels::new();
        let connect = started.elapsed().as_secs_f64();
        let mut obs = Observation::new(
            Status::Ok,
            format!("connected to {target} in {}", format_duration(connect)),
        );
        obs.samples
            .push(Sample::new(samples::CONNECT, &none, connect));
        let fail = |mut obs: Observation, status: Status, message: String| {
            obs.status = status;
            obs.message = message;
            obs
        };
        if let Some(bytes) = send {
            match timeout_at(deadline, stream.write_all(bytes)).await {
                Err(_) => {
                    let t = timed_out("sending");
                    return fail(obs, t.status, t.message);
                }
                Ok(Err(e)) => {
                    let m = format!("the connection to {target} broke while sending: {e}");
                    return fail(obs, Status::Critical, m);
                }
                Ok(Ok(())) => {}
            }
        }
        if let Some(want) = expect {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            let ended = loop {
                if contains(&got, want) {
                    break None;
                }
                if got.len() >= MAX_READ {
                    break Some(format!("after {} bytes", got.len()));
                }
                match timeout_at(deadline, stream.read(&mut buf)).await {
                    Err(_) if got.is_empty() => {
                        let t = timed_out("waiting for banner");
                        return fail(obs, t.status, t.message);
                    }
                    Err(_) => {
                        break Some(format!(
                            "nothing more within {}",
                            format_duration(self.timeout.as_secs_f64())
                        ));
                    }
                    Ok(Ok(0)) => break Some("then the server closed the connection".into()),
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Ok(Err(e)) => {
                        let m = format!("the connection to {target} broke while reading: {e}");
                        return fail(obs, Status::Critical, m);
                    }
                }
            };
            match ended {
                None => obs
                    .message
                    .push_str(&format!("; the answer contains {}", snippet(want, 60))),
                Some(how) if got.is_empty() => {
                    let m = format!(
                        "expected {}, but the server sent nothing ({how}) ({target})",
                        snippet(want, 60)
                    );
                    return fail(obs, Status::Critical, m);
                }
                Some(how) => {
                    let m = format!(
                        "expected {}, got {} ({how}) ({target})",
                        snippet(want, 60),
                        snippet(&got, 120)
                    );
                    return fail(obs, Status::Critical, m);
                }
            }
        }
        obs
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[async_trait]
impl Probe for TcpProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let mut obs = self.exchange(started).await;
        let took = started.elapsed().as_secs_f64();
        obs.samples
            .push(Sample::new(samples::DURATION, &Labels::new(), took));
        obs.duration_seconds = took;
        obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn escapes_become_bytes() {
        let cases: &[(&str, Result<&[u8], &str>)] = &[
            ("PING\\r\\n", Ok(b"PING\r\n")),
            ("a\\tb\\0\\\\", Ok(b"a\tb\0\\")),
            ("\\x41\\xff", Ok(b"A\xff")),
            ("plain\n", Ok(b"plain\n")),
            ("é", Ok("é".as_bytes())),
            ("\\q", Err("unknown escape \\q")),
            ("\\x4", Err("\\x4 is not \\x followed by two hex digits")),
            ("\\xzz", Err("\\xzz is not")),
            ("end\\", Err("a lone \\ at the end")),
        ];
        for (input, want) in cases {
            match (unescape(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn validation_names_every_problem() {
        let cases: &[(&str, &str)] = &[
            ("host = \"db\"\nport = 5432", ""),
            (
                "host = \"db\"\nport = 25\nsend = 'QUIT\\r\\n'\nexpect = \"220 \"",
                "",
            ),
            ("port = 1", "missing field `host`"),
            ("host = \"db\"", "missing field `port`"),
            ("host = \"\"\nport = 1", "host is empty"),
            ("host = \"db\"\nport = 0", "port 0 cannot be connected to"),
            ("host = \"db\"\nport = 70000", "70000"),
            (
                "host = \"db\"\nport = 1\nsend = 'a\\q'",
                "send: unknown escape \\q",
            ),
            ("host = \"db\"\nport = 1\nexpect = \"\"", "expect is empty"),
            (
                "host = \"db\"\nport = 1\nbanner = \"x\"",
                "unknown field `banner`",
            ),
        ];
        for (fields, want) in cases {
            let src = format!("[[probe]]\nid = \"t\"\nkind = \"tcp\"\n{fields}\n");
            let got: Vec<String> = match crate::config::parse_str(Path::new("t.toml"), &src) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(|e| e.message.clone()).collect(),
            };
            if want.is_empty() {
                assert!(got.is_empty(), "{fields}: unexpected {got:?}");
            } else {
                assert!(
                    got.iter().any(|m| m.contains(want)),
                    "{fields}: wanted {want:?}, got {got:?}"
                );
            }
        }
    }
}
