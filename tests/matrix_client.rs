//! The Matrix client (`lookout::matrix`) against a real Synapse: versions, login, join by
//! alias, send, incremental sync, /messages, reactions, /event, re-login after the token is
//! revoked, and the appservice ping (stable path) to a live and to a dead appservice.

mod matrix_kit;

use lookout::config::values::Secret;
use lookout::matrix::{Auth, Homeserver, MessageContent, RoomFollower, Session};
use matrix_kit::{Synapse, SynapseOptions, free_port};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AS_TOKEN: &str = "as-token-for-lookout-tests-0123456789";

fn registration(dir: &std::path::Path, id: &str, port: u16) -> std::path::PathBuf {
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "id: {id}\nurl: http://127.0.0.1:{port}\nas_token: {AS_TOKEN}-{id}\n\
             hs_token: hs-token-{id}-0123456789\nsender_localpart: {id}bot\n\
             namespaces:\n  users: []\n  aliases: []\n  rooms: []\nrate_limited: false\n"
        ),
    )
    .unwrap();
    path
}

/// An appservice that answers every request with `200 {}` (enough for the ping).
async fn fake_appservice(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                )
                .await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_speaks_to_a_real_synapse() {
    let as_dir = tempfile::tempdir().unwrap();
    let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    live.set_nonblocking(true).unwrap();
    let live_port = live.local_addr().unwrap().port();
    let dead_port = free_port();
    let opts = SynapseOptions {
        app_service_config_files: vec![
            registration(as_dir.path(), "live", live_port),
            registration(as_dir.path(), "dead", dead_port),
        ],
        ..SynapseOptions::default()
    };
    let hs = tokio::task::spawn_blocking(move || {
        let hs = Synapse::start(opts);
        hs.register("owner", "owner-password-1", true);
        hs.register("probe", "probe-password-1", false);
        hs
    })
    .await
    .unwrap();
    tokio::spawn(fake_appservice(
        tokio::net::TcpListener::from_std(live).unwrap(),
    ));
    let (owner, room) = {
        let owner = hs.login("owner", "owner-password-1");
        let room = hs.create_room(&owner, Some("probes"), &["@probe:localhost"]);
        (owner, room)
    };

    let server = Homeserver::new(&hs.url(), Duration::from_secs(10)).unwrap();
    let versions = server.versions().await.unwrap();
    assert!(
        versions.versions.iter().any(|v| v == "v1.7"),
        "{versions:?}"
    );

    let session = Session::new(
        server.clone(),
        Auth::Password {
            user: "probe".into(),
            password: Secret::new("probe-password-1"),
        },
    );
    assert_eq!(session.login().await.unwrap(), "@probe:localhost");
    assert_eq!(session.whoami().await.unwrap().user_id, "@probe:localhost");
    let joined = session.join("#probes:localhost").await.unwrap();
    assert_eq!(joined, room);

    let mut follower = RoomFollower::new(&room);
    follower.prime(&session).await.unwrap();
    let event_id = session
        .send_message(&room, &MessageContent::text("token-1"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let seen = follower
        .wait_for(&session, deadline, |e| e.event_id == event_id)
        .await
        .unwrap()
        .expect("the sent message comes back through sync");
    assert_eq!(seen.message().unwrap().body, "token-1");
    // Nothing new: a short poll returns no events, and `since` moves on.
    let before = follower.since().unwrap().to_string();
    let quiet = follower
        .poll(&session, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(quiet.is_empty(), "{quiet:?}");
    assert!(!before.is_empty());

    let recent = session.messages(&room, 5).await.unwrap();
    assert_eq!(recent.chunk[0].event_id, event_id);

    // The owner reacts; the probe user sees the reaction and can fetch the reacted-to event.
    let reaction = hs.react(&owner, &room, &event_id, "✅");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let r = follower
        .wait_for(&session, deadline, |e| e.event_id == reaction)
        .await
        .unwrap()
        .expect("the reaction comes through sync");
    let rel = r.reaction().unwrap().relates_to;
    assert_eq!(rel.event_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(r.sender, "@owner:localhost");
    let target = session.event(&room, &event_id).await.unwrap();
    assert_eq!(target.message().unwrap().body, "token-1");
    session.react(&room, &event_id, "👀").await.unwrap();

    // Every token of the probe user revoked: the next call logs in again by itself.
    let other = hs.login("probe", "probe-password-1");
    hs.ok(
        "POST",
        "/_matrix/client/v3/logout/all",
        Some(&other),
        Some(&serde_json::json!({})),
    );
    session
        .send_message(&room, &MessageContent::text("after relogin"))
        .await
        .expect("re-login after M_UNKNOWN_TOKEN");

    // A rejected send carries status and errcode.
    let err = session
        .send_message("!nosuchroom:localhost", &MessageContent::text("x"))
        .await
        .unwrap_err();
    assert!(err.errcode().is_some(), "{err:?}");

    // An access-token session whose token is revoked says so and does not retry forever.
    let token = hs.login("probe", "probe-password-1");
    let by_token = Session::new(
        server.clone(),
        Auth::AccessToken(Secret::new(token.clone())),
    );
    by_token.login().await.unwrap();
    hs.ok(
        "POST",
        "/_matrix/client/v3/logout",
        Some(&token),
        Some(&serde_json::json!({})),
    );
    let e = by_token.whoami().await.unwrap_err();
    assert!(e.to_string().contains("M_UNKNOWN_TOKEN"), "{e}");
    assert!(!e.to_string().contains(&token));

    // The appservice ping: a live appservice answers; a dead one is an error with an errcode.
    let ping = server
        .appservice_ping("live", &Secret::new(format!("{AS_TOKEN}-live")))
        .await
        .unwrap();
    assert!(!ping.unstable);
    assert!(ping.duration < Duration::from_secs(5), "{ping:?}");
    let dead = server
        .appservice_ping("dead", &Secret::new(format!("{AS_TOKEN}-dead")))
        .await
        .unwrap_err();
    eprintln!("dead appservice: {dead}");
    assert!(dead.errcode().is_some(), "{dead:?}");
    let wrong = server
        .appservice_ping("live", &Secret::new("not-the-token-0123456789"))
        .await
        .unwrap_err();
    assert!(!wrong.to_string().contains("not-the-token"), "{wrong}");
    drop(owner);
}
