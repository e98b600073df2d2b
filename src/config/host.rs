//! `[host]`: the built-in host view (every real filesystem, the clock, the routes present at
//! start), which a configuration file keeps unless it turns it off.

use super::{Config, ProbeConfig};
use serde::Deserialize;

/// `[host]`: whether lookout watches this host on its own.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Watch this host: probes `disks` (every real filesystem), `clock` (the configured time
    /// servers and the jump detector) and `routes` (the routes present at start), as
    /// `lookout run` does without a file. A probe of the file with one of these ids replaces
    /// the built-in one. Default true.
    pub watch: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig { watch: true }
    }
}

/// The probes of the host view.
pub fn host_view() -> Vec<ProbeConfig> {
    vec![
        ProbeConfig::zero_config_disks(),
        ProbeConfig::zero_config_clock(),
        ProbeConfig::zero_config_routes(),
    ]
}

/// Adds the host view's probes to `config` when `[host] watch` is on, after the file's own
/// probes; a probe of the file with the same id wins.
pub fn add_host_view(config: &mut Config) {
    if !config.host.watch {
        return;
    }
    for p in host_view() {
        if !config.probes.iter().any(|q| q.id == p.id) {
            config.probes.push(p);
        }
    }
}

/// The ids of the host view's probes in `config` (those it did not replace).
pub fn is_host_view_probe(p: &ProbeConfig) -> bool {
    p.span == (0..0) && host_view().iter().any(|h| h.id == p.id)
}

/// Whether `config` watches nothing: no probe, no inbound heartbeat and no `[intake]` section.
pub fn watches_nothing(config: &Config) -> bool {
    config.probes.is_empty()
        && config.heartbeats.is_empty()
        && !config.section_spans.contains_key("intake")
}

/// The one-line summary of what `config` watches, for the start banner and `config check`:
/// `5 probes (disk, clock, route, http ×2), host view on, 1 heartbeat`.
pub fn summary(config: &Config) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for p in &config.probes {
        match kinds.iter_mut().find(|(k, _)| *k == p.kind.name()) {
            Some((_, n)) => *n += 1,
            None => kinds.push((p.kind.name(), 1)),
        }
    }
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, n)| {
            if *n == 1 {
                k.to_string()
            } else {
                format!("{k} ×{n}")
            }
        })
        .collect();
    let mut out = format!(
        "{} probe{}",
        config.probes.len(),
        if config.probes.len() == 1 { "" } else { "s" }
    );
    if !kinds.is_empty() {
        out.push_str(&format!(" ({})", kinds.join(", ")));
    }
    out.push_str(if config.host.watch {
        ", host view on"
    } else {
        ", host view off"
    });
    if !config.heartbeats.is_empty() {
        let n = config.heartbeats.len();
        out.push_str(&format!(", {n} heartbeat{}", if n == 1 { "" } else { "s" }));
    }
    if config.section_spans.contains_key("intake") {
        out.push_str(", Alertmanager intake");
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;
    use std::path::Path;

    fn ids(src: &str) -> Vec<String> {
        parse_str(Path::new("l.toml"), src)
            .unwrap_or_else(|e| panic!("{e}"))
            .probes
            .iter()
            .map(|p| p.id.clone())
            .collect()
    }

    #[test]
    fn a_file_keeps_the_host_view_unless_it_turns_it_off() {
        let notifier_only = "[[notifier]]\nid = \"n\"\nkind = \"ntfy\"\nserver = \"http://127.0.0.1:1\"\ntopic = \"t\"\n";
        assert_eq!(ids(notifier_only), ["disks", "clock", "routes"]);
        assert!(ids("[host]\nwatch = false\n").is_empty());
        let own_disks = "[[probe]]\nid = \"disks\"\nkind = \"disk\"\nmounts = [\"/\"]\n";
        assert_eq!(ids(own_disks), ["disks", "clock", "routes"]);
        let c = parse_str(Path::new("l.toml"), own_disks).unwrap();
        assert_eq!(c.probes[0].span.start, 0, "the file's probe wins");
        assert!(!super::is_host_view_probe(&c.probes[0]));
        assert!(super::is_host_view_probe(&c.probes[1]));
        assert!(
            parse_str(Path::new("l.toml"), "[host]\nwatchh = false\n")
                .unwrap_err()
                .to_string()
                .contains("watchh")
        );
    }

    #[test]
    fn watching_nothing_is_a_warning_at_the_host_line() {
        let c = parse_str(Path::new("l.toml"), "# x\n[host]\nwatch = false\n").unwrap();
        let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            w.iter()
                .any(|w| w.starts_with("l.toml:3:1:") && w.contains("watches nothing")),
            "{w:?}"
        );
        let hb = "[host]\nwatch = false\n[[heartbeat]]\nname = \"b\"\nperiod = \"1h\"\n";
        let c = parse_str(Path::new("l.toml"), hb).unwrap();
        assert!(
            c.warnings
                .iter()
                .all(|w| !w.message.contains("watches nothing"))
        );
        assert_eq!(super::summary(&c), "0 probes, host view off, 1 heartbeat");
    }
}
