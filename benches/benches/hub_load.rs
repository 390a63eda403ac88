//! Scale of the now-playing hub: many watched users polled against a fake Spotify, while
//! `/color` is measured over HTTP.
//!
//! ```text
//! cargo bench -p melodyhue-benches --bench hub_load            # 10 000 users
//! HUB_LOAD_USERS=2000 cargo bench -p melodyhue-benches --bench hub_load
//! ```
//!
//! The fake Spotify runs in a child process (this same program), so the resident memory measured
//! is the server's own. The report gives the resident memory per watched user, the Spotify calls
//! per polling interval, and the latency of `/color` while the hub polls everyone.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a measurement program: fail loudly

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use melodyhue_core::App;
use melodyhue_core::auth::password::HashParams;
use melodyhue_core::config::Config;
use melodyhue_core::model::{Role, SpotifyCredentialsPatch, User, new_id};
use melodyhue_core::secrets::SecretBox;
use melodyhue_testkit::fake_spotify::{Endpoint, FakeSpotify, FakeTrack, Scenario};

const FAKE_MODE: &str = "MELODYHUE_HUB_LOAD_FAKE";
const ENCRYPTION_KEY: &str = "hub-load-encryption-key";
const CLIENT_ID: &str = "load-client";
const CLIENT_SECRET: &str = "load-secret";
const COVERS: usize = 50;
const INTERVAL_SECS: u64 = 3;
/// How often every user is asked for again, to stay watched (the window is 30 s).
const WATCH_REFRESH: Duration = Duration::from_secs(15);

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let users: usize = std::env::var("HUB_LOAD_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var_os(FAKE_MODE).is_some() {
        runtime.block_on(run_fake(users));
    } else {
        runtime.block_on(run_load(users));
    }
}

/// Child process: a fake Spotify where every user plays one of [`COVERS`] covers. Prints its
/// URL, then answers each line on stdin with the number of currently-playing calls so far.
async fn run_fake(users: usize) {
    let fake = FakeSpotify::start().await.expect("fake Spotify");
    fake.add_app(CLIENT_ID, CLIENT_SECRET);
    let covers: Vec<String> = (0..COVERS)
        .map(|i| {
            let mut png = Vec::new();
            let shade = u8::try_from(i * 5).unwrap_or(u8::MAX);
            image::RgbImage::from_pixel(64, 64, image::Rgb([shade, 255 - shade, 120]))
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            fake.add_image(&format!("cover-{i}.png"), png, "image/png")
        })
        .collect();
    for user in 0..users {
        fake.set_scenario(
            &format!("rt-{user}"),
            Scenario::Playing(FakeTrack {
                id: Some(format!("track-{}", user % 500)),
                cover_url: Some(covers[user % COVERS].clone()),
                ..FakeTrack::default()
            }),
        );
    }
    println!("{}", fake.url());
    std::io::stdout().flush().unwrap();
    let stdin = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(std::io::stdin()).lines();
        while let Some(Ok(_)) = lines.next() {
            println!(
                "{} {}",
                fake.calls(Endpoint::CurrentlyPlaying),
                fake.calls(Endpoint::Image)
            );
            std::io::stdout().flush().unwrap();
        }
    });
    stdin.await.unwrap();
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run_load(users: usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(FAKE_MODE, "1")
        .env("HUB_LOAD_USERS", users.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("fake Spotify process");
    let mut to_fake = child.stdin.take().unwrap();
    let mut from_fake = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = from_fake.next().unwrap().unwrap();
    let mut fake_calls = move || {
        writeln!(to_fake, "count").unwrap();
        let line = from_fake.next().unwrap().unwrap();
        let mut parts = line.split(' ').map(|n| n.parse::<u64>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };

    let data = tempfile::tempdir().unwrap();
    let mut config = Config::from_vars([
        (
            "DATABASE_URL",
            format!("sqlite:{}/load.db", data.path().display()),
        ),
        ("JWT_SECRET", "hub-load-secret".to_owned()),
        ("ENCRYPTION_KEY", ENCRYPTION_KEY.to_owned()),
        ("SPOTIFY_ACCOUNTS_URL", url.clone()),
        ("SPOTIFY_API_URL", url.clone()),
        ("SPOTIFY_IMAGE_HOSTS", "http://127.0.0.1".to_owned()),
        ("SPOTIFY_POLLING_INTERVAL", INTERVAL_SECS.to_string()),
        ("LOG_LEVEL", "warn".to_owned()),
    ])
    .unwrap();
    config.password_hashing = HashParams::insecure_fast_for_tests();
    let app = App::connect(config).await.unwrap();

    eprintln!("creating {users} users with Spotify credentials...");
    let secrets = SecretBox::new(ENCRYPTION_KEY);
    let now = app.now();
    let mut ids = Vec::with_capacity(users);
    for user in 0..users {
        let id = new_id();
        app.store()
            .insert_user(&User {
                id: id.clone(),
                username: format!("user{user}"),
                email: format!("user{user}@example.com"),
                password_hash: "unused".into(),
                role: Role::User,
                created_at: now,
                updated_at: now,
                last_login_at: None,
            })
            .await
            .unwrap();
        let patch = SpotifyCredentialsPatch {
            client_id: Some(Some(CLIENT_ID.into())),
            client_secret_encrypted: Some(Some(secrets.encrypt(CLIENT_SECRET))),
            refresh_token_encrypted: Some(Some(secrets.encrypt(&format!("rt-{user}")))),
        };
        app.store()
            .update_spotify_credentials(&id, &patch, now)
            .await
            .unwrap();
        ids.push(id);
    }
    let ids = Arc::new(ids);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(melodyhue_warp::serve(
        app.clone(),
        listener,
        std::future::pending(),
    ));
    // Let the pools and caches settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_kib = resident_kib();

    eprintln!("watching every user...");
    let started = Instant::now();
    let watcher = {
        let (app, ids) = (app.clone(), Arc::clone(&ids));
        tokio::spawn(async move {
            loop {
                for chunk in ids.chunks(500) {
                    let asks = chunk.iter().map(|id| app.now_playing().of(id));
                    for answer in futures_util::future::join_all(asks).await {
                        answer.unwrap();
                    }
                }
                tokio::time::sleep(WATCH_REFRESH).await;
            }
        })
    };
    // Two full intervals after everyone was asked once.
    while started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let watched_kib = resident_kib();

    eprintln!("counting Spotify calls over 30 s and measuring /color...");
    let (calls_before, images) = fake_calls();
    let window = Instant::now();
    let client = reqwest::Client::new();
    let mut probes = Vec::new();
    for probe in 0..32 {
        let (client, ids) = (client.clone(), Arc::clone(&ids));
        probes.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut next = probe;
            while window.elapsed() < Duration::from_secs(30) {
                let id = &ids[next % ids.len()];
                next += 7919;
                let asked = Instant::now();
                let response = client
                    .get(format!("http://{address}/color/{id}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                latencies.push(asked.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for probe in probes {
        latencies.extend(probe.await.unwrap());
    }
    let elapsed = window.elapsed().as_secs_f64();
    let (calls_after, _) = fake_calls();
    watcher.abort();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let intervals = elapsed / INTERVAL_SECS as f64;
    let calls_per_interval = (calls_after - calls_before) as f64 / intervals;
    let stats = format!(
        "users: {users}\n\
         resident memory: {baseline_kib} KiB before watching, {watched_kib} KiB while watching: {:.2} KiB per watched user\n\
         currently-playing calls: {:.0} per {INTERVAL_SECS} s interval = {:.3} per user per interval\n\
         cover downloads: {images} for {COVERS} distinct covers\n\
         /color while polling: {} requests in {elapsed:.1} s ({:.0}/s), p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        (watched_kib.saturating_sub(baseline_kib)) as f64 / users as f64,
        calls_per_interval,
        calls_per_interval / users as f64,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pick(0.50).as_secs_f64() * 1000.0,
        pick(0.90).as_secs_f64() * 1000.0,
        pick(0.99).as_secs_f64() * 1000.0,
        pick(1.0).as_secs_f64() * 1000.0,
    );
    println!("{stats}");
    let _ = child.kill();
    let _ = child.wait();
}
