//! `lookout lint net`: network hooks and interface configuration that break when it matters.
//!
//! It reads ifupdown's `/etc/network/interfaces` (following `source` and `source-directory`),
//! the dhclient hook directories, NetworkManager's dispatcher scripts and systemd-networkd's
//! `.network` units, and reports as `FILE:LINE: message`:
//! - a hook that calls a program by bare name which the hook's runner will not find on the
//!   PATH it gives hooks (naming the absolute path that works). The PATH each runner gives:
//!   - ifupdown (Debian `ifupdown`, `execute.c`) runs `pre-up`/`up`/`post-up`/`down`/
//!     `pre-down`/`post-down` lines with `/bin/sh -c` and a fixed
//!     `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`; but `ifupdown2`
//!     (`addons/usercmds.py`) and busybox `ifup` pass on the PATH of whoever started them
//!     (cron gives `/usr/bin:/bin`). The PATH is therefore not knowable from the file, and
//!     bare names of programs that live in an sbin directory (here, or on other common
//!     systems: `ip` is `/usr/sbin/ip` on Fedora and RHEL) are reported;
//!   - dhclient (ISC, `client/dhclient.c` `script_go`, `CLIENT_PATH` from
//!     `client/Makefile.am`) gives `dhclient-script` `PATH=<sbindir>:/sbin:/bin:/usr/sbin:/usr/bin`;
//!     Debian's `dhclient-script` *sources* the hooks that `run-parts --list` names;
//!   - NetworkManager's dispatcher (`nm-dispatcher-utils.c`) passes on its own PATH, which
//!     systemd sets for the service: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin`;
//!   - a script that sets `PATH=` itself is checked against the PATH it sets.
//! - hooks their runner silently skips: dispatcher scripts that are not executable, not owned
//!   by root or writable by group or others (NetworkManager-dispatcher(8)); dhclient hooks
//!   whose names `run-parts` rejects (anything but letters, digits, `_` and `-`); scripts run
//!   from an ifupdown line that are not executable;
//! - interfaces configured by DHCP (`iface X inet dhcp`, `DHCP=` in a `.network` unit).

mod runner;
pub mod shell;

use runner::{Kind, Runner, SEARCH_DIRS, check_program};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One finding, printed as `FILE:LINE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when the finding is about the whole file).
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// At most this many files are read, each at most 1 MiB.
const MAX_FILES: usize = 1000;
const MAX_BYTES: u64 = 1 << 20;
/// The lint's state: findings so far and files already read.
struct Linter {
    findings: Vec<Finding>,
    seen: BTreeSet<PathBuf>,
    queue: Vec<(PathBuf, Kind)>,
}

fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(MAX_BYTES).read_to_end(&mut bytes)?;
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(text)
}

/// `run-parts` accepts only these names (Debian's default, without `--lsbsysinit`).
fn run_parts_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Names that are meant to be skipped (package-manager and editor left-overs).
fn leftover_name(name: &str) -> bool {
    name.ends_with('~')
        || name.starts_with('.')
        || [
            ".dpkg-old",
            ".dpkg-dist",
            ".dpkg-new",
            ".dpkg-tmp",
            ".bak",
            ".orig",
            ".disabled",
            ".old",
            ".save",
            ".swp",
            ".rpmsave",
            ".rpmnew",
        ]
        .iter()
        .any(|s| name.ends_with(s))
        || name.contains(".ucf-")
}

/// Files in `dir` whose names match a `*`/`?` pattern, sorted.
fn glob_dir(dir: &Path, pattern: &str) -> Vec<PathBuf> {
    fn matches(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => matches(&p[1..], s) || (!s.is_empty() && matches(p, &s[1..])),
            (Some('?'), Some(_)) => matches(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n: Vec<char> = e.file_name().to_string_lossy().chars().collect();
                    n.first() != Some(&'.') && matches(&p, &n)
                })
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

impl Linter {
    fn push(&mut self, file: &Path, line: usize, message: impl Into<String>) {
        self.findings.push(Finding {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    fn run(&mut self) {
        let mut i = 0;
        while i < self.queue.len() && self.seen.len() < MAX_FILES {
            let (path, kind) = self.queue[i].clone();
            i += 1;
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if !self.seen.insert(key) {
                continue;
            }
            let text = match read_text(&path) {
                Ok(t) => t,
                Err(e) => {
                    self.push(&path, 0, format!("cannot read: {e}"));
                    continue;
                }
            };
            match kind {
                Kind::Interfaces => self.interfaces(&path, &text),
                Kind::Networkd => self.networkd(&path, &text),
                Kind::Hook(r) => self.hook(&path, &text, r),
            }
        }
    }

    fn interfaces(&mut self, path: &Path, text: &str) {
        let base = path.parent().unwrap_or(Path::new("/"));
        let mut logical: Vec<(usize, String)> = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let (n, mut t) = pending.take().unwrap_or((i + 1, String::new()));
            if let Some(c) = raw.strip_suffix('\\') {
                t.push_str(c);
                pending = Some((n, t));
                continue;
            }
            t.push_str(raw);
            logical.push((n, t));
        }
        logical.extend(pending);
        for (n, line) in logical {
            let t = line.trim();
            if t.starts_with('#') || t.is_empty() {
                continue;
            }
            let (key, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            let rest = rest.trim();
            match key {
                "iface" => {
                    let w: Vec<&str> = rest.split_whitespace().collect();
                    if w.get(2) == Some(&"dhcp") {
                        self.push(path, n, dhcp_message(w[0]));
                    }
                }
                "source" => {
                    let p = if rest.starts_with('/') {
                        PathBuf::from(rest)
                    } else {
                        base.join(rest)
                    };
                    let dir = p.parent().unwrap_or(Path::new("/")).to_path_buf();
                    let pattern = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    for f in glob_dir(&dir, &pattern) {
                        self.queue.push((f, Kind::Interfaces));
                    }
                }
                "source-directory" => {
                    let d = if rest.starts_with('/') {
                        PathBuf::from(rest)
                    } else {
                        base.join(rest)
                    };
                    for f in glob_dir(&d, "*") {
                        if f.file_name()
                            .is_some_and(|n| run_parts_name(&n.to_string_lossy()))
                        {
                            self.queue.push((f, Kind::Interfaces));
                        }
                    }
                }
                "pre-up" | "up" | "post-up" | "down" | "pre-down" | "post-down" => {
                    let cmd = rest.strip_prefix('-').unwrap_or(rest);
                    self.hook_line(path, n, key, cmd);
                }
                _ => {}
            }
        }
    }

    /// One ifupdown hook line: its bare command words, and a script it runs by path.
    fn hook_line(&mut self, path: &Path, n: usize, key: &str, cmd: &str) {
        for w in shell::command_words(cmd) {
            if let Some(m) = check_program(&w.name, Runner::Ifupdown, None, false, key) {
                self.push(path, n, m);
            }
        }
        let first = cmd.split_whitespace().next().unwrap_or("");
        let script = Path::new(first);
        if first.starts_with('/')
            && !SEARCH_DIRS
                .iter()
                .any(|d| script.parent() == Some(Path::new(d)))
            && let Ok(m) = std::fs::metadata(script)
            && m.is_file()
        {
            if m.permissions().mode() & 0o111 == 0 {
                self.push(
                    path,
                    n,
                    format!("{key} runs {first}, which is not executable; chmod 755 {first}"),
                );
            } else {
                self.queue
                    .push((script.to_path_buf(), Kind::Hook(Runner::Ifupdown)));
            }
        }
    }

    fn networkd(&mut self, path: &Path, text: &str) {
        let mut section = String::new();
        let mut names: Vec<String> = Vec::new();
        let mut dhcp: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.starts_with('#') || t.starts_with(';') || t.is_empty() {
                continue;
            }
            if t.starts_with('[') {
                section = t.trim_matches(['[', ']']).to_string();
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                continue;
            };
            match (section.as_str(), k.trim()) {
                ("Match", "Name") => names.extend(v.split_whitespace().map(str::to_string)),
                ("Network", "DHCP") => dhcp = Some((i + 1, v.trim().to_ascii_lowercase())),
                _ => {}
            }
        }
        if let Some((n, v)) = dhcp
            && matches!(
                v.as_str(),
                "yes" | "true" | "on" | "1" | "ipv4" | "ipv6" | "both"
            )
        {
            let who = if names.is_empty() {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                names.join(", ")
            };
            self.push(path, n, dhcp_message(&who));
        }
    }

    fn hook(&mut self, path: &Path, text: &str, runner: Runner) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match runner {
            Runner::NetworkManager => {
                if let Ok(m) = std::fs::metadata(path) {
                    let mode = m.permissions().mode();
                    let file = path.display();
                    if mode & 0o100 == 0 {
                        self.push(path, 0, format!("not executable, so NetworkManager-dispatcher silently skips it; chmod 755 {file}"));
                    }
                    if mode & 0o022 != 0 {
                        self.push(path, 0, format!("writable by group or others, so NetworkManager-dispatcher refuses to run it; chmod go-w {file}"));
                    }
                    if m.uid() != 0 {
                        self.push(path, 0, format!("not owned by root, so NetworkManager-dispatcher refuses to run it; chown root {file}"));
                    }
                }
            }
            Runner::Dhclient => {
                if !run_parts_name(&name) {
                    let suggestion: String = name
                        .strip_suffix(".sh")
                        .unwrap_or(&name)
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                                c
                            } else {
                                '-'
                            }
                        })
                        .collect();
                    self.push(
                        path,
                        0,
                        format!(
                            "run-parts skips this name (only letters, digits, `_` and `-` are allowed), so dhclient-script never runs it; rename it to {suggestion}"
                        ),
                    );
                }
            }
            Runner::Ifupdown | Runner::Unknown => {}
        }
        if text.contains('\0') {
            return; // a binary: no shell words to read
        }
        let own = shell::own_path(text);
        let sourced = shell::sources_other_files(text);
        for w in shell::command_words(text) {
            if let Some(m) = check_program(&w.name, runner, own.as_ref(), sourced, "this hook") {
                self.push(path, w.line, m);
            }
        }
    }
}

fn dhcp_message(iface: &str) -> String {
    format!(
        "{iface} is configured by DHCP: a lease that expires can take its routes with it; prefer static addressing on servers"
    )
}

/// What a directory holds, from its name and place.
fn dir_kind(dir: &Path) -> Option<Kind> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let parent = dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if name == "dispatcher.d" || parent.as_deref() == Some("dispatcher.d") {
        return Some(Kind::Hook(Runner::NetworkManager));
    }
    if name.starts_with("dhclient") && name.ends_with("-hooks.d") {
        return Some(Kind::Hook(Runner::Dhclient));
    }
    if name == "interfaces.d" {
        return Some(Kind::Interfaces);
    }
    None
}

/// What a file is, from its name, place and content.
fn file_kind(path: &Path) -> Kind {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".network") {
        return Kind::Networkd;
    }
    if name == "interfaces" {
        return Kind::Interfaces;
    }
    if name == "dhclient-enter-hooks" || name == "dhclient-exit-hooks" {
        return Kind::Hook(Runner::Dhclient);
    }
    if let Some(k) = path.parent().and_then(dir_kind) {
        return k;
    }
    let text = read_text(path).unwrap_or_default();
    let first_words: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if first_words.iter().any(|w| {
        ["iface", "auto", "source", "source-directory", "mapping"].contains(w)
            || w.starts_with("allow-")
    }) {
        Kind::Interfaces
    } else if first_words
        .iter()
        .any(|w| *w == "[Match]" || *w == "[Network]")
    {
        Kind::Networkd
    } else {
        Kind::Hook(Runner::Unknown)
    }
}

/// Files directly in `dir` that a runner of `kind` would consider (sorted), skipping
/// sub-directories and left-overs.
fn dir_files(dir: &Path, kind: Option<Kind>) -> Vec<(PathBuf, Kind)> {
    let mut out: Vec<(PathBuf, Kind)> = glob_dir(dir, "*")
        .into_iter()
        .filter(|f| {
            let n = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !leftover_name(&n)
        })
        .filter_map(|f| {
            let k = match kind {
                Some(k) => k,
                None if f.extension().is_some_and(|e| e == "network") => Kind::Networkd,
                None if dir.file_name().is_some_and(|n| n == "network")
                    && dir.parent().is_some_and(|p| p.ends_with("systemd")) =>
                {
                    return None;
                }
                None => file_kind(&f),
            };
            Some((f, k))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Lints the given paths (a file by the kind its name, place or content shows; a directory:
/// each file in it), or the host's default network configuration when `paths` is empty.
pub fn lint(paths: &[PathBuf]) -> Vec<Finding> {
    if paths.is_empty() {
        return lint_default();
    }
    let mut l = Linter {
        findings: Vec::new(),
        seen: BTreeSet::new(),
        queue: Vec::new(),
    };
    for p in paths {
        if p.is_dir() {
            let files = dir_files(p, dir_kind(p));
            l.queue.extend(files);
        } else {
            l.queue.push((p.clone(), file_kind(p)));
        }
    }
    l.run();
    l.findings
}

/// Lints this host's network configuration: `/etc/network/interfaces` (and what it sources),
/// `/etc/dhcp/dhclient-{enter,exit}-hooks{,.d}`, `/etc/NetworkManager/dispatcher.d` (with
/// `pre-up.d` and `pre-down.d`) and `/etc/systemd/network/*.network`. Missing files are not
/// findings. Blocking file reads: call it from a blocking thread.
pub fn lint_default() -> Vec<Finding> {
    let mut l = Linter {
        findings: Vec::new(),
        seen: BTreeSet::new(),
        queue: Vec::new(),
    };
    let interfaces = Path::new("/etc/network/interfaces");
    if interfaces.is_file() {
        l.queue.push((interfaces.to_path_buf(), Kind::Interfaces));
    }
    for f in [
        "/etc/dhcp/dhclient-enter-hooks",
        "/etc/dhcp/dhclient-exit-hooks",
    ] {
        if Path::new(f).is_file() {
            l.queue
                .push((PathBuf::from(f), Kind::Hook(Runner::Dhclient)));
        }
    }
    for d in [
        "/etc/dhcp/dhclient-enter-hooks.d",
        "/etc/dhcp/dhclient-exit-hooks.d",
        "/etc/NetworkManager/dispatcher.d",
        "/etc/NetworkManager/dispatcher.d/pre-up.d",
        "/etc/NetworkManager/dispatcher.d/pre-down.d",
    ] {
        let d = Path::new(d);
        l.queue.extend(dir_files(d, dir_kind(d)));
    }
    let networkd = Path::new("/etc/systemd/network");
    l.queue.extend(
        glob_dir(networkd, "*.network")
            .into_iter()
            .map(|f| (f, Kind::Networkd)),
    );
    l.run();
    l.findings
}

/// A summary for the daemon's start-up warning alert, or `None` when there is nothing to say:
/// `"network configuration lint: 2 findings: FILE:LINE: …; FILE:LINE: …"`.
pub fn alert_message(findings: &[Finding]) -> Option<String> {
    if findings.is_empty() {
        return None;
    }
    let n = findings.len();
    let list: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
    Some(format!(
        "network configuration lint: {n} finding{}: {} (run `lookout lint net` for details)",
        if n == 1 { "" } else { "s" },
        list.join("; ")
    ))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
