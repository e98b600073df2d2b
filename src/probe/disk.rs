//! The `disk` probe: space, root reserve and inodes of every real filesystem, from statvfs.

use super::Probe;
use crate::config::values::{Dur, Size};
use crate::model::{Labels, Observation, Sample, Status};
use crate::rule::disk::{DiskRuleParams, samples};
use crate::rule::forecast::ForecastParams;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

/// Filesystem types that never hold data worth watching.
pub const PSEUDO_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "nfsd",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.gvfsd-fuse",
    "model_tools_unavailable",
];

/// `[[probe]] kind = "disk"`: which filesystems to watch and the thresholds of their rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Watch only these mount points (default: every real, writable filesystem). A listed
    /// mount point that is not mounted is critical.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Never watch these mount points.
    #[serde(default)]
    pub exclude_mounts: Vec<String>,
    /// Watch only these filesystem types.
    #[serde(default)]
    pub fs_types: Vec<String>,
    /// Never watch these filesystem types (added to the built-in pseudo-filesystem list).
    #[serde(default)]
    pub exclude_fs_types: Vec<String>,
    /// History the forecast fits. Default 6h.
    pub forecast_window: Option<Dur>,
    /// Less history than this gives no ETA. Default 30m.
    pub min_history: Option<Dur>,
    /// Warn when full within this. Default 24h.
    pub warning_within: Option<Dur>,
    /// Critical when full within this. Default 4h.
    pub critical_within: Option<Dur>,
    /// Warn when less is free for users. Default 5%.
    pub warning_free: Option<Size>,
    /// Critical when less is free for users. Default 3%.
    pub critical_free: Option<Size>,
    /// Warn when fewer inodes are free. Default 5%.
    pub inodes_warning_free: Option<Size>,
    /// Critical when fewer inodes are free. Default 3%.
    pub inodes_critical_free: Option<Size>,
}

impl crate::config::KindConfig for DiskConfig {
    const NAME: &'static str = "disk";

    fn defaults() -> crate::config::KindDefaults {
        crate::config::KindDefaults {
            recover_after: 3,
            for_: Dur::from_secs(300),
            ..crate::config::KindDefaults::new(60, 10)
        }
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        DiskConfig::validate(self, component, span, errors)
    }

    fn build(&self, _ctx: &super::BuildContext) -> super::Built {
        super::Built {
            probe: std::sync::Arc::new(DiskProbe::new(self.clone())),
            rules: Box::new(crate::rule::disk::DiskRules::new(self.rule_params())),
        }
    }
}

impl DiskConfig {
    /// The rule thresholds, defaults filled in.
    pub fn rule_params(&self) -> DiskRuleParams {
        let d = DiskRuleParams::default();
        let secs = |v: Option<Dur>, default: f64| v.map(Dur::secs).unwrap_or(default);
        DiskRuleParams {
            forecast: ForecastParams {
                window: secs(self.forecast_window, d.forecast.window),
                min_history: secs(self.min_history, d.forecast.min_history),
                ..d.forecast
            },
            warning_within: secs(self.warning_within, d.warning_within),
            critical_within: secs(self.critical_within, d.critical_within),
            warning_floor: self
                .warning_free
                .map(Size::to_floor)
                .unwrap_or(d.warning_floor),
            critical_floor: self
                .critical_free
                .map(Size::to_floor)
                .unwrap_or(d.critical_floor),
            inodes_warning_floor: self
                .inodes_warning_free
                .map(Size::to_floor)
                .unwrap_or(d.inodes_warning_floor),
            inodes_critical_floor: self
                .inodes_critical_free
                .map(Size::to_floor)
                .unwrap_or(d.inodes_critical_floor),
            release: d.release,
        }
    }

    /// Semantic checks (pure).
    pub fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        let p = self.rule_params();
        if p.critical_within > p.warning_within {
            errors.push(
                Some(span.clone()),
                Some(component),
                "critical_within is longer than warning_within",
                Some("critical should be the nearer horizon, e.g. 4h and 24h".into()),
            );
        }
        if p.forecast.min_history > p.forecast.window {
            errors.push(
                Some(span.clone()),
                Some(component),
                "min_history is longer than forecast_window",
                Some("the forecast can never have enough history; shorten min_history".into()),
            );
        }
        for m in self.mounts.iter().chain(&self.exclude_mounts) {
            if !m.starts_with('/') {
                errors.push(
                    Some(span.clone()),
                    Some(component),
                    format!("mount point {m:?} is not an absolute path"),
                    None,
                );
            }
        }
        if let (Some(w), Some(c)) = (self.warning_free, self.critical_free) {
            let worse = match (w, c) {
                (Size::Bytes(w), Size::Bytes(c)) => c > w,
                (Size::Percent(w), Size::Percent(c)) => c > w,
                _ => false,
            };
            if worse {
                errors.push(
                    Some(span),
                    Some(component),
                    "critical_free is larger than warning_free",
                    Some("critical should fire with less space left than warning".into()),
                );
            }
        }
    }
}

/// One mounted filesystem.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    /// Mount point.
    pub point: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Source device.
    pub source: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Parses `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                point: unescape(l.get(4)?),
                read_only: l.get(5)?.split(',').any(|o| o == "ro"),
                fs_type: r.first()?.to_string(),
                source: unescape(r.get(1)?),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The probe.
#[derive(Clone)]
pub struct DiskProbe {
    config: DiskConfig,
    /// The filesystems the last run watched (mount point → type), so one that disappears is
    /// named on the timeline instead of silently dropped.
    watched: std::sync::Arc<std::sync::Mutex<BTreeMap<String, String>>>,
}

impl DiskProbe {
    /// A probe for this configuration.
    pub fn new(config: DiskConfig) -> DiskProbe {
        DiskProbe {
            config,
            watched: Default::default(),
        }
    }

    /// Events for the filesystems the last run watched that are gone from `selected` (those
    /// listed in `mounts` are reported as missing instead), and remembers `selected`.
    fn note_vanished(&self, selected: &[&Mount]) -> Vec<String> {
        let now: BTreeMap<String, String> = selected
            .iter()
            .map(|m| (m.point.clone(), m.fs_type.clone()))
            .collect();
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        let gone = watched
            .iter()
            .filter(|(p, _)| !now.contains_key(*p) && !self.config.mounts.contains(p))
            .map(|(p, t)| {
                format!("filesystem {p} ({t}) is no longer mounted; lookout stopped watching it")
            })
            .collect();
        *watched = now;
        gone
    }

    /// The filesystems this probe watches among `mounts`.
    pub fn select<'m>(&self, mounts: &'m [Mount]) -> Vec<&'m Mount> {
        let c = &self.config;
        let mut seen_sources = BTreeSet::new();
        let mut out = Vec::new();
        for m in mounts {
            let listed = c.mounts.contains(&m.point);
            if !c.mounts.is_empty() && !listed {
                continue;
            }
            if c.exclude_mounts.contains(&m.point) || c.exclude_fs_types.contains(&m.fs_type) {
                continue;
            }
            if !listed {
                if PSEUDO_FS_TYPES.contains(&m.fs_type.as_str()) || m.read_only {
                    continue;
                }
                if !c.fs_types.is_empty() && !c.fs_types.contains(&m.fs_type) {
                    continue;
                }
                // Bind mounts of one device would count the same space twice.
                if m.source.starts_with('/') && !seen_sources.insert(m.source.clone()) {
                    continue;
                }
            }
            if out.iter().any(|o: &&Mount| o.point == m.point) {
                continue;
            }
            out.push(m);
        }
        out
    }

    fn measure(&self) -> Observation {
        let started = Instant::now();
        let text = match std::fs::read_to_string("/proc/self/mountinfo") {
            Ok(t) => t,
            Err(e) => {
                return Observation::failed(
                    Status::Unknown,
                    format!("cannot read /proc/self/mountinfo: {e}"),
                );
            }
        };
        let mounts = parse_mountinfo(&text);
        let selected = self.select(&mounts);
        let mut obs = Observation::new(Status::Ok, format!("{} filesystems", selected.len()));
        obs.events = self.note_vanished(&selected);
        let mut problems = Vec::new();
        for missing in self
            .config
            .mounts
            .iter()
            .filter(|p| !selected.iter().any(|m| &m.point == *p))
        {
            problems.push(format!("{missing}: expected but not mounted"));
            obs.status = Status::Critical;
            // Its space cannot be measured: its alerts are stale, not resolved.
            obs.failed = true;
        }
        for m in selected {
            match statvfs_samples(m) {
                Ok(samples) => obs.samples.extend(samples),
                Err(e) => {
                    problems.push(format!("{}: statvfs failed: {e}", m.point));
                    obs.status = obs.status.max(Status::Unknown);
                    obs.failed = true;
                }
            }
        }
        if !problems.is_empty() {
            obs.message = problems.join("\n");
        }
        obs.duration_seconds = started.elapsed().as_secs_f64();
        obs
    }
}

/// The samples of one filesystem, on both views (all blocks and the unprivileged view).
pub fn statvfs_samples(m: &Mount) -> std::io::Result<Vec<Sample>> {
    let st = rustix::fs::statvfs(Path::new(&m.point))?;
    let frsize = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    } as f64;
    let size = st.f_blocks as f64 * frsize;
    let free = st.f_bfree as f64 * frsize;
    let avail = st.f_bavail as f64 * frsize;
    let labels: Labels = [
        ("mount".to_string(), m.point.clone()),
        ("fstype".to_string(), m.fs_type.clone()),
    ]
    .into();
    Ok(vec![
        Sample::new(samples::SIZE, &labels, size),
        Sample::new(samples::AVAIL, &labels, avail),
        Sample::new(samples::FREE, &labels, free),
        Sample::new(samples::RESERVED, &labels, (free - avail).max(0.0)),
        Sample::new(samples::USED, &labels, size - free),
        Sample::new(samples::INODES_TOTAL, &labels, st.f_files as f64),
        Sample::new(samples::INODES_AVAIL, &labels, st.f_favail as f64),
    ])
}

#[async_trait]
impl Probe for DiskProbe {
    async fn run(&self) -> Observation {
        let me = self.clone();
        // statvfs can block for as long as an NFS server is gone: keep it off the runtime.
        tokio::task::spawn_blocking(move || me.measure())
            .await
            .unwrap_or_else(|e| {
                Observation::failed(Status::Unknown, format!("disk probe failed: {e}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
24 22 8:2 / /var/lib/post\\040gres rw,relatime - ext4 /dev/vdb rw
25 22 8:2 / /srv/bind rw,relatime - ext4 /dev/vdb rw
26 22 8:3 / /mnt/cdrom ro,relatime - ext4 /dev/vdc ro
27 22 0:30 / /run rw - tmpfs tmpfs rw
";

    #[test]
    fn a_discovered_filesystem_that_disappears_is_an_event_once() {
        let probe = DiskProbe::new(DiskConfig::default());
        let all = parse_mountinfo(INFO);
        assert!(probe.note_vanished(&probe.select(&all)).is_empty());
        let fewer: Vec<Mount> = all
            .iter()
            .filter(|m| m.point != "/var/lib/post gres")
            .cloned()
            .collect();
        assert_eq!(
            probe.note_vanished(&probe.select(&fewer)),
            [
                "filesystem /var/lib/post gres (ext4) is no longer mounted; lookout stopped watching it"
            ]
        );
        assert!(
            probe.note_vanished(&probe.select(&fewer)).is_empty(),
            "said once"
        );
    }

    #[test]
    fn mountinfo_parses_escapes_and_types() {
        let m = parse_mountinfo(INFO);
        assert_eq!(m.len(), 6);
        assert_eq!(m[2].point, "/var/lib/post gres");
        assert_eq!(m[1].fs_type, "proc");
        assert!(m[4].read_only);
    }

    #[test]
    fn selection_skips_pseudo_readonly_and_bind_mounts() {
        let m = parse_mountinfo(INFO);
        let p = DiskProbe::new(DiskConfig::default());
        let points: Vec<&str> = p.select(&m).iter().map(|m| m.point.as_str()).collect();
        assert_eq!(points, vec!["/", "/var/lib/post gres"]);
        let p = DiskProbe::new(DiskConfig {
            mounts: vec!["/run".into()],
            ..Default::default()
        });
        let points: Vec<&str> = p.select(&m).iter().map(|m| m.point.as_str()).collect();
        assert_eq!(
            points,
            vec!["/run"],
            "a listed mount is watched whatever its type"
        );
        let p = DiskProbe::new(DiskConfig {
            exclude_mounts: vec!["/".into()],
            ..Default::default()
        });
        assert_eq!(p.select(&m).len(), 1);
    }

    #[test]
    fn reserved_is_free_minus_avail_on_the_real_root() {
        let m = Mount {
            point: "/".into(),
            fs_type: "ext4".into(),
            source: "/dev/root".into(),
            read_only: false,
        };
        let s = statvfs_samples(&m).unwrap();
        let get = |n: &str| s.iter().find(|x| x.name == n).unwrap().value;
        assert_eq!(
            get(samples::RESERVED),
            get(samples::FREE) - get(samples::AVAIL)
        );
        assert!(get(samples::SIZE) > 0.0);
    }
}
