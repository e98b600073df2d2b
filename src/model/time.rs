/// A point in time seen two ways: the monotonic clock (for every interval and wait) and the
/// wall clock (for display and records only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moment {
    /// Seconds on a monotonic clock; only differences mean anything.
    pub mono: f64,
    /// Unix seconds, UTC.
    pub wall: f64,
}

impl Moment {
    /// A moment where both clocks read the same (used when replaying recorded samples).
    pub fn replayed(unix_seconds: f64) -> Moment {
        Moment {
            mono: unix_seconds,
            wall: unix_seconds,
        }
    }

    /// The monotonic reading that corresponds to a past wall-clock record, assuming the clock
    /// did not jump in between; never later than `self.mono`.
    pub fn mono_of_wall(&self, wall: f64) -> f64 {
        self.mono - (self.wall - wall).max(0.0)
    }
}

/// Formats seconds compactly: `45s`, `9m02s`, `5h10m`, `3d04h`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "∞".into();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let s = seconds.abs();
    if s == 0.0 {
        return "0s".into();
    }
    if s < 1.0 {
        return format!("{sign}{}ms", (s * 1000.0).round() as u64);
    }
    let s = s.round() as u64;
    let (d, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{sign}{d}d{h:02}h")
    } else if h > 0 {
        format!("{sign}{h}h{m:02}m")
    } else if m > 0 {
        format!("{sign}{m}m{sec:02}s")
    } else {
        format!("{sign}{sec}s")
    }
}

/// Formats a byte count with binary units: `512 B`, `3.1 GiB`.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes.abs();
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let sign = if bytes < 0.0 { "-" } else { "" };
    if unit == 0 {
        format!("{sign}{v:.0} {}", UNITS[unit])
    } else {
        format!("{sign}{v:.1} {}", UNITS[unit])
    }
}

/// Formats unix seconds as an RFC 3339 UTC timestamp with second precision.
pub fn format_utc(unix_seconds: f64) -> String {
    let secs = unix_seconds.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_writeup() {
        assert_eq!(format_duration(542.0), "9m02s");
        assert_eq!(format_duration(18_600.0), "5h10m");
        assert_eq!(format_duration(0.25), "250ms");
        assert_eq!(format_duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d04h");
        assert_eq!(format_duration(-542.0), "-9m02s");
    }

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_494_557_400.0), "2017-05-12T02:50:00Z");
        assert_eq!(format_utc(951_782_400.0), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(38.0 * 1024.0 * 1024.0 * 1024.0), "38.0 GiB");
    }
}
