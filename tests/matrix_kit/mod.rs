//! The Matrix test kit: a real Synapse (PyPI `matrix-synapse`, SQLite) in a temp dir on a free
//! loopback port, plus small blocking client-server helpers for setting up users and rooms.
//!
//! The venv lives in `$HOME/.cache/lookout-test/matrix-venv` (created on first use, with
//! `matrix-synapse` and `heisenbridge`, so the bridge tests reuse it). Nothing is skipped: a
//! missing piece fails loudly.
#![allow(dead_code)]

pub mod synapse;
#[allow(clippy::duplicate_mod)] // both kits share it; a test may load both
#[path = "../common/venv.rs"]
mod venv_kit;

#[allow(unused_imports)]
pub use synapse::{Synapse, SynapseOptions};

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// The venv directory with `matrix-synapse` and `heisenbridge` (made on first use).
pub fn venv() -> PathBuf {
    venv_kit::ensure("matrix-venv", &["matrix-synapse", "heisenbridge"], 600)
}

/// The venv's python.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// A blocking client-server request with a 30 s deadline; returns (status, JSON body). Runs on
/// its own thread, so it may be called from async tests too.
pub fn request(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    std::thread::scope(|s| {
        s.spawn(|| request_here(method, url, token, body))
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

fn request_here(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = lookout::http::client(Duration::from_secs(30)).unwrap();
        let mut req = c.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    })
}

/// Percent-encodes one path segment (room ids, aliases, event ids).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!:@$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
