//! Values the daemon does not use as written. Wherever it caps a configured value (or a kind's
//! default) — a probe's timeout at its interval, a bridge's `deadline` at what its round allows,
//! a `matrix` probe's `request_timeout` at its timeout, … — `config check` warns at the value's
//! line and column and says what will be used instead. A warning does not fail the check; the
//! daemon logs the same warnings when it loads the file. Pure: no I/O.
//!
//! Each cap is computed with the function the daemon itself uses (`round_budget`,
//! `token_deadline`, `effective_request_timeout`, …), so the warning and the daemon agree.

use super::error::Collector;
use super::values::Dur;
use super::{Config, ConfigError, ProbeConfig, ProbeKindConfig};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

/// Every capped value of a valid `config` parsed from `src`, as warnings in file order.
pub fn warnings(config: &Config, path: &Path, src: &str) -> Vec<ConfigError> {
    let mut out = Collector::new(path, src);
    for p in &config.probes {
        probe(p, src, &mut out);
    }
    store(config, src, &mut out);
    ack_links(config, src, &mut out);
    if let Some(why) = super::intake::open_door_allowed(config, &config.api.listen) {
        let at = config.section_spans.get("api").map(|s| s.start);
        out.push(
            at.and_then(|s| key_span(src, s, "allow_unauthenticated")),
            Some("[api]"),
            why,
            Some("only on a network you trust; tokens are safer (docs/api.md)".into()),
        );
    }
    out.into_sorted()
}

fn d(v: Duration) -> Dur {
    Dur(v)
}

/// Where a probe's own key is written, else where its timeout or interval is, else the probe.
struct Places<'a> {
    src: &'a str,
    probe: &'a ProbeConfig,
}

impl Places<'_> {
    fn key(&self, key: &str) -> Option<Range<usize>> {
        key_span(self.src, self.probe.span.start, key)
    }

    fn timeout(&self) -> Range<usize> {
        let c = &self.probe.common;
        c.timeout
            .as_ref()
            .map(|t| t.span())
            .or_else(|| c.interval.as_ref().map(|i| i.span()))
            .unwrap_or_else(|| self.probe.span.clone())
    }

    fn key_or_timeout(&self, key: &str) -> Range<usize> {
        self.key(key).unwrap_or_else(|| self.timeout())
    }
}

fn probe(p: &ProbeConfig, src: &str, out: &mut Collector<'_>) {
    let component = format!("probe {:?}", p.id);
    let at = Places { src, probe: p };
    let interval = p.interval().0;
    let timeout = p.timeout().0;
    let default_timeout = p.kind.defaults().timeout.0;
    if p.common.timeout.is_none() && default_timeout > interval {
        let span = p.common.interval.as_ref().map(|i| i.span());
        out.push(
            span.or(Some(p.span.clone())),
            Some(&component),
            format!(
                "the {} kind's default timeout {} is longer than the interval {}: {} will be used",
                p.kind.name(),
                d(default_timeout),
                d(interval),
                d(timeout)
            ),
            Some("set `timeout` (at most the interval) to choose it yourself".into()),
        );
    }
    match &p.kind {
        ProbeKindConfig::Bridge(b) => bridge(b, &at, timeout, interval, &component, out),
        ProbeKindConfig::Matrix(m) => matrix(m, &at, timeout, &component, out),
        ProbeKindConfig::Postgres(pg) => postgres(pg, &at, p, timeout, &component, out),
        _ => {}
    }
}

fn bridge(
    b: &crate::probe::bridge::BridgeConfig,
    at: &Places<'_>,
    timeout: Duration,
    interval: Duration,
    component: &str,
    out: &mut Collector<'_>,
) {
    use crate::probe::bridge::probe::{DEFAULT_DEADLINE, round_budget, token_deadline};
    let wanted = b.deadline.map_or(DEFAULT_DEADLINE, |d| d.0);
    let used = token_deadline(b.deadline.map(|d| d.0), timeout);
    if used < wanted {
        let what = if b.deadline.is_some() {
            format!("deadline {}", d(wanted))
        } else {
            format!("the default deadline {}", d(wanted))
        };
        out.push(
            Some(at.key_or_timeout("deadline")),
            Some(component),
            format!(
                "{what} is longer than a round may take (the timeout {} less a margin: {}): {} will be used",
                d(timeout),
                d(round_budget(timeout)),
                d(used)
            ),
            Some("lengthen `timeout` or shorten `deadline`; a token that takes longer counts as not delivered".into()),
        );
    }
    if let Some(r) = b.retry_interval
        && r.0 >= interval
    {
        out.push(
            Some(at.key_or_timeout("retry_interval")),
            Some(component),
            format!(
                "retry_interval {} is not shorter than the interval {}: {} will be used (a failed round is confirmed at the next regular round)",
                r,
                d(interval),
                d(interval)
            ),
            Some("retry_interval exists to confirm a failure sooner than the interval; shorten it".into()),
        );
    }
}

fn matrix(
    m: &crate::probe::matrix::MatrixConfig,
    at: &Places<'_>,
    timeout: Duration,
    component: &str,
    out: &mut Collector<'_>,
) {
    use crate::probe::matrix::{DEFAULT_REQUEST, DEFAULT_VISIBLE, run_budget};
    let wanted = m.request_timeout.map_or(DEFAULT_REQUEST, |d| d.0);
    let used = m.effective_request_timeout(timeout);
    if used < wanted {
        out.push(
            Some(at.key_or_timeout("request_timeout")),
            Some(component),
            format!(
                "{} {} is longer than the timeout {}: {} will be used",
                if m.request_timeout.is_some() {
                    "request_timeout"
                } else {
                    "the default request_timeout"
                },
                d(wanted),
                d(timeout),
                d(used)
            ),
            None,
        );
    }
    let wanted = m.visible_within.map_or(DEFAULT_VISIBLE, |d| d.0);
    let budget = run_budget(timeout);
    if wanted > budget {
        out.push(
            Some(at.key_or_timeout("visible_within")),
            Some(component),
            format!(
                "{} {} is longer than a run may take (the timeout {} less a margin): at most {} will be used, less the time the send took",
                if m.visible_within.is_some() {
                    "visible_within"
                } else {
                    "the default visible_within"
                },
                d(wanted),
                d(timeout),
                d(budget)
            ),
            Some("lengthen `timeout` or shorten `visible_within`".into()),
        );
    }
}

fn postgres(
    pg: &crate::probe::postgres::PostgresConfig,
    at: &Places<'_>,
    p: &ProbeConfig,
    timeout: Duration,
    component: &str,
    out: &mut Collector<'_>,
) {
    let budget = pg.settings(&p.id, timeout).budget;
    for (key, value, server) in [
        ("connect_timeout", pg.connect_timeout, ""),
        (
            "statement_timeout",
            pg.statement_timeout,
            " (the server's statement_timeout stays as written)",
        ),
    ] {
        if let Some(v) = value
            && v.0 > budget
        {
            out.push(
                Some(at.key_or_timeout(key)),
                Some(component),
                format!(
                    "{key} {v} is longer than a run may take (the timeout {} less a margin): each step is cut at {}{server}",
                    d(timeout),
                    d(budget)
                ),
                Some(format!("lengthen `timeout` or shorten `{key}`")),
            );
        }
    }
}

/// Pages carry acknowledgement links; without `[api] public_url` they point at the listen
/// address, which the daemon uses instead and which works only on this host.
fn ack_links(config: &Config, src: &str, out: &mut Collector<'_>) {
    let api = &config.api;
    if config.notifiers.is_empty() || !api.ack_links || api.public_url.is_some() {
        return;
    }
    let listen = api
        .listen
        .parse()
        .map(crate::notify::ack_link::local_base)
        .unwrap_or_else(|_| format!("http://{}", api.listen));
    let start = config.section_spans.get("api").map(|s| s.start);
    let at = start.and_then(|s| key_span(src, s, "listen").or(Some(s..s)));
    out.push(
        at,
        Some("[api]"),
        format!(
            "no public_url: acknowledgement links in pages will point at the address lookout listens on ({listen}, or the one --listen gives) and will only work on this host"
        ),
        Some("set `public_url` under [api] to the URL people reach lookout at (e.g. through a reverse proxy), or `ack_links = false`".into()),
    );
}

fn store(config: &Config, src: &str, out: &mut Collector<'_>) {
    let start = config.section_spans.get("store").map(|s| s.start);
    let at = |key: &str| start.and_then(|s| key_span(src, s, key).or(Some(s..s)));
    let s = &config.store;
    for (key, value, floor) in [
        (
            "flush_interval",
            s.flush_interval.0,
            crate::store::writer::MIN_FLUSH_INTERVAL,
        ),
        (
            "downsample_to",
            s.downsample_to.0,
            crate::store::writer::MIN_DOWNSAMPLE_BUCKET,
        ),
    ] {
        if value < floor {
            out.push(
                at(key),
                Some("[store]"),
                format!(
                    "{key} {} is below {}: {} will be used",
                    d(value),
                    d(floor),
                    d(floor)
                ),
                None,
            );
        }
    }
}

/// The span of `key = …` in the table whose header (or first key) is at byte `from`: the first
/// line of that table, before the next `[header]`, whose key is `key`. `None` when the key is
/// not written there as a plain key (a default, or an unusual spelling).
pub fn key_span(src: &str, from: usize, key: &str) -> Option<Range<usize>> {
    let from = src.floor_char_boundary(from.min(src.len()));
    let line_start = src[..from].rfind('\n').map_or(0, |i| i + 1);
    let mut offset = line_start;
    for (i, line) in src[line_start..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('[') {
            if i > 0 {
                return None;
            }
        } else if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let start = offset + indent;
            return Some(start..start + key.len());
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warn(src: &str) -> Vec<String> {
        let path = Path::new("t.toml");
        let config = crate::config::parse_str(path, src).unwrap_or_else(|e| panic!("{e}"));
        warnings(&config, path, src)
            .iter()
            .map(|w| crate::config::error::AsWarning(w).to_string())
            .collect()
    }

    const BRIDGE: &str = "[[probe]]\nid = \"b\"\nkind = \"bridge\"\nhomeserver = \"http://127.0.0.1:8008\"\nuser = \"u\"\npassword = \"p\"\nroom = \"!a\"\n";
    const IRC: &str = "[probe.irc]\nserver = \"s\"\nchannel = \"#c\"\n";

    #[test]
    fn a_bridge_deadline_past_the_timeout_is_a_warning_at_its_key() {
        let src = format!("{BRIDGE}timeout = \"20s\"\ndeadline = \"30s\"\n{IRC}");
        assert_eq!(
            warn(&src),
            [
                "t.toml:9:1: warning: probe \"b\": deadline 30s is longer than a round may take (the timeout 20s less a margin: 19s): 19s will be used\n  hint: lengthen `timeout` or shorten `deadline`; a token that takes longer counts as not delivered"
            ]
        );
        // The default deadline (15s) capped by a short timeout: at the timeout.
        let src = format!("{BRIDGE}timeout = \"10s\"\n{IRC}");
        let w = warn(&src);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("t.toml:8:11: warning: probe \"b\": the default deadline 15s is longer than a round may take (the timeout 10s less a margin: 9s): 9s will be used"),
            "{w:?}"
        );
        // Within the budget: nothing.
        assert!(warn(&format!("{BRIDGE}deadline = \"7s\"\n{IRC}")).is_empty());
        // A key of the same name in the IRC table is not the probe's.
        let src = format!("{BRIDGE}retry_interval = \"40s\"\n{IRC}");
        assert_eq!(warn(&src).len(), 1);
        assert!(warn(&src)[0].starts_with("t.toml:8:1: warning: probe \"b\": retry_interval 40s is not shorter than the interval 30s"));
    }

    #[test]
    fn a_default_timeout_past_the_interval_is_a_warning_at_the_interval() {
        let src = "[[probe]]\nid = \"m\"\nkind = \"matrix\"\ninterval = \"20s\"\nhomeserver = \"http://h\"\nuser = \"u\"\npassword = \"p\"\nroom = \"!a\"\n";
        assert_eq!(
            warn(src),
            [
                "t.toml:4:12: warning: probe \"m\": the matrix kind's default timeout 30s is longer than the interval 20s: 20s will be used\n  hint: set `timeout` (at most the interval) to choose it yourself"
            ]
        );
    }

    #[test]
    fn matrix_request_and_visible_limits_past_the_timeout_are_warnings() {
        let src = "[[probe]]\nid = \"m\"\nkind = \"matrix\"\ntimeout = \"5s\"\nhomeserver = \"http://h\"\nuser = \"u\"\npassword = \"p\"\nroom = \"!a\"\nrequest_timeout = \"8s\"\n";
        let w = warn(src);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("t.toml:4:11: warning: probe \"m\": the default visible_within 10s is longer than a run may take (the timeout 5s less a margin): at most 4s 500ms will be used"), "{w:?}");
        assert_eq!(
            w[1],
            "t.toml:9:1: warning: probe \"m\": request_timeout 8s is longer than the timeout 5s: 5s will be used"
        );
    }

    #[test]
    fn postgres_step_bounds_past_the_timeout_are_warnings() {
        let src = "[[probe]]\nid = \"pg\"\nkind = \"postgres\"\ntimeout = \"10s\"\nhost = \"127.0.0.1\"\nuser = \"lookout\"\nconnect_timeout = \"5s\"\n  statement_timeout = \"30s\"\n";
        let w = warn(src);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("t.toml:8:3: warning: probe \"pg\": statement_timeout 30s is longer than a run may take (the timeout 10s less a margin): each step is cut at 9s 500ms (the server's statement_timeout stays as written)"), "{w:?}");
    }

    #[test]
    fn pages_without_a_public_url_warn_that_links_work_only_here() {
        let hook = "[[notifier]]\nid = \"n\"\nkind = \"webhook\"\nurl = \"https://h/x\"\n";
        assert_eq!(
            warn(&format!(
                "[api]\nlisten = \"0.0.0.0:9330\"\n[intake]\nalertmanager_token = \"t\"\n{hook}"
            )),
            [
                "t.toml:2:1: warning: [api]: no public_url: acknowledgement links in pages will point at the address lookout listens on (http://127.0.0.1:9330, or the one --listen gives) and will only work on this host\n  hint: set `public_url` under [api] to the URL people reach lookout at (e.g. through a reverse proxy), or `ack_links = false`"
            ]
        );
        let w = warn(hook);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("http://127.0.0.1:9330"), "{w:?}");
        assert!(
            warn(&format!(
                "[api]\npublic_url = \"https://l.example\"\n{hook}"
            ))
            .is_empty()
        );
        assert!(warn(&format!("[api]\nack_links = false\n{hook}")).is_empty());
        assert!(warn("").is_empty(), "no notifier, no pages, no links");
    }

    #[test]
    fn store_floors_are_warnings() {
        let src = "[store]\nflush_interval = \"1ms\"\n";
        assert_eq!(
            warn(src),
            ["t.toml:2:1: warning: [store]: flush_interval 1ms is below 10ms: 10ms will be used"]
        );
    }

    #[test]
    fn the_example_configurations_have_no_warnings() {
        let src = include_str!("../../examples/lookout.toml");
        assert_eq!(warn(src), Vec::<String>::new());
        let filled = include_str!("../../examples/reference.toml").replace("CHANGE-ME", "x");
        assert_eq!(warn(&filled), Vec::<String>::new());
    }
}
