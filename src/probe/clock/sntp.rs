//! One SNTP request to one time server, through the `rsntp` crate, bounded by a deadline that
//! covers name resolution, the request and the reply.

use crate::model::format_duration;
use rsntp::{AsyncSntpClient, Config, ProtocolError, SynchronizationError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The standard NTP port.
pub const NTP_PORT: u16 = 123;

/// A time server as configured: `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// How the user wrote it (used in messages and as the `server` label).
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

/// Parses a server as written in the config.
pub fn parse_server(s: &str) -> Result<Server, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("a time server is empty".into());
    }
    if t.contains(char::is_whitespace) {
        return Err(format!("time server {s:?} contains a space"));
    }
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "time server {s:?} has an invalid port {p:?} (write host or host:port, e.g. ntp.example.org:123)"
            )),
        }
    };
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("time server {s:?} lacks the closing ']'"));
        };
        match after {
            "" => (host, NTP_PORT),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, port(p)?),
                None => return Err(format!("time server {s:?}: expected :PORT after ']'")),
            },
        }
    } else if t.matches(':').count() > 1 {
        (t, NTP_PORT) // a bare IPv6 address
    } else if let Some((h, p)) = t.split_once(':') {
        (h, port(p)?)
    } else {
        (t, NTP_PORT)
    };
    if host.is_empty() {
        return Err(format!("time server {s:?} has no host"));
    }
    Ok(Server {
        name: t.to_string(),
        host: host.to_string(),
        port,
    })
}

/// What one server said.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    /// Server time minus this host's time, in seconds: positive when this host is behind.
    pub offset: f64,
    /// Round-trip delay of the exchange, in seconds.
    pub rtt: f64,
}

/// Asks one server, all within `deadline` (resolution, request, reply). The error is a phrase
/// for people, e.g. `no answer within 2s`.
pub async fn query(server: &Server, deadline: Duration) -> Result<Reading, String> {
    let waited = format!(
        "no answer within {}",
        format_duration(deadline.as_secs_f64())
    );
    match tokio::time::timeout(deadline, exchange(server, deadline)).await {
        Ok(result) => result,
        Err(_) => Err(waited),
    }
}

async fn exchange(server: &Server, deadline: Duration) -> Result<Reading, String> {
    let addr = resolve(server).await?;
    let bind = match addr.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let client =
        AsyncSntpClient::with_config(Config::default().bind_address(bind).timeout(deadline));
    let result = client
        .synchronize(addr)
        .await
        .map_err(|e| describe(&e, deadline))?;
    Ok(Reading {
        offset: result.clock_offset().as_secs_f64(),
        rtt: result.round_trip_delay().as_secs_f64(),
    })
}

/// The first address of the server's host (an IP literal needs no lookup).
async fn resolve(server: &Server) -> Result<SocketAddr, String> {
    if let Ok(ip) = server.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, server.port));
    }
    let mut addrs = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", server.host))?;
    addrs
        .next()
        .ok_or_else(|| format!("{} resolves to no address", server.host))
}

/// Plain words for an SNTP failure.
fn describe(e: &SynchronizationError, deadline: Duration) -> String {
    match e {
        SynchronizationError::IOError(io) => match io.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => format!(
                "no answer within {}",
                format_duration(deadline.as_secs_f64())
            ),
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused (no time server listens there)".into()
            }
            _ => format!("network error: {io}"),
        },
        SynchronizationError::ProtocolError(ProtocolError::ServerNotSynchronized) => {
            "the server says it is not synchronized itself".into()
        }
        SynchronizationError::ProtocolError(ProtocolError::KissODeath(code)) => {
            format!(
                "the server refused to answer (kiss-o'-death: {})",
                code.to_string().trim()
            )
        }
        SynchronizationError::ProtocolError(p) => {
            format!("bad answer: {}", p.to_string().to_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_forms() {
        let ok: &[(&str, &str, u16)] = &[
            ("ntp.example.org", "ntp.example.org", 123),
            ("ntp.example.org:1123", "ntp.example.org", 1123),
            ("127.0.0.1:4123", "127.0.0.1", 4123),
            ("[::1]:4123", "::1", 4123),
            ("[::1]", "::1", 123),
            ("2001:db8::1", "2001:db8::1", 123),
            (" 10.0.0.1 ", "10.0.0.1", 123),
        ];
        for (input, host, port) in ok {
            let s = parse_server(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!((s.host.as_str(), s.port), (*host, *port), "{input}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("host:0", "invalid port"),
            ("host:99999", "invalid port"),
            ("host:", "invalid port"),
            (":123", "no host"),
            ("[::1", "closing"),
            ("[::1]x", "expected :PORT"),
            ("a b", "space"),
        ];
        for (input, want) in bad {
            let e = parse_server(input).expect_err(input);
            assert!(e.contains(want), "{input}: {e}");
        }
    }

    #[tokio::test]
    async fn refused_and_silent_servers_fail_in_plain_words_within_the_deadline() {
        // A bound socket that never answers, and a port with nothing bound.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let closed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let deadline = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let e = query(
            &parse_server(&silent.local_addr().unwrap().to_string()).unwrap(),
            deadline,
        )
        .await
        .unwrap_err();
        assert_eq!(e, "no answer within 300ms");
        assert!(started.elapsed() < Duration::from_secs(1));
        let e = query(
            &parse_server(&format!("127.0.0.1:{closed}")).unwrap(),
            deadline,
        )
        .await
        .unwrap_err();
        assert!(e.contains("connection refused"), "{e}");
    }
}
