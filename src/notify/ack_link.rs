//! Acknowledgement links: every page of a firing alert carries a URL that acknowledges that one
//! alert, so a page read on a phone (ntfy, email, Slack, a webhook's receiver, PagerDuty) can be
//! answered without Matrix or a shell.
//!
//! A link is `PUBLIC_URL/ack/ID.GENERATION.EXPIRES.SIGNATURE`: the alert id, the start of the
//! firing episode it was sent for (unix milliseconds, so a link from an earlier episode cannot
//! acknowledge a later one), the unix second it expires at, and an HMAC-SHA256 over the three
//! under a random key kept in `STATE_DIR/ack-link-key` (0600, made on first start). The API
//! token is never part of it. The expiry is wall time: it must mean the same after a restart.
//! Verifying checks the signature (in constant time) before anything else, so a changed
//! expiry or id reads as tampered, not as expired.

use crate::alert::Alert;
use crate::model::format_utc;
use anyhow::{Context, Result};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;

/// The file in the state directory that holds the signing key.
pub const KEY_FILE: &str = "ack-link-key";

/// The path under the API where links point.
pub const PATH_PREFIX: &str = "/ack/";

/// Domain separation: a MAC made for something else under the same key never verifies here.
const CONTEXT: &[u8] = b"lookout ack link v1";

/// The signing key (32 random bytes). Prints as `<secret>`.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl LinkKey {
    /// A key from its bytes (tests; the daemon uses [`LinkKey::load_or_create`]).
    pub fn from_bytes(bytes: [u8; 32]) -> LinkKey {
        LinkKey(bytes)
    }

    /// Reads `STATE_DIR/ack-link-key`, or makes a new random key there (mode 0600) when there
    /// is none. A file that exists but does not hold a key is an error that names it.
    pub fn load_or_create(state_dir: &Path) -> Result<LinkKey> {
        let path = state_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(text.trim()).with_context(|| {
                format!(
                    "{} does not hold an acknowledgement-link key (64 hex digits); \
                     delete it to make a new one (links already sent stop working)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(state_dir, &path),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn mac(&self, id: &str, generation: u64, expires: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(CONTEXT);
        for part in [id, &generation.to_string(), &expires.to_string()] {
            mac.update(&[0]);
            mac.update(part.as_bytes());
        }
        mac
    }
}

fn parse_key(hex_text: &str) -> Result<LinkKey> {
    let bytes = hex::decode(hex_text).context("not hex")?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("not 32 bytes"))?;
    Ok(LinkKey(key))
}

fn create_key(state_dir: &Path, path: &Path) -> Result<LinkKey> {
    use rand::Rng;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let key: [u8; 32] = rand::rng().random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, hex::encode(key).as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(LinkKey(key))
}

/// The firing episode a link belongs to: the alert's `started_at` in unix milliseconds (0 for
/// an alert that never fired).
pub fn generation(alert: &Alert) -> u64 {
    alert
        .started_at
        .map(|s| (s * 1000.0).round().max(0.0) as u64)
        .unwrap_or(0)
}

/// What a valid link names.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkToken {
    /// The alert's id.
    pub alert_id: String,
    /// The firing episode ([`generation`]).
    pub generation: u64,
    /// Unix second after which the link no longer works.
    pub expires: u64,
}

/// Why a link was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkError {
    /// Not in the shape of a link, or the signature does not match (changed or made up).
    Invalid,
    /// Signed by this daemon, but past its expiry (unix second).
    Expired(u64),
}

/// Signs a token: the last path segment of a link.
pub fn sign(key: &LinkKey, t: &LinkToken) -> String {
    let tag = key
        .mac(&t.alert_id, t.generation, t.expires)
        .finalize()
        .into_bytes();
    format!(
        "{}.{}.{}.{}",
        t.alert_id,
        t.generation,
        t.expires,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Checks a token at wall time `now`: the signature first (constant-time), then the expiry.
pub fn verify(key: &LinkKey, token: &str, now: f64) -> Result<LinkToken, LinkError> {
    let mut parts = token.split('.');
    let (Some(id), Some(generation), Some(expires), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(LinkError::Invalid);
    };
    let valid_id = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let (Ok(generation), Ok(expires)) = (generation.parse::<u64>(), expires.parse::<u64>()) else {
        return Err(LinkError::Invalid);
    };
    let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
        return Err(LinkError::Invalid);
    };
    if !valid_id || key.mac(id, generation, expires).verify_slice(&sig).is_err() {
        return Err(LinkError::Invalid);
    }
    if now >= expires as f64 {
        return Err(LinkError::Expired(expires));
    }
    Ok(LinkToken {
        alert_id: id.to_string(),
        generation,
        expires,
    })
}

/// A link as pages carry it (the webhook payload's `ack_link`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckLink {
    /// Open it (GET) for a confirmation page; POST to it to acknowledge.
    pub url: String,
    /// When it stops working (RFC 3339 UTC).
    pub expires_at: String,
}

/// Makes the links of one daemon: its key, the base URL pages point at, how long links live.
#[derive(Clone, Debug)]
pub struct AckLinks {
    key: LinkKey,
    base: String,
    lifetime_secs: u64,
}

impl AckLinks {
    /// Links under `base` (`https://lookout.example.org`, no trailing slash needed) that live
    /// `lifetime_secs`.
    pub fn new(key: LinkKey, base: &str, lifetime_secs: u64) -> AckLinks {
        AckLinks {
            key,
            base: base.trim_end_matches('/').to_string(),
            lifetime_secs: lifetime_secs.max(1),
        }
    }

    /// The link acknowledging `alert`'s current firing episode, made at wall time `now`.
    pub fn link(&self, alert: &Alert, now: f64) -> AckLink {
        let expires = now.max(0.0) as u64 + self.lifetime_secs;
        let token = LinkToken {
            alert_id: alert.id.clone(),
            generation: generation(alert),
            expires,
        };
        AckLink {
            url: format!("{}{PATH_PREFIX}{}", self.base, sign(&self.key, &token)),
            expires_at: format_utc(expires as f64),
        }
    }

    /// The signing key (the API verifies with it).
    pub fn key(&self) -> &LinkKey {
        &self.key
    }
}

/// The base URL links fall back to without `[api] public_url`: the address the API listens
/// on, with an unspecified address (`0.0.0.0`, `::`) replaced by loopback.
pub fn local_base(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::sample;

    fn key() -> LinkKey {
        LinkKey::from_bytes([7; 32])
    }

    fn token_of(url: &str) -> &str {
        url.rsplit('/').next().unwrap()
    }

    #[test]
    fn a_link_verifies_until_it_expires() {
        let alert = sample("firing").alert;
        let links = AckLinks::new(key(), "https://ops.example/lookout/", 3600);
        let link = links.link(&alert, 1_700_000_000.5);
        assert!(
            link.url.starts_with(
                "https://ops.example/lookout/ack/0123456789abcdef.1700000000000.1700003600."
            ),
            "{}",
            link.url
        );
        assert_eq!(link.expires_at, "2023-11-14T23:13:20Z");
        let t = verify(&key(), token_of(&link.url), 1_700_003_599.0).unwrap();
        assert_eq!(t.alert_id, alert.id);
        assert_eq!(t.generation, 1_700_000_000_000);
        assert_eq!(
            verify(&key(), token_of(&link.url), 1_700_003_600.0),
            Err(LinkError::Expired(1_700_003_600))
        );
    }

    #[test]
    fn any_change_or_another_key_is_refused() {
        let alert = sample("firing").alert;
        let url = AckLinks::new(key(), "http://h", 3600).link(&alert, 1e9).url;
        let token = token_of(&url).to_string();
        let parts: Vec<&str> = token.split('.').collect();
        let later = format!(
            "{}.{}.{}.{}",
            parts[0], parts[1], 9_999_999_999u64, parts[3]
        );
        let other_alert = format!(
            "{}.{}.{}.{}",
            "0123456789abcdee", parts[1], parts[2], parts[3]
        );
        let other_episode = format!("{}.{}.{}.{}", parts[0], 1, parts[2], parts[3]);
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            later.as_str(),
            other_alert.as_str(),
            other_episode.as_str(),
            flipped.as_str(),
            "",
            "a.b.c.d",
            "0123.1.2",
            "0123.1.2.3.4",
            "../../api/v1/alerts.1.2.3",
        ] {
            assert_eq!(verify(&key(), bad, 1e9), Err(LinkError::Invalid), "{bad}");
        }
        assert_eq!(
            verify(&LinkKey::from_bytes([8; 32]), &token, 1e9),
            Err(LinkError::Invalid)
        );
        assert!(verify(&key(), &token, 1e9).is_ok());
    }

    #[test]
    fn the_key_file_is_made_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let a = LinkKey::load_or_create(&state).unwrap();
        let mode = std::fs::metadata(state.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = LinkKey::load_or_create(&state).unwrap();
        assert_eq!(a.0, b.0, "the second start reads the same key");
        assert_eq!(format!("{a:?}"), "<secret>");
        std::fs::write(state.join(KEY_FILE), "not a key").unwrap();
        let e = format!("{:#}", LinkKey::load_or_create(&state).unwrap_err());
        assert!(e.contains("ack-link-key") && e.contains("delete it"), "{e}");
    }

    #[test]
    fn the_local_fallback_is_reachable_here() {
        assert_eq!(
            local_base("0.0.0.0:9330".parse().unwrap()),
            "http://127.0.0.1:9330"
        );
        assert_eq!(local_base("[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(
            local_base("192.0.2.1:9330".parse().unwrap()),
            "http://192.0.2.1:9330"
        );
    }
}
