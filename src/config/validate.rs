//! Semantic checks on a parsed configuration. Pure: no I/O.

use super::Config;
use super::error::{Collector, suggest};
use std::collections::{BTreeMap, BTreeSet};

/// Records every semantic problem of `config` in `errors`.
pub fn validate(config: &Config, errors: &mut Collector<'_>) {
    super::drills::validate(config, errors);
    let section = |name: &str| config.section_spans.get(name).cloned();
    if !(0.0..=0.5).contains(&config.daemon.jitter) {
        errors.push(
            section("daemon"),
            Some("[daemon]"),
            format!("jitter {} is outside 0–0.5", config.daemon.jitter),
            Some("jitter is a fraction of the interval, e.g. 0.1".into()),
        );
    }
    if config.daemon.max_concurrent_probes == 0 {
        errors.push(
            section("daemon"),
            Some("[daemon]"),
            "max_concurrent_probes must be at least 1",
            None,
        );
    }
    if let Err(e) = super::listen::parse(&config.api.listen) {
        errors.push(
            section("api"),
            Some("[api]"),
            e,
            Some("e.g. \"127.0.0.1:9330\"".into()),
        );
    }
    if let Some(why) = super::intake::open_door(config, &config.api.listen) {
        errors.push(
            config
                .section_spans
                .get("api.listen")
                .cloned()
                .or_else(|| section("api")),
            Some("[api]"),
            why,
            Some(super::intake::OPEN_DOOR_HINT.into()),
        );
    }
    if config.api.token.is_some() && config.api.token_file.is_some() {
        errors.push(
            section("api"),
            Some("[api]"),
            "set either `token` or `token_file`, not both",
            None,
        );
    }
    if let Some(url) = &config.api.public_url
        && let Err(why) = check_public_url(url)
    {
        errors.push(
            section("api"),
            Some("[api]"),
            format!("public_url {url:?} {why}"),
            Some(
                "the URL people open to reach this API, e.g. \"https://lookout.example.org\""
                    .into(),
            ),
        );
    }
    let expiry = config.api.ack_link_expiry;
    if expiry.0.as_secs() < 60 || expiry > super::MAX_ACK_LINK_EXPIRY {
        errors.push(
            section("api"),
            Some("[api]"),
            format!("ack_link_expiry {expiry} is outside 1m–30d"),
            Some("set `ack_links = false` to send pages without links".into()),
        );
    }
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &config.probes {
        let component = format!("probe {:?}", p.id);
        if ids.insert(&p.id, p.span.start).is_some() {
            errors.push(
                Some(p.span.clone()),
                Some(&component),
                "duplicate probe id",
                Some("every probe needs a unique id".into()),
            );
        }
        validate_timing(p, &component, errors);
        p.kind.validate(&component, p.span.clone(), errors);
    }
    let known: Vec<&str> = ids.keys().copied().collect();
    for p in &config.probes {
        for dep in &p.common.depends_on {
            if !ids.contains_key(dep.get_ref().as_str()) {
                let hint = suggest(dep.get_ref(), &known).map(|s| format!("did you mean `{s}`?"));
                errors.push(
                    Some(dep.span()),
                    Some(&format!("probe {:?}", p.id)),
                    format!("depends on unknown probe {:?}", dep.get_ref()),
                    hint,
                );
            }
        }
    }
    if let Some(cycle) = find_cycle(config) {
        let first = config
            .probes
            .iter()
            .find(|p| p.id == cycle[0])
            .map(|p| p.span.clone());
        errors.push(
            first,
            Some(&format!("probe {:?}", cycle[0])),
            format!("depends_on forms a cycle: {}", cycle.join(" → ")),
            Some("a probe cannot (indirectly) depend on itself".into()),
        );
    }
    let mut nids = BTreeSet::new();
    for n in &config.notifiers {
        let component = format!("notifier {:?}", n.id);
        if !nids.insert(&n.id) {
            errors.push(
                Some(n.span.clone()),
                Some(&component),
                "duplicate notifier id",
                None,
            );
        }
        n.kind.validate(&component, n.span.clone(), errors);
    }
    super::actions::validate(config, errors);
    config.intake.validate(section("intake"), errors);
    if let Some(d) = &config.deadman {
        d.validate(section("deadman"), errors);
    }
    if let Some(c) = &config.cluster {
        c.validate(section("cluster"), errors);
    }
    validate_observers(config, errors);
    super::intake::validate_heartbeats(&config.heartbeats, errors);
    super::paging::validate(config, errors);
    for p in &config.probes {
        if RESERVED_PROBE_IDS.contains(&p.id.as_str()) {
            errors.push(
                Some(p.span.clone()),
                Some(&format!("probe {:?}", p.id)),
                format!("probe id {:?} is reserved", p.id),
                Some(format!(
                    "lookout files its own alerts under {}; pick another id",
                    RESERVED_PROBE_IDS.join(", ")
                )),
            );
        }
    }
}

/// Pseudo probes whose alerts do not come from configured probes.
const RESERVED_PROBE_IDS: &[&str] = &[
    crate::alert::INTERNAL_PROBE,
    crate::rule::alertmanager::SOURCE,
    crate::rule::heartbeat::SOURCE,
];

fn validate_timing(p: &super::ProbeConfig, component: &str, errors: &mut Collector<'_>) {
    if let Some(i) = &p.common.interval
        && i.get_ref().0.is_zero()
    {
        errors.push(
            Some(i.span()),
            Some(component),
            "interval must be longer than 0s",
            None,
        );
    }
    if let (Some(t), interval) = (&p.common.timeout, p.interval()) {
        if *t.get_ref() > interval {
            errors.push(
                Some(t.span()),
                Some(component),
                format!("timeout {} is longer than the interval {}", t.get_ref(), interval),
                Some("a run must end before the next one is due; shorten the timeout or lengthen the interval".into()),
            );
        }
        if t.get_ref().0.is_zero() {
            errors.push(
                Some(t.span()),
                Some(component),
                "timeout must be longer than 0s",
                None,
            );
        }
    }
    if p.common.fail_after == Some(0) || p.common.recover_after == Some(0) {
        errors.push(
            Some(p.span.clone()),
            Some(component),
            "fail_after and recover_after count runs and must be at least 1",
            None,
        );
    }
}

fn find_cycle(config: &Config) -> Option<Vec<String>> {
    let deps: BTreeMap<&str, Vec<&str>> = config
        .probes
        .iter()
        .map(|p| {
            (
                p.id.as_str(),
                p.common
                    .depends_on
                    .iter()
                    .map(|d| d.get_ref().as_str())
                    .collect(),
            )
        })
        .collect();
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| *p == n) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if !done.insert(n) {
            return None;
        }
        path.push(n);
        for d in deps.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    deps.keys()
        .find_map(|n| visit(n, &deps, &mut Vec::new(), &mut done))
}

/// Why `[api] public_url` cannot start a link, if it cannot.
fn check_public_url(url: &str) -> Result<(), &'static str> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err("must start with http:// or https://");
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host");
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) || url.contains(['<', '>', '"', '|', '\\']) {
        return Err("must be plain ASCII without spaces, quotes, <, >, | or \\");
    }
    if url.contains(['?', '#']) {
        return Err("must not have a query or fragment (links add their own path)");
    }
    Ok(())
}

/// `observers` and `quorum` of probes: cluster mode only, `"all"` or node names, `"majority"`.
fn validate_observers(config: &Config, errors: &mut Collector<'_>) {
    for p in &config.probes {
        let component = format!("probe {:?}", p.id);
        if let Some(q) = &p.common.quorum
            && q != "majority"
        {
            errors.push(
                Some(p.span.clone()),
                Some(&component),
                format!("quorum {q:?} is not supported"),
                Some("quorum = \"majority\": more than half of the live observers".into()),
            );
        }
        let Some(o) = &p.common.observers else {
            if p.common.quorum.is_some() {
                errors.push(
                    Some(p.span.clone()),
                    Some(&component),
                    "quorum needs observers",
                    Some("observers = [\"a\", \"b\", \"c\"] or observers = \"all\"".into()),
                );
            }
            continue;
        };
        if config.cluster.is_none() {
            errors.push(
                Some(p.span.clone()),
                Some(&component),
                "observers need a [cluster] section",
                Some(
                    "observers say which cluster nodes run this probe; alone, remove the key"
                        .into(),
                ),
            );
        }
        match o {
            super::probes::ObserversConfig::Word(w) if w != "all" => errors.push(
                Some(p.span.clone()),
                Some(&component),
                format!("observers = {w:?}: use \"all\" or a list of node names"),
                None,
            ),
            super::probes::ObserversConfig::Nodes(n) if n.is_empty() => errors.push(
                Some(p.span.clone()),
                Some(&component),
                "observers is an empty list",
                Some("name the nodes that run this probe, or observers = \"all\"".into()),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod public_url_tests {
    use super::check_public_url;

    #[test]
    fn public_urls() {
        for ok in [
            "https://lookout.example.org",
            "http://10.0.0.5:9330/",
            "https://ops.example.org/lookout",
        ] {
            assert_eq!(check_public_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "lookout.example.org",
            "https://",
            "https:///x",
            "https://a b",
            "https://exämple.org",
            "https://x/?a=1",
            "https://x/#alert",
            "https://x/<y>",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
    }
}
