//! `[[drill]]`: a declared fault (an `[[action]]`) and what must follow it (alerts within T,
//! then probes ok within R). Parsing and validation only; the runtime is `crate::drill`.

use super::Config;
use super::error::{Collector, suggest};
use super::values::Dur;
use crate::model::Severity;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// The default `within` of an expected alert.
pub const DEFAULT_EXPECT_WITHIN: Dur = Dur::from_secs(60);
/// The default `recover_within`.
pub const DEFAULT_RECOVER_WITHIN: Dur = Dur::from_secs(60);
/// The longest `within` / `recover_within` accepted: a drill is a short rehearsal.
pub const MAX_WAIT: Dur = Dur::from_secs(3600);
/// The shortest `every` accepted (a drill disrupts what it rehearses: days are usual).
pub const MIN_EVERY: Dur = Dur::from_secs(60);

/// One `[[drill]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Unique name (`[a-z0-9_-]+`). Required.
    pub name: String,
    /// The `[[action]]` that injects the fault, run directly (its mode and guards do not
    /// apply). Required.
    pub fault: Spanned<String>,
    /// An `[[action]]` run after the drill, pass or fail. Optional.
    pub restore: Option<Spanned<String>>,
    /// Alerts that must fire within their `within` of the fault. Default: none.
    #[serde(default)]
    pub expect: Vec<Spanned<ExpectConfig>>,
    /// Probes that must then be ok. Default: none.
    #[serde(default)]
    pub recover: Vec<Spanned<String>>,
    /// ... within this of the last expected alert (of the fault's end without `expect`).
    /// Default 60s.
    pub recover_within: Option<Dur>,
    /// Run on this schedule (monotonic; the first run one period after the start). Default:
    /// only by hand.
    pub every: Option<Spanned<Dur>>,
    /// Severity of `drill_failed`. Default warning.
    pub severity: Option<Severity>,
    /// Where the table is in the file (set by the parser).
    #[serde(skip)]
    pub span: Range<usize>,
}

/// One expected alert: label matchers (`rule`, `probe` and the alert's labels, exact) and how
/// soon after the fault it must fire.
#[derive(Debug, Clone, Deserialize)]
pub struct ExpectConfig {
    /// How soon after the fault's start. Default 60s.
    pub within: Option<Dur>,
    /// Exact label matches (`rule` is required).
    #[serde(flatten)]
    pub labels: BTreeMap<String, String>,
}

impl ExpectConfig {
    /// The effective `within`.
    pub fn within(&self) -> Dur {
        self.within.unwrap_or(DEFAULT_EXPECT_WITHIN)
    }

    /// `probe_status on app-write`, or the matchers.
    pub fn describe(&self) -> String {
        let rule = self.labels.get("rule").map(String::as_str).unwrap_or("?");
        let mut s = match self.labels.get("probe") {
            Some(p) => format!("{rule} on {p}"),
            None => rule.to_string(),
        };
        let rest: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "rule" && *k != "probe")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !rest.is_empty() {
            s.push_str(&format!(" {{{}}}", rest.join(", ")));
        }
        s
    }
}

impl DrillConfig {
    /// The effective `recover_within`.
    pub fn recover_within(&self) -> Dur {
        self.recover_within.unwrap_or(DEFAULT_RECOVER_WITHIN)
    }

    /// The effective severity of `drill_failed`.
    pub fn severity(&self) -> Severity {
        self.severity.unwrap_or(Severity::Warning)
    }
}

/// Pseudo probes whose alerts a drill may expect besides the configured probes.
const PSEUDO_PROBES: &[&str] = &["lookout", "heartbeat", "alertmanager"];

/// Records every problem of the `[[drill]]` entries.
pub fn validate(config: &Config, errors: &mut Collector<'_>) {
    let actions: Vec<&str> = config.actions.iter().map(|a| a.name.as_str()).collect();
    let probes: Vec<&str> = config.probes.iter().map(|p| p.id.as_str()).collect();
    let mut seen = BTreeMap::new();
    for d in &config.drills {
        let component = format!("drill {:?}", d.name);
        let c = Some(component.as_str());
        let at = Some(d.span.clone());
        let valid_name = !d.name.is_empty()
            && d.name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_');
        if !valid_name {
            errors.push(
                at.clone(),
                c,
                format!(
                    "name {:?} must be lowercase letters, digits, - and _",
                    d.name
                ),
                Some("e.g. name = \"app-restart\"".into()),
            );
        }
        if seen.insert(d.name.clone(), ()).is_some() {
            errors.push(
                at.clone(),
                c,
                "duplicate drill name",
                Some("every drill needs a unique name".into()),
            );
        }
        let mut named = |what: &str, s: &Spanned<String>| {
            if !actions.contains(&s.get_ref().as_str()) {
                let hint = suggest(s.get_ref(), &actions)
                    .map(|x| format!("did you mean `{x}`?"))
                    .unwrap_or_else(|| match actions.is_empty() {
                        true => "declare the fault as an [[action]] (e.g. kind = \"exec\") and name it here".into(),
                        false => format!("known actions: {}", actions.join(", ")),
                    });
                errors.push(
                    Some(s.span()),
                    c,
                    format!("{what} names unknown action {:?}", s.get_ref()),
                    Some(hint),
                );
            }
        };
        named("fault", &d.fault);
        if let Some(r) = &d.restore {
            named("restore", r);
        }
        let probe_hint = |p: &str| {
            suggest(p, &probes)
                .map(|x| format!("did you mean `{x}`?"))
                .unwrap_or_else(|| format!("known probes: {}", probes.join(", ")))
        };
        let mut longest = Dur::from_secs(0);
        for e in &d.expect {
            let span = Some(e.span());
            let x = e.get_ref();
            match x.labels.get("rule") {
                None => errors.push(
                    span.clone(),
                    c,
                    "an expected alert needs a `rule`",
                    Some("e.g. expect = [{ rule = \"probe_status\", probe = \"app-write\", within = \"30s\" }]".into()),
                ),
                Some(r) if r.is_empty() => {
                    errors.push(span.clone(), c, "`rule` is empty", None)
                }
                _ => {}
            }
            if let Some(p) = x.labels.get("probe")
                && !probes.contains(&p.as_str())
                && !PSEUDO_PROBES.contains(&p.as_str())
            {
                errors.push(
                    span.clone(),
                    c,
                    format!("expects an alert of unknown probe {p:?}"),
                    Some(probe_hint(p)),
                );
            }
            let w = x.within();
            if w.0.is_zero() || w > MAX_WAIT {
                errors.push(
                    span.clone(),
                    c,
                    format!("within {w} is outside 1s–1h"),
                    Some("how soon after the fault the alert must fire, e.g. \"30s\"".into()),
                );
            }
            longest = longest.max(w);
        }
        for r in &d.recover {
            if !probes.contains(&r.get_ref().as_str()) {
                errors.push(
                    Some(r.span()),
                    c,
                    format!("recover names unknown probe {:?}", r.get_ref()),
                    Some(probe_hint(r.get_ref())),
                );
            }
        }
        if d.expect.is_empty() && d.recover.is_empty() {
            errors.push(
                at.clone(),
                c,
                "the drill checks nothing: give it `expect` (alerts that must fire) or `recover` (probes that must be ok again), or both",
                Some("e.g. recover = [\"app-write\"]".into()),
            );
        }
        let r = d.recover_within();
        if r.0.is_zero() || r > MAX_WAIT {
            errors.push(
                at.clone(),
                c,
                format!("recover_within {r} is outside 1s–1h"),
                None,
            );
        }
        if let Some(every) = &d.every {
            let e = *every.get_ref();
            let run = Dur(longest.0 + r.0);
            if e < MIN_EVERY || e <= run {
                errors.push(
                    Some(every.span()),
                    c,
                    format!(
                        "every {e} is too short (at least 1m, and longer than one drill: {run})"
                    ),
                    Some("a drill disrupts what it rehearses; e.g. every = \"7d\"".into()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const BASE: &str = r#"
[[probe]]
id = "app-write"
kind = "tcp"
host = "127.0.0.1"
port = 9

[[action]]
name = "restart-app"
kind = "exec"
argv = ["/bin/true"]
"#;

    fn check(extra: &str) -> Result<crate::config::Config, String> {
        crate::config::parse_str(Path::new("t.toml"), &format!("{BASE}{extra}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_drill_parses_with_its_defaults() {
        let c = check(
            r#"
[[drill]]
name = "app-restart"
fault = "restart-app"
expect = [ { rule = "probe_status", probe = "app-write", within = "30s" } ]
recover = ["app-write"]
"#,
        )
        .unwrap();
        let d = &c.drills[0];
        assert_eq!(d.fault.get_ref(), "restart-app");
        assert_eq!(d.expect[0].get_ref().within().secs(), 30.0);
        assert_eq!(
            d.expect[0].get_ref().describe(),
            "probe_status on app-write"
        );
        assert_eq!(d.recover_within().secs(), 60.0);
        assert_eq!(d.severity(), crate::model::Severity::Warning);
    }

    #[test]
    fn every_problem_is_reported_with_its_position_and_a_hint() {
        let e = check(
            r#"
[[drill]]
name = "app-restart"
fault = "restart-ap"
restore = "nothing-here"
expect = [ { probe = "app-wrte", within = "2h" } ]
recover = ["gone"]
every = "30s"
"#,
        )
        .unwrap_err();
        for want in [
            "t.toml:15:9: drill \"app-restart\": fault names unknown action \"restart-ap\"\n  hint: did you mean `restart-app`?",
            "restore names unknown action \"nothing-here\"",
            "an expected alert needs a `rule`",
            "expects an alert of unknown probe \"app-wrte\"\n  hint: did you mean `app-write`?",
            "within 2h is outside 1s–1h",
            "recover names unknown probe \"gone\"",
            "every 30s is too short (at least 1m",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn a_drill_that_checks_nothing_is_refused() {
        let e = check("[[drill]]\nname = \"x\"\nfault = \"restart-app\"\n").unwrap_err();
        assert!(e.contains("the drill checks nothing"), "{e}");
    }
}
