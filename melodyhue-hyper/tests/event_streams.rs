//! Event streams (`/infos/{user_id}/events`) and the server's shutdown, over a real socket
//! with raw HTTP/1.1: the shared accept loop ends open streams, so shutting down does not wait
//! for clients that would listen for ever. (The stream itself is tested on both frontends by the
//! HTTP suite; the shutdown is the accept loop's, which both frontends share.)
// A test binary: a failed unwrap in a helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use melodyhue_core::App;
use melodyhue_core::config::Config;
use melodyhue_testkit::suite::{TEST_ENCRYPTION_KEY, TEST_JWT_SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Bounds the waits below so that a broken server fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

/// Reads from `connection` until `done` says what was read is enough; all of it.
async fn read_until(connection: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !done(&String::from_utf8_lossy(&read)) {
            let n = connection.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("the server says it in time");
    String::from_utf8(read).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_ends_open_event_streams() {
    let config = Config::from_vars([
        ("DATABASE_URL", "sqlite::memory:"),
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("ENCRYPTION_KEY", TEST_ENCRYPTION_KEY),
    ])
    .unwrap();
    let app = App::connect(config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(melodyhue_hyper::serve(app, listener, async {
        let _ = stopped.await;
    }));

    let body =
        r#"{"username":"streamer","email":"streamer@example.com","password":"correct-horse-42"}"#;
    let mut client = TcpStream::connect(address).await.unwrap();
    let register = format!(
        "POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(register.as_bytes()).await.unwrap();
    let registered = read_until(&mut client, |_| false).await;
    let json = &registered[registered.find("\r\n\r\n").unwrap() + 4..];
    let user_id = user_id_of(json);

    let mut stream = TcpStream::connect(address).await.unwrap();
    let open = format!("GET /infos/{user_id}/events HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(open.as_bytes()).await.unwrap();
    let first = read_until(&mut stream, |read| read.contains("\n\n")).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("data: {"), "{first}");

    stop.send(()).unwrap();
    // The stream ends properly (the last chunk of a chunked body), then the connection closes.
    let rest = read_until(&mut stream, |read| read.ends_with("0\r\n\r\n")).await;
    assert!(rest.ends_with("0\r\n\r\n"), "the stream ended: {rest:?}");
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("the server stops in time")
        .unwrap();
}

/// The `user_id` of a `/auth/register` answer (the one field needed; no JSON crate here).
fn user_id_of(json: &str) -> String {
    let start = json.find(r#""user_id":""#).unwrap() + r#""user_id":""#.len();
    json[start..].split('"').next().unwrap().to_owned()
}
