//! [`RoomFollower`]: incremental `/sync` of one room.

use super::Error;
use super::Session;
use super::api::*;
use std::time::Duration;
use tokio::time::Instant;
/// Follows one room through incremental `/sync`, remembering `next_batch`.
#[derive(Debug, Clone)]
pub struct RoomFollower {
    room_id: String,
    filter: String,
    since: Option<String>,
}

impl RoomFollower {
    /// Follows `room_id` (a room id, not an alias: join first).
    pub fn new(room_id: &str) -> RoomFollower {
        let filter = serde_json::to_string(&Filter::room_timeline(room_id, 50))
            .expect("a filter always serialises");
        RoomFollower {
            room_id: room_id.to_string(),
            filter,
            since: None,
        }
    }

    /// The followed room.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// The position after the last sync, if any.
    pub fn since(&self) -> Option<&str> {
        self.since.as_deref()
    }

    /// Continues from a `next_batch` saved earlier (e.g. by a previous run): the next poll
    /// returns what arrived since then.
    pub fn resume_from(&mut self, since: String) {
        self.since = Some(since);
    }

    /// Starts from now: one sync without waiting, its events dropped. Later polls return only
    /// what arrives after this.
    pub async fn prime(&mut self, session: &Session) -> Result<(), Error> {
        let r = session.sync(None, &self.filter, Duration::ZERO).await?;
        self.since = Some(r.next_batch);
        Ok(())
    }

    /// One incremental sync (priming first if never synced), waiting up to `wait` for news;
    /// returns the room's new timeline events, oldest first.
    pub async fn poll(
        &mut self,
        session: &Session,
        wait: Duration,
    ) -> Result<Vec<RoomEvent>, Error> {
        if self.since.is_none() {
            self.prime(session).await?;
        }
        let mut r = session
            .sync(self.since.as_deref(), &self.filter, wait)
            .await?;
        self.since = Some(r.next_batch);
        Ok(r.rooms
            .join
            .remove(&self.room_id)
            .map(|j| j.timeline.events)
            .unwrap_or_default())
    }

    /// Polls until an event matches or `deadline` passes (`Ok(None)`).
    pub async fn wait_for(
        &mut self,
        session: &Session,
        deadline: Instant,
        mut matches: impl FnMut(&RoomEvent) -> bool,
    ) -> Result<Option<RoomEvent>, Error> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let polled = Instant::now();
            let events = self.poll(session, left).await?;
            let empty = events.is_empty();
            if let Some(e) = events.into_iter().find(|e| matches(e)) {
                return Ok(Some(e));
            }
            // A server that answers a long poll at once with nothing must not make this spin.
            if empty && polled.elapsed() < Duration::from_millis(50) {
                tokio::time::sleep(Duration::from_millis(100).min(left)).await;
            }
        }
    }
}
