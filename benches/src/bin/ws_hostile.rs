//! Memory that hostile `/ws` sockets pin in a running server: `SOCKETS` sockets (ten per
//! account) each send `MIB` MiB of a fragmented text message that never ends, in 1 MiB
//! frames, and then hold on. Prints the server's resident memory (from `/proc/PID/status`)
//! before and after, and how many sockets the server kept open.
//!
//! Usage: `ws_hostile BASE_URL SERVER_PID [SOCKETS=30] [MIB=60]`

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn register(client: &reqwest::Client, base: &str, n: usize) -> String {
    let name = format!("hostile{n}-{}", std::process::id());
    let body = serde_json::json!({
        "username": name,
        "email": format!("{name}@example.com"),
        "password": "hostile-password",
    });
    let reply: serde_json::Value = client
        .post(format!("{base}/auth/register"))
        .json(&body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|err| panic!("register: {err}"))
        .json()
        .await
        .unwrap_or_else(|err| panic!("register: {err}"));
    reply["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(pid)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: ws_hostile BASE_URL SERVER_PID [SOCKETS] [MIB]");
        std::process::exit(2);
    };
    let base = base.trim_end_matches('/').to_owned();
    let sockets: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(30);
    let mib: usize = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(60);
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for n in 0..sockets.div_ceil(10) {
        tokens.push(register(&client, &base, n).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);

    let ws_base = base.replacen("http://", "ws://", 1);
    let tasks: Vec<_> = (0..sockets)
        .map(|n| {
            let url = format!("{ws_base}/ws?token={}", tokens[n / 10]);
            tokio::spawn(async move {
                let Ok((mut socket, _)) = tokio_tungstenite::connect_async(&url).await else {
                    return None;
                };
                let frame = vec![b'x'; 1024 * 1024];
                let mut sent = 0;
                for n in 0..mib {
                    let opcode = if n == 0 {
                        OpCode::Data(Data::Text)
                    } else {
                        OpCode::Data(Data::Continue)
                    };
                    let message = Message::Frame(Frame::message(frame.clone(), opcode, false));
                    if socket.send(message).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                Some((socket, sent))
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut sent_mib = 0;
    for task in tasks {
        if let Ok(Some((socket, sent))) = task.await {
            held.push(socket);
            sent_mib += sent;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    // A socket the server closed answers a ping with an error or end of stream.
    let mut open = 0;
    for socket in &mut held {
        let alive = socket.send(Message::Ping(Vec::new().into())).await.is_ok()
            && !matches!(
                tokio::time::timeout(Duration::from_millis(500), socket.next()).await,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))
            );
        open += usize::from(alive);
    }
    println!(
        "{sockets} hostile sockets, {sent_mib} MiB sent in all: server RSS {:.1} MiB -> {:.1} MiB \
         (+{:.1} MiB); {open} sockets still open",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
    );
}
