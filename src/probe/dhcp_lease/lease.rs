//! The pure part of the `dhcp_lease` probe: lease files as text, and what a lease's times mean
//! now. Wall-clock times are right here: lease files record wall-clock times.
//!
//! Formats (checked against the clients' sources):
//! - ISC dhclient (`/var/lib/dhcp/*.leases`, NetworkManager's `dhclient-*.lease`): `lease { … }`
//!   blocks appended over time, the last one per interface current; `renew`, `rebind` and
//!   `expire` as `W YYYY/MM/DD HH:MM:SS` (UTC), `epoch N` (with `db-time-format local`) or
//!   `never`.
//! - systemd-networkd (`/run/systemd/netif/leases/<ifindex>`): `KEY=value` lines; `T1`, `T2`
//!   and `LIFETIME` are spans from when the lease was written (the file's modification time),
//!   as seconds (older systemd) or a systemd time span such as `12h` or `1d 12h`.
//! - NetworkManager's internal client (`internal-<uuid>-<iface>.lease`): only `ADDRESS=`;
//!   it records no times.

use crate::model::format_duration;

/// Which client wrote a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// ISC dhclient (also NetworkManager's dhclient backend).
    Dhclient,
    /// systemd-networkd.
    Networkd,
    /// NetworkManager's internal client (no times recorded).
    NetworkManager,
}

/// One lease, times as unix seconds (wall clock).
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// The interface.
    pub interface: String,
    /// The leased address, when recorded.
    pub address: Option<String>,
    /// When the client should renew (T1).
    pub renew: Option<f64>,
    /// When the client should rebind (T2).
    pub rebind: Option<f64>,
    /// When the lease expires.
    pub expire: Option<f64>,
    /// Who wrote it.
    pub client: Client,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a dhclient time: `2 2024/01/02 03:04:05` (UTC), `epoch 1704164645` or `never`
/// (`Ok(None)`).
pub fn parse_dhclient_time(s: &str) -> Result<Option<f64>, String> {
    let w: Vec<&str> = s.split_whitespace().collect();
    match w.as_slice() {
        ["never"] => Ok(None),
        ["epoch", n] => n
            .parse::<i64>()
            .map(|n| Some(n as f64))
            .map_err(|_| format!("bad epoch time {s:?}")),
        [_weekday, date, time] => {
            let bad = || format!("bad time {s:?}: expected \"W YYYY/MM/DD HH:MM:SS\"");
            let d: Vec<i64> = date
                .split('/')
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            let t: Vec<i64> = time
                .split(':')
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            if d.len() != 3
                || t.len() != 3
                || !(1..=12).contains(&d[1])
                || !(1..=31).contains(&d[2])
                || t[0] > 23
                || t[1] > 59
                || t[2] > 60
            {
                return Err(bad());
            }
            let days = days_from_civil(d[0], d[1], d[2]);
            Ok(Some(
                (days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64,
            ))
        }
        _ => Err(format!("bad time {s:?}")),
    }
}

/// Parses a dhclient lease file: the last `lease { … }` block of each interface (dhclient
/// appends; the last is current). `lease6` blocks (DHCPv6) are skipped. `default_interface`
/// names blocks without an `interface` line.
pub fn parse_dhclient(text: &str, default_interface: Option<&str>) -> Result<Vec<Lease>, String> {
    let mut out: Vec<Lease> = Vec::new();
    let mut current: Option<Lease> = None;
    let mut skipping_depth = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if skipping_depth > 0 {
            skipping_depth += line.matches('{').count();
            skipping_depth = skipping_depth.saturating_sub(line.matches('}').count());
            continue;
        }
        if current.is_none() {
            if line.starts_with("lease6") || line.starts_with("default-duid") {
                skipping_depth = line
                    .matches('{')
                    .count()
                    .saturating_sub(line.matches('}').count());
                continue;
            }
            if line.starts_with("lease") && line.ends_with('{') {
                current = Some(Lease {
                    interface: default_interface.unwrap_or("").to_string(),
                    address: None,
                    renew: None,
                    rebind: None,
                    expire: None,
                    client: Client::Dhclient,
                });
                continue;
            }
            return Err(format!("line {n}: expected `lease {{`, found {line:?}"));
        }
        if line == "}" {
            let Some(l) = current.take() else { continue };
            out.retain(|o| o.interface != l.interface);
            out.push(l);
            continue;
        }
        let Some(lease) = current.as_mut() else {
            continue;
        };
        let stmt = line.trim_end_matches(';').trim();
        let (key, value) = stmt.split_once(char::is_whitespace).unwrap_or((stmt, ""));
        let value = value.trim();
        let time = |v: &str| parse_dhclient_time(v).map_err(|e| format!("line {n}: {e}"));
        match key {
            "interface" => lease.interface = value.trim_matches('"').to_string(),
            "fixed-address" => lease.address = Some(value.to_string()),
            "renew" => lease.renew = time(value)?,
            "rebind" => lease.rebind = time(value)?,
            "expire" => lease.expire = time(value)?,
            _ => {}
        }
    }
    if current.is_some() {
        return Err("the last `lease {` block is not closed".into());
    }
    if out.iter().any(|l| l.interface.is_empty()) {
        return Err("a lease names no interface".into());
    }
    Ok(out)
}

/// Parses a span: whole seconds (`43200`) or a systemd time span (`12h`, `1d 12h`, `5min 30s`).
pub fn parse_span(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n as f64);
    }
    humantime::parse_duration(t)
        .map(|d| d.as_secs_f64())
        .map_err(|_| format!("bad time span {s:?}"))
}

/// Parses a `KEY=value` lease (systemd-networkd or NetworkManager's internal client), written
/// at `written` (unix seconds). `Ok(None)` when the text holds no `ADDRESS=`.
pub fn parse_key_value(
    text: &str,
    interface: &str,
    written: f64,
    client: Client,
) -> Result<Option<Lease>, String> {
    let mut lease = Lease {
        interface: interface.to_string(),
        address: None,
        renew: None,
        rebind: None,
        expire: None,
        client,
    };
    let (mut t1, mut t2, mut life) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "ADDRESS" => lease.address = Some(v.trim().to_string()),
            "T1" => t1 = Some(parse_span(v)?),
            "T2" => t2 = Some(parse_span(v)?),
            "LIFETIME" => life = Some(parse_span(v)?),
            _ => {}
        }
    }
    if lease.address.is_none() {
        return Ok(None);
    }
    // RFC 2131 §4.4.5: T1 defaults to half the lease time, T2 to 7/8 of it.
    lease.expire = life.map(|l| written + l);
    lease.renew = t1.or(life.map(|l| l * 0.5)).map(|t| written + t);
    lease.rebind = t2.or(life.map(|l| l * 0.875)).map(|t| written + t);
    Ok(Some(lease))
}

/// How one lease stands now.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// 0 ok, 1 warning, 2 critical.
    pub level: u8,
    /// A sentence for people.
    pub message: String,
}

/// Judges a lease at `now`: critical when expired or expiring within `critical_before`
/// seconds, warning when past its renewal time, otherwise an info line that the interface
/// uses DHCP at all.
pub fn judge(l: &Lease, now: f64, critical_before: f64) -> Verdict {
    let addr = l.address.as_deref().unwrap_or("unknown address");
    let renew_in = l.renew.map(|r| r - now);
    let expires_in = l.expire.map(|e| e - now);
    let overdue = renew_in
        .filter(|r| *r < 0.0)
        .map(|r| format!("; renewal overdue by {}", format_duration(-r)))
        .unwrap_or_default();
    match expires_in {
        Some(e) if e <= 0.0 => {
            return Verdict {
                level: 2,
                message: format!(
                    "{}: DHCP lease {addr} expired {} ago and was not renewed: the address and the routes that came with it may be gone",
                    l.interface,
                    format_duration(-e)
                ),
            };
        }
        Some(e) if e < critical_before => {
            return Verdict {
                level: 2,
                message: format!(
                    "{}: DHCP lease {addr} expires in {}{overdue}: check that the DHCP server answers",
                    l.interface,
                    format_duration(e)
                ),
            };
        }
        _ => {}
    }
    let expires = match expires_in {
        Some(e) => format!("expires in {}", format_duration(e)),
        None if l.client == Client::NetworkManager => {
            "no lease times recorded by NetworkManager's internal client".into()
        }
        None => "never expires".into(),
    };
    if let Some(r) = renew_in
        && r < 0.0
    {
        return Verdict {
            level: 1,
            message: format!(
                "{}: DHCP lease {addr} is past its renewal time by {} and not renewed; {expires}",
                l.interface,
                format_duration(-r)
            ),
        };
    }
    let renews = renew_in
        .map(|r| format!("renews in {}, ", format_duration(r)))
        .unwrap_or_default();
    Verdict {
        level: 0,
        message: format!(
            "{} uses DHCP (lease {addr}, {renews}{expires})",
            l.interface
        ),
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
