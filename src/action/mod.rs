//! Actions: configured remediations (`[[action]]`), one file per kind behind the [`Action`]
//! trait; [`build`] is the one registry (the kinds are listed once, in
//! `crate::config::actions`).
//!
//! An action only knows how to run once and what it would do. When to run it (delay, guards,
//! approval, post-check) is the runner's business.

pub mod child;
pub mod exec;
pub mod guard;
pub mod http;
pub mod signal;
pub mod systemd;

use crate::config::actions::ActionConfig;
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of output an outcome keeps: the last 4 KiB.
pub const TAIL_LIMIT: usize = 4096;

/// What one run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunOutcome {
    /// Whether the run did what it should (exit 0, the unit active, the expected status, the
    /// signal delivered).
    pub ok: bool,
    /// One line: "exit 0 in 1.2s", "killed after 60s timeout", "HTTP 503 in 40ms, expected 2xx".
    pub summary: String,
    /// The last 4 KiB of what it printed (stdout and stderr as they came) or answered, secrets
    /// redacted.
    pub output_tail: String,
    /// How long it took, on the monotonic clock.
    pub seconds: f64,
}

impl RunOutcome {
    /// A failed outcome with no output.
    pub fn failed(summary: impl Into<String>, seconds: f64) -> RunOutcome {
        RunOutcome {
            ok: false,
            summary: summary.into(),
            output_tail: String::new(),
            seconds,
        }
    }
}

/// One configured remediation, ready to run.
#[async_trait]
pub trait Action: Send + Sync {
    /// Runs once. Returns within `timeout` plus a kill grace of at most 2 s; never panics.
    async fn run(&self, timeout: Duration) -> RunOutcome;

    /// What a run would do, one line, secrets as `<secret>` ("exec /usr/bin/systemctl restart
    /// app").
    fn describe(&self) -> String;
}

/// Builds the runnable action of a configured one.
pub fn build(config: &ActionConfig) -> Arc<dyn Action> {
    config.kind.build()
}

/// Seconds in words for summaries: `40ms`, `1.2s`, `2m05s`.
pub fn took(seconds: f64) -> String {
    if (1.0..60.0).contains(&seconds) {
        format!("{seconds:.1}s")
    } else {
        crate::model::format_duration(seconds)
    }
}

/// The last [`TAIL_LIMIT`] bytes of some output, lossily decoded, with every secret replaced
/// by `<secret>`. `dropped` says whether bytes before `raw` were already thrown away: then
/// `raw` must hold `margin` bytes more than the limit (at least the longest secret), and
/// those are cut after redaction, so no piece of a secret cut at the start survives.
pub fn redacted_tail(
    raw: &[u8],
    dropped: bool,
    margin: usize,
    secrets: &[crate::config::Secret],
) -> String {
    let text = crate::notify::text::redact(String::from_utf8_lossy(raw).into_owned(), secrets);
    let mut start = if dropped { margin.min(text.len()) } else { 0 };
    start = start.max(text.len().saturating_sub(TAIL_LIMIT));
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// The longest secret's length: how many bytes more than the limit a bounded capture keeps.
pub fn margin(secrets: &[crate::config::Secret]) -> usize {
    secrets.iter().map(|s| s.expose().len()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn tails_are_bounded_and_redacted() {
        let s = [Secret::new("hunter2hunter2")];
        let t = redacted_tail(b"token=hunter2hunter2 ok", false, 0, &s);
        assert_eq!(t, "token=<secret> ok");
        let long = vec![b'x'; 10_000];
        assert_eq!(redacted_tail(&long, false, 0, &[]).len(), TAIL_LIMIT);
        // A secret cut at the start of a window that already dropped bytes: its piece goes.
        let mut raw = b"ter2hunter2 ".to_vec();
        raw.extend(std::iter::repeat_n(b'y', TAIL_LIMIT));
        let t = redacted_tail(&raw, true, margin(&s), &s);
        assert!(!t.contains("hunter"), "{t}");
        assert!(t.len() <= TAIL_LIMIT);
        assert_eq!(took(0.04), "40ms");
        assert_eq!(took(1.234), "1.2s");
    }
}
