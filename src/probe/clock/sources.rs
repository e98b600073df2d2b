//! Default time servers: the `server`/`pool`/`peer` lines of chrony and ntpd configuration, and
//! systemd-timesyncd's `NTP=` (or, when that is empty, `FallbackNTP=`).
//!
//! The parsers are pure; [`read_servers`] reads the files (blocking: call it off the runtime).

use std::path::{Path, PathBuf};

/// Where the host's time daemons keep their configuration, read when `servers` is empty.
pub const DEFAULT_CONFIG_FILES: &[&str] = &[
    "/etc/chrony/chrony.conf",
    "/etc/chrony.conf",
    "/etc/ntp.conf",
    "/etc/ntpsec/ntp.conf",
    "/etc/systemd/timesyncd.conf",
];

/// How deep `include`/`confdir` may nest before we stop following them (loops end here).
const MAX_DEPTH: usize = 4;

/// What a chrony/ntpd file says: servers, and other files it pulls in.
#[derive(Debug, Default, PartialEq)]
pub struct NtpFile {
    /// Hosts of `server`, `pool` and `peer` lines, in order.
    pub servers: Vec<String>,
    /// chrony `confdir` directories (their `*.conf` files are read).
    pub confdirs: Vec<String>,
    /// chrony `sourcedir` directories (their `*.sources` files are read).
    pub sourcedirs: Vec<String>,
    /// chrony `include` patterns and ntpd `includefile` paths.
    pub includes: Vec<String>,
}

/// Parses chrony or ntpd configuration (both write `server HOST [options]`).
pub fn parse_ntp_conf(text: &str) -> NtpFile {
    let mut out = NtpFile::default();
    for line in text.lines() {
        // chrony comment lines start with `#`, `!`, `;` or `%`; ntpd comments run from `#`.
        let line = line.trim_start();
        if line.starts_with(['!', ';', '%']) {
            continue;
        }
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        let (Some(directive), Some(arg)) = (words.next(), words.next()) else {
            continue;
        };
        match directive.to_ascii_lowercase().as_str() {
            // ntpd reference clocks are pseudo-addresses 127.127.t.u, not servers to ask.
            "server" | "pool" | "peer" if !arg.starts_with("127.127.") => {
                out.servers.push(arg.to_string())
            }
            "confdir" => out
                .confdirs
                .extend(std::iter::once(arg).chain(words).map(String::from)),
            "sourcedir" => out
                .sourcedirs
                .extend(std::iter::once(arg).chain(words).map(String::from)),
            "include" | "includefile" => out.includes.push(arg.to_string()),
            _ => {}
        }
    }
    out
}

/// Applies one systemd-timesyncd file to the `NTP=` and `FallbackNTP=` lists, with systemd's
/// rules: assignments append, an empty assignment resets the list; only `[Time]` counts.
pub fn apply_timesyncd(text: &str, ntp: &mut Vec<String>, fallback: &mut Vec<String>) {
    let mut in_time = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            in_time = line == "[Time]";
            continue;
        }
        if !in_time {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let list = match key.trim() {
            "NTP" => &mut *ntp,
            "FallbackNTP" => &mut *fallback,
            _ => continue,
        };
        if value.trim().is_empty() {
            list.clear();
        } else {
            list.extend(value.split_whitespace().map(String::from));
        }
    }
}

/// Whether a file is systemd-timesyncd configuration rather than chrony/ntpd.
fn is_timesyncd(path: &Path, text: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("timesyncd"))
        || text.lines().any(|l| l.trim() == "[Time]")
}

/// The servers named in these files (missing files are skipped), deduplicated in order, and the
/// files that named at least one.
pub fn read_servers(files: &[PathBuf]) -> (Vec<String>, Vec<PathBuf>) {
    let mut servers = Vec::new();
    let mut used = Vec::new();
    for file in files {
        let Some(text) = read_regular(file) else {
            continue;
        };
        let found = if is_timesyncd(file, &text) {
            timesyncd_servers(file, &text)
        } else {
            ntp_servers(&text, 0)
        };
        if !found.is_empty() {
            used.push(file.clone());
        }
        for s in found {
            if !servers.contains(&s) {
                servers.push(s);
            }
        }
    }
    (servers, used)
}

/// `NTP=` of the file and its `FILE.d/*.conf` drop-ins, or `FallbackNTP=` when that is empty.
fn timesyncd_servers(file: &Path, text: &str) -> Vec<String> {
    let (mut ntp, mut fallback) = (Vec::new(), Vec::new());
    apply_timesyncd(text, &mut ntp, &mut fallback);
    let mut dropin_dir = file.as_os_str().to_owned();
    dropin_dir.push(".d");
    for dropin in list_dir(Path::new(&dropin_dir), "", ".conf") {
        if let Some(t) = read_regular(&dropin) {
            apply_timesyncd(&t, &mut ntp, &mut fallback);
        }
    }
    if ntp.is_empty() { fallback } else { ntp }
}

/// The servers of a chrony/ntpd file and of the files it pulls in.
fn ntp_servers(text: &str, depth: usize) -> Vec<String> {
    let parsed = parse_ntp_conf(text);
    let mut out = parsed.servers;
    if depth >= MAX_DEPTH {
        return out;
    }
    let mut more: Vec<PathBuf> = Vec::new();
    for dir in &parsed.confdirs {
        more.extend(list_dir(Path::new(dir), "", ".conf"));
    }
    for dir in &parsed.sourcedirs {
        more.extend(list_dir(Path::new(dir), "", ".sources"));
    }
    for pattern in &parsed.includes {
        more.extend(expand_glob(pattern));
    }
    for path in more {
        if let Some(t) = read_regular(&path) {
            out.extend(ntp_servers(&t, depth + 1));
        }
    }
    out
}

/// A regular file's text (a FIFO or device under a config path would block the read forever).
fn read_regular(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Files in `dir` whose names start with `prefix` and end with `suffix`, sorted by name.
fn list_dir(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.len() >= prefix.len() + suffix.len()
                    && n.starts_with(prefix)
                    && n.ends_with(suffix)
            })
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// A path, or a pattern with one `*` in its last component (`/etc/chrony/conf.d/*.conf`).
fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match (name.split_once('*'), path.parent()) {
        (Some((prefix, suffix)), Some(dir)) if !suffix.contains('*') => {
            list_dir(dir, prefix, suffix)
        }
        (None, _) => vec![path.to_path_buf()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_conf_lines() {
        let cases: &[(&str, &[&str])] = &[
            ("server ntp1.example iburst\n", &["ntp1.example"]),
            (
                "pool 2.debian.pool.ntp.org iburst maxsources 4",
                &["2.debian.pool.ntp.org"],
            ),
            ("  SERVER 10.0.0.1 # comment\n", &["10.0.0.1"]),
            ("# server commented.example\n! server bang.example", &[]),
            ("server 127.127.1.0\nfudge 127.127.1.0 stratum 10", &[]),
            ("server\n", &[]),
            ("peer peer.example\nrestrict default kod", &["peer.example"]),
            (
                "server [::1]:123\nserver fe80::1%eth0",
                &["[::1]:123", "fe80::1%eth0"],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_ntp_conf(text).servers, *want, "{text:?}");
        }
        let p = parse_ntp_conf(
            "confdir /etc/chrony/conf.d\nsourcedir /run/chrony-dhcp /etc/chrony/sources.d\ninclude /etc/x/*.conf\nincludefile /etc/ntp.extra\n",
        );
        assert_eq!(p.confdirs, ["/etc/chrony/conf.d"]);
        assert_eq!(p.sourcedirs, ["/run/chrony-dhcp", "/etc/chrony/sources.d"]);
        assert_eq!(p.includes, ["/etc/x/*.conf", "/etc/ntp.extra"]);
    }

    #[test]
    fn timesyncd_append_and_reset() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["[Time]\nNTP=a b\n"], &["a", "b"], &[]),
            (&["[Time]\n#NTP=\nFallbackNTP=f1 f2\n"], &[], &["f1", "f2"]),
            (&["[Time]\nNTP=a\n", "[Time]\nNTP=b\n"], &["a", "b"], &[]),
            (&["[Time]\nNTP=a\n", "[Time]\nNTP=\nNTP=c\n"], &["c"], &[]),
            (&["[Other]\nNTP=x\n[Time]\nNTP = y\n"], &["y"], &[]),
        ];
        for (files, want_ntp, want_fallback) in cases {
            let (mut ntp, mut fb) = (Vec::new(), Vec::new());
            for f in *files {
                apply_timesyncd(f, &mut ntp, &mut fb);
            }
            assert_eq!(ntp, *want_ntp, "{files:?}");
            assert_eq!(fb, *want_fallback, "{files:?}");
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/clock")
            .join(name)
    }

    #[test]
    fn debian_defaults_from_fixtures() {
        let (servers, used) = read_servers(&[fixture("chrony.conf")]);
        assert_eq!(servers, ["2.debian.pool.ntp.org"]);
        assert_eq!(used.len(), 1);
        let (servers, _) = read_servers(&[fixture("ntp.conf")]);
        assert_eq!(
            servers,
            [
                "0.debian.pool.ntp.org",
                "1.debian.pool.ntp.org",
                "ntp.example.net"
            ]
        );
        let (servers, _) = read_servers(&[fixture("timesyncd.conf")]);
        assert_eq!(servers, ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"]);
    }

    #[test]
    fn chrony_dirs_timesyncd_dropins_missing_files_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("conf.d")).unwrap();
        std::fs::create_dir_all(d.join("sources.d")).unwrap();
        std::fs::write(
            d.join("conf.d/10-site.conf"),
            "server site.example iburst\n",
        )
        .unwrap();
        std::fs::write(d.join("conf.d/ignored.txt"), "server no.example\n").unwrap();
        std::fs::write(d.join("sources.d/a.sources"), "pool pool.example\n").unwrap();
        std::fs::write(d.join("extra.conf"), "server extra.example\n").unwrap();
        let chrony = d.join("chrony.conf");
        std::fs::write(
            &chrony,
            format!(
                "server main.example\nconfdir {0}/conf.d\nsourcedir {0}/sources.d\ninclude {0}/extra*\n",
                d.display()
            ),
        )
        .unwrap();
        let ts = d.join("timesyncd.conf");
        std::fs::write(&ts, "[Time]\nNTP=main.example\n").unwrap();
        std::fs::create_dir_all(d.join("timesyncd.conf.d")).unwrap();
        std::fs::write(
            d.join("timesyncd.conf.d/50-local.conf"),
            "[Time]\nNTP=\nNTP=local.example main.example\n",
        )
        .unwrap();
        // A file that includes itself stops at the depth limit instead of looping.
        let looping = d.join("loop.conf");
        std::fs::write(
            &looping,
            format!("server loop.example\ninclude {}\n", looping.display()),
        )
        .unwrap();
        let (servers, used) = read_servers(&[
            d.join("missing.conf"),
            chrony.clone(),
            ts.clone(),
            looping.clone(),
        ]);
        assert_eq!(
            servers,
            [
                "main.example",
                "site.example",
                "pool.example",
                "extra.example",
                "local.example",
                "loop.example"
            ]
        );
        assert_eq!(used, [chrony, ts, looping]);
    }
}
