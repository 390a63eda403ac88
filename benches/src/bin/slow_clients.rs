//! Slow clients against a running server: `TRICKLING` connections that send a request head one
//! byte a second, or nothing at all with `silent` (reconnecting whenever the server closes
//! them), while a real client sends
//! `GET /health` on a fresh connection every 100 ms. Prints how many real requests were
//! answered, and how fast. Run the server with a low file limit to see it shut out or not,
//! e.g. `prlimit --nofile=1024:1024 melodyhue` (see `benches/load/slow_clients.sh`).
//!
//! Usage: `slow_clients BASE_URL [TRICKLING=1100] [SECONDS=30] [trickle|silent]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(base) = args.get(1).cloned() else {
        eprintln!("usage: slow_clients BASE_URL [TRICKLING] [SECONDS]");
        std::process::exit(2);
    };
    let trickling: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1100);
    let seconds: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(30);
    let silent = args.get(4).is_some_and(|mode| mode == "silent");
    let address = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();

    let running = Arc::new(AtomicBool::new(true));
    let connected = Arc::new(AtomicUsize::new(0));
    let reconnects = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..trickling)
        .map(|_| {
            let (address, running, connected, reconnects) = (
                address.clone(),
                Arc::clone(&running),
                Arc::clone(&connected),
                Arc::clone(&reconnects),
            );
            tokio::spawn(trickle(address, silent, running, connected, reconnects))
        })
        .collect();
    // Let the slow clients take their places first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_at_start = connected.load(Ordering::Relaxed);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|err| panic!("HTTP client: {err}"));
    let url = format!("{}/health", base.trim_end_matches('/'));
    let (mut answered, mut failed) = (0_usize, 0_usize);
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < deadline {
        tick.tick().await;
        let started = Instant::now();
        match client.get(&url).send().await {
            Ok(response) if response.status() == 200 => {
                answered += 1;
                latencies.push(started.elapsed());
            }
            _ => failed += 1,
        }
    }
    running.store(false, Ordering::Relaxed);
    let held_at_end = connected.load(Ordering::Relaxed);
    for attacker in attackers {
        attacker.abort();
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "real requests answered: {answered}/{} ({:.1}%), latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        answered + failed,
        100.0 * answered as f64 / (answered + failed).max(1) as f64,
        at(0.5),
        at(0.99),
        at(1.0),
    );
    println!(
        "slow connections open: {held_at_start} after 3 s, {held_at_end} at the end; {} reconnects",
        reconnects.load(Ordering::Relaxed)
    );
}

/// One slow client: a request head that never ends, a byte a second (or nothing when `silent`),
/// reconnecting when closed.
async fn trickle(
    address: String,
    silent: bool,
    running: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
    reconnects: Arc<AtomicUsize>,
) {
    let head = b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: ".to_vec();
    let mut first = true;
    while running.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(&address).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if !first {
            reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        connected.fetch_add(1, Ordering::Relaxed);
        let mut bytes = head.iter().copied().chain(std::iter::repeat(b'x'));
        while running.load(Ordering::Relaxed) {
            let byte = bytes.next().unwrap_or(b'x');
            let sent = if silent {
                // Nothing to send; a read shows whether the server closed the connection.
                let mut buffer = [0_u8; 1];
                !matches!(
                    tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await,
                    Ok(Ok(0) | Err(_))
                )
            } else {
                stream.write_all(&[byte]).await.is_ok()
            };
            if !sent {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        connected.fetch_sub(1, Ordering::Relaxed);
    }
}
