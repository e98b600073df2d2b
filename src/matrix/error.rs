//! Typed errors of the Matrix client. None carries a URL, access token or password.

use std::fmt;
use std::time::Duration;

/// Why a Matrix request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// No answer: connection refused, DNS, TLS, reset.
    Unreachable(String),
    /// No complete answer (headers and body) within the deadline.
    Timeout {
        /// What was being done, e.g. `send`.
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The server answered with an error status.
    Http {
        /// HTTP status code.
        status: u16,
        /// Matrix `errcode`, e.g. `M_FORBIDDEN`.
        errcode: Option<String>,
        /// Matrix `error` text (secrets scrubbed, cut to 200 characters).
        error: Option<String>,
    },
    /// A 2xx answer lookout could not decode.
    Invalid(String),
    /// The session has no way to log in (e.g. a token was rejected and there is no password).
    NotLoggedIn(String),
}

impl Error {
    /// The Matrix errcode, if the server sent one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            Error::Http { errcode, .. } => errcode.as_deref(),
            _ => None,
        }
    }

    /// Whether the access token was rejected (`M_UNKNOWN_TOKEN` or `M_MISSING_TOKEN`).
    pub fn is_unknown_token(&self) -> bool {
        matches!(self.errcode(), Some("M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN"))
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether the server could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable(d) => write!(f, "homeserver unreachable: {d}"),
            Error::Timeout { what, after } => write!(
                f,
                "{what} timed out after {}",
                crate::model::format_duration(after.as_secs_f64())
            ),
            Error::Http {
                status,
                errcode,
                error,
            } => {
                write!(f, "{status}")?;
                if let Some(c) = errcode {
                    write!(f, " {c}")?;
                }
                if let Some(e) = error {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
            Error::Invalid(d) => write!(f, "unexpected answer: {d}"),
            Error::NotLoggedIn(d) => write!(f, "not logged in: {d}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_read_like_the_server_said_them() {
        let e = Error::Http {
            status: 403,
            errcode: Some("M_FORBIDDEN".into()),
            error: Some("User is not in room".into()),
        };
        assert_eq!(e.to_string(), "403 M_FORBIDDEN: User is not in room");
        let t = Error::Timeout {
            what: "send",
            after: Duration::from_secs(5),
        };
        assert!(t.to_string().starts_with("send timed out after 5"));
    }
}
