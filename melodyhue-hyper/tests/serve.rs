//! `serve` itself: keep-alive and graceful shutdown, over a real socket with raw HTTP/1.1.
// A test binary: a failed unwrap in a helper is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use melodyhue_core::App;
use melodyhue_core::config::Config;
use melodyhue_testkit::suite::{TEST_ENCRYPTION_KEY, TEST_JWT_SECRET};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Bounds the waits below so that a broken server fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

async fn app() -> App {
    let config = Config::from_vars([
        ("DATABASE_URL", "sqlite::memory:"),
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("ENCRYPTION_KEY", TEST_ENCRYPTION_KEY),
    ])
    .unwrap();
    App::connect(config).await.unwrap()
}

/// One response head and body, read off a connection.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_answer(reader: &mut BufReader<TcpStream>) -> Answer {
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let length: usize = answer
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    answer.body.resize(length, 0);
    reader.read_exact(&mut answer.body).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_answers_several_requests_on_one_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(melodyhue_hyper::serve(
        app().await,
        listener,
        std::future::pending(),
    ));
    let mut connection = BufReader::new(TcpStream::connect(address).await.unwrap());
    for _ in 0..3 {
        connection
            .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut connection).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, br#"{"status":"ok"}"#);
        assert_ne!(answer.header("connection"), Some("close"));
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_open_request_then_stops() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(melodyhue_hyper::serve(app().await, listener, async {
        let _ = stopped.await;
    }));

    // `100 Continue` arrives once the handler reads the body: the request is then in flight.
    let mut connection = BufReader::new(TcpStream::connect(address).await.unwrap());
    connection
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(read_answer(&mut connection).await.status, 100);

    stop.send(()).unwrap();
    // Shutting down closes the listener first.
    tokio::time::timeout(PATIENCE, async {
        while TcpStream::connect(address).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the listener closes");
    assert!(!server.is_finished(), "serve returned with a request open");

    connection.write_all(b"{}").await.unwrap();
    let answer = read_answer(&mut connection).await;
    assert_eq!(answer.status, 422, "the open request is answered");
    let mut rest = Vec::new();
    connection.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the connection is closed after the answer");

    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("serve returns once its connections are done")
        .unwrap();
}
