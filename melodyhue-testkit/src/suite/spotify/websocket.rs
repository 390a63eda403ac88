//! `/ws`: its token, its close handshake, and the now-playing changes it streams.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::{close_code, connected_user, cover_png, next_json, playing, setup, ws_url};
use crate::fake_spotify::{FakeTrack, Scenario};
use crate::suite::{Harness, TestServer};
use melodyhue_core::color::{self};

pub async fn websocket_needs_a_token(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    for query in ["", "?token=garbage"] {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&s.server, query))
            .await
            .unwrap();
        assert_eq!(close_code(&mut socket).await, 4401, "{query:?}");
    }
    let plain = s.server.get("/ws", None).await;
    plain.assert_status(400);
}

/// A client that closes (a tab going away: 1001, or a normal 1000) gets the server's close frame
/// back, as RFC 6455 section 5.5.1 requires, instead of a dropped connection (1006).
pub async fn websocket_answers_a_client_close(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = connected_user(&s, "leaver", "rt-close", Scenario::NothingPlaying).await;
    for code in [1000, 1001] {
        let query = format!("?token={}", user.access_token);
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&s.server, &query))
            .await
            .unwrap();
        assert_eq!(next_json(&mut socket).await["type"], "now_playing");
        socket
            .send(Message::Close(Some(tungstenite::protocol::CloseFrame {
                code: code.into(),
                reason: "bye".into(),
            })))
            .await
            .unwrap();
        assert_eq!(close_code(&mut socket).await, code);
    }
}

/// A close the server starts waits for the client's answering close frame before the
/// connection ends (RFC 6455, section 5.5.1), so a client that answers a moment later is not
/// reset. Seen with a raw TCP client, which answers only when told to (WebSocket libraries
/// answer at once).
pub async fn websocket_waits_for_the_answer_to_its_close(h: &Harness) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(h).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // No token: the server closes at once with 4401.
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    // The 101 response, then the unmasked close frame: 0x88, length, code 4401, reason.
    let close_frame = loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the server answers within 10 s")
            .unwrap();
        assert_ne!(read, 0, "the connection ended before the close frame");
        received.extend_from_slice(&buffer[..read]);
        let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&received[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let frame = &received[end + 4..];
        if frame.len() >= 2 && frame.len() >= 2 + usize::from(frame[1] & 0x7f) {
            break frame.to_vec();
        }
    };
    assert_eq!(close_frame[0], 0x88, "a final close frame");
    assert_eq!(u16::from_be_bytes([close_frame[2], close_frame[3]]), 4401);
    // The client takes its time: the server keeps the connection open meanwhile.
    let early = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "the server ended the connection before the client answered its close: {early:?}"
    );
    // The answer (masked, as every client frame; code 4401 echoed), then a clean end.
    let mask = [1u8, 2, 3, 4];
    let payload = 4401u16.to_be_bytes();
    let mut answer = vec![0x88, 0x80 | 2];
    answer.extend_from_slice(&mask);
    answer.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    stream.write_all(&answer).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("the server ends the connection after the handshake");
    assert!(
        matches!(end, Ok(0)),
        "a clean end of the connection, not a reset: {end:?}"
    );
}

pub async fn websocket_streams_now_playing_changes(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(240, 30, 200);
    let cover = s.fake.add_image("ws.png", png.clone(), "image/png");
    let user = connected_user(&s, "streamer", "rt-ws", Scenario::NothingPlaying).await;
    // Token in the Authorization header here; the query parameter is used below.
    let mut request = ws_url(&s.server, "").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", user.access_token).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "now_playing");
    assert_eq!(first["color"]["hex"], "#25d865");
    assert_eq!(first["track"]["name"], "No music playing");
    s.fake.set_scenario("rt-ws", playing(Some(cover)));
    let second = next_json(&mut socket).await;
    assert_eq!(second["type"], "now_playing");
    assert_eq!(
        second["color"]["hex"],
        color::analyze(&png).unwrap().color.hex()
    );
    assert_eq!(second["track"]["name"], "Fake Song");
    s.fake
        .set_scenario("rt-ws", Scenario::Paused(FakeTrack::default()));
    let third = next_json(&mut socket).await;
    assert_eq!(third["track"]["is_playing"], false);
    assert_eq!(third["color"]["hex"], "#25d865");
    socket.send(Message::Close(None)).await.unwrap();
    // Another client, authenticated by query parameter, gets the current state at once.
    let (mut other, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?access_token={}", user.access_token),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut other).await["type"], "now_playing");
}

/// The next message, which must be a `now_playing` one.
async fn next_now_playing(
    socket: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
    what: &str,
) -> Value {
    let message = next_json(socket).await;
    assert_eq!(message["type"], "now_playing", "{what}: {message}");
    message
}

/// The next text message, or `None` when none comes within `wait`.
async fn message_within(
    socket: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
    wait: Duration,
) -> Option<Value> {
    tokio::time::timeout(wait, next_json(socket)).await.ok()
}

/// Any change of what is shown is a message: from one local file (no id, no cover) to the
/// next, another album, a null duration, the play state, the fallback color; the position
/// alone is not.
pub async fn websocket_sees_every_change_of_what_is_shown(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let first_local = FakeTrack::local_file("Song One", "Garage Band", "Demo Tape");
    let user = connected_user(
        &s,
        "local",
        "rt-local",
        Scenario::Playing(first_local.clone()),
    )
    .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?token={}", user.access_token),
    ))
    .await
    .unwrap();
    let first = next_now_playing(&mut socket, "the first local file").await;
    assert_eq!(first["track"]["name"], "Song One");
    assert_eq!(first["track"]["id"], Value::Null);
    assert_eq!(first["track"]["image_url"], Value::Null);

    let changes = [
        (
            "the next local file",
            FakeTrack::local_file("Song Two", "Garage Band", "Demo Tape"),
        ),
        (
            "the same title from another album",
            FakeTrack::local_file("Song Two", "Garage Band", "Live Tape"),
        ),
        (
            "the duration becomes unknown",
            FakeTrack {
                duration_ms: None,
                ..FakeTrack::local_file("Song Two", "Garage Band", "Live Tape")
            },
        ),
    ];
    for (what, track) in changes {
        s.fake
            .set_scenario("rt-local", Scenario::Playing(track.clone()));
        let message = next_now_playing(&mut socket, what).await;
        assert_eq!(message["track"]["name"], track.name.as_str(), "{what}");
        assert_eq!(message["track"]["album"], track.album.as_str(), "{what}");
        assert_eq!(
            message["track"]["duration_ms"],
            json!(track.duration_ms),
            "{what}"
        );
    }
    // Only the position moves: nothing to say.
    s.fake.set_scenario(
        "rt-local",
        Scenario::Playing(FakeTrack {
            duration_ms: None,
            progress_ms: 100_000,
            ..FakeTrack::local_file("Song Two", "Garage Band", "Live Tape")
        }),
    );
    assert_eq!(
        message_within(&mut socket, Duration::from_millis(1200)).await,
        None
    );
    s.fake.set_scenario(
        "rt-local",
        Scenario::Paused(FakeTrack::local_file(
            "Song Two",
            "Garage Band",
            "Live Tape",
        )),
    );
    assert_eq!(
        next_now_playing(&mut socket, "paused").await["track"]["is_playing"],
        false
    );
    // While nothing plays, the fallback color is what is shown.
    s.fake.set_scenario("rt-local", Scenario::NothingPlaying);
    assert_eq!(
        next_now_playing(&mut socket, "silence").await["track"]["name"],
        "No music playing"
    );
    s.server
        .patch(
            "/settings/me",
            Some(&user.access_token),
            json!({"default_overlay_color": "#abcdef"}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        next_now_playing(&mut socket, "a new fallback color").await["color"]["hex"],
        "#abcdef"
    );
}

pub async fn banning_kicks_open_websockets(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = s.server.register("kicked").await;
    let admin = s.server.register("kicker").await;
    s.server
        .app
        .store()
        .set_role(
            &admin.id,
            melodyhue_core::model::Role::Admin,
            s.server.app.now(),
        )
        .await
        .unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?token={}", user.access_token),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "now_playing");
    s.server
        .post(
            &format!("/modo/users/{}/ban", user.id),
            Some(&admin.access_token),
            json!({"reason": "testing the kick"}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "force_logout", "reason": "banned"})
    );
    assert_eq!(close_code(&mut socket).await, 4401);
    // A banned user cannot open a new socket either.
    let (mut again, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?token={}", user.access_token),
    ))
    .await
    .unwrap();
    assert_eq!(close_code(&mut again).await, 4401);
}
