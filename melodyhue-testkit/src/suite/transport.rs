//! What a client can hold, and what its misbehaviour costs: connections that send nothing or
//! trickle, idle keep-alive connections, the connection cap, slow bodies, `/ws` sockets, metric
//! series and log lines (see `melodyhue_core::server` and `api::ws`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use super::operations::scrape;
use super::spotify::{close_code, next_json, ws_url};
use super::{Harness, TestServer};
use melodyhue_core::api::ws::{CLOSE_PING_TIMEOUT, CLOSE_TOO_MANY_SOCKETS, MAX_MESSAGE_BYTES};

/// Bounds every wait below, so a server that never closes fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

/// The preface an HTTP/2 client with prior knowledge starts with, and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(address(server)).await.unwrap()
}

/// Whether the server closes `stream` (end of stream or reset) within [`PATIENCE`], reading
/// and dropping whatever it sends first. Every `tick`, `trickle` (if any) is written: a client
/// sending its request one byte at a time.
async fn closed_by_server(stream: &mut TcpStream, trickle: Option<&[u8]>) -> bool {
    let mut buffer = [0_u8; 4096];
    let mut trickle = trickle.unwrap_or_default().iter();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if let Some(byte) = trickle.next() {
            if stream.write_all(&[*byte]).await.is_err() {
                return true;
            }
        }
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer));
        if let Ok(Ok(0) | Err(_)) = read.await {
            return true;
        }
    }
    false
}

/// A request head that never ends: 100 header lines, sent one byte at a time.
fn endless_head() -> Vec<u8> {
    let mut head = b"GET /health HTTP/1.1\r\nHost: test\r\n".to_vec();
    for n in 0..100 {
        head.extend_from_slice(format!("X-Slow-{n}: yes\r\n").as_bytes());
    }
    head
}

pub async fn silent_and_trickling_connections_are_closed(h: &Harness) {
    let server = TestServer::start_with(h, &[("HTTP_HEADER_TIMEOUT", "0.5")]).await;
    let head = endless_head();
    // All at once: a client that says nothing, an HTTP/2 client that sends its preface and
    // nothing more, and one that trickles its headers.
    let (mut silent, mut preface, mut trickling) = (
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    );
    preface.write_all(H2_PREFACE).await.unwrap();
    let (silent, preface, trickling) = tokio::join!(
        closed_by_server(&mut silent, None),
        closed_by_server(&mut preface, None),
        closed_by_server(&mut trickling, Some(&head)),
    );
    assert!(silent, "a connection that sends nothing is closed");
    assert!(preface, "an HTTP/2 preface without a request is closed");
    assert!(trickling, "a request head that never ends is closed");
    // The server still answers.
    server.get("/health", None).await.assert_status(200);
}

pub async fn idle_keep_alive_connections_are_closed(h: &Harness) {
    let server = TestServer::start_with(h, &[("HTTP_KEEP_ALIVE_TIMEOUT", "0.5")]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0_u8; 4096];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(
        buffer[..read].starts_with(b"HTTP/1.1 200"),
        "answered first"
    );
    assert!(
        closed_by_server(&mut stream, None).await,
        "then closed once idle"
    );
}

pub async fn slow_bodies_are_answered_408(h: &Harness) {
    let server = TestServer::start_with(h, &[("HTTP_BODY_TIMEOUT", "0.5")]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("Request body not received in time"),
        "{answer}"
    );
}

pub async fn the_connection_cap_sheds_trickling_clients_not_real_ones(h: &Harness) {
    const CAP: usize = 16;
    let server = TestServer::start_with(
        h,
        &[
            ("HTTP_MAX_CONNECTIONS", &CAP.to_string()),
            ("HTTP_HEADER_TIMEOUT", "60"),
            ("METRICS", "true"),
        ],
    )
    .await;
    let server = Arc::new(server);
    // Three times the cap in slow clients, each trickling its head and reconnecting whenever
    // the server closes it, for as long as the real requests below run.
    let attacking = Arc::new(AtomicBool::new(true));
    let ready = Arc::new(Barrier::new(3 * CAP + 1));
    let attackers: Vec<_> = (0..3 * CAP)
        .map(|_| {
            let (server, attacking, ready) = (
                Arc::clone(&server),
                Arc::clone(&attacking),
                Arc::clone(&ready),
            );
            tokio::spawn(async move {
                let mut stream = Some(connect(&server).await);
                ready.wait().await;
                let head = endless_head();
                while attacking.load(Ordering::Relaxed) {
                    let connection = match stream.take() {
                        Some(connection) => connection,
                        None => match TcpStream::connect(address(&server)).await {
                            Ok(connection) => connection,
                            Err(_) => continue,
                        },
                    };
                    let mut connection = connection;
                    for byte in &head {
                        if !attacking.load(Ordering::Relaxed)
                            || connection.write_all(&[*byte]).await.is_err()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        })
        .collect();
    ready.wait().await;
    // Real clients: a new connection for every request.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let mut answered = 0;
    for _ in 0..30 {
        let response = client.get(server.url("/health")).send().await;
        if response.is_ok_and(|r| r.status() == 200) {
            answered += 1;
        }
    }
    attacking.store(false, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.unwrap();
    }
    assert_eq!(answered, 30, "every real request is answered");
    let (_, metrics) = scrape(&server, &[]).await;
    let evicted = metrics
        .lines()
        .find(|l| l.starts_with("melodyhue_http_connections_closed_total{reason=\"evicted\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(evicted > 0, "trickling connections made room: {metrics}");
}

pub async fn metric_labels_come_from_closed_sets(h: &Harness) {
    let server = TestServer::start_with(h, &[("METRICS", "true")]).await;
    let server = Arc::new(server);
    let barrier = Arc::new(Barrier::new(40));
    let requests: Vec<_> = (0..40)
        .map(|n| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            tokio::spawn(async move {
                let method = Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
                let path = if n % 2 == 0 {
                    format!("/random/path/{n}")
                } else {
                    "/health".to_owned()
                };
                let request = server.http.request(method, server.url(&path));
                barrier.wait().await;
                request.send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    for request in requests {
        assert!([404, 405].contains(&request.await.unwrap()));
    }
    let (status, metrics) = scrape(&server, &[]).await;
    assert_eq!(status, 200);
    assert!(!metrics.contains("INVENTED"), "no method becomes a label");
    assert!(
        !metrics.contains("/random/path"),
        "no raw path becomes a label"
    );
    let series = |needle: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("melodyhue_http_requests_total{") && l.contains(needle))
            .count()
    };
    assert_eq!(series("method=\"other\",status=\"405\""), 1, "{metrics}");
    assert_eq!(series("method=\"other\",status=\"404\""), 1, "{metrics}");
}

pub async fn websocket_messages_over_4_kib_end_the_socket(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("ws-big").await;
    let url = ws_url(&server, &format!("?token={}", user.access_token));
    // One message, and one fragmented into frames that are each small: both are over the limit.
    let (mut whole, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut fragmented, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(next_json(&mut whole).await["type"], "now_playing");
    assert_eq!(next_json(&mut fragmented).await["type"], "now_playing");
    whole
        .send(Message::text("x".repeat(MAX_MESSAGE_BYTES + 1)))
        .await
        .unwrap();
    let piece = "y".repeat(1024);
    let _ = fragmented
        .send(Message::Frame(Frame::message(
            piece.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    for _ in 0..8 {
        let continued = Frame::message(piece.clone(), OpCode::Data(Data::Continue), false);
        if fragmented.send(Message::Frame(continued)).await.is_err() {
            break;
        }
    }
    for socket in [&mut whole, &mut fragmented] {
        let ended = tokio::time::timeout(PATIENCE, async {
            loop {
                match socket.next().await {
                    None | Some(Err(_) | Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the socket ends");
    }
    // A small message is just ignored.
    let (mut polite, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(next_json(&mut polite).await["type"], "now_playing");
    polite.send(Message::text("hello")).await.unwrap();
    polite.send(Message::Close(None)).await.unwrap();
}

pub async fn websockets_per_user_are_capped(h: &Harness) {
    const MAX: usize = 3;
    let server = TestServer::start_with(h, &[("WS_MAX_SOCKETS_PER_USER", &MAX.to_string())]).await;
    let user = server.register("ws-many").await;
    let other = server.register("ws-other").await;
    let url = ws_url(&server, &format!("?token={}", user.access_token));
    // Twice the cap at once: exactly the cap get in, the others are closed with 4429.
    let barrier = Arc::new(Barrier::new(2 * MAX));
    let admitted = Arc::new(AtomicUsize::new(0));
    let sockets: Vec<_> = (0..2 * MAX)
        .map(|_| {
            let (url, barrier, admitted) =
                (url.clone(), Arc::clone(&barrier), Arc::clone(&admitted));
            tokio::spawn(async move {
                barrier.wait().await;
                let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
                match tokio::time::timeout(PATIENCE, socket.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        Some(socket)
                    }
                    Ok(Some(Ok(Message::Close(Some(frame))))) => {
                        assert_eq!(u16::from(frame.code), CLOSE_TOO_MANY_SOCKETS);
                        None
                    }
                    unexpected => panic!("neither admitted nor refused: {unexpected:?}"),
                }
            })
        })
        .collect();
    let mut open = Vec::new();
    for socket in sockets {
        open.extend(socket.await.unwrap());
    }
    assert_eq!(admitted.load(Ordering::SeqCst), MAX);
    assert_eq!(open.len(), MAX);
    // Another user is not affected; closing one socket makes room for one more.
    let (mut theirs, _) = tokio_tungstenite::connect_async(ws_url(
        &server,
        &format!("?token={}", other.access_token),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut theirs).await["type"], "now_playing");
    let mut closing = open.pop().unwrap();
    closing.send(Message::Close(None)).await.unwrap();
    while let Some(Ok(_)) = closing.next().await {}
    let room = tokio::time::timeout(PATIENCE, async {
        loop {
            let (mut again, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            if let Some(Ok(Message::Text(_))) = again.next().await {
                return again;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(room.is_ok(), "a closed socket gives its place back");
}

pub async fn websockets_that_answer_no_ping_are_closed(h: &Harness) {
    let server = TestServer::start_with(h, &[("WS_PING_INTERVAL", "0.3")]).await;
    let user = server.register("ws-ping").await;
    let url = ws_url(&server, &format!("?token={}", user.access_token));
    let (mut deaf, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut answering, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // The answering client reads (and so answers every ping) for ten intervals; the deaf one
    // reads nothing meanwhile.
    let reading = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(message) = answering.next().await {
            assert!(
                !matches!(message, Ok(Message::Close(_)) | Err(_)),
                "{message:?}"
            );
        }
    })
    .await;
    assert!(reading.is_err(), "the answering socket stays open");
    assert_eq!(close_code(&mut deaf).await, CLOSE_PING_TIMEOUT);
}

/// Counts the warnings and errors of MelodyHue and the HTTP libraries.
struct WarningCounter(AtomicUsize);

impl tracing::Subscriber for WarningCounter {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        let target = metadata.target();
        metadata.is_event()
            && *metadata.level() <= tracing::Level::WARN
            && [
                "melodyhue",
                "warp",
                "hyper",
                "h2",
                "tungstenite",
                "tokio_tungstenite",
            ]
            .iter()
            .any(|prefix| target.starts_with(prefix))
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        eprintln!("counted: {event:?}");
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Clients that abort their connections in every way are counted, never logged as warnings or
/// errors. It installs a process-wide log subscriber: run it alone in its test binary.
pub async fn aborted_connections_are_counted_not_logged(h: &Harness) {
    let counter = Arc::new(WarningCounter(AtomicUsize::new(0)));
    tracing::subscriber::set_global_default(Arc::clone(&counter))
        .expect("no other log subscriber in this test binary");
    let server = TestServer::start_with(h, &[("METRICS", "true")]).await;
    let user = server.register("aborter").await;
    let server = Arc::new(server);
    let aborts: [&[u8]; 4] = [
        b"GET /health HTTP/1.1\r\nHost: te",
        b"POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Length: 500\r\n\r\n{\"a",
        b"NOT HTTP AT ALL\r\n\r\n",
        H2_PREFACE,
    ];
    let barrier = Arc::new(Barrier::new(4 * 25));
    let clients: Vec<_> = (0..4 * 25)
        .map(|n| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            let abort = aborts[n % aborts.len()];
            tokio::spawn(async move {
                let mut stream = connect(&server).await;
                barrier.wait().await;
                stream.write_all(abort).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                // A reset, not an orderly close.
                stream.set_zero_linger().unwrap();
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    // WebSockets dropped without a close frame.
    for _ in 0..10 {
        let url = ws_url(&server, &format!("?token={}", user.access_token));
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(next_json(&mut socket).await["type"], "now_playing");
        drop(socket);
    }
    server.get("/health", None).await.assert_status(200);
    let counted = tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, metrics) = scrape(&server, &[]).await;
            let errors = metrics
                .lines()
                .find(|l| {
                    l.starts_with("melodyhue_http_connections_closed_total{reason=\"error\"}")
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if errors > 0 {
                return errors;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "aborted connections are counted");
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "no warning or error was logged"
    );
}
