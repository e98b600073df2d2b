//! The IRC side: one connection (the `irc` crate, plain TCP or TLS through rustls) kept open
//! across rounds by a background task, which reconnects with backoff, joins the channel and
//! broadcasts every line seen there. Dropping the transport ends the task.

use super::transport::{Seen, Transport};
use async_trait::async_trait;
use irc::client::prelude::{Client, Command, Config, Sender};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_stream::StreamExt;

/// The longest nick lookout uses: RFC 1459's 9, which ngIRCd enforces and every server allows.
pub const MAX_NICK: usize = 9;

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct IrcTarget {
    /// Server host name or address.
    pub server: String,
    /// TCP port.
    pub port: u16,
    /// Connect with TLS (the server's certificate is verified; there is no way around that).
    pub tls: bool,
    /// With `tls`: a PEM file of CA certificates trusted besides the system's and Mozilla's.
    pub ca_file: Option<PathBuf>,
    /// The wanted nick (cut to [`MAX_NICK`]).
    pub nick: String,
    /// The channel, e.g. `#test`.
    pub channel: String,
    /// Server password, if any.
    pub password: Option<String>,
    /// Bound on connecting and registering.
    pub connect_timeout: Duration,
}

/// The connection's state as the background task last saw it.
#[derive(Clone, Debug, PartialEq)]
enum Link {
    /// Connecting or registering (attempt number).
    Connecting,
    /// In the channel under this nick.
    Joined(String),
    /// The last attempt failed; a retry is scheduled.
    Down(String),
}

struct Shared {
    link: watch::Sender<Link>,
    seen: broadcast::Sender<Seen>,
    sender: Mutex<Option<Sender>>,
}

/// An IRC connection kept across rounds.
pub struct IrcTransport {
    shared: Arc<Shared>,
    target: IrcTarget,
    task: tokio::task::JoinHandle<()>,
}

impl IrcTransport {
    /// Starts the background connection (needs a tokio runtime).
    pub fn start(target: IrcTarget) -> IrcTransport {
        // The `irc` crate builds its TLS config from the process-wide provider; with ring and
        // aws-lc-rs both compiled in, rustls panics unless one is installed.
        crate::http::install_crypto_provider();
        let (link, _) = watch::channel(Link::Connecting);
        let (seen, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            link,
            seen,
            sender: Mutex::new(None),
        });
        let task = tokio::spawn(run(Arc::clone(&shared), target.clone()));
        IrcTransport {
            shared,
            target,
            task,
        }
    }
}

impl IrcTransport {
    /// The nick in use while joined.
    pub fn nick(&self) -> Option<String> {
        match &*self.shared.link.borrow() {
            Link::Joined(n) => Some(n.clone()),
            _ => None,
        }
    }
}

impl Drop for IrcTransport {
    fn drop(&mut self) {
        if let Some(s) = self.shared.sender.lock().ok().and_then(|mut s| s.take()) {
            let _ = s.send_quit("lookout: probe removed");
        }
        self.task.abort();
    }
}

/// Nicks to try: the wanted one cut to [`MAX_NICK`], then variants ending in a digit.
pub fn nicks(wanted: &str) -> Vec<String> {
    let clean: String = wanted
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_[]\\`^{}|".contains(*c))
        .collect();
    let clean = if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        format!("l{clean}")
    } else {
        clean
    };
    let first: String = clean.chars().take(MAX_NICK).collect();
    let stem: String = clean.chars().take(MAX_NICK - 1).collect();
    let mut out = vec![first];
    out.extend((1..=9).map(|i| format!("{stem}{i}")));
    out
}

async fn run(shared: Arc<Shared>, target: IrcTarget) {
    let mut backoff = Duration::from_secs(1);
    loop {
        shared.link.send_replace(Link::Connecting);
        let started = Instant::now();
        let why = session(&shared, &target).await;
        *shared.sender.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(server = %target.server, port = target.port, error = %why, "IRC connection ended; reconnecting");
        shared.link.send_replace(Link::Down(why));
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// One connection from connect to its end; returns why it ended.
async fn session(shared: &Shared, target: &IrcTarget) -> String {
    let names = nicks(&target.nick);
    let config = Config {
        nickname: Some(names[0].clone()),
        alt_nicks: names[1..].to_vec(),
        username: Some("lookout".into()),
        realname: Some("lookout bridge probe".into()),
        server: Some(target.server.clone()),
        port: Some(target.port),
        password: target.password.clone(),
        channels: vec![target.channel.clone()],
        ping_time: Some(30),
        ping_timeout: Some(15),
        use_tls: Some(target.tls),
        cert_path: target
            .ca_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        ..Config::default()
    };
    let addr = format!("{}:{}", target.server, target.port);
    if let Some(ca) = target.ca_file.as_deref().filter(|_| target.tls)
        && let Err(why) = check_ca_file(ca, target.connect_timeout).await
    {
        return why;
    }
    let mut client =
        match tokio::time::timeout(target.connect_timeout, Client::from_config(config)).await {
            Err(_) if target.tls => {
                return format!("connecting to {addr} (TCP and TLS handshake) timed out");
            }
            Err(_) => return format!("connecting to {addr} timed out"),
            Ok(Err(e)) if target.tls && is_tls_failure(&e) => {
                return format!("TLS handshake with {addr} failed: {}", describe(&e));
            }
            Ok(Err(e)) => return format!("cannot connect to {addr}: {}", describe(&e)),
            Ok(Ok(c)) => c,
        };
    if let Err(e) = client.identify() {
        return format!("{addr}: cannot register: {e}");
    }
    let mut stream = match client.stream() {
        Ok(s) => s,
        Err(e) => return format!("{addr}: {e}"),
    };
    *shared.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.sender());
    let registered_by = Instant::now() + target.connect_timeout;
    let channel = target.channel.to_ascii_lowercase();
    loop {
        let joined = matches!(*shared.link.borrow(), Link::Joined(_));
        let next = if joined {
            stream.next().await
        } else {
            match tokio::time::timeout_at(registered_by, stream.next()).await {
                Err(_) => return format!("{addr}: not in {} after connecting", target.channel),
                Ok(n) => n,
            }
        };
        let message = match next {
            None => return format!("{addr} closed the connection"),
            Some(Err(e)) => return format!("{addr}: {}", describe(&e)),
            Some(Ok(m)) => m,
        };
        let from = message.source_nickname().map(str::to_string);
        match &message.command {
            Command::JOIN(chan, _, _)
                if chan.eq_ignore_ascii_case(&channel)
                    && from.as_deref() == Some(client.current_nickname()) =>
            {
                // send_replace: the state must change even when no round is waiting on it.
                shared
                    .link
                    .send_replace(Link::Joined(client.current_nickname().to_string()));
            }
            Command::PRIVMSG(to, text) | Command::NOTICE(to, text)
                if to.eq_ignore_ascii_case(&channel) =>
            {
                let _ = shared.seen.send(Seen {
                    text: text.clone(),
                    at: Instant::now(),
                });
            }
            Command::KICK(chan, nick, _)
                if chan.eq_ignore_ascii_case(&channel) && nick == client.current_nickname() =>
            {
                return format!("kicked from {}", target.channel);
            }
            Command::ERROR(text) => return format!("{addr}: server error: {text}"),
            _ => {}
        }
    }
}

/// Whether `ca_file` holds at least one PEM certificate: the `irc` crate ignores a file without
/// one (e.g. DER), which would only show later as "UnknownIssuer". The read is bounded by
/// `within` and off the runtime's threads (the file may sit on a hung network mount).
async fn check_ca_file(ca_file: &Path, within: std::time::Duration) -> Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = match tokio::time::timeout(within, tokio::fs::read(ca_file)).await {
        Ok(read) => {
            read.map_err(|e| format!("cannot read irc.ca_file {}: {e}", ca_file.display()))?
        }
        Err(_) => {
            return Err(format!(
                "reading irc.ca_file {} took longer than {within:?}",
                ca_file.display()
            ));
        }
    };
    match CertificateDer::pem_slice_iter(&pem).next() {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(format!(
            "irc.ca_file {}: not a valid PEM certificate: {e}",
            ca_file.display()
        )),
        None => Err(format!(
            "irc.ca_file {} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
            ca_file.display()
        )),
    }
}

/// Whether connecting failed in TLS (the handshake, or setting TLS up) rather than in TCP.
fn is_tls_failure(e: &irc::error::Error) -> bool {
    match e {
        irc::error::Error::Tls(_) | irc::error::Error::InvalidDnsNameError(_) => true,
        irc::error::Error::Io(io) => {
            io.get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
                || matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                )
        }
        _ => false,
    }
}

/// The `irc` crate's error in words: its own texts for I/O and TLS errors ("an io error
/// occurred") say nothing, so the cause is shown, with a hint for an unknown CA.
fn describe(e: &irc::error::Error) -> String {
    use std::error::Error as _;
    let text = match e {
        irc::error::Error::Io(io) => io.to_string(),
        irc::error::Error::Tls(t) => t.to_string(),
        irc::error::Error::InvalidDnsNameError(_) => {
            "the server is neither a valid DNS name nor an IP address".into()
        }
        other => {
            let mut text = other.to_string();
            let mut source = other.source();
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    };
    if text.contains("UnknownIssuer") {
        format!(
            "{text} (no trusted CA signed the server's certificate; for a private CA set irc.ca_file)"
        )
    } else {
        text
    }
}

#[async_trait]
impl Transport for IrcTransport {
    fn network(&self) -> &'static str {
        "IRC"
    }

    async fn ready(&self, deadline: Instant) -> Result<(), String> {
        let mut rx = self.shared.link.subscribe();
        let waited = tokio::time::timeout_at(deadline, async {
            loop {
                if let Link::Joined(_) = &*rx.borrow_and_update() {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err("the IRC task ended".to_string());
                }
            }
        })
        .await;
        match waited {
            Ok(r) => r,
            Err(_) => Err(match &*self.shared.link.borrow() {
                Link::Down(why) => why.clone(),
                Link::Connecting => format!(
                    "not yet in {} on {}:{}",
                    self.target.channel, self.target.server, self.target.port
                ),
                Link::Joined(_) => "joined just now".into(),
            }),
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Seen> {
        self.shared.seen.subscribe()
    }

    async fn send(&self, text: &str) -> Result<(), String> {
        let sender = self
            .shared
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match sender {
            None => Err("not connected to IRC".into()),
            Some(s) => s
                .send_privmsg(&self.target.channel, text)
                .map_err(|e| format!("cannot send on IRC: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_fit_nicklen_and_start_with_a_letter() {
        let n = nicks("lookout-bridge-probe");
        assert_eq!(n[0], "lookout-b");
        assert_eq!(n[1], "lookout-1");
        assert!(n.iter().all(|n| n.len() <= MAX_NICK));
        assert_eq!(nicks("9lives")[0], "l9lives");
        assert_eq!(nicks("a b!c")[0], "abc");
        assert_eq!(nicks("")[0], "l");
    }

    #[test]
    fn tls_failures_are_told_apart_from_tcp_ones_and_described() {
        use std::io::{Error, ErrorKind};
        let cert = irc::error::Error::Io(Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(is_tls_failure(&cert));
        let text = describe(&cert);
        assert!(
            text.starts_with("invalid peer certificate: UnknownIssuer"),
            "{text}"
        );
        assert!(text.contains("set irc.ca_file"), "{text}");
        let refused = irc::error::Error::Io(Error::from(ErrorKind::ConnectionRefused));
        assert!(!is_tls_failure(&refused));
        assert_eq!(describe(&refused), "connection refused");
    }

    #[tokio::test]
    async fn a_ca_file_without_a_pem_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let der = dir.path().join("ca.der");
        std::fs::write(&der, b"\x30\x82\x01\x00").unwrap();
        let within = std::time::Duration::from_secs(5);
        assert!(
            check_ca_file(&der, within)
                .await
                .unwrap_err()
                .contains("holds no PEM certificate")
        );
        let missing = check_ca_file(&dir.path().join("nope.pem"), within)
            .await
            .unwrap_err();
        assert!(missing.starts_with("cannot read irc.ca_file"), "{missing}");
    }
}
