//! The pure part of the `route` probe: the kernel's route tables as text, expected routes, and
//! the comparison that says what is missing or changed. No I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `RTF_GATEWAY` in `/proc/net/route` and `/proc/net/ipv6_route`.
const RTF_GATEWAY: u32 = 0x0002;
/// `RTF_ANYCAST` in `/proc/net/ipv6_route`.
const RTF_ANYCAST: u32 = 0x0010_0000;
/// `RTF_LOCAL` in `/proc/net/ipv6_route`: a route to one of this host's own addresses.
const RTF_LOCAL: u32 = 0x8000_0000;
/// `RTF_CACHE` in `/proc/net/ipv6_route` (old kernels list cloned routes).
const RTF_CACHE: u32 = 0x0100_0000;

/// A destination prefix, host bits cleared: `10.8.0.0/16`, `0.0.0.0/0`, `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl Prefix {
    /// A prefix with its host bits cleared; `None` when `len` is too long for the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let addr = match addr {
            IpAddr::V4(a) if len <= 32 => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) if len <= 128 => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => return None,
        };
        Some(Prefix { addr, len })
    }

    /// Parses `10.8.0.0/16`, `2001:db8::/32`, a bare address (a host route), or `default`
    /// (`0.0.0.0/0`; `::/0` when `ipv6` is set, i.e. the gateway is an IPv6 address).
    pub fn parse(s: &str, ipv6: bool) -> Result<Prefix, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("default") {
            let addr = if ipv6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            return Ok(Prefix { addr, len: 0 });
        }
        let (a, l) = match t.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (t, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| {
            format!("{s:?} is not a destination: write \"10.8.0.0/16\", \"2001:db8::/32\" or \"default\"")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0–{max}"))?,
            None => max,
        };
        Prefix::new(addr, len).ok_or_else(|| format!("{s:?} is not a valid prefix"))
    }

    /// Whether `other` lies within this prefix (same family, at least as long, same bits).
    pub fn contains(&self, other: &Prefix) -> bool {
        other.len >= self.len
            && other.addr.is_ipv4() == self.addr.is_ipv4()
            && Prefix::new(other.addr, self.len).map(|p| p.addr) == Some(self.addr)
    }

    fn is_multicast(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => a.is_multicast() && self.len >= 4,
            IpAddr::V6(a) => a.segments()[0] & 0xff00 == 0xff00 && self.len >= 8,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 && self.addr == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
            f.write_str("default")
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// One route of the kernel's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Where it leads.
    pub dest: Prefix,
    /// The next hop, if it goes through a router.
    pub gateway: Option<IpAddr>,
    /// The interface (`*` for routes without one, such as `unreachable`).
    pub device: String,
    /// The kernel's `RTF_*` flags.
    pub flags: u32,
}

impl Route {
    /// Routes the kernel adds by itself for the host's own addresses, multicast and anycast:
    /// they come and go with addresses and are not worth expecting.
    pub fn is_housekeeping(&self) -> bool {
        self.flags & (RTF_LOCAL | RTF_ANYCAST | RTF_CACHE) != 0 || self.dest.is_multicast()
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dest)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        write!(f, " dev {}", self.device)
    }
}

fn hex_u32(s: &str, what: &str, line: usize) -> Result<u32, String> {
    u32::from_str_radix(s, 16).map_err(|_| format!("line {line}: {what} {s:?} is not hexadecimal"))
}

/// Parses `/proc/net/route` (the IPv4 main table): a header line, then one route per line with
/// hexadecimal destination, gateway, flags and mask in the host's byte order.
pub fn parse_ipv4(text: &str) -> Result<Vec<Route>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let n = i + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 8 {
            return Err(format!(
                "line {n}: expected at least 8 fields, found {}",
                f.len()
            ));
        }
        let dest = Ipv4Addr::from(hex_u32(f[1], "destination", n)?.to_ne_bytes());
        let gw = Ipv4Addr::from(hex_u32(f[2], "gateway", n)?.to_ne_bytes());
        let flags = hex_u32(f[3], "flags", n)?;
        let mask = u32::from_be_bytes(hex_u32(f[7], "mask", n)?.to_ne_bytes());
        if mask.leading_ones() + mask.trailing_zeros() != 32 {
            return Err(format!("line {n}: mask {} is not contiguous", f[7]));
        }
        let dest = Prefix::new(IpAddr::V4(dest), mask.leading_ones() as u8)
            .ok_or_else(|| format!("line {n}: bad prefix"))?;
        out.push(Route {
            dest,
            gateway: (flags & RTF_GATEWAY != 0 && !gw.is_unspecified()).then_some(IpAddr::V4(gw)),
            device: f[0].to_string(),
            flags,
        });
    }
    Ok(out)
}

fn hex_v6(s: &str, what: &str, line: usize) -> Result<Ipv6Addr, String> {
    if s.len() != 32 {
        return Err(format!(
            "line {line}: {what} {s:?} is not 32 hexadecimal digits"
        ));
    }
    u128::from_str_radix(s, 16)
        .map(Ipv6Addr::from)
        .map_err(|_| format!("line {line}: {what} {s:?} is not hexadecimal"))
}

/// Parses `/proc/net/ipv6_route` (every IPv6 table): per line destination, prefix length,
/// source, source prefix length, next hop, metric, reference count, use count, flags, device.
pub fn parse_ipv6(text: &str) -> Result<Vec<Route>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 10 {
            return Err(format!("line {n}: expected 10 fields, found {}", f.len()));
        }
        let dest = hex_v6(f[0], "destination", n)?;
        let len = u8::from_str_radix(f[1], 16)
            .map_err(|_| format!("line {n}: prefix length {:?} is not hexadecimal", f[1]))?;
        let next_hop = hex_v6(f[4], "next hop", n)?;
        let flags = hex_u32(f[8], "flags", n)?;
        let dest = Prefix::new(IpAddr::V6(dest), len)
            .ok_or_else(|| format!("line {n}: prefix length {len} is longer than 128"))?;
        out.push(Route {
            dest,
            gateway: (!next_hop.is_unspecified()).then_some(IpAddr::V6(next_hop)),
            device: f[9].to_string(),
            flags,
        });
    }
    Ok(out)
}

/// A route that should be present. `None` gateway or device means "any".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Where it leads.
    pub dest: Prefix,
    /// Through which router, if it matters.
    pub gateway: Option<IpAddr>,
    /// On which interface, if it matters.
    pub device: Option<String>,
}

impl Expected {
    /// The expectation a present route makes of itself (for the start-up snapshot).
    pub fn from_route(r: &Route) -> Expected {
        Expected {
            dest: r.dest,
            gateway: r.gateway,
            device: Some(r.device.clone()),
        }
    }

    fn matches(&self, r: &Route) -> bool {
        r.dest == self.dest
            && self.gateway.is_none_or(|g| r.gateway == Some(g))
            && self.device.as_ref().is_none_or(|d| &r.device == d)
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dest)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.device {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}

/// What the comparison of expected and present routes found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Expected routes present as expected.
    pub present: Vec<Expected>,
    /// Expected routes whose destination has no route at all.
    pub missing: Vec<Expected>,
    /// Expected routes whose destination is routed differently, with the route found instead.
    pub changed: Vec<(Expected, Route)>,
}

impl Comparison {
    /// One line for people: what is missing and what changed, or what is present.
    pub fn message(&self, source: &str) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let list: Vec<String> = self.missing.iter().map(|e| e.to_string()).collect();
            parts.push(format!("missing: {}", list.join(", ")));
        }
        if !self.changed.is_empty() {
            let list: Vec<String> = self
                .changed
                .iter()
                .map(|(e, r)| describe_change(e, r))
                .collect();
            parts.push(format!("changed: {}", list.join(", ")));
        }
        if parts.is_empty() {
            let n = self.present.len();
            if n == 0 {
                return format!("no routes to watch ({source})");
            }
            let mut list: Vec<String> =
                self.present.iter().take(5).map(|e| e.to_string()).collect();
            if n > 5 {
                list.push(format!("and {} more", n - 5));
            }
            return format!(
                "all {n} expected route{} present ({source}): {}",
                if n == 1 { "" } else { "s" },
                list.join(", ")
            );
        }
        parts.join("; ")
    }
}

/// `default now via 192.168.1.254 (was 192.168.1.1)`: only the parts that differ.
fn describe_change(e: &Expected, r: &Route) -> String {
    let gw_differs = e.gateway.is_some() && e.gateway != r.gateway;
    let dev_differs = e.device.as_ref().is_some_and(|d| d != &r.device);
    let hop = |g: Option<IpAddr>| match g {
        Some(g) => format!("via {g}"),
        None => "direct".to_string(),
    };
    let (now, was) = match (gw_differs, dev_differs) {
        (true, false) => (hop(r.gateway), hop(e.gateway)),
        (false, true) => (
            format!("dev {}", r.device),
            format!("dev {}", e.device.as_deref().unwrap_or("?")),
        ),
        _ => (
            format!("{} dev {}", hop(r.gateway), r.device),
            format!(
                "{} dev {}",
                hop(e.gateway),
                e.device.as_deref().unwrap_or("?")
            ),
        ),
    };
    let was = was.strip_prefix("via ").map(str::to_string).unwrap_or(was);
    format!("{} now {now} (was {was})", e.dest)
}

/// Compares expected routes with the present ones.
pub fn compare(expected: &[Expected], present: &[Route]) -> Comparison {
    let mut c = Comparison::default();
    for e in expected {
        if present.iter().any(|r| e.matches(r)) {
            c.present.push(e.clone());
            continue;
        }
        let same_dest: Vec<&Route> = present.iter().filter(|r| r.dest == e.dest).collect();
        // Prefer the route on the expected device, so the message names the one that changed.
        let instead = same_dest
            .iter()
            .find(|r| e.device.as_ref().is_some_and(|d| &r.device == d))
            .or_else(|| same_dest.first());
        match instead {
            Some(r) => c.changed.push((e.clone(), (*r).clone())),
            None => c.missing.push(e.clone()),
        }
    }
    c
}

/// The expectations taken from a snapshot: every route but housekeeping ones and those on
/// ignored devices or within ignored destinations.
pub fn snapshot_expectations(
    routes: &[Route],
    ignore_devices: &[String],
    ignore_destinations: &[Prefix],
) -> Vec<Expected> {
    let mut out: Vec<Expected> = Vec::new();
    for r in routes {
        if r.is_housekeeping()
            || ignore_devices.contains(&r.device)
            || ignore_destinations.iter().any(|p| p.contains(&r.dest))
        {
            continue;
        }
        let e = Expected::from_route(r);
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
