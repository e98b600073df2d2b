use serde::{Deserialize, Serialize};
use std::fmt;

/// The outcome of one probe run, worst last (`Ok < Unknown < Warning < Critical`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything checked is fine.
    Ok,
    /// The probe could not tell (timed out, failed to run).
    Unknown,
    /// Something needs attention soon.
    Warning,
    /// Something is broken or about to break.
    Critical,
}

impl Status {
    /// The lowercase name used in output and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Unknown => "unknown",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "ok" => Status::Ok,
            "unknown" => Status::Unknown,
            "warning" => Status::Warning,
            "critical" => Status::Critical,
            _ => return None,
        })
    }

    /// Whether dependants of a probe in this status should be suppressed.
    pub fn is_failing(self) -> bool {
        matches!(self, Status::Critical | Status::Unknown)
    }

    /// A numeric code for metrics (Nagios convention: 0 ok, 1 warning, 2 critical, 3 unknown).
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
}

impl From<Severity> for Status {
    fn from(s: Severity) -> Status {
        match s {
            Severity::Info => Status::Ok,
            Severity::Warning => Status::Warning,
            Severity::Critical => Status::Critical,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an alert is; picks the escalation policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record only.
    Info,
    /// Needs attention during working hours.
    Warning,
    /// Wakes someone up.
    Critical,
}

impl Severity {
    /// The lowercase name used in output and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
