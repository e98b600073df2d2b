//! Acknowledgements from the room: the listener syncs the page room and turns a ✅ (or ✔️)
//! reaction to a page, or a reply "ack" to it, from an allowed user into an [`Ack`]. A bare
//! "ack" message acknowledges the newest page.
//!
//! Which alert a page is about comes from memory (the pages this process sent) or, after a
//! restart, from the page itself: lookout puts the alert id in its content
//! (`lookout.alert_id`), read back with `/rooms/{roomId}/event/{eventId}`. The sync position
//! is kept in the bot's room account data ([`SYNC_POSITION_TYPE`]), so acknowledgements given
//! while lookout was down are seen when it comes back.

use super::Shared;
use crate::matrix::{Error, RoomEvent, RoomFollower};
use crate::notify::{Ack, AckSender};
use std::sync::Arc;
use std::time::Duration;

/// Reaction keys that acknowledge.
pub const ACK_KEYS: &[&str] = &["✅", "✔️", "✔", "☑️"];

/// How long one `/sync` long-polls.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// Room account data (of the bot user) where the listener keeps its sync position, so a
/// restarted lookout sees the reactions and replies made while it was down.
pub const SYNC_POSITION_TYPE: &str = "org.lookout.ack_sync";

/// What an event acknowledges, before looking up the alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AckRef {
    /// The page with this event id.
    Page(String),
    /// The newest page (a bare "ack").
    Latest,
}

/// Whether a message body says "ack": its first word, after any reply fallback (`> …` lines),
/// is `ack`, `acked` or `acknowledge(d)`, in any case.
pub fn says_ack(body: &str) -> bool {
    let text: Vec<&str> = body.lines().filter(|l| !l.starts_with('>')).collect();
    let text = text.join(" ");
    let first: String = text
        .trim()
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    matches!(
        first.as_str(),
        "ack" | "acked" | "acknowledge" | "acknowledged"
    )
}

/// What `event` acknowledges, if it is an acknowledgement from an allowed user (never from
/// lookout's own user). Pure.
pub fn ack_reference(
    event: &RoomEvent,
    own_user: Option<&str>,
    allowed: &[String],
) -> Option<AckRef> {
    if Some(event.sender.as_str()) == own_user || !allowed.iter().any(|u| u == &event.sender) {
        return None;
    }
    if let Some(r) = event.reaction() {
        let rel = r.relates_to;
        let key = rel.key.as_deref()?;
        if rel.rel_type.as_deref() == Some("m.annotation") && ACK_KEYS.contains(&key) {
            return rel.event_id.map(AckRef::Page);
        }
        return None;
    }
    let m = event.message()?;
    if !says_ack(&m.body) {
        return None;
    }
    match m.relates_to.and_then(|r| r.in_reply_to) {
        Some(reply) => Some(AckRef::Page(reply.event_id)),
        None => Some(AckRef::Latest),
    }
}

/// Syncs the room until the receiver is gone, reporting acknowledgements. Failures are logged
/// and retried with backoff (1 s doubling to 60 s).
pub(crate) async fn listen(shared: Arc<Shared>, acks: AckSender) {
    let mut follower: Option<RoomFollower> = None;
    let mut backoff = Duration::from_secs(1);
    while !acks.is_closed() {
        match round(&shared, &mut follower, &acks).await {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(room = %shared.config.room, error = %e, "matrix notifier: cannot sync the room for acknowledgements; retrying in {}s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

async fn round(
    shared: &Shared,
    follower: &mut Option<RoomFollower>,
    acks: &AckSender,
) -> Result<(), Error> {
    let me = shared.session.ensure_logged_in().await?;
    let room_id = shared.room_id().await?;
    if follower.is_none() {
        let mut f = RoomFollower::new(&room_id);
        match shared
            .session
            .room_account_data(&room_id, SYNC_POSITION_TYPE)
            .await
        {
            Ok(Some(v)) => {
                if let Some(since) = v["since"].as_str() {
                    tracing::info!(room = %shared.config.room, "matrix notifier: catching up on acknowledgements since the last run");
                    f.resume_from(since.to_string());
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "matrix notifier: cannot read the saved sync position; acknowledgements given while lookout was down are not seen")
            }
        }
        *follower = Some(f);
    }
    let f = follower.as_mut().expect("set above");
    let events = match f.poll(&shared.session, SYNC_WAIT).await {
        // A saved position the server no longer accepts: start from now.
        Err(Error::Http { status, .. }) if (400..500).contains(&status) && status != 429 => {
            tracing::warn!(room = %shared.config.room, "matrix notifier: the saved sync position was refused; starting from now");
            *follower = None;
            let mut f = RoomFollower::new(&room_id);
            f.prime(&shared.session).await?;
            *follower = Some(f);
            Vec::new()
        }
        other => other?,
    };
    let position = follower
        .as_ref()
        .and_then(|f| f.since().map(str::to_string));
    let allowed = shared.config.allowed();
    let any = !events.is_empty();
    for event in events {
        let Some(reference) = ack_reference(&event, Some(&me), &allowed) else {
            continue;
        };
        let page = match reference {
            AckRef::Latest => shared.latest().map(|p| (p.alert_id, p.group)),
            AckRef::Page(page) => match shared.remembered(&page) {
                Some(p) => Some((p.alert_id, p.group)),
                None => alert_of_page(shared, &room_id, &page, &me).await,
            },
        };
        match page {
            Some((alert_id, group)) => {
                tracing::info!(alert = %alert_id, group = ?group, by = %event.sender, "matrix notifier: acknowledgement from the room");
                let _ = acks.send(Ack {
                    alert_id,
                    by: event.sender.clone(),
                    group,
                });
            }
            None => {
                tracing::debug!(event = %event.event_id, "matrix notifier: an ack for something that is not a page")
            }
        }
    }
    // Saved after the events are handled: a crash in between replays them at most once (an
    // acknowledgement of an acknowledged alert changes nothing).
    if any && let Some(since) = position {
        let body = serde_json::json!({ "since": since });
        if let Err(e) = shared
            .session
            .set_room_account_data(&room_id, SYNC_POSITION_TYPE, &body)
            .await
        {
            tracing::warn!(error = %e, "matrix notifier: cannot save the sync position");
        }
    }
    Ok(())
}

/// The alert id and escalation stored in a page lookout sent (after a restart, when memory is
/// empty).
async fn alert_of_page(
    shared: &Shared,
    room_id: &str,
    page: &str,
    me: &str,
) -> Option<(String, Option<String>)> {
    match shared.session.event(room_id, page).await {
        Ok(e) if e.sender == me => e
            .message()
            .and_then(|m| m.alert_id.map(|a| (a, m.escalation))),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "matrix notifier: cannot read the reacted-to event");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(sender: &str, kind: &str, content: serde_json::Value) -> RoomEvent {
        serde_json::from_value(json!({
            "event_id": "$e", "type": kind, "sender": sender, "origin_server_ts": 1, "content": content
        }))
        .unwrap()
    }

    fn allowed() -> Vec<String> {
        vec!["@alice:x".into()]
    }

    #[test]
    fn a_check_mark_reaction_from_an_allowed_user_acknowledges_the_page() {
        let react = |sender: &str, key: &str| {
            event(
                sender,
                "m.reaction",
                json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$page", "key": key}}),
            )
        };
        let me = Some("@lookout:x");
        assert_eq!(
            ack_reference(&react("@alice:x", "✅"), me, &allowed()),
            Some(AckRef::Page("$page".into()))
        );
        assert!(ack_reference(&react("@alice:x", "✔️"), me, &allowed()).is_some());
        assert_eq!(
            ack_reference(&react("@alice:x", "👀"), me, &allowed()),
            None
        );
        assert_eq!(
            ack_reference(&react("@mallory:x", "✅"), me, &allowed()),
            None
        );
        let mut own = allowed();
        own.push("@lookout:x".into());
        assert_eq!(ack_reference(&react("@lookout:x", "✅"), me, &own), None);
    }

    #[test]
    fn replies_and_bare_messages_saying_ack() {
        let reply = event(
            "@alice:x",
            "m.room.message",
            json!({"msgtype": "m.text", "body": "> <@lookout:x> [CRITICAL] disk\n\nAck, on it",
                   "m.relates_to": {"m.in_reply_to": {"event_id": "$page"}}}),
        );
        assert_eq!(
            ack_reference(&reply, None, &allowed()),
            Some(AckRef::Page("$page".into()))
        );
        let bare = event(
            "@alice:x",
            "m.room.message",
            json!({"msgtype": "m.text", "body": "ack"}),
        );
        assert_eq!(ack_reference(&bare, None, &allowed()), Some(AckRef::Latest));
        let chat = event(
            "@alice:x",
            "m.room.message",
            json!({"msgtype": "m.text", "body": "acking soon? backup"}),
        );
        assert_eq!(ack_reference(&chat, None, &allowed()), None);
        assert!(says_ack("ACK"));
        assert!(says_ack("acknowledged."));
        assert!(!says_ack("> ack\n\nno"));
    }
}
