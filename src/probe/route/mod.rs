//! The `route` probe: expected routes (IPv4 and IPv6) are present, read from
//! `/proc/net/route` and `/proc/net/ipv6_route`. Without configured routes, the routes present
//! when lookout started are expected, so routes that "mysteriously disappear" page.

pub mod table;

use super::{Built, Probe};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Labels, Observation, Sample, Status};
use async_trait::async_trait;
use serde::Deserialize;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use table::{Expected, Prefix, Route};

/// The kernel's IPv4 main table.
pub const PROC_ROUTE: &str = "/proc/net/route";
/// The kernel's IPv6 tables.
pub const PROC_IPV6_ROUTE: &str = "/proc/net/ipv6_route";

/// The routes present when this process first looked: taken once, so that a reload (SIGHUP)
/// after routes were lost does not make the loss the new normal.
static START_ROUTES: OnceLock<Vec<Route>> = OnceLock::new();

/// One expected route: `{ destination = "10.8.0.0/16", gateway = "192.168.1.1", device = "eth0" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRouteConfig {
    /// Destination prefix (`"10.8.0.0/16"`, `"2001:db8::/32"`), a bare address (a host
    /// route), or `"default"` (`0.0.0.0/0`, or `::/0` when the gateway is IPv6). Required.
    pub destination: String,
    /// The router it must go through. Default: any (or none).
    pub gateway: Option<String>,
    /// The interface it must use. Default: any.
    pub device: Option<String>,
}

/// `[[probe]] kind = "route"`: which routes must be present.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Routes that must be present. Default: the routes present when lookout started (taken
    /// once per process; a reload keeps the first snapshot).
    pub expected: Option<Vec<ExpectedRouteConfig>>,
    /// Devices whose routes the start-up snapshot leaves out. Default `["lo"]`. Not applied to
    /// `expected`.
    pub ignore_devices: Option<Vec<String>>,
    /// Destinations (prefixes; routes within them too) the start-up snapshot leaves out, e.g.
    /// `["10.99.0.0/16"]` for routes a VPN adds and removes on its own. Default none. Not
    /// applied to `expected`.
    #[serde(default)]
    pub ignore_destinations: Vec<String>,
}

impl RouteConfig {
    /// The configured expectations, parsed; errors name the entry.
    pub fn parsed_expected(&self) -> Result<Option<Vec<Expected>>, Vec<String>> {
        let Some(list) = &self.expected else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (i, e) in list.iter().enumerate() {
            match parse_expected(e) {
                Ok(x) => out.push(x),
                Err(m) => errors.push(format!("expected[{i}]: {m}")),
            }
        }
        if errors.is_empty() {
            Ok(Some(out))
        } else {
            Err(errors)
        }
    }

    fn ignore_devices(&self) -> Vec<String> {
        self.ignore_devices
            .clone()
            .unwrap_or_else(|| vec!["lo".to_string()])
    }

    fn parsed_ignore_destinations(&self) -> Result<Vec<Prefix>, Vec<String>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for d in &self.ignore_destinations {
            match Prefix::parse(d, false) {
                Ok(p) => out.push(p),
                Err(m) => errors.push(format!("ignore_destinations: {m}")),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

fn parse_expected(e: &ExpectedRouteConfig) -> Result<Expected, String> {
    let gateway = match &e.gateway {
        Some(g) => Some(
            g.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("gateway {g:?} is not an IP address"))?,
        ),
        None => None,
    };
    let dest = Prefix::parse(&e.destination, gateway.is_some_and(|g| g.is_ipv6()))?;
    if let Some(g) = gateway
        && g.is_ipv4() != dest.addr.is_ipv4()
    {
        return Err(format!(
            "gateway {g} and destination {} are of different address families",
            e.destination
        ));
    }
    if e.device.as_deref().is_some_and(|d| d.trim().is_empty()) {
        return Err("device is empty".into());
    }
    Ok(Expected {
        dest,
        gateway,
        device: e.device.clone(),
    })
}

impl KindConfig for RouteConfig {
    const NAME: &'static str = "route";

    fn defaults() -> KindDefaults {
        KindDefaults::new(30, 5)
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        if let Err(list) = self.parsed_expected() {
            for m in list {
                errors.push(Some(span.clone()), Some(component), m, None);
            }
        }
        if let Err(list) = self.parsed_ignore_destinations() {
            for m in list {
                errors.push(Some(span.clone()), Some(component), m, None);
            }
        }
        if self.expected.as_ref().is_some_and(|e| e.is_empty()) {
            errors.push(
                Some(span),
                Some(component),
                "expected is an empty list: this probe would watch nothing",
                Some("leave expected out to watch the routes present when lookout starts".into()),
            );
        }
    }

    fn build(&self, _ctx: &super::BuildContext) -> Built {
        Built {
            probe: Arc::new(RouteProbe {
                config: self.clone(),
            }),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}

/// The probe.
pub struct RouteProbe {
    config: RouteConfig,
}

/// Reads both tables; a missing IPv6 table (IPv6 disabled) counts as empty.
pub fn read_routes() -> Result<Vec<Route>, String> {
    let v4 = std::fs::read_to_string(PROC_ROUTE)
        .map_err(|e| format!("cannot read {PROC_ROUTE}: {e}"))?;
    let mut routes = table::parse_ipv4(&v4).map_err(|e| format!("{PROC_ROUTE}: {e}"))?;
    match std::fs::read_to_string(PROC_IPV6_ROUTE) {
        Ok(v6) => {
            routes.extend(table::parse_ipv6(&v6).map_err(|e| format!("{PROC_IPV6_ROUTE}: {e}"))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {PROC_IPV6_ROUTE}: {e}")),
    }
    Ok(routes)
}

impl RouteProbe {
    /// Compares the present routes with this probe's expectations (pure but for the
    /// process-wide start-up snapshot, which the first call fills when nothing is configured).
    pub fn evaluate(&self, present: &[Route]) -> Observation {
        let (expected, source) = match self.config.parsed_expected() {
            Ok(Some(e)) => (e, "configured"),
            Ok(None) => {
                let start = START_ROUTES.get_or_init(|| present.to_vec());
                let ignore = self.config.parsed_ignore_destinations().unwrap_or_default();
                (
                    table::snapshot_expectations(start, &self.config.ignore_devices(), &ignore),
                    "the routes present at start",
                )
            }
            Err(e) => {
                return Observation::new(
                    Status::Unknown,
                    format!("invalid configuration: {}", e.join("; ")),
                );
            }
        };
        let c = table::compare(&expected, present);
        let status = if !c.missing.is_empty() {
            Status::Critical
        } else if !c.changed.is_empty() {
            Status::Warning
        } else {
            Status::Ok
        };
        let mut obs = Observation::new(status, c.message(source));
        let none = Labels::new();
        obs.samples = vec![
            Sample::new("route.expected", &none, expected.len() as f64),
            Sample::new("route.present", &none, c.present.len() as f64),
            Sample::new("route.missing", &none, c.missing.len() as f64),
            Sample::new("route.changed", &none, c.changed.len() as f64),
        ];
        obs
    }
}

#[async_trait]
impl Probe for RouteProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let me = RouteProbe {
            config: self.config.clone(),
        };
        let mut obs = tokio::task::spawn_blocking(move || match read_routes() {
            Ok(present) => me.evaluate(&present),
            Err(e) => Observation::new(Status::Unknown, e),
        })
        .await
        .unwrap_or_else(|e| Observation::new(Status::Unknown, format!("route probe failed: {e}")));
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}
