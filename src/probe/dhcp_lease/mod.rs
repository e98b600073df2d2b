//! The `dhcp_lease` probe: which interfaces use DHCP, and how long until each lease must be
//! renewed and expires, from the lease files of ISC dhclient, systemd-networkd and
//! NetworkManager. A lease that expires can take its routes with it.

pub mod lease;

use super::{Built, Probe};
use crate::config::{Dur, KindConfig, KindDefaults};
use crate::model::{Observation, Sample, Status, labels};
use async_trait::async_trait;
use lease::{Client, Lease};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use toml::Spanned;

/// Where the clients keep their leases.
pub const DEFAULT_PATHS: &[&str] = &[
    "/var/lib/dhcp",
    "/var/lib/dhclient",
    "/run/systemd/netif/leases",
    "/var/lib/NetworkManager",
];

/// At most this many files are read per run, each at most this many bytes.
const MAX_FILES: usize = 256;
const MAX_FILE_BYTES: u64 = 4 << 20;

/// `[[probe]] kind = "dhcp_lease"`: where the lease files are and when to worry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpLeaseConfig {
    /// Lease files or directories (each file directly in a directory whose name ends in
    /// `.lease` or `.leases`, and every file in a directory named `leases`). Default
    /// `/var/lib/dhcp`, `/var/lib/dhclient`, `/run/systemd/netif/leases`,
    /// `/var/lib/NetworkManager`. Paths named here must exist and hold leases: `config check`
    /// warns about one that does not exist, and the probe reads `unknown` while it finds none.
    pub paths: Option<Vec<Spanned<String>>>,
    /// Critical when a lease expires sooner than this (or has expired). Default 30m.
    pub critical_before: Option<Dur>,
    /// Watch only these interfaces. Default: every interface with a lease.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Leases that expired longer ago than this are left-overs of interfaces that no longer
    /// use DHCP, and are ignored. Default 7d.
    pub forget_after: Option<Dur>,
}

impl DhcpLeaseConfig {
    fn critical_before(&self) -> f64 {
        self.critical_before.map(Dur::secs).unwrap_or(1800.0)
    }

    fn forget_after(&self) -> f64 {
        self.forget_after.map(Dur::secs).unwrap_or(7.0 * 86_400.0)
    }

    /// The paths read: the configured ones, else [`DEFAULT_PATHS`].
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.paths {
            Some(p) => p.iter().map(|p| PathBuf::from(p.get_ref())).collect(),
            None => DEFAULT_PATHS.iter().map(PathBuf::from).collect(),
        }
    }

    /// Whether the user named the paths (then finding nothing there is not good news).
    fn paths_named(&self) -> bool {
        self.paths.is_some()
    }
}

impl KindConfig for DhcpLeaseConfig {
    const NAME: &'static str = "dhcp_lease";

    fn defaults() -> KindDefaults {
        KindDefaults::new(60, 5)
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        for p in self.paths.iter().flatten() {
            if !p.get_ref().starts_with('/') {
                errors.push(
                    Some(p.span()),
                    Some(component),
                    format!("path {:?} is not absolute", p.get_ref()),
                    None,
                );
            }
        }
        if self.paths.as_ref().is_some_and(|p| p.is_empty()) {
            errors.push(
                Some(span),
                Some(component),
                "paths is an empty list: this probe would read nothing",
                Some("leave paths out to read the usual lease directories".into()),
            );
        }
    }

    fn host_warnings(
        &self,
        component: &str,
        _table: usize,
        warnings: &mut crate::config::error::Collector<'_>,
    ) {
        for p in self.paths.iter().flatten() {
            let path = Path::new(p.get_ref());
            if !path.is_absolute() {
                continue; // an error already
            }
            if let Err(e) = std::fs::metadata(path) {
                let what = if e.kind() == std::io::ErrorKind::NotFound {
                    "does not exist".to_string()
                } else {
                    format!("cannot be read ({e})")
                };
                warnings.push(
                    Some(p.span()),
                    Some(component),
                    format!(
                        "lease path {} {what} on this host: the probe will find no lease there and read unknown",
                        path.display()
                    ),
                    Some(
                        "check the spelling; leave `paths` out to read the usual lease directories"
                            .into(),
                    ),
                );
            }
        }
    }

    fn build(&self, _ctx: &super::BuildContext) -> Built {
        Built {
            probe: Arc::new(DhcpLeaseProbe {
                config: self.clone(),
            }),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}

/// One lease file as read from disk.
#[derive(Clone, Debug)]
pub struct LeaseFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// Its modification time, unix seconds.
    pub written: f64,
}

/// The interface a lease file's name implies: `dhclient.eth0.leases`, `dhclient-<uuid>-eth0.lease`,
/// `internal-<uuid>-eth0.lease`, or a networkd ifindex looked up in `ifindex_names`.
pub fn interface_from_name(path: &Path, ifindex_names: &BTreeMap<u32, String>) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if let Ok(index) = name.parse::<u32>() {
        return Some(
            ifindex_names
                .get(&index)
                .cloned()
                .unwrap_or_else(|| format!("ifindex {index}")),
        );
    }
    for prefix in ["internal-", "dhclient-", "dhclient6-"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let rest = rest.strip_suffix(".lease")?;
            // `<uuid>-<iface>`: a UUID is 36 characters.
            return rest.get(37..).filter(|s| !s.is_empty()).map(str::to_string);
        }
    }
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["dhclient", iface, "leases"] | ["dhclient6", iface, "leases"] => Some(iface.to_string()),
        _ => None,
    }
}

/// Reads the leases of one file (pure).
pub fn leases_of(
    file: &LeaseFile,
    ifindex_names: &BTreeMap<u32, String>,
) -> Result<Vec<Lease>, String> {
    let iface = interface_from_name(&file.path, ifindex_names);
    if file
        .text
        .lines()
        .any(|l| l.trim_start().starts_with("lease"))
        && file.text.contains('{')
    {
        return lease::parse_dhclient(&file.text, iface.as_deref());
    }
    let name = file.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let client = if name.starts_with("internal-") {
        Client::NetworkManager
    } else {
        Client::Networkd
    };
    let iface = iface.unwrap_or_else(|| name.to_string());
    Ok(
        lease::parse_key_value(&file.text, &iface, file.written, client)?
            .into_iter()
            .collect(),
    )
}

/// What one run found under the configured paths.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The lease files read.
    pub files: Vec<LeaseFile>,
    /// Files or directories that could not be read.
    pub errors: Vec<String>,
    /// Configured paths that do not exist.
    pub missing: Vec<PathBuf>,
}

/// Judges every lease found in `scan` at `now` (pure).
///
/// Finding no lease is `ok` only when the paths are the defaults (a host without DHCP). When
/// the user named the paths (or the interfaces), a path that does not exist, or no lease
/// where they said there would be one, reads `unknown`: the probe cannot tell whether the
/// lease is healthy, and a typo must not pass for "no DHCP here".
pub fn evaluate(
    config: &DhcpLeaseConfig,
    scan: &Scan,
    ifindex_names: &BTreeMap<u32, String>,
    now: f64,
) -> Observation {
    let mut leases: Vec<Lease> = Vec::new();
    let mut problems = Vec::new();
    if config.paths_named() {
        for m in &scan.missing {
            problems.push(format!("{} (named in paths) does not exist", m.display()));
        }
    }
    for f in &scan.files {
        match leases_of(f, ifindex_names) {
            Ok(found) => {
                for l in found {
                    // The newest record of an interface wins across files too.
                    if let Some(old) = leases.iter().position(|o| o.interface == l.interface) {
                        if l.expire.unwrap_or(f64::INFINITY)
                            >= leases[old].expire.unwrap_or(f64::INFINITY)
                        {
                            leases[old] = l;
                        }
                    } else {
                        leases.push(l);
                    }
                }
            }
            Err(e) => problems.push(format!(
                "cannot read the lease file {}: {e}",
                f.path.display()
            )),
        }
    }
    problems.extend(scan.errors.iter().cloned());
    leases.retain(|l| config.interfaces.is_empty() || config.interfaces.contains(&l.interface));
    leases.retain(|l| l.expire.is_none_or(|e| now - e <= config.forget_after()));
    leases.sort_by(|a, b| a.interface.cmp(&b.interface));
    let looked = looked_in(config, scan);
    for i in &config.interfaces {
        if !leases.iter().any(|l| &l.interface == i) {
            problems.push(format!(
                "no current DHCP lease for {i} (named in interfaces) {looked}"
            ));
        }
    }
    if leases.is_empty() && problems.is_empty() && config.paths_named() {
        problems.push(format!("no DHCP leases found {looked} (named in paths)"));
    }

    let mut status = if problems.is_empty() {
        Status::Ok
    } else {
        Status::Unknown
    };
    let mut lines = Vec::new();
    let mut samples = Vec::new();
    for l in &leases {
        let v = lease::judge(l, now, config.critical_before());
        status = status.max(match v.level {
            0 => Status::Ok,
            1 => Status::Warning,
            _ => Status::Critical,
        });
        lines.push((v.level, v.message));
        let lab = labels([("interface", l.interface.as_str())]);
        if let Some(r) = l.renew {
            samples.push(Sample::new("dhcp.renew_in_seconds", &lab, r - now));
        }
        if let Some(e) = l.expire {
            samples.push(Sample::new("dhcp.expires_in_seconds", &lab, e - now));
        }
    }
    // The worst first: a message's first line is what a page shows. Leases in trouble, then
    // what could not be read or found, then healthy leases.
    lines.sort_by_key(|(level, _)| std::cmp::Reverse(*level));
    let healthy = lines
        .iter()
        .position(|(level, _)| *level == 0)
        .unwrap_or(lines.len());
    let ok_lines = lines.split_off(healthy);
    let mut lines: Vec<String> = lines.into_iter().map(|(_, m)| m).collect();
    lines.extend(problems);
    lines.extend(ok_lines.into_iter().map(|(_, m)| m));
    let message = if lines.is_empty() {
        format!("no DHCP leases found {looked}")
    } else {
        lines.join("; ")
    };
    let mut obs = Observation::new(status, message);
    obs.samples = samples;
    obs
}

/// Where the probe looked, for messages: `in /a, /b` (the paths that exist), or
/// `(none of /a, /b exists)`.
fn looked_in(config: &DhcpLeaseConfig, scan: &Scan) -> String {
    let paths = config.paths();
    let existing: Vec<String> = paths
        .iter()
        .filter(|p| !scan.missing.contains(p))
        .map(|p| p.display().to_string())
        .collect();
    if existing.is_empty() {
        let all: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return format!("(none of {} exists)", all.join(", "));
    }
    format!("in {}", existing.join(", "))
}

/// The lease files under `paths` (bounded in number and size).
pub fn read_lease_files(paths: &[PathBuf]) -> Scan {
    let mut candidates = Vec::new();
    let mut scan = Scan::default();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let in_leases_dir = p.file_name().is_some_and(|n| n == "leases");
                let entries = match std::fs::read_dir(p) {
                    Ok(e) => e,
                    Err(e) => {
                        scan.errors
                            .push(format!("cannot list {}: {e}", p.display()));
                        continue;
                    }
                };
                let mut names: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                names.sort();
                for f in names {
                    let n = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if (in_leases_dir || n.ends_with(".lease") || n.ends_with(".leases"))
                        && f.is_file()
                    {
                        candidates.push(f);
                    }
                }
            }
            Ok(_) => candidates.push(p.clone()),
            // A client that is not installed has no directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => scan.missing.push(p.clone()),
            Err(e) => scan
                .errors
                .push(format!("cannot read {}: {e}", p.display())),
        }
    }
    for path in candidates.into_iter().take(MAX_FILES) {
        let read = || -> std::io::Result<LeaseFile> {
            use std::io::Read;
            let f = std::fs::File::open(&path)?;
            let written = f
                .metadata()?
                .modified()?
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let mut text = String::new();
            f.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
            Ok(LeaseFile {
                path: path.clone(),
                text,
                written,
            })
        };
        match read() {
            Ok(f) => scan.files.push(f),
            Err(e) => scan
                .errors
                .push(format!("cannot read {}: {e}", path.display())),
        }
    }
    scan
}

/// Interface names by index, from `/sys/class/net/*/ifindex` (for networkd's lease names).
pub fn ifindex_names() -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return out;
    };
    for e in dir.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(t) = std::fs::read_to_string(e.path().join("ifindex"))
            && let Ok(i) = t.trim().parse::<u32>()
        {
            out.insert(i, name);
        }
    }
    out
}

/// The probe.
pub struct DhcpLeaseProbe {
    config: DhcpLeaseConfig,
}

#[async_trait]
impl Probe for DhcpLeaseProbe {
    async fn run(&self) -> Observation {
        let started = Instant::now();
        let config = self.config.clone();
        let mut obs = tokio::task::spawn_blocking(move || {
            let scan = read_lease_files(&config.paths());
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            evaluate(&config, &scan, &ifindex_names(), now)
        })
        .await
        .unwrap_or_else(|e| {
            Observation::new(Status::Unknown, format!("dhcp_lease probe failed: {e}"))
        });
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}
