//! The role a probe expects its server to have (`role = "primary" | "standby" | "any"`), and
//! which of its options cannot apply when the server has the other role.
//!
//! Unset, the role is inferred: `primary` when a primary-only option is set
//! (`expected_standbys`, `expected_standby_count`, `write_check`), else `any`.

use super::PostgresConfig;

/// The `role` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleOption {
    /// The server must not be in recovery.
    Primary,
    /// The server must be in recovery.
    Standby,
    /// Either (a probe that follows failovers); no mismatch alert.
    Any,
}

impl RoleOption {
    /// Every value.
    pub const ALL: [RoleOption; 3] = [RoleOption::Primary, RoleOption::Standby, RoleOption::Any];

    /// The value named `s`.
    pub fn parse(s: &str) -> Option<RoleOption> {
        RoleOption::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleOption::Primary => "primary",
            RoleOption::Standby => "standby",
            RoleOption::Any => "any",
        }
    }
}

impl<'de> serde::Deserialize<'de> for RoleOption {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RoleOption::parse(&s).ok_or_else(|| serde::de::Error::custom(unknown_role(&s)))
    }
}

/// Why `s` is not a `role`, with the likely intended value.
fn unknown_role(s: &str) -> String {
    let mut out = format!("role {s:?} is not one of primary, standby, any");
    let near = s.trim().to_ascii_lowercase();
    let guess = match near.as_str() {
        "master" | "leader" | "writer" | "rw" => Some("primary"),
        "replica" | "secondary" | "follower" | "hot_standby" | "hot-standby" | "ro" => {
            Some("standby")
        }
        "either" | "both" | "auto" | "*" => Some("any"),
        other => RoleOption::ALL
            .iter()
            .map(|r| r.as_str())
            .find(|r| other == *r || (other.len() >= 3 && r.starts_with(&other[..3]))),
    };
    if let Some(g) = guess {
        out.push_str(&format!("; did you mean \"{g}\"?"));
    }
    out
}

/// The role a probe expects, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    /// `Primary` or `Standby`; `Any` means no expectation.
    pub role: RoleOption,
    /// Where it comes from, in words: `role = "primary"`, or `inferred from write_check`.
    pub source: String,
    /// Options that cannot apply on a standby (named as in the config).
    pub primary_only: Vec<String>,
    /// Options that cannot apply on a primary.
    pub standby_only: Vec<String>,
}

impl Default for Expected {
    fn default() -> Self {
        Expected {
            role: RoleOption::Any,
            source: "the default".into(),
            primary_only: Vec::new(),
            standby_only: Vec::new(),
        }
    }
}

/// The options set on `c` that only a primary can honour.
pub fn primary_only_options(c: &PostgresConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !c.expected_standbys.is_empty() {
        out.push("expected_standbys");
    }
    if c.expected_standby_count.is_some() {
        out.push("expected_standby_count");
    }
    if c.write_check {
        out.push("write_check");
    }
    out
}

/// The expected role of a probe with this configuration (explicit, or inferred).
pub fn expected(c: &PostgresConfig) -> Expected {
    let primary_only = primary_only_options(c);
    let (role, source) = match c.role {
        Some(r) => (r, format!("role = \"{}\"", r.as_str())),
        None if !primary_only.is_empty() => (
            RoleOption::Primary,
            format!("inferred from {}", primary_only.join(", ")),
        ),
        None => (RoleOption::Any, "the default".to_string()),
    };
    let mut on_standby: Vec<String> = primary_only.iter().map(|s| s.to_string()).collect();
    if c.heartbeat && role == RoleOption::Primary {
        on_standby.push("heartbeat (writing it)".into());
    }
    let mut on_primary = Vec::new();
    if c.heartbeat && role == RoleOption::Standby {
        on_primary.push("heartbeat (reading its age)".into());
    }
    Expected {
        role,
        source,
        primary_only: on_standby,
        standby_only: on_primary,
    }
}

/// The mismatch finding, when the server's role (`in_recovery`) is not the expected one.
pub fn mismatch(e: &Expected, in_recovery: bool) -> Option<String> {
    match (e.role, in_recovery) {
        (RoleOption::Primary, true) => {
            let options = if e.primary_only.is_empty() {
                "the primary checks".to_string()
            } else {
                e.primary_only.join(", ")
            };
            Some(format!(
                "role mismatch: this server is a standby, but the probe expects a primary ({}): \
                 {options} cannot apply on a standby and are not checked; after a failover, \
                 point this probe at the new primary (or set role = \"any\")",
                e.source
            ))
        }
        (RoleOption::Standby, false) => {
            let mut options = vec![
                "the WAL receiver".to_string(),
                "replay".to_string(),
                "replication delay".to_string(),
            ];
            options.extend(e.standby_only.iter().cloned());
            Some(format!(
                "role mismatch: this server is a primary, but the probe expects a standby ({}): \
                 the standby checks ({}) cannot apply on a primary; was it promoted? point this \
                 probe at a standby (or set role = \"any\")",
                e.source,
                options.join(", ")
            ))
        }
        _ => None,
    }
}

/// With `role = "any"`: the note naming the options this server's role leaves unchecked
/// (`None` when every set option applies). A note, not a warning: `any` accepts either role.
pub fn skipped_note(e: &Expected, in_recovery: bool) -> Option<String> {
    if e.role != RoleOption::Any {
        return None;
    }
    let (options, server, applies) = if in_recovery {
        (&e.primary_only, "a standby", "a primary")
    } else {
        (&e.standby_only, "a primary", "a standby")
    };
    (!options.is_empty()).then(|| {
        format!(
            "note: role = \"any\" and this server is {server}: {} not checked (only on \
             {applies}); set role = \"primary\" to be alerted when it is not one",
            options.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> PostgresConfig {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn inferred_from_primary_only_options() {
        assert_eq!(expected(&parse("")).role, RoleOption::Any);
        assert_eq!(expected(&parse("heartbeat = true")).role, RoleOption::Any);
        let e = expected(&parse("write_check = true\nexpected_standbys = [\"a\"]"));
        assert_eq!(e.role, RoleOption::Primary);
        assert_eq!(e.source, "inferred from expected_standbys, write_check");
        let e = expected(&parse("role = \"any\"\nwrite_check = true"));
        assert_eq!(
            (e.role, e.source.as_str()),
            (RoleOption::Any, "role = \"any\"")
        );
        assert_eq!(mismatch(&e, true), None);
    }

    #[test]
    fn mismatch_names_the_options_that_cannot_apply() {
        let e = expected(&parse(
            "expected_standbys = [\"a\"]\nheartbeat = true\nrole = \"primary\"",
        ));
        let m = mismatch(&e, true).unwrap();
        assert!(
            m.starts_with("role mismatch: this server is a standby"),
            "{m}"
        );
        assert!(
            m.contains("expected_standbys, heartbeat (writing it) cannot apply"),
            "{m}"
        );
        assert_eq!(mismatch(&e, false), None);
        let e = expected(&parse("role = \"standby\"\nheartbeat = true"));
        let m = mismatch(&e, false).unwrap();
        assert!(m.contains("heartbeat (reading its age)"), "{m}");
        assert_eq!(mismatch(&e, true), None);
    }

    #[test]
    fn unknown_values_get_a_hint() {
        let e = toml::from_str::<PostgresConfig>("role = \"replica\"").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("line 1, column 8"), "{e}");
        assert!(
            e.contains("role \"replica\" is not one of primary, standby, any")
                && e.contains("did you mean \"standby\"?"),
            "{e}"
        );
        let e = toml::from_str::<PostgresConfig>("role = \"primry\"").unwrap_err();
        assert!(e.to_string().contains("did you mean \"primary\"?"), "{e}");
        let e = toml::from_str::<PostgresConfig>("role = \"x\"").unwrap_err();
        assert!(!e.to_string().contains("did you mean"), "{e}");
    }
}
