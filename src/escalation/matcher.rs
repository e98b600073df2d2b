//! Label matchers: `name=value`, `name!=value`, `name=~regex`, `name!~regex` (regexes are
//! anchored, as in Alertmanager).

use crate::model::Labels;
use serde::{Deserialize, Serialize};

/// What a matcher error tells the user to write.
const OPERATORS: &str =
    "the operators are = != =~ !~ (name=value, name!=value, name=~regex, name!~regex)";

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    op: Op,
    value: String,
    regex: Option<regex::Regex>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl Matcher {
    /// Parses `name=value`, `name!=value`, `name=~regex` or `name!~regex`.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let (name, op, value) = if let Some((n, v)) = s.split_once("=~") {
            (n, Op::Re, v)
        } else if let Some((n, v)) = s.split_once("!~") {
            (n, Op::NotRe, v)
        } else if let Some((n, v)) = s.split_once("!=") {
            (n, Op::Ne, v)
        } else if let Some((n, v)) = s.split_once('=') {
            (n, Op::Eq, v)
        } else {
            return Err(format!("matcher {s:?} has no operator; {OPERATORS}"));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("matcher {s:?} has no label name"));
        }
        let raw = value.trim();
        if let Some(c) = raw.chars().next().filter(|c| matches!(c, '=' | '~')) {
            // `probe==db1` would silently match the value "=db1", which nothing has.
            let sym = match op {
                Op::Eq => "=",
                Op::Ne => "!=",
                Op::Re => "=~",
                Op::NotRe => "!~",
            };
            return Err(format!(
                "matcher {s:?}: `{sym}{c}` is not an operator; {OPERATORS} (quote a value that begins with {c}: {name}{sym}\"{raw}\")"
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
        {
            return Err(format!(
                "matcher {s:?}: the label name {name:?} cannot contain {bad:?}; {OPERATORS}"
            ));
        }
        let value = raw.trim_matches('"').to_string();
        let regex = match op {
            Op::Re | Op::NotRe => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("matcher {s:?}: bad regex: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    /// Whether the labels satisfy this matcher (a missing label reads as empty).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match self.op {
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
            Op::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            Op::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        };
        write!(f, "{}{op}{}", self.name, self.value)
    }
}

/// Whether every matcher holds.
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;

    #[test]
    fn operators() {
        let l = labels([("env", "prod"), ("mount", "/var/lib/postgresql")]);
        assert!(Matcher::parse("env=prod").unwrap().matches(&l));
        assert!(!Matcher::parse("env!=prod").unwrap().matches(&l));
        assert!(Matcher::parse("mount=~/var/.*").unwrap().matches(&l));
        assert!(
            !Matcher::parse("mount=~var").unwrap().matches(&l),
            "anchored"
        );
        assert!(Matcher::parse("mount!~/srv.*").unwrap().matches(&l));
        assert!(Matcher::parse("missing=").unwrap().matches(&l));
        assert!(Matcher::parse("nope").is_err());
        assert!(Matcher::parse("a=~(").is_err());
    }

    #[test]
    fn mistyped_operators_are_errors_that_name_the_matcher_and_the_operators() {
        for bad in [
            "probe==db1",
            "probe!==db1",
            "probe=~~x",
            "probe~=db1",
            "probe<>db1",
            "probe",
        ] {
            let e = Matcher::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("= != =~ !~"), "{e}");
        }
        let e = Matcher::parse("probe==db1").unwrap_err();
        assert!(e.contains("`==` is not an operator"), "{e}");
        // A value that really begins with = is quoted.
        let l = labels([("probe", "=db1")]);
        assert!(Matcher::parse("probe=\"=db1\"").unwrap().matches(&l));
        // Names as lookout and Prometheus write them.
        for ok in ["probe=db1", "rule=~disk_.*", "a.b=c", "ns:x!=y", "x-y!~z"] {
            assert!(Matcher::parse(ok).is_ok(), "{ok}");
        }
    }
}
