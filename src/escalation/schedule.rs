//! On-call schedules: rotations with handoffs at local times in a named time zone (DST-correct
//! through `jiff`), later layers over earlier ones, overrides over all. Pure.

use crate::config::ScheduleConfig;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// A compiled schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The schedule id.
    pub id: String,
    /// Its time zone.
    pub tz: TimeZone,
    layers: Vec<Layer>,
    overrides: Vec<Override>,
}

#[derive(Clone, Debug)]
struct Layer {
    rotation: Vec<String>,
    start: DateTime,
    start_ts: Timestamp,
    every: Span,
    nominal: f64,
    end_ts: Option<Timestamp>,
}

#[derive(Clone, Debug)]
struct Override {
    person: String,
    start: Timestamp,
    end: Timestamp,
}

/// Parses a period in calendar units: `1w`, `2d`, `12h`, `30m` (one unit).
pub fn parse_every(s: &str) -> Result<(Span, f64), String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("handoff period {s:?} needs a unit: w, d, h or m"))?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("handoff period {s:?} must start with a whole number"))?;
    if n <= 0 || n > 1000 {
        return Err(format!(
            "handoff period {s:?} must be between 1 and 1000 units"
        ));
    }
    let (span, secs) = match unit {
        "w" => (Span::new().weeks(n), 604_800),
        "d" => (Span::new().days(n), 86_400),
        "h" => (Span::new().hours(n), 3_600),
        "m" => (Span::new().minutes(n), 60),
        _ => {
            return Err(format!("handoff period {s:?}: unit must be w, d, h or m"));
        }
    };
    Ok((span, (n * secs) as f64))
}

/// Parses a local time (`2026-11-02T09:00`, seconds optional) in `tz`.
pub fn parse_local(s: &str, tz: &TimeZone) -> Result<(DateTime, Timestamp), String> {
    let dt: DateTime = s
        .parse()
        .map_err(|e| format!("{s:?} is not a local date and time like 2026-11-02T09:00: {e}"))?;
    let z = dt
        .to_zoned(tz.clone())
        .map_err(|e| format!("{s:?} cannot be placed in the time zone: {e}"))?;
    Ok((dt, z.timestamp()))
}

impl Schedule {
    /// Checks and compiles a `[[schedule]]` (pure: the zone database is built in).
    pub fn compile(c: &ScheduleConfig) -> Result<Schedule, String> {
        let zone = c.time_zone.as_deref().unwrap_or("UTC");
        let tz = TimeZone::get(zone)
            .map_err(|e| format!("time_zone {zone:?} is not a known IANA zone: {e}"))?;
        if c.layers.is_empty() && c.overrides.is_empty() {
            return Err("a schedule needs at least one layer".into());
        }
        let mut layers = Vec::new();
        for (i, l) in c.layers.iter().enumerate() {
            if l.rotation.is_empty() {
                return Err(format!("layer {}: rotation is empty", i + 1));
            }
            let (start, start_ts) =
                parse_local(&l.start, &tz).map_err(|e| format!("layer {}: start {e}", i + 1))?;
            let (every, nominal) =
                parse_every(&l.every).map_err(|e| format!("layer {}: {e}", i + 1))?;
            let end_ts = match &l.end {
                Some(e) => Some(
                    parse_local(e, &tz)
                        .map_err(|e| format!("layer {}: end {e}", i + 1))?
                        .1,
                ),
                None => None,
            };
            layers.push(Layer {
                rotation: l.rotation.clone(),
                start,
                start_ts,
                every,
                nominal,
                end_ts,
            });
        }
        let mut overrides = Vec::new();
        for (i, o) in c.overrides.iter().enumerate() {
            let (_, start) =
                parse_local(&o.start, &tz).map_err(|e| format!("override {}: start {e}", i + 1))?;
            let (_, end) =
                parse_local(&o.end, &tz).map_err(|e| format!("override {}: end {e}", i + 1))?;
            if end <= start {
                return Err(format!("override {}: end must be after start", i + 1));
            }
            overrides.push(Override {
                person: o.person.clone(),
                start,
                end,
            });
        }
        Ok(Schedule {
            id: c.id.clone(),
            tz,
            layers,
            overrides,
        })
    }

    /// Who is on call at `t`, if anyone.
    pub fn on_call(&self, t: Timestamp) -> Option<String> {
        if let Some(o) = self
            .overrides
            .iter()
            .rev()
            .find(|o| o.start <= t && t < o.end)
        {
            return Some(o.person.clone());
        }
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.on_call(&self.tz, t))
    }

    /// Who is on call at unix seconds `wall`.
    pub fn on_call_at(&self, wall: f64) -> Option<String> {
        Timestamp::from_millisecond((wall * 1000.0) as i64)
            .ok()
            .and_then(|t| self.on_call(t))
    }

    /// When the person on call next changes after `t` (for display); `None` if never.
    pub fn next_change(&self, t: Timestamp) -> Option<Timestamp> {
        let now = self.on_call(t);
        let mut at = t;
        for _ in 0..1000 {
            let c = self.next_boundary(at)?;
            if self.on_call(c) != now {
                return Some(c);
            }
            at = c;
        }
        None
    }

    /// The next handoff strictly after `t` on any layer or override.
    fn next_boundary(&self, t: Timestamp) -> Option<Timestamp> {
        let mut best: Option<Timestamp> = None;
        let mut consider = |c: Timestamp| {
            if c > t && best.is_none_or(|b| c < b) {
                best = Some(c);
            }
        };
        for l in &self.layers {
            if t < l.start_ts {
                consider(l.start_ts);
            } else if let Some(n) = l.index(&self.tz, t)
                && let Some(next) = l.handoff(&self.tz, n + 1)
            {
                consider(next);
            }
            if let Some(e) = l.end_ts {
                consider(e);
            }
        }
        for o in &self.overrides {
            consider(o.start);
            consider(o.end);
        }
        best
    }
}

impl Layer {
    /// The `n`th handoff (0 = start), placed in local time so a daily 09:00 stays 09:00.
    fn handoff(&self, tz: &TimeZone, n: i64) -> Option<Timestamp> {
        let span = self.every.checked_mul(n).ok()?;
        let dt = self.start.checked_add(span).ok()?;
        Some(dt.to_zoned(tz.clone()).ok()?.timestamp())
    }

    /// Which turn covers `t` (`None` before the start).
    fn index(&self, tz: &TimeZone, t: Timestamp) -> Option<i64> {
        if t < self.start_ts {
            return None;
        }
        let elapsed = (t.as_millisecond() - self.start_ts.as_millisecond()) as f64 / 1000.0;
        let mut n = (elapsed / self.nominal).floor() as i64;
        // The estimate is off by at most a DST shift; walk to the exact turn.
        for _ in 0..8 {
            match self.handoff(tz, n) {
                Some(h) if h > t => n -= 1,
                _ => break,
            }
        }
        for _ in 0..8 {
            match self.handoff(tz, n + 1) {
                Some(h) if h <= t => n += 1,
                _ => break,
            }
        }
        Some(n.max(0))
    }

    fn on_call(&self, tz: &TimeZone, t: Timestamp) -> Option<String> {
        if self.end_ts.is_some_and(|e| t >= e) {
            return None;
        }
        let n = self.index(tz, t)?;
        Some(self.rotation[(n as usize) % self.rotation.len()].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::paging::{LayerConfig, OverrideConfig};

    fn schedule(layers: Vec<LayerConfig>, overrides: Vec<OverrideConfig>) -> Schedule {
        Schedule::compile(&ScheduleConfig {
            id: "ops".into(),
            time_zone: Some("Europe/Berlin".into()),
            layers,
            overrides,
            span: 0..0,
        })
        .unwrap()
    }

    fn layer(rotation: &[&str], start: &str, every: &str) -> LayerConfig {
        LayerConfig {
            rotation: rotation.iter().map(|s| s.to_string()).collect(),
            start: start.into(),
            every: every.into(),
            end: None,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn daily_handoff_stays_at_nine_local_across_both_dst_changes() {
        let s = schedule(
            vec![layer(&["alice", "bob"], "2026-10-20T09:00", "1d")],
            vec![],
        );
        // 2026-10-24 is day 4 (alice); DST ends 2026-10-25 03:00 CEST → 02:00 CET.
        // 09:00 CEST = 07:00Z; 09:00 CET = 08:00Z.
        assert_eq!(s.on_call(at("2026-10-24T06:59Z")).as_deref(), Some("bob")); // day 3
        assert_eq!(s.on_call(at("2026-10-24T07:00Z")).as_deref(), Some("alice")); // day 4
        // On the 25th the handoff is at 09:00 CET = 08:00Z, not 07:00Z.
        assert_eq!(s.on_call(at("2026-10-25T07:30Z")).as_deref(), Some("alice"));
        assert_eq!(s.on_call(at("2026-10-25T08:00Z")).as_deref(), Some("bob"));
        assert_eq!(
            s.next_change(at("2026-10-25T07:30Z")),
            Some(at("2026-10-25T08:00Z"))
        );
        // Spring forward 2027-03-28: 09:00 CEST = 07:00Z again. Day index: 159 days after
        // 2026-10-20 → odd → bob.
        assert_eq!(s.on_call(at("2027-03-28T06:59Z")).as_deref(), Some("alice"));
        assert_eq!(s.on_call(at("2027-03-28T07:00Z")).as_deref(), Some("bob"));
        // The day before (still CET) the handoff is at 08:00Z.
        assert_eq!(s.on_call(at("2027-03-27T07:59Z")).as_deref(), Some("bob"));
        assert_eq!(s.on_call(at("2027-03-27T08:00Z")).as_deref(), Some("alice"));
        assert_eq!(s.on_call(at("2026-10-20T06:59Z")), None, "before the start");
    }

    #[test]
    fn weekly_layers_and_overrides() {
        let s = schedule(
            vec![
                layer(&["alice", "bob", "carol"], "2026-11-02T09:00", "1w"),
                LayerConfig {
                    end: Some("2026-11-05T00:00".into()),
                    ..layer(&["dave"], "2026-11-04T18:00", "1d")
                },
            ],
            vec![OverrideConfig {
                person: "erin".into(),
                start: "2026-11-10T12:00".into(),
                end: "2026-11-10T14:00".into(),
            }],
        );
        assert_eq!(s.on_call(at("2026-11-03T12:00Z")).as_deref(), Some("alice"));
        assert_eq!(
            s.on_call(at("2026-11-04T18:00Z")).as_deref(),
            Some("dave"),
            "later layer wins"
        );
        assert_eq!(
            s.on_call(at("2026-11-05T00:00Z")).as_deref(),
            Some("alice"),
            "layer ended"
        );
        assert_eq!(s.on_call(at("2026-11-09T08:00Z")).as_deref(), Some("bob"));
        assert_eq!(
            s.on_call(at("2026-11-10T11:30Z")).as_deref(),
            Some("erin"),
            "override"
        );
        assert_eq!(s.on_call(at("2026-11-10T13:00Z")).as_deref(), Some("bob"));
        assert_eq!(s.on_call(at("2026-11-16T08:00Z")).as_deref(), Some("carol"));
        assert_eq!(s.on_call(at("2026-11-23T08:00Z")).as_deref(), Some("alice"));
    }

    #[test]
    fn bad_schedules_say_why() {
        let mut c = ScheduleConfig {
            id: "x".into(),
            time_zone: Some("Mars/Olympus".into()),
            layers: vec![layer(&["a"], "2026-11-02T09:00", "1d")],
            overrides: vec![],
            span: 0..0,
        };
        assert!(Schedule::compile(&c).unwrap_err().contains("IANA"));
        c.time_zone = None;
        c.layers[0].every = "1y".into();
        assert!(Schedule::compile(&c).unwrap_err().contains("unit"));
        c.layers[0].every = "1d".into();
        c.layers[0].start = "tomorrow".into();
        assert!(Schedule::compile(&c).unwrap_err().contains("local date"));
    }
}
