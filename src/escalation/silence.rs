//! Silences (made at run time by people, persisted) and maintenance windows (from the
//! configuration): alerts they match still show everywhere, but nobody is paged for them. Pure.

use super::matcher::{Matcher, all_match};
use super::policy::match_labels;
use super::schedule::parse_local;
use crate::alert::Alert;
use crate::config::MaintenanceConfig;
use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// One silence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id (12 hex digits).
    pub id: String,
    /// Label matchers, all of which must hold (`name=value`, `name!=value`, `name=~regex`).
    pub matchers: Vec<String>,
    /// Unix seconds.
    pub starts_at: f64,
    /// Unix seconds.
    pub ends_at: f64,
    /// Why.
    pub comment: String,
    /// Who.
    pub author: String,
    /// Who expired it early, if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_by: Option<String>,
}

impl Silence {
    /// Whether it is in force at `wall`.
    pub fn active(&self, wall: f64) -> bool {
        self.starts_at <= wall && wall < self.ends_at
    }

    /// Whether it silences this alert at `wall`.
    pub fn silences(&self, alert: &Alert, wall: f64) -> bool {
        if !self.active(wall) {
            return false;
        }
        let m: Vec<Matcher> = self
            .matchers
            .iter()
            .filter_map(|m| Matcher::parse(m).ok())
            .collect();
        m.len() == self.matchers.len() && all_match(&m, &match_labels(alert))
    }
}

/// Checks the matchers of a new silence: at least one, each valid.
pub fn check_matchers(matchers: &[String]) -> Result<(), String> {
    if matchers.is_empty() {
        return Err("a silence needs at least one matcher (name=value)".into());
    }
    for m in matchers {
        Matcher::parse(m)?;
    }
    Ok(())
}

/// A compiled maintenance window.
#[derive(Clone, Debug)]
pub struct Maintenance {
    /// Its name.
    pub name: String,
    matchers: Vec<Matcher>,
    tz: TimeZone,
    once: Option<(Timestamp, Timestamp)>,
    weekly: Option<(Vec<Weekday>, Time, Time)>,
}

fn weekday(s: &str) -> Result<Weekday, String> {
    Ok(match s.to_ascii_lowercase().get(..3).unwrap_or("") {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return Err(format!("{s:?} is not a weekday (mon … sun)")),
    })
}

impl Maintenance {
    /// Checks and compiles a `[[maintenance]]` window.
    pub fn compile(c: &MaintenanceConfig) -> Result<Maintenance, String> {
        let zone = c.time_zone.as_deref().unwrap_or("UTC");
        let tz = TimeZone::get(zone)
            .map_err(|e| format!("time_zone {zone:?} is not a known IANA zone: {e}"))?;
        let matchers = c
            .matchers
            .iter()
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()?;
        let once = match (&c.start, &c.end) {
            (Some(s), Some(e)) => {
                let (_, s) = parse_local(s, &tz).map_err(|e| format!("start {e}"))?;
                let (_, e) = parse_local(e, &tz).map_err(|e| format!("end {e}"))?;
                if e <= s {
                    return Err("end must be after start".into());
                }
                Some((s, e))
            }
            (None, None) => None,
            _ => return Err("set both start and end".into()),
        };
        let weekly = if c.days.is_empty() && c.from.is_none() && c.to.is_none() {
            None
        } else {
            let days = c
                .days
                .iter()
                .map(|d| weekday(d))
                .collect::<Result<Vec<_>, _>>()?;
            let t = |s: &Option<String>, name: &str| -> Result<Time, String> {
                s.as_deref()
                    .ok_or_else(|| format!("a weekly window needs `{name}` (HH:MM)"))?
                    .parse::<Time>()
                    .map_err(|e| format!("{name}: not a time of day like 02:30: {e}"))
            };
            Some((
                if days.is_empty() {
                    vec![
                        Weekday::Monday,
                        Weekday::Tuesday,
                        Weekday::Wednesday,
                        Weekday::Thursday,
                        Weekday::Friday,
                        Weekday::Saturday,
                        Weekday::Sunday,
                    ]
                } else {
                    days
                },
                t(&c.from, "from")?,
                t(&c.to, "to")?,
            ))
        };
        if once.is_none() && weekly.is_none() {
            return Err("a maintenance window needs start and end, or days/from/to".into());
        }
        if once.is_some() && weekly.is_some() {
            return Err("set start/end or days/from/to, not both".into());
        }
        Ok(Maintenance {
            name: c.name.clone(),
            matchers,
            tz,
            once,
            weekly,
        })
    }

    /// Whether the window is open at unix seconds `wall`.
    pub fn active(&self, wall: f64) -> bool {
        let Ok(t) = Timestamp::from_millisecond((wall * 1000.0) as i64) else {
            return false;
        };
        if let Some((s, e)) = self.once {
            return s <= t && t < e;
        }
        let Some((days, from, to)) = &self.weekly else {
            return false;
        };
        let local = t.to_zoned(self.tz.clone());
        let now = local.time();
        let today = local.weekday();
        if from <= to {
            days.contains(&today) && *from <= now && now < *to
        } else {
            // Past midnight: the window began on the previous day.
            (days.contains(&today) && now >= *from)
                || (days.contains(&today.previous()) && now < *to)
        }
    }

    /// Whether it covers this alert at `wall`.
    pub fn covers(&self, alert: &Alert, wall: f64) -> bool {
        self.active(wall) && all_match(&self.matchers, &match_labels(alert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Moment, Severity, labels};
    use crate::rule::Condition;

    fn alert(host: &str) -> Alert {
        Alert::new(
            "disk",
            &Condition::active(
                "disk_full",
                labels([("host", host)]),
                Severity::Critical,
                "x",
            ),
            Moment::replayed(0.0),
        )
    }

    fn ts(s: &str) -> f64 {
        s.parse::<Timestamp>().unwrap().as_second() as f64
    }

    #[test]
    fn silences_match_labels_until_they_end() {
        let s = Silence {
            id: "a".into(),
            matchers: vec!["host=db1".into(), "rule=~disk_.*".into()],
            starts_at: 100.0,
            ends_at: 200.0,
            comment: "migrating".into(),
            author: "alice".into(),
            expired_by: None,
        };
        assert!(s.silences(&alert("db1"), 150.0));
        assert!(!s.silences(&alert("db2"), 150.0));
        assert!(!s.silences(&alert("db1"), 200.0));
        assert!(!s.silences(&alert("db1"), 99.0));
        assert!(check_matchers(&[]).is_err());
        assert!(check_matchers(&["x=~(".into()]).is_err());
    }

    fn window(days: &[&str], from: &str, to: &str) -> Maintenance {
        Maintenance::compile(&MaintenanceConfig {
            name: "w".into(),
            matchers: vec!["host=db1".into()],
            time_zone: Some("Europe/Berlin".into()),
            start: None,
            end: None,
            days: days.iter().map(|s| s.to_string()).collect(),
            from: Some(from.into()),
            to: Some(to.into()),
            span: 0..0,
        })
        .unwrap()
    }

    #[test]
    fn weekly_windows_in_local_time_and_past_midnight() {
        let w = window(&["sun"], "02:00", "04:00");
        // 2026-11-01 is a Sunday; 02:00 CET = 01:00Z.
        assert!(!w.covers(&alert("db1"), ts("2026-11-01T00:59Z")));
        assert!(w.covers(&alert("db1"), ts("2026-11-01T01:00Z")));
        assert!(!w.covers(&alert("db2"), ts("2026-11-01T01:00Z")));
        assert!(!w.active(ts("2026-11-01T03:00Z")));
        let n = window(&["sat"], "23:00", "01:00");
        assert!(n.active(ts("2026-10-31T22:30Z"))); // Sat 23:30 CET
        assert!(n.active(ts("2026-10-31T23:30Z"))); // Sun 00:30 CET
        assert!(!n.active(ts("2026-11-01T00:30Z"))); // Sun 01:30
    }

    #[test]
    fn one_off_windows() {
        let w = Maintenance::compile(&MaintenanceConfig {
            name: "upgrade".into(),
            matchers: vec![],
            time_zone: None,
            start: Some("2026-11-25T22:00".into()),
            end: Some("2026-11-25T23:00".into()),
            days: vec![],
            from: None,
            to: None,
            span: 0..0,
        })
        .unwrap();
        assert!(w.active(ts("2026-11-25T22:30Z")));
        assert!(!w.active(ts("2026-11-25T23:00Z")));
    }
}
