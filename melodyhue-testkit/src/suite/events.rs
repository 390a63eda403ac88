//! `GET /infos/{user_id}/events`: the `/infos` answer as Server-Sent Events, against a fake
//! Spotify on loopback.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::operations::scrape;
use super::spotify::{connected_user, cover_png, playing, setup};
use super::{Harness, TestServer};
use crate::fake_spotify::{FakeTrack, Scenario};
use melodyhue_core::color;

/// How long anything expected may take before the test fails (never a measured duration).
const PATIENCE: Duration = Duration::from_secs(10);

/// One block of an event stream: an event, or comment lines only.
#[derive(Debug)]
enum Block {
    Event { id: Option<String>, data: Value },
    Comment(String),
}

/// A client reading an event stream the way the WHATWG parser does (lines ending in `\n`,
/// blocks ending in a blank line), for the fields MelodyHue sends.
struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

impl EventReader {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "the stream opens");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{:?}",
            response.headers()
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(
            response.headers().get("content-length").is_none(),
            "a stream has no length"
        );
        EventReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next block; `None` when the server ended the stream.
    async fn next_block(&mut self) -> Option<Block> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    return Some(parse_block(&block));
                }
                match self.response.chunk().await {
                    Ok(Some(chunk)) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                    Ok(None) | Err(_) => return None,
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the stream says something in time")
    }

    /// The next event, skipping keep-alive comments.
    async fn next_event(&mut self) -> (String, Value) {
        loop {
            match self.next_block().await.expect("the stream goes on") {
                Block::Event { id, data } => return (id.expect("every event has an id"), data),
                Block::Comment(_) => {}
            }
        }
    }
}

fn parse_block(block: &str) -> Block {
    let mut id = None;
    let mut data: Vec<&str> = Vec::new();
    let mut comments = Vec::new();
    for line in block.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix(':') {
            comments.push(comment.trim());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value),
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    if data.is_empty() {
        assert!(id.is_none(), "an id without data: {block:?}");
        Block::Comment(comments.join("\n"))
    } else {
        Block::Event {
            id,
            data: serde_json::from_str(&data.join("\n")).unwrap(),
        }
    }
}

/// Opens the stream of `user_id`, with these request headers.
async fn open(server: &TestServer, user_id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = server
        .http
        .get(server.url(&format!("/infos/{user_id}/events")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request reaches the server")
}

/// An `/infos` body without what changes on every answer.
fn shown(infos: &Value) -> Value {
    let mut infos = infos.clone();
    let body = infos.as_object_mut().unwrap();
    body.remove("timestamp");
    body.remove("processing_time_ms");
    if let Some(track) = body.get_mut("track").and_then(Value::as_object_mut) {
        track.remove("timestamp");
        track.remove("progress_ms");
    }
    infos
}

/// Waits until no stream is open on the server any more (their places given back).
async fn all_streams_closed(server: &TestServer) {
    let closed = tokio::time::timeout(PATIENCE, async {
        while server.app.open_event_streams() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "every stream gave its place back");
}

pub async fn the_first_event_is_the_current_infos(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("ella").await;
    let mut stream = EventReader::new(open(&server, &user.id, &[]).await);
    let (id, first) = stream.next_event().await;
    assert_eq!(id.len(), 16, "{id}");
    let infos = server.get(&format!("/infos/{}", user.id), None).await;
    infos.assert_status(200);
    assert_eq!(shown(&first), shown(&infos.body));
    assert_eq!(first["color"]["hex"], "#25d865");
    assert_eq!(first["user"], user.id.as_str());
    assert!(first["timestamp"].is_i64());
}

pub async fn track_changes_arrive_as_events(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(30, 60, 220);
    let cover = s.fake.add_image("sse.png", png.clone(), "image/png");
    let user = connected_user(&s, "stella", "rt-sse", Scenario::NothingPlaying).await;
    let mut stream = EventReader::new(open(&s.server, &user.id, &[]).await);
    let (first_id, first) = stream.next_event().await;
    assert_eq!(first["track"]["name"], "No music playing");
    s.fake.set_scenario("rt-sse", playing(Some(cover)));
    let (second_id, second) = stream.next_event().await;
    assert_eq!(second["track"]["name"], "Fake Song");
    assert_eq!(second["track"]["is_playing"], true);
    assert_eq!(
        second["color"]["hex"],
        color::analyze(&png).unwrap().color.hex()
    );
    assert_ne!(first_id, second_id);
    s.fake
        .set_scenario("rt-sse", Scenario::Paused(FakeTrack::default()));
    let (third_id, third) = stream.next_event().await;
    assert_eq!(third["track"]["is_playing"], false);
    assert_eq!(third["color"]["hex"], "#25d865");
    assert_ne!(third_id, second_id);
    // The event says what `/infos` says now.
    let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
    assert_eq!(shown(&third), shown(&infos.body));
}

pub async fn fallback_color_changes_arrive_as_events(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("fern").await;
    let mut stream = EventReader::new(open(&server, &user.id, &[]).await);
    assert_eq!(stream.next_event().await.1["color"]["hex"], "#25d865");
    server
        .patch(
            "/settings/me",
            Some(&user.access_token),
            json!({"default_overlay_color": "#FF5500"}),
        )
        .await
        .assert_status(200);
    let (_, changed) = stream.next_event().await;
    assert_eq!(
        changed["color"],
        json!({"r": 255, "g": 85, "b": 0, "hex": "#ff5500"})
    );
    // A deleted user's stream ends (a reconnecting client then gets 404).
    server
        .delete("/users/me", Some(&user.access_token))
        .await
        .assert_status(200);
    loop {
        match stream.next_block().await {
            None => break,
            Some(Block::Comment(_)) => {}
            Some(event) => panic!("no event after the deletion: {event:?}"),
        }
    }
    assert_eq!(open(&server, &user.id, &[]).await.status(), 404);
    all_streams_closed(&server).await;
}

pub async fn last_event_id_skips_what_the_client_shows(h: &Harness) {
    let server = TestServer::start_with(h, &[("SSE_KEEP_ALIVE_INTERVAL", "0.2")]).await;
    let user = server.register("lea").await;
    let mut stream = EventReader::new(open(&server, &user.id, &[]).await);
    let (id, _) = stream.next_event().await;
    // Idle: a comment keeps the stream open.
    match stream.next_block().await {
        Some(Block::Comment(text)) => assert_eq!(text, "keep-alive"),
        other => panic!("a keep-alive comment, not {other:?}"),
    }
    drop(stream);
    // Reconnecting with the current id: nothing to send until something changes.
    let mut again = EventReader::new(open(&server, &user.id, &[("last-event-id", &id)]).await);
    match again.next_block().await {
        Some(Block::Comment(_)) => {}
        other => panic!("no event for the state the client shows, got {other:?}"),
    }
    server
        .patch(
            "/settings/me",
            Some(&user.access_token),
            json!({"default_overlay_color": "#102030"}),
        )
        .await
        .assert_status(200);
    let (new_id, changed) = again.next_event().await;
    assert_eq!(changed["color"]["hex"], "#102030");
    assert_ne!(new_id, id);
    // An older (or unknown) id: the current state at once.
    for last in [id.as_str(), "not-an-id-of-ours"] {
        let mut behind =
            EventReader::new(open(&server, &user.id, &[("last-event-id", last)]).await);
        match behind.next_block().await {
            Some(Block::Event { id, data }) => {
                assert_eq!(id.as_deref(), Some(new_id.as_str()));
                assert_eq!(data["color"]["hex"], "#102030");
            }
            other => panic!("the current state first, not {other:?}"),
        }
    }
}

/// An open stream keeps its connection busy: a quiet stream outlives the keep-alive timeout
/// of idle connections, and is not evicted to make room at the connection cap.
pub async fn a_quiet_stream_outlives_the_keep_alive_timeout(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[
            ("HTTP_HEADER_TIMEOUT", "0.2"),
            ("HTTP_KEEP_ALIVE_TIMEOUT", "0.1"),
            ("SSE_KEEP_ALIVE_INTERVAL", "0.3"),
        ],
    )
    .await;
    let user = server.register("quiet").await;
    let mut stream = EventReader::new(open(&server, &user.id, &[]).await);
    stream.next_event().await;
    for _ in 0..3 {
        match stream.next_block().await {
            Some(Block::Comment(text)) => assert_eq!(text, "keep-alive"),
            other => panic!("the stream stays open, quiet: {other:?}"),
        }
    }
}

/// Opens `count` streams at the same instant, each on its own connection opened beforehand
/// and from the client IP `ip(i)` (the server trusts `X-Forwarded-For`); the responses, in
/// the order of `i`, still streaming.
async fn open_at_once(
    server: &TestServer,
    user_id: &str,
    count: usize,
    ip: impl Fn(usize) -> String,
) -> Vec<reqwest::Response> {
    let mut requests = Vec::with_capacity(count);
    for i in 0..count {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let health = client.get(server.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        requests.push(
            client
                .get(server.url(&format!("/infos/{user_id}/events")))
                .header("x-forwarded-for", ip(i)),
        );
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                request.send().await.expect("request reaches the server")
            })
        })
        .collect();
    let mut responses = Vec::with_capacity(count);
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    responses
}

/// The statuses of `responses`, sorted; the refused ones' details must be `detail`.
async fn statuses(responses: Vec<reqwest::Response>) -> (Vec<u16>, Vec<reqwest::Response>) {
    let mut codes = Vec::new();
    let mut open = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        codes.push(status);
        if status == 200 {
            open.push(response);
        } else {
            let body: Value = response.json().await.unwrap();
            let expected = match status {
                429 => "Too many event streams from this address",
                503 => "Too many event streams open, try again later",
                other => panic!("unexpected status {other}: {body}"),
            };
            assert_eq!(body, json!({"detail": expected}));
        }
    }
    codes.sort_unstable();
    (codes, open)
}

pub async fn streams_are_capped_per_ip_and_in_total(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[
            ("TRUST_PROXY", "true"),
            ("SSE_MAX_STREAMS_PER_IP", "2"),
            ("SSE_MAX_STREAMS", "3"),
        ],
    )
    .await;
    let user = server.register("cappy").await;
    // Five at once from one address: two get in.
    let (codes, first) =
        statuses(open_at_once(&server, &user.id, 5, |_| "192.0.2.1".into()).await).await;
    assert_eq!(codes, [200, 200, 429, 429, 429]);
    // Four at once from four other addresses: one place is left in all.
    let (codes, second) =
        statuses(open_at_once(&server, &user.id, 4, |i| format!("192.0.2.{}", 10 + i)).await).await;
    assert_eq!(codes, [200, 503, 503, 503]);
    assert_eq!(server.app.open_event_streams(), 3);
    // A client that goes away gives its place back, to its address and to all.
    drop(first);
    drop(second);
    all_streams_closed(&server).await;
    let (codes, _open) =
        statuses(open_at_once(&server, &user.id, 3, |_| "192.0.2.1".into()).await).await;
    assert_eq!(codes, [200, 200, 429]);
}

pub async fn a_client_that_goes_away_frees_its_place(h: &Harness) {
    let server = TestServer::start_with(h, &[("SSE_MAX_STREAMS_PER_IP", "1")]).await;
    let user = server.register("gone").await;
    for _ in 0..3 {
        let mut stream = EventReader::new(open(&server, &user.id, &[]).await);
        stream.next_event().await;
        let refused = open(&server, &user.id, &[]).await;
        assert_eq!(refused.status(), 429, "one stream per address");
        drop(refused);
        // Gone without a word: the connection closes, the server drops the stream.
        drop(stream);
        all_streams_closed(&server).await;
    }
}

pub async fn events_of_an_unknown_user_are_404(h: &Harness) {
    let server = TestServer::start(h).await;
    for path in ["/infos/nobody/events", "/infos/%00x/events"] {
        let reply = server.get(path, None).await;
        reply.assert_status(404);
        assert_eq!(reply.detail(), "User not found");
    }
    let reply = server
        .call(
            http::Method::POST,
            "/infos/nobody/events",
            None,
            Some(json!({})),
        )
        .await;
    reply.assert_status(405);
    assert_eq!(server.app.open_event_streams(), 0, "no place kept");
}

/// A client that stops reading is dropped once its writes have made no progress for
/// `HTTP_WRITE_TIMEOUT`: here it asks for a pile of answers at once and reads none.
pub async fn a_reader_that_stops_reading_is_dropped(h: &Harness) {
    let server =
        TestServer::start_with(h, &[("HTTP_WRITE_TIMEOUT", "0.3"), ("METRICS", "true")]).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small window, so that the server's writes block soon.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(address.parse().unwrap()).await.unwrap();
    let pipelined = "GET /openapi.json HTTP/1.1\r\nHost: melodyhue\r\n\r\n".repeat(200);
    stalled.write_all(pipelined.as_bytes()).await.unwrap();
    let dropped = tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, metrics) = scrape(&server, &[]).await;
            let closed = metrics
                .lines()
                .find(|l| {
                    l.starts_with(
                        "melodyhue_http_connections_closed_total{reason=\"write_timeout\"}",
                    )
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if closed > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(dropped.is_ok(), "the stalled reader was dropped");
    drop(stalled);
}
