//! The `bridge` probe: end-to-end traffic through a Matrix↔IRC bridge, each direction on its
//! own. Each round sends a unique token Matrix→IRC (as the Matrix probe user, seen on lookout's
//! own IRC connection) and one IRC→Matrix (said on IRC, seen through Matrix incremental sync),
//! and optionally asks the homeserver to ping the bridge's appservice. See
//! `docs/probes/bridge.md`.

pub mod irc;
pub mod matrix;
pub mod probe;
pub mod rules;
pub mod transport;

use crate::config::values::{Dur, Secret};
use crate::config::{KindConfig, KindDefaults};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// `[[probe]] kind = "bridge"`: one bridged pair (a Matrix room ↔ an IRC channel).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// The homeserver's client-server API base URL, e.g. `"https://matrix.example.org"`.
    /// Required.
    pub homeserver: String,
    /// The Matrix probe user (`@lookout:example.org` or a localpart), for password login.
    /// Required with `password` / `password_file`.
    pub user: Option<String>,
    /// Its password. Default none.
    pub password: Option<Secret>,
    /// File holding its password (read at each login). Default none.
    pub password_file: Option<PathBuf>,
    /// An access token instead of a password. Default none.
    pub access_token: Option<Secret>,
    /// File holding the access token. Default none.
    pub access_token_file: Option<PathBuf>,
    /// The bridged Matrix room: an id (`!…`) or an alias (`#…:server`). Required.
    pub room: String,
    /// The IRC side. Required.
    pub irc: IrcSide,
    /// Consecutive rounds without delivery before a direction's alert holds (also for failed
    /// appservice pings). Default 2.
    pub failed_rounds: Option<u32>,
    /// How long a token may take to arrive before the round counts as undelivered. Default
    /// `"15s"`, never past the probe's timeout minus a margin.
    pub deadline: Option<Dur>,
    /// After a round in which a direction was not delivered, the next round comes this soon
    /// (or at once, if the round took longer), so `failed_rounds` confirm a wedge quickly.
    /// Default: a third of the interval.
    pub retry_interval: Option<Dur>,
    /// A delivered token slower than this warns. Default `"10s"`.
    pub latency_warning: Option<Dur>,
    /// A delivered token slower than this is critical. Default none.
    pub latency_critical: Option<Dur>,
    /// The bridge's appservice id (`id:` in its registration file); with `as_token`, each round
    /// also asks the homeserver to ping the bridge. Default none.
    pub appservice_id: Option<String>,
    /// The bridge's `as_token` (from its registration file). Default none.
    pub as_token: Option<Secret>,
    /// File holding the `as_token`. Default none.
    pub as_token_file: Option<PathBuf>,
}

/// `[probe.irc]`: the IRC network and channel of the pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcSide {
    /// Server host name or address. Required.
    pub server: String,
    /// Port. Default 6667, or 6697 with `tls = true`.
    pub port: Option<u16>,
    /// Connect with TLS (rustls, ring), verifying the server's certificate against the
    /// system's roots, Mozilla's (webpki-roots) and `ca_file`. Default false.
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of CA certificates to trust besides those, for a server whose certificate a
    /// private CA signed (or a self-signed one: give the certificate itself). Read at each
    /// connect. Needs `tls = true`. Default none.
    pub ca_file: Option<PathBuf>,
    /// The bridged channel, e.g. `"#test"`. Required.
    pub channel: String,
    /// lookout's nick, cut to 9 characters (RFC 1459 NICKLEN); a digit replaces the last
    /// character when it is taken. Default `"lookout"`.
    #[serde(default = "default_nick")]
    pub nick: String,
    /// Server password. Default none.
    pub password: Option<Secret>,
}

impl IrcSide {
    /// The port: `port`, or the usual one for plain text (6667) or TLS (6697).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 6697 } else { 6667 })
    }
}

fn default_nick() -> String {
    "lookout".into()
}

impl KindConfig for BridgeConfig {
    const NAME: &'static str = "bridge";

    fn defaults() -> KindDefaults {
        KindDefaults::new(30, 20)
    }

    fn host_warnings(
        &self,
        component: &str,
        table: usize,
        warnings: &mut crate::config::error::Collector<'_>,
    ) {
        if let Some(p) = &self.password_file {
            warnings.warn_unreadable(table, "password_file", component, p);
        }
        if let Some(p) = &self.access_token_file {
            warnings.warn_unreadable(table, "access_token_file", component, p);
        }
        if let Some(p) = &self.as_token_file {
            warnings.warn_unreadable(table, "as_token_file", component, p);
        }
    }

    fn validate(
        &self,
        component: &str,
        span: Range<usize>,
        errors: &mut crate::config::error::Collector<'_>,
    ) {
        for (message, hint) in self.problems() {
            errors.push(Some(span.clone()), Some(component), message, hint);
        }
    }

    fn build(&self, ctx: &super::BuildContext) -> super::Built {
        probe::built(self, ctx)
    }
}

impl BridgeConfig {
    /// Every semantic problem, as (message, hint). Pure.
    pub fn problems(&self) -> Vec<(String, Option<String>)> {
        let mut out = crate::matrix::login_problems(
            &self.homeserver,
            crate::matrix::CredentialsGiven {
                user: self.user.as_deref(),
                password: self.password.is_some(),
                password_file: self.password_file.is_some(),
                access_token: self.access_token.is_some(),
                access_token_file: self.access_token_file.is_some(),
            },
            &self.room,
        );
        if self.as_token.is_some() && self.as_token_file.is_some() {
            out.push(("give as_token or as_token_file, not both".into(), None));
        }
        let has_token = self.as_token.is_some() || self.as_token_file.is_some();
        if has_token != self.appservice_id.is_some() {
            out.push((
                "appservice_id and as_token (or as_token_file) go together".into(),
                Some("both are in the bridge's registration file (id:, as_token:)".into()),
            ));
        }
        if self.irc.ca_file.is_some() && !self.irc.tls {
            out.push((
                "irc.ca_file needs irc.tls = true".into(),
                Some("the CA file is only used to verify a TLS server's certificate".into()),
            ));
        }
        if self.irc.port == Some(0) {
            out.push(("irc.port must not be 0".into(), None));
        }
        if !self.irc.channel.starts_with(['#', '&', '!', '+']) {
            out.push((
                format!("irc.channel {:?} is not a channel name", self.irc.channel),
                Some("e.g. \"#test\"".into()),
            ));
        }
        if self.irc.server.trim().is_empty() {
            out.push(("irc.server is empty".into(), None));
        }
        if self
            .retry_interval
            .is_some_and(|d| d.0 < std::time::Duration::from_secs(1))
        {
            out.push(("retry_interval must be at least 1s".into(), None));
        }
        if self.failed_rounds == Some(0) {
            out.push(("failed_rounds must be at least 1".into(), None));
        }
        if let (Some(w), Some(c)) = (self.latency_warning, self.latency_critical)
            && c.0 < w.0
        {
            out.push(("latency_critical is below latency_warning".into(), None));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const OK: &str = "homeserver = \"http://127.0.0.1:8008\"\nuser = \"@lookout:localhost\"\npassword = \"pw\"\nroom = \"!abc\"\n";
    const IRC: &str = "[probe.irc]\nserver = \"irc.example.org\"\nchannel = \"#test\"\n";

    #[test]
    fn validation_names_every_problem() {
        let cases: &[(&str, &str)] = &[
            (OK, ""),
            (
                "homeserver = \"https://m.example.org\"\naccess_token = \"t\"\nroom = \"#a:example.org\"\nappservice_id = \"hb\"\nas_token_file = \"/x\"\n",
                "",
            ),
            (
                "homeserver = \"m.example.org\"\npassword = \"p\"\nuser = \"u\"\nroom = \"!a\"\n",
                "homeserver: ",
            ),
            (
                "homeserver = \"http://h\"\npassword = \"p\"\nuser = \"u\"\nroom = \"#a\"\n",
                "neither a room id nor an alias",
            ),
            (
                "homeserver = \"http://h\"\nroom = \"!a\"\n",
                "exactly one of password, password_file, access_token, access_token_file (0 set)",
            ),
            (
                "homeserver = \"http://h\"\npassword = \"p\"\nroom = \"!a\"\n",
                "a password login needs `user`",
            ),
            (
                "homeserver = \"http://h\"\npassword = \"p\"\nuser = \"u\"\naccess_token = \"t\"\nroom = \"!a\"\n",
                "exactly one of",
            ),
            (&format!("{OK}appservice_id = \"hb\"\n"), "go together"),
            (&format!("{OK}failed_rounds = 0\n"), "at least 1"),
            (
                &format!("{OK}latency_warning = \"10s\"\nlatency_critical = \"5s\"\n"),
                "below latency_warning",
            ),
            (&format!("{OK}colour = \"red\"\n"), "unknown field `colour`"),
        ];
        for (fields, want) in cases {
            let src = format!("[[probe]]\nid = \"b\"\nkind = \"bridge\"\n{fields}{IRC}");
            check(&src, want);
        }
        let head = format!("[[probe]]\nid = \"b\"\nkind = \"bridge\"\n{OK}{IRC}");
        check(&format!("{head}tls = true\n"), "");
        check(
            &format!("{head}tls = true\nca_file = \"/etc/ca.pem\"\n"),
            "",
        );
        check(
            &format!("{head}ca_file = \"/etc/ca.pem\"\n"),
            "needs irc.tls = true",
        );
        check(&format!("{head}port = 0\n"), "must not be 0");
        let chan = format!(
            "[[probe]]\nid = \"b\"\nkind = \"bridge\"\n{OK}[probe.irc]\nserver = \"s\"\nchannel = \"test\"\n"
        );
        check(&chan, "not a channel name");
    }

    #[test]
    fn the_irc_port_defaults_by_tls() {
        let side = |extra: &str| -> super::IrcSide {
            toml::from_str(&format!("server = \"s\"\nchannel = \"#c\"\n{extra}")).unwrap()
        };
        assert_eq!(side("").port(), 6667);
        assert_eq!(side("tls = true").port(), 6697);
        assert_eq!(side("tls = true\nport = 7000").port(), 7000);
        assert_eq!(side("port = 7000").port(), 7000);
    }

    fn check(src: &str, want: &str) {
        let got: Vec<String> = match crate::config::parse_str(Path::new("t.toml"), src) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.message.clone()).collect(),
        };
        if want.is_empty() {
            assert!(got.is_empty(), "{src}: unexpected {got:?}");
        } else {
            assert!(
                got.iter().any(|m| m.contains(want)),
                "{src}: wanted {want:?}, got {got:?}"
            );
        }
    }
}
