//! Listen addresses: `IP:PORT`, or `localhost:PORT` for the IPv4 loopback.

use std::net::{Ipv4Addr, SocketAddr};

/// Parses a listen address: `127.0.0.1:9330`, `[::1]:9330`, `0.0.0.0:9330`, or
/// `localhost:9330` (taken as `127.0.0.1:9330`, without asking a resolver). Pure.
pub fn parse(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = s
        .strip_prefix("localhost:")
        .or_else(|| s.strip_prefix("LOCALHOST:"))
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    Err(format!(
        "listen address {s:?} is not IP:PORT or localhost:PORT"
    ))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn ip_port_and_localhost_are_taken_and_the_rest_refused() {
        assert_eq!(
            parse("127.0.0.1:9330").unwrap().to_string(),
            "127.0.0.1:9330"
        );
        assert_eq!(parse("[::1]:9330").unwrap().to_string(), "[::1]:9330");
        assert_eq!(
            parse("localhost:9444").unwrap().to_string(),
            "127.0.0.1:9444"
        );
        for bad in ["localhost", "localhost:port", "example.org:80", ":9330"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("IP:PORT or localhost:PORT"), "{bad}: {e}");
        }
    }
}
