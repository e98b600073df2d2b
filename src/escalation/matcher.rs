//! Label matchers: `name=value`, `name!=value`, `name=~regex`, `name!~regex` (regexes are
//! anchored, as in Alertmanager).

use crate::model::Labels;
use serde::{Deserialize, Serialize};

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
            return Err(format!(
                "matcher {s:?} is not name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("matcher {s:?} has no label name"));
        }
        let value = value.trim().trim_matches('"').to_string();
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
}
