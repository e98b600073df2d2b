//! Typed request and response bodies of the client-server endpoints lookout uses (spec v1.x).
//!
//! Own serde structs rather than ruma: see `docs/ARCHITECTURE.md` ("Matrix client") for why.
//! Unknown fields are ignored, so newer homeservers stay compatible.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `GET /_matrix/client/versions`.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionsResponse {
    /// Supported spec versions, e.g. `["v1.1", …, "v1.11"]`.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Unstable features the server announces.
    #[serde(default)]
    pub unstable_features: BTreeMap<String, bool>,
}

/// `POST /_matrix/client/v3/login` with a password.
#[derive(Debug, Serialize)]
pub struct LoginRequest<'a> {
    /// Always `m.login.password`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Who logs in.
    pub identifier: UserIdentifier<'a>,
    /// The password (only ever serialised into the request body).
    pub password: &'a str,
    /// Device name shown in the user's session list.
    pub initial_device_display_name: &'a str,
    /// Reuse this device (so repeated logins do not pile up devices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<&'a str>,
}

/// `identifier` of a login request.
#[derive(Debug, Serialize)]
pub struct UserIdentifier<'a> {
    /// Always `m.id.user`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Localpart or full user id.
    pub user: &'a str,
}

/// Answer to a login.
#[derive(Deserialize)]
pub struct LoginResponse {
    /// The new access token.
    pub access_token: String,
    /// The full user id, e.g. `@probe:example.org`.
    pub user_id: String,
    /// The device the token belongs to.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// `GET /_matrix/client/v3/account/whoami`.
#[derive(Debug, Clone, Deserialize)]
pub struct WhoamiResponse {
    /// The token's user.
    pub user_id: String,
    /// The token's device, if any.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// Answer to `PUT …/send/{type}/{txnId}`.
#[derive(Debug, Clone, Deserialize)]
pub struct SendResponse {
    /// The new event's id.
    pub event_id: String,
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}` body (empty) and answer.
#[derive(Debug, Default, Serialize)]
pub struct JoinRequest {}

/// Answer to a join.
#[derive(Debug, Clone, Deserialize)]
pub struct JoinResponse {
    /// The joined room's id (also when joined by alias).
    pub room_id: String,
}

/// Content of an `m.room.message` event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MessageContent {
    /// `m.text` or `m.notice`.
    pub msgtype: String,
    /// Plain-text body.
    pub body: String,
    /// `org.matrix.custom.html` when `formatted_body` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted_body: Option<String>,
    /// Intentional mentions (`m.mentions`).
    #[serde(
        rename = "m.mentions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mentions: Option<Mentions>,
    /// Relation (replies carry `m.in_reply_to`).
    #[serde(
        rename = "m.relates_to",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub relates_to: Option<RelatesTo>,
    /// The alert a page is about (lookout's own field), so a reaction can be traced back.
    #[serde(
        rename = "lookout.alert_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub alert_id: Option<String>,
    /// The escalation (group of alerts) a page stands for (lookout's own field), so a reaction
    /// acknowledges the whole group.
    #[serde(
        rename = "lookout.escalation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub escalation: Option<String>,
}

impl MessageContent {
    /// A plain `m.text` message.
    pub fn text(body: impl Into<String>) -> MessageContent {
        MessageContent {
            msgtype: "m.text".into(),
            body: body.into(),
            ..MessageContent::default()
        }
    }
}

/// `m.mentions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Mentions {
    /// Mentioned user ids.
    #[serde(default)]
    pub user_ids: Vec<String>,
}

/// `m.relates_to` of a message or reaction.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RelatesTo {
    /// `m.annotation` for reactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_type: Option<String>,
    /// The related event (reactions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The reaction's key, e.g. `✅`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The replied-to event (replies).
    #[serde(
        rename = "m.in_reply_to",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_reply_to: Option<InReplyTo>,
}

/// `m.in_reply_to`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InReplyTo {
    /// The event replied to.
    pub event_id: String,
}

/// Content of an `m.reaction` event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReactionContent {
    /// The annotation.
    #[serde(rename = "m.relates_to")]
    pub relates_to: RelatesTo,
}

impl ReactionContent {
    /// A reaction with `key` to `event_id`.
    pub fn new(event_id: &str, key: &str) -> ReactionContent {
        ReactionContent {
            relates_to: RelatesTo {
                rel_type: Some("m.annotation".into()),
                event_id: Some(event_id.into()),
                key: Some(key.into()),
                in_reply_to: None,
            },
        }
    }
}

/// A room event as the server returns it (timeline, `/messages`, `/event`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct RoomEvent {
    /// The event's id.
    pub event_id: String,
    /// Its type, e.g. `m.room.message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its sender.
    pub sender: String,
    /// Milliseconds since the epoch (sender's homeserver clock).
    #[serde(default)]
    pub origin_server_ts: u64,
    /// The content, decoded further by [`RoomEvent::message`] / [`RoomEvent::reaction`].
    #[serde(default)]
    pub content: Value,
}

impl RoomEvent {
    /// The content as a message, if this is an `m.room.message`.
    pub fn message(&self) -> Option<MessageContent> {
        (self.kind == "m.room.message")
            .then(|| serde_json::from_value(self.content.clone()).ok())
            .flatten()
    }

    /// The content as a reaction, if this is an `m.reaction`.
    pub fn reaction(&self) -> Option<ReactionContent> {
        (self.kind == "m.reaction")
            .then(|| serde_json::from_value(self.content.clone()).ok())
            .flatten()
    }
}

/// A sync filter (`filter=` as inline JSON): one room's timeline, nothing else.
#[derive(Debug, Clone, Serialize)]
pub struct Filter {
    /// Room part.
    pub room: RoomFilter,
    /// Presence: none.
    pub presence: TypesFilter,
    /// Account data: none.
    pub account_data: TypesFilter,
}

/// `room` part of a [`Filter`].
#[derive(Debug, Clone, Serialize)]
pub struct RoomFilter {
    /// Only these rooms.
    pub rooms: Vec<String>,
    /// Timeline: at most `limit` events per sync.
    pub timeline: TimelineFilter,
    /// State: none.
    pub state: TypesFilter,
    /// Ephemeral (typing, receipts): none.
    pub ephemeral: TypesFilter,
    /// Room account data: none.
    pub account_data: TypesFilter,
}

/// `timeline` part of a [`RoomFilter`].
#[derive(Debug, Clone, Serialize)]
pub struct TimelineFilter {
    /// Most events per sync.
    pub limit: u32,
}

/// A filter that lets through only the listed event types (empty: none).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypesFilter {
    /// Allowed types.
    pub types: Vec<String>,
}

impl Filter {
    /// One room's timeline, up to `limit` events per sync.
    pub fn room_timeline(room_id: &str, limit: u32) -> Filter {
        Filter {
            room: RoomFilter {
                rooms: vec![room_id.to_string()],
                timeline: TimelineFilter { limit },
                state: TypesFilter::default(),
                ephemeral: TypesFilter::default(),
                account_data: TypesFilter::default(),
            },
            presence: TypesFilter::default(),
            account_data: TypesFilter::default(),
        }
    }
}

/// Answer to `GET /_matrix/client/v3/sync` (only what lookout reads).
#[derive(Debug, Clone, Deserialize)]
pub struct SyncResponse {
    /// Pass as `since` next time.
    pub next_batch: String,
    /// Rooms (empty syncs may omit it).
    #[serde(default)]
    pub rooms: SyncRooms,
}

/// `rooms` of a sync.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SyncRooms {
    /// Joined rooms by id.
    #[serde(default)]
    pub join: BTreeMap<String, JoinedRoom>,
}

/// One joined room in a sync.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JoinedRoom {
    /// New timeline events.
    #[serde(default)]
    pub timeline: Timeline,
}

/// A room's timeline slice.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Timeline {
    /// Events, oldest first.
    #[serde(default)]
    pub events: Vec<RoomEvent>,
    /// Whether events were left out (more than the filter's limit).
    #[serde(default)]
    pub limited: bool,
}

/// Answer to `GET /_matrix/client/v3/rooms/{roomId}/messages`.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesResponse {
    /// Events in the requested direction.
    #[serde(default)]
    pub chunk: Vec<RoomEvent>,
    /// Token to continue from.
    #[serde(default)]
    pub end: Option<String>,
}

/// Body of the appservice ping (`POST /_matrix/client/v1/appservice/{id}/ping`).
#[derive(Debug, Clone, Serialize)]
pub struct PingRequest {
    /// Echoed to the appservice (lets it match the ping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

/// Answer to the appservice ping.
#[derive(Debug, Clone, Deserialize)]
pub struct PingResponse {
    /// How long the homeserver's call to the appservice took.
    pub duration_ms: u64,
}

/// A Matrix error body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// e.g. `M_FORBIDDEN`.
    #[serde(default)]
    pub errcode: Option<String>,
    /// Human-readable text.
    #[serde(default)]
    pub error: Option<String>,
    /// With `M_LIMIT_EXCEEDED`.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_content_round_trips_with_mentions_and_alert_id() {
        let m = MessageContent {
            mentions: Some(Mentions {
                user_ids: vec!["@a:x".into()],
            }),
            alert_id: Some("disk/ro".into()),
            format: Some("org.matrix.custom.html".into()),
            formatted_body: Some("<b>x</b>".into()),
            ..MessageContent::text("x")
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["m.mentions"]["user_ids"][0], "@a:x");
        assert_eq!(v["lookout.alert_id"], "disk/ro");
        assert!(v.get("m.relates_to").is_none());
        let back: MessageContent = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn reactions_decode_from_events() {
        let e: RoomEvent = serde_json::from_value(serde_json::json!({
            "event_id": "$r", "type": "m.reaction", "sender": "@u:x", "origin_server_ts": 1,
            "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$p", "key": "✅"}}
        }))
        .unwrap();
        let r = e.reaction().unwrap();
        assert_eq!(r.relates_to.event_id.as_deref(), Some("$p"));
        assert_eq!(r.relates_to.key.as_deref(), Some("✅"));
        assert!(e.message().is_none());
    }

    #[test]
    fn an_empty_sync_without_rooms_decodes() {
        let s: SyncResponse = serde_json::from_str(r#"{"next_batch":"s1"}"#).unwrap();
        assert!(s.rooms.join.is_empty());
    }
}
