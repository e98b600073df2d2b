//! The chat-network side of a bridged pair, behind a small trait so networks other than IRC can
//! be added later (one file per network).

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// One line seen in the probe's channel on the network.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The text of the line.
    pub text: String,
    /// When lookout received it (monotonic).
    pub at: Instant,
}

/// A network connection lookout keeps open across rounds: it sends lines into one channel and
/// reports every line it sees there.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The network's name in messages, e.g. `IRC`.
    fn network(&self) -> &'static str;

    /// Waits until connected and in the channel, at most until `deadline`; the error says why
    /// not (e.g. "cannot connect to 127.0.0.1:6667: connection refused").
    async fn ready(&self, deadline: Instant) -> Result<(), String>;

    /// Lines seen in the channel from now on.
    fn subscribe(&self) -> broadcast::Receiver<Seen>;

    /// Sends one line into the channel.
    async fn send(&self, text: &str) -> Result<(), String>;
}

/// Waits until a line containing `token` arrives, at most until `deadline`. Lines that arrived
/// before `rx` was subscribed are not seen.
pub async fn wait_for(
    rx: &mut broadcast::Receiver<Seen>,
    token: &str,
    deadline: Instant,
) -> Option<Instant> {
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return None,
            Ok(Ok(seen)) if seen.text.contains(token) => return Some(seen.at),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => return None,
        }
    }
}
