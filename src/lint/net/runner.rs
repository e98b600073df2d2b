//! Who runs a hook, the PATH it gives it, and whether a program called by bare name is found.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The directories searched for the absolute path to recommend, most portable first
/// (`/sbin/ip` works on merged-/usr and split layouts alike).
pub(super) const SEARCH_DIRS: &[&str] = &[
    "/sbin",
    "/bin",
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

/// Programs that live in an sbin directory on at least one common distribution even where
/// this host has them in a bin directory (Debian ships `/bin/ip`; Fedora `/usr/sbin/ip`).
const SBIN_ON_SOME_SYSTEMS: &[&str] = &[
    "arp",
    "bridge",
    "brctl",
    "conntrack",
    "dhclient",
    "ebtables",
    "ethtool",
    "ifconfig",
    "ifdown",
    "ifenslave",
    "ifup",
    "ip",
    "ip6tables",
    "ip6tables-restore",
    "ipset",
    "iptables",
    "iptables-restore",
    "iptables-save",
    "iw",
    "iwconfig",
    "mii-tool",
    "modprobe",
    "nft",
    "resolvconf",
    "route",
    "ss",
    "sysctl",
    "tc",
    "vconfig",
    "wg",
];

/// Who runs a hook, which decides the PATH it gets and what makes it skip a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Runner {
    /// ifupdown, ifupdown2 or busybox ifup (PATH not knowable).
    Ifupdown,
    /// dhclient-script (sources the hook).
    Dhclient,
    /// NetworkManager-dispatcher.
    NetworkManager,
    /// Unknown runner (PATH not knowable).
    Unknown,
}

impl Runner {
    /// The PATH the runner gives hooks, where it is knowable, and who that is.
    pub(super) fn path(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            Runner::Dhclient => Some((
                &["/sbin", "/bin", "/usr/sbin", "/usr/bin"],
                "dhclient gives its hooks",
            )),
            Runner::NetworkManager => Some((
                &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"],
                "NetworkManager's dispatcher gives its scripts",
            )),
            Runner::Ifupdown | Runner::Unknown => None,
        }
    }
}

/// What a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// ifupdown's interfaces(5).
    Interfaces,
    /// A systemd-networkd `.network` unit.
    Networkd,
    /// A hook script of a runner.
    Hook(Runner),
}

/// Whether `dir/name` is an executable file.
pub(super) fn executable_at(dir: &str, name: &str) -> bool {
    std::fs::metadata(Path::new(dir).join(name))
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The finding for a program called by bare name, if any. `context` is e.g. `post-up` or
/// `this hook`; `own_path` is the PATH the script sets itself.
pub(super) fn check_program(
    name: &str,
    runner: Runner,
    own_path: Option<&(Vec<String>, bool)>,
    may_be_sourced_function: bool,
    context: &str,
) -> Option<String> {
    let found: Vec<&str> = SEARCH_DIRS
        .iter()
        .copied()
        .filter(|d| executable_at(d, name))
        .collect();
    let Some(first) = found.first() else {
        if may_be_sourced_function {
            return None;
        }
        return Some(format!(
            "{context} calls `{name}`, which is not installed in any of {}; install it or call it by its absolute path",
            SEARCH_DIRS.join(", ")
        ));
    };
    let recommended = format!("{first}/{name}");
    let known: Option<(Vec<String>, String)> = match (own_path, runner.path()) {
        (Some((dirs, keeps)), runner_path) => {
            let mut d = dirs.clone();
            match (keeps, runner_path) {
                (true, Some((rp, _))) => d.extend(rp.iter().map(|s| s.to_string())),
                (true, None) => return unknowable(name, &found, &recommended, context),
                (false, _) => {}
            }
            Some((d, "this script sets itself".to_string()))
        }
        (None, Some((rp, who))) => {
            Some((rp.iter().map(|s| s.to_string()).collect(), who.to_string()))
        }
        (None, None) => None,
    };
    match known {
        Some((dirs, who)) => {
            if dirs.iter().any(|d| executable_at(d, name)) {
                None
            } else {
                Some(format!(
                    "{context} calls `{name}` by bare name, which is not on the PATH {who} ({}); use {recommended}",
                    dirs.join(":")
                ))
            }
        }
        None => unknowable(name, &found, &recommended, context),
    }
}

/// The rule where the runner's PATH is not knowable: report programs that live in sbin.
fn unknowable(name: &str, found: &[&str], recommended: &str, context: &str) -> Option<String> {
    let why = if SBIN_ON_SOME_SYSTEMS.contains(&name) {
        format!("`{name}` is in sbin on many systems")
    } else if found.iter().all(|d| d.ends_with("sbin")) {
        format!("`{name}` is only in sbin directories here")
    } else {
        return None;
    };
    Some(format!(
        "{context} calls `{name}` by bare name; hooks get whatever PATH their runner sets \
         (ifupdown2 and busybox ifup pass on the caller's, e.g. cron's /usr/bin:/bin) and {why}; use {recommended}"
    ))
}
