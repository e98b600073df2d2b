//! Value types of the configuration: durations, sizes, secrets.

use serde::{Deserialize, Deserializer, de};
use std::fmt;
use std::time::Duration;

/// A duration written as `"30s"`, `"5m"`, `"2h30m"`, `"7d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// Seconds as a float.
    pub fn secs(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// A duration from whole seconds.
    pub const fn from_secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string like \"30s\", \"5m\" or \"2h\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                humantime::parse_duration(s.trim()).map(Dur).map_err(|_| {
                    E::custom(format!("invalid duration {s:?}: write a number and a unit, like \"30s\", \"5m\", \"2h\" or \"7d\""))
                })
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{n}s\" for {n} seconds"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{n}s\" for {n} seconds"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// An amount of space: absolute (`"5GiB"`, `"500MB"`, `"4096"`) or relative (`"5%"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Size {
    /// Bytes (or, for inode floors, a count).
    Bytes(u64),
    /// A percentage, 0–100.
    Percent(f64),
}

impl Size {
    /// Parses `"5GiB"`, `"1.5 TB"`, `"5%"`, `"4096"`.
    pub fn parse(s: &str) -> Result<Size, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid percentage {s:?}"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("percentage {s:?} is outside 0%–100%"));
            }
            return Ok(Size::Percent(v));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let v: f64 = num.parse().map_err(|_| {
            format!(
                "invalid size {s:?}: write a number and a unit, like \"5GiB\", \"500MB\" or \"5%\""
            )
        })?;
        let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "m" | "mb" => 1e6,
            "g" | "gb" => 1e9,
            "t" | "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0f64.powi(4),
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {s:?}: use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB or %"
                ));
            }
        };
        Ok(Size::Bytes((v * mult).round() as u64))
    }

    /// Converts to the disk rules' floor.
    pub fn to_floor(self) -> crate::rule::disk::Floor {
        match self {
            Size::Bytes(b) => crate::rule::disk::Floor::Absolute(b as f64),
            Size::Percent(p) => crate::rule::disk::Floor::Percent(p),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like \"5GiB\" or a percentage like \"5%\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                Size::parse(s).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size::Bytes)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A secret (token, password, key). Prints as `<secret>` everywhere; only [`Secret::expose`]
/// reveals it, at the one place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file, trimming one trailing newline.
    pub fn from_file(path: &std::path::Path) -> Result<Secret, String> {
        let raw = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
        let value = raw.strip_suffix('\n').unwrap_or(&raw);
        if value.trim().is_empty() {
            // An empty token would be sent as `Bearer ` and refused at the first page.
            return Err(format!(
                "secret file {} is empty: write the secret into it",
                path.display()
            ));
        }
        Ok(Secret(value.to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// Replaces every `${NAME}` with the environment variable's value.
pub fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed \"${\" in value".to_string())?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw).map(Secret).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_both_unit_families() {
        assert_eq!(Size::parse("5GiB"), Ok(Size::Bytes(5 * 1024 * 1024 * 1024)));
        assert_eq!(Size::parse("500MB"), Ok(Size::Bytes(500_000_000)));
        assert_eq!(Size::parse("5%"), Ok(Size::Percent(5.0)));
        assert_eq!(Size::parse("1.5 KiB"), Ok(Size::Bytes(1536)));
        assert!(
            Size::parse("5 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(Size::parse("150%").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<secret> <secret>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<secret>\"");
    }

    #[test]
    fn env_expansion_names_a_missing_variable() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("LOOKOUT_TEST_TOKEN", "abc") };
        assert_eq!(
            expand_env("Bearer ${LOOKOUT_TEST_TOKEN}").unwrap(),
            "Bearer abc"
        );
        assert!(
            expand_env("${LOOKOUT_SURELY_UNSET_VAR}")
                .unwrap_err()
                .contains("LOOKOUT_SURELY_UNSET_VAR is not set")
        );
    }
}
