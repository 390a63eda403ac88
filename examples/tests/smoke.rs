//! Each example program starts, says where it listens, and answers a real request.
// A test binary: a failed unwrap in a helper is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bounds the waits below so that a broken example fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running example program, killed when dropped.
struct Running {
    child: Child,
    address: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` on a free port and reads the address it prints.
fn start(program: &str) -> Running {
    let mut child = Command::new(program)
        .env_remove("PORT")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut running = Running {
        child,
        address: String::new(),
    };
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver.recv_timeout(PATIENCE).unwrap();
    running.address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    running
}

/// `GET path` over HTTP/1.1; the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

#[test]
fn embed_warp_serves_its_own_route_and_melodyhue_under_api() {
    let program = start(env!("CARGO_BIN_EXE_embed_warp"));
    assert_eq!(
        get(&program.address, "/hello"),
        (200, "hello from the host program".to_owned())
    );
    assert_eq!(
        get(&program.address, "/api/health"),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
}

#[test]
fn hyper_accept_loop_serves_melodyhue() {
    let program = start(env!("CARGO_BIN_EXE_hyper_accept_loop"));
    assert_eq!(
        get(&program.address, "/health"),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
}
