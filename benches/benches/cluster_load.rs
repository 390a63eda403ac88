//! Three nodes over one Redis and one PostgreSQL database, 10,000 watched users, viewers spread
//! round-robin over the nodes (each round moves every user's viewer to the next node, so every
//! node watches every user). The users come online spread over one polling interval, as in a
//! running service, so their polls are spread over it too.
//!
//! ```text
//! MELODYHUE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//! MELODYHUE_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo bench -p melodyhue-benches --bench cluster_load
//! CLUSTER_LOAD_USERS=2000 CLUSTER_LOAD_INTERVAL=6 cargo bench -p melodyhue-benches --bench cluster_load
//! CLUSTER_LOAD_SETTLE=75 cargo bench -p melodyhue-benches --bench cluster_load  # measure from 75 s
//! CLUSTER_LOAD_PROBE_NICE=0 cargo bench -p melodyhue-benches --bench cluster_load  # see probe_nice
//! ```
//!
//! The fake Spotify, each node and the measuring viewers run in child processes (this same
//! program), so the memory measured is each node's own and the latency measured is not the
//! watcher's (the load generator sends 2,000 requests a second); the measuring client runs at a
//! raised priority where it may (see `probe_nice`). Reported: Spotify
//! currently-playing calls per user per polling interval (cluster-wide), `/color` latency per
//! node (open loop: each measuring client asks at a fixed pace, and a late answer counts from
//! when it was due) beside the node's own handling time (the p99 bucket of its
//! `http_request_duration_seconds`), the time from a change at the
//! fake Spotify to the event on `/infos/{id}/events` and the `/ws` message on a node that does not
//! poll the user (30 changes spread over one polling interval), and resident memory per node.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a measurement program: fail loudly

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use melodyhue_core::App;
use melodyhue_core::config::Config;
use melodyhue_core::model::{Role, SpotifyCredentialsPatch, User, new_id};
use melodyhue_core::secrets::SecretBox;
use melodyhue_testkit::database::{ScratchDatabase, Server};
use melodyhue_testkit::fake_spotify::{Endpoint, FakeSpotify, FakeTrack, Scenario};
use melodyhue_testkit::metrics;
use tokio_tungstenite::tungstenite::Message;

const MODE: &str = "MELODYHUE_CLUSTER_LOAD_MODE";
const ENCRYPTION_KEY: &str = "cluster-load-encryption-key";
const JWT_SECRET: &str = "cluster-load-jwt-secret-0123456789abcdef";
const CLIENT_ID: &str = "load-client";
const CLIENT_SECRET: &str = "load-secret";
const COVERS: usize = 50;
const NODES: usize = 3;
/// Users whose change latency is measured over `/ws`.
const PROBES: usize = 30;
/// How often every user is asked for again (by the next node each time).
const WATCH_REFRESH: Duration = Duration::from_secs(5);
/// Users asked for together by the watcher.
const WATCH_GROUP: usize = 20;
/// The watcher's requests in flight at most: viewers whose answers are late do not pile up
/// without end (a browser source waits for its answer).
const WATCH_IN_FLIGHT: usize = 500;
/// The measured `/color` requests: one per node every `PROBE_EVERY` (100 per second and node), a
/// sample of the traffic rather than a load of its own.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// How long calls are counted and `/color` measured.
const MEASURE_WINDOW: Duration = Duration::from_secs(30);

/// The server binary's allocator (`melodyhue/src/main.rs`): the nodes run as it does. The load
/// generator and the fake Spotify, the same program, use it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Watcher requests not answered `200`.
static WATCH_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Measured `/color` requests not answered `200`.
static PROBE_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn main() {
    let mode = std::env::var(MODE).unwrap_or_default();
    if mode == "probe" {
        // Before the runtime's threads start: they inherit it.
        raise_probe_priority();
    }
    let runtime = if mode == "probe" {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .expect("runtime");
    match mode.as_str() {
        "probe" => runtime.block_on(run_probe()),
        "fake" => runtime.block_on(run_fake()),
        "node" => runtime.block_on(run_node()),
        _ => runtime.block_on(run_load()),
    }
}

/// The nice value the measuring client asks for (`CLUSTER_LOAD_PROBE_NICE`, default -10; 0
/// leaves it as it is). It shares the machine's cores with the nodes, Redis, PostgreSQL, the
/// fake Spotify and the load generator; at the same priority as them, its own lateness in
/// sending and in reading answers (5.5 to 8 ms p99 at a 3 s interval, fifth session) was
/// counted as the nodes' latency. Raising it needs root or `CAP_SYS_NICE`.
fn probe_nice() -> i32 {
    std::env::var("CLUSTER_LOAD_PROBE_NICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-10)
}

/// Applies [`probe_nice`] to this process (its main thread, before any other starts), with
/// `renice`; the nice value it runs at is what the probe's first line says.
fn raise_probe_priority() {
    let nice = probe_nice();
    let applied = nice == 0
        || Command::new("renice")
            .args([
                "-n",
                &nice.to_string(),
                "-p",
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    println!("nice {}", if applied { nice } else { 0 });
    std::io::stdout().flush().unwrap();
}

fn users() -> usize {
    std::env::var("CLUSTER_LOAD_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// `SPOTIFY_POLLING_INTERVAL` of the nodes, in seconds (`CLUSTER_LOAD_INTERVAL`, default 3: the
/// server's default).
fn interval_secs() -> u64 {
    std::env::var("CLUSTER_LOAD_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Over how long the watched users first come online: one polling interval (at least one watch
/// round), so that their polls, each once per interval from the first, are spread evenly.
fn arrival_spread() -> Duration {
    Duration::from_secs(interval_secs()).max(WATCH_REFRESH)
}

/// The sum over `bases` of the counter `name` in their `/metrics`.
async fn counter(http: &reqwest::Client, bases: &[String], name: &str) -> u64 {
    let mut total = 0;
    for base in bases {
        total += metrics::sample(&metrics::scrape(http, base).await, name);
    }
    total
}

fn cover_png(i: usize) -> Vec<u8> {
    let mut png = Vec::new();
    let shade = u8::try_from(i * 5).unwrap_or(u8::MAX);
    image::RgbImage::from_pixel(64, 64, image::Rgb([shade, 255 - shade, 120]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// Child: the fake Spotify. Prints its URL, then answers stdin: `count` → the currently-playing
/// calls so far; `play <refresh token> <track name>` → sets what that account plays.
async fn run_fake() {
    let fake = FakeSpotify::start().await.expect("fake Spotify");
    fake.add_app(CLIENT_ID, CLIENT_SECRET);
    let covers: Vec<String> = (0..COVERS)
        .map(|i| fake.add_image(&format!("cover-{i}.png"), cover_png(i), "image/png"))
        .collect();
    let track = move |name: String, user: usize| {
        Scenario::Playing(FakeTrack {
            id: Some(format!("track-{}", user % 500)),
            name,
            cover_url: Some(covers[user % COVERS].clone()),
            ..FakeTrack::default()
        })
    };
    for user in 0..users() {
        fake.set_scenario(&format!("rt-{user}"), track("Song".into(), user));
    }
    for probe in 0..PROBES {
        fake.set_scenario(&format!("rt-probe-{probe}"), track("Probe".into(), probe));
    }
    println!("{}", fake.url());
    std::io::stdout().flush().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(std::io::stdin()).lines();
        while let Some(Ok(line)) = lines.next() {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["play", token, name] => {
                    let probe = token
                        .rsplit('-')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    fake.set_scenario(token, track((*name).to_owned(), probe));
                    println!("ok");
                }
                _ => println!("{}", fake.calls(Endpoint::CurrentlyPlaying)),
            }
            std::io::stdout().flush().unwrap();
        }
    })
    .await
    .unwrap();
}

/// Child: one node, configured by the environment. Prints its URL; stops when stdin closes.
async fn run_node() {
    let config = Config::from_env().expect("node configuration");
    let app = App::connect(config).await.expect("node app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("http://{}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    let closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    });
    melodyhue_warp::serve(app, listener, async {
        let _ = closed.await;
    })
    .await;
}

/// A child process speaking lines over stdin/stdout.
struct Worker {
    child: Child,
    input: ChildStdin,
    output: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Worker {
    fn spawn(mode: &str, env: &[(&str, String)]) -> (Worker, String) {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(MODE, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("child process");
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = output.next().unwrap().unwrap();
        (
            Worker {
                child,
                input,
                output,
            },
            first,
        )
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.input, "{line}").unwrap();
        self.output.next().unwrap().unwrap()
    }

    fn resident_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The track names a stream shows, each with when it arrived.
type Shows = tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>;

/// Reads a `/ws` socket until it closes (answering pings as it goes): each message's track.
fn read_ws(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Shows {
    let (shown, shows) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                let _ = shown.send((track_name(&text), Instant::now()));
            }
        }
    });
    shows
}

/// Reads an event stream until it ends: each event's track.
fn read_events(mut events: reqwest::Response) -> Shows {
    let (shown, shows) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut pending = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find("\n\n") {
                let event: String = pending.drain(..end + 2).collect();
                for data in event.lines().filter_map(|line| line.strip_prefix("data: ")) {
                    let _ = shown.send((track_name(data), Instant::now()));
                }
            }
        }
    });
    shows
}

/// The track name in a `/ws` message or an event's `/infos` JSON ("" when nothing plays).
fn track_name(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["track"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// How long after `changed` the stream showed the track `name`: at most one polling interval
/// and 20 s.
async fn shown_after(mut shows: Shows, name: String, changed: Instant) -> Duration {
    let patience = Duration::from_secs(interval_secs() + 20);
    loop {
        let (shown, at) = tokio::time::timeout(patience, shows.recv())
            .await
            .expect("the change shown within an interval and 20 s")
            .expect("the stream stays open");
        if shown == name {
            return at - changed;
        }
    }
}

/// The `/color` buckets of a node's `http_request_duration_seconds` histogram (the time the node
/// itself took to answer, from the request read to the response made): (upper bound in seconds,
/// cumulative count), in a `/metrics` text.
fn color_buckets(text: &str) -> Vec<(f64, u64)> {
    text.lines()
        .filter(|line| {
            line.starts_with("melodyhue_http_request_duration_seconds_bucket{")
                && line.contains("route=\"/color/{user_id}\"")
        })
        .filter_map(|line| {
            let bound = line.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, line.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The upper bound (ms) of the bucket that holds the `q` quantile of what a node observed between
/// two scrapes of [`color_buckets`].
fn bucket_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let observed = |bound: f64| {
        let earlier = before
            .iter()
            .find(|(b, _)| *b == bound)
            .map_or(0, |(_, c)| *c);
        after
            .iter()
            .find(|(b, _)| *b == bound)
            .map_or(0, |(_, c)| c - earlier)
    };
    let mut bounds: Vec<f64> = after.iter().map(|(b, _)| *b).collect();
    bounds.sort_by(f64::total_cmp);
    let total = bounds.last().map_or(0, |b| observed(*b));
    let wanted = (total as f64 * q).ceil() as u64;
    bounds
        .into_iter()
        .find(|b| observed(*b) >= wanted)
        .map_or(f64::NAN, |b| b * 1000.0)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Child: the measuring viewers, in a process of their own with one thread, so that the
/// latency they see is not the load generator's (its watcher sends 2,000 requests a second).
/// Reads the nodes' base URLs on one line and the user ids on the next, then measures `/color`
/// on every node for [`MEASURE_WINDOW`]: one line per node, `<latency µs>:<sent late µs>`
/// pairs separated by spaces (a failed request is `x`).
async fn run_probe() {
    let mut lines = std::io::stdin().lines();
    let mut line = || lines.next().unwrap().unwrap();
    let bases: Vec<String> = line().split(' ').map(str::to_owned).collect();
    let ids: Arc<Vec<String>> = Arc::new(line().split(' ').map(str::to_owned).collect());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let window = Instant::now();
    let mut probers = Vec::new();
    for (node, base) in bases.into_iter().enumerate() {
        let (http, ids) = (http.clone(), Arc::clone(&ids));
        probers.push(tokio::spawn(async move {
            // Open loop: a request is due every PROBE_EVERY, each sent on its own whatever the
            // others are doing (as independent overlays would), and timed from when it was due,
            // so a stalled server (or measuring client) is charged for the delay it caused.
            let mut asks = tokio::task::JoinSet::new();
            let mut schedule = tokio::time::interval(PROBE_EVERY);
            let mut next = node;
            while window.elapsed() < MEASURE_WINDOW {
                let due = schedule.tick().await;
                let url = format!("{base}/color/{}", ids[next % ids.len()]);
                next += 7919;
                let http = http.clone();
                asks.spawn(async move {
                    // How late the client itself sends: part of the latency, not the node's.
                    let sent_late = due.elapsed();
                    let ok = match http.get(url).send().await {
                        Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    ok.then(|| (due.elapsed(), sent_late))
                });
            }
            let mut answers = Vec::new();
            while let Some(answer) = asks.join_next().await {
                answers.push(match answer.unwrap() {
                    Some((latency, late)) => {
                        format!("{}:{}", latency.as_micros(), late.as_micros())
                    }
                    None => "x".to_owned(),
                });
            }
            answers.join(" ")
        }));
    }
    for prober in probers {
        println!("{}", prober.await.unwrap());
    }
}

/// Measures `/color` on every node (in base order) from the child of [`run_probe`]: per node,
/// the latencies and how late each request was sent.
fn measure_color(bases: &[String], ids: &[String]) -> Vec<(Vec<Duration>, Vec<Duration>)> {
    let (mut probe, nice) = Worker::spawn("probe", &[]);
    println!("the measuring client runs at {nice}");
    writeln!(probe.input, "{}", bases.join(" ")).unwrap();
    writeln!(probe.input, "{}", ids.join(" ")).unwrap();
    let micros = |us: &str| Duration::from_micros(us.parse().unwrap());
    (0..bases.len())
        .map(|_| {
            let (mut latencies, mut sent_late) = (Vec::new(), Vec::new());
            for answer in probe.output.next().unwrap().unwrap().split(' ') {
                match answer.split_once(':') {
                    Some((latency, late)) => {
                        latencies.push(micros(latency));
                        sent_late.push(micros(late));
                    }
                    None => {
                        PROBE_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            (latencies, sent_late)
        })
        .collect()
}

async fn run_load() {
    let users = users();
    let redis_url = std::env::var("MELODYHUE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    // Panics, naming the variable, when MELODYHUE_TEST_POSTGRES_URL is unset.
    let database = ScratchDatabase::create(Server::Postgres).await;
    let (fake, fake_url) = Worker::spawn("fake", &[("CLUSTER_LOAD_USERS", users.to_string())]);
    let fake = Arc::new(Mutex::new(fake));
    let prefix = format!("melodyhue-bench-{}:", new_id().get(..8).unwrap_or("x"));

    eprintln!("creating {users} users with Spotify credentials...");
    let store = melodyhue_core::store::open(database.url()).await.unwrap();
    let secrets = SecretBox::new(ENCRYPTION_KEY);
    let now = chrono::Utc::now();
    let mut ids = Vec::with_capacity(users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(100) {
        let inserts = chunk.iter().map(|&user| {
            let (store, secrets) = (Arc::clone(&store), secrets.clone());
            async move {
                let id = new_id();
                store
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
                store
                    .update_spotify_credentials(&id, &patch, now)
                    .await
                    .unwrap();
                id
            }
        });
        ids.extend(futures_util::future::join_all(inserts).await);
    }

    let env = |node: usize| {
        vec![
            ("DATABASE_URL", database.url().to_owned()),
            ("REDIS_URL", redis_url.clone()),
            ("REDIS_KEY_PREFIX", prefix.clone()),
            ("NODE_ID", format!("node-{node}")),
            ("JWT_SECRET", JWT_SECRET.to_owned()),
            ("ENCRYPTION_KEY", ENCRYPTION_KEY.to_owned()),
            ("SPOTIFY_ACCOUNTS_URL", fake_url.clone()),
            ("SPOTIFY_API_URL", fake_url.clone()),
            ("SPOTIFY_IMAGE_HOSTS", "http://127.0.0.1".to_owned()),
            ("SPOTIFY_POLLING_INTERVAL", interval_secs().to_string()),
            ("METRICS", "true".to_owned()),
            ("LOG_LEVEL", "warn".to_owned()),
            (
                "MELODYHUE_DATA_DIR",
                std::env::temp_dir().display().to_string(),
            ),
        ]
    };
    let mut nodes = Vec::new();
    let mut bases = Vec::new();
    for node in 0..NODES {
        let (worker, base) = Worker::spawn("node", &env(node));
        nodes.push(worker);
        bases.push(base);
    }
    let bases = Arc::new(bases);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    eprintln!("registering {PROBES} probe users...");
    let mut probes = Vec::new();
    for probe in 0..PROBES {
        let reply: serde_json::Value = http
            .post(format!("{}/auth/register", bases[probe % NODES]))
            .json(&serde_json::json!({"username": format!("probe{probe}"), "email": format!("probe{probe}@example.com"), "password": "cluster-load-password-1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = reply["user_id"].as_str().unwrap().to_owned();
        let token = reply["access_token"].as_str().unwrap().to_owned();
        let patch = SpotifyCredentialsPatch {
            client_id: Some(Some(CLIENT_ID.into())),
            client_secret_encrypted: Some(Some(secrets.encrypt(CLIENT_SECRET))),
            refresh_token_encrypted: Some(Some(secrets.encrypt(&format!("rt-probe-{probe}")))),
        };
        store
            .update_spotify_credentials(&id, &patch, now)
            .await
            .unwrap();
        ids.push(id.clone());
        probes.push((id, token));
    }
    let ids = Arc::new(ids);

    eprintln!("watching every user, round-robin over the nodes...");
    let started = Instant::now();
    let watcher = {
        let (http, ids, bases) = (http.clone(), Arc::clone(&ids), Arc::clone(&bases));
        tokio::spawn(async move {
            // Viewers ask independently: small groups spread evenly over WATCH_REFRESH, not
            // bursts of thousands that would queue behind each other and measure the burst.
            let groups = ids.len().div_ceil(WATCH_GROUP);
            let mut pace = tokio::time::interval(WATCH_REFRESH / groups as u32);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let in_flight = Arc::new(tokio::sync::Semaphore::new(WATCH_IN_FLIGHT));
            // Viewers come online at different moments, as in a running service: group `g`
            // is first asked in the round that falls `g / groups` of the way into the arrival
            // spread, so first asks, and the polls that follow each once per interval, are
            // spread over the whole interval rather than bunched into the first round.
            let rounds_to_arrive = arrival_spread().as_secs_f64() / WATCH_REFRESH.as_secs_f64();
            let arrives_in = |g: usize| (g as f64 / groups as f64 * rounds_to_arrive).ceil();
            for round in 0.. {
                for (g, group) in ids.chunks(WATCH_GROUP).enumerate() {
                    pace.tick().await;
                    if (round as f64) < arrives_in(g) {
                        continue;
                    }
                    let places = Arc::clone(&in_flight)
                        .acquire_many_owned(group.len() as u32)
                        .await
                        .unwrap();
                    let asks: Vec<_> = group
                        .iter()
                        .enumerate()
                        .map(|(i, id)| {
                            let node = (g * WATCH_GROUP + i + round) % NODES;
                            http.get(format!("{}/color/{id}", bases[node])).send()
                        })
                        .collect();
                    // A slow answer must not hold the pace of the next group.
                    tokio::spawn(async move {
                        let answers = futures_util::future::join_all(asks).await;
                        drop(places);
                        for answer in answers {
                            // A cold node reads every user's fallback color once: the database
                            // pool may refuse some (503); they are counted, not fatal.
                            if !answer.is_ok_and(|a| a.status() == 200) {
                                WATCH_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    });
                }
            }
        })
    };
    // Every user has arrived and been watched by every node, and the leases have settled
    // (`CLUSTER_LOAD_SETTLE`, in seconds, starts the measuring later).
    let settled = std::env::var("CLUSTER_LOAD_SETTLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(
            (arrival_spread() + WATCH_REFRESH * (NODES as u32 + 1)).max(Duration::from_secs(40)),
            Duration::from_secs,
        );
    tokio::time::sleep(settled.saturating_sub(started.elapsed())).await;

    eprintln!(
        "counting Spotify calls over {MEASURE_WINDOW:?} and measuring /color on every node..."
    );
    let calls_before: u64 = fake.lock().unwrap().ask("count").parse().unwrap();
    let taken = "melodyhue_cluster_leases_taken_total";
    let redis_failures = "melodyhue_cluster_redis_failures_total";
    let taken_before = counter(&http, &bases, taken).await;
    let redis_failures_before = counter(&http, &bases, redis_failures).await;
    let deferred = "melodyhue_cluster_claims_deferred_total";
    let deferred_before = counter(&http, &bases, deferred).await;
    let mut handled_before = Vec::new();
    for base in bases.iter() {
        handled_before.push(color_buckets(&metrics::scrape(&http, base).await));
    }
    let window = Instant::now();
    // Blocking: it waits for the child's answer while the watcher goes on.
    let mut per_node = tokio::task::block_in_place(|| measure_color(&bases, &ids));
    let elapsed = window.elapsed().as_secs_f64();
    let calls_after: u64 = fake.lock().unwrap().ask("count").parse().unwrap();
    let taken_during = counter(&http, &bases, taken).await - taken_before;
    let redis_failures_during =
        counter(&http, &bases, redis_failures).await - redis_failures_before;
    let deferred_during = counter(&http, &bases, deferred).await - deferred_before;
    let memory: Vec<u64> = nodes.iter().map(Worker::resident_kib).collect();
    let mut handled_p99 = Vec::new();
    for (base, before) in bases.iter().zip(&handled_before) {
        let after = color_buckets(&metrics::scrape(&http, base).await);
        handled_p99.push(bucket_quantile(before, &after, 0.99));
    }

    eprintln!("measuring change-to-stream latency on nodes that do not poll the user...");
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let mut streams = Vec::new();
    for (probe, (id, token)) in probes.iter().enumerate() {
        let holder: Option<String> = redis::cmd("GET")
            .arg(format!("{prefix}lease:{id}"))
            .query_async(&mut connection)
            .await
            .unwrap();
        let holder = holder.and_then(|h| {
            h.strip_prefix("node-")
                .and_then(|h| h.get(..1))
                .and_then(|n| n.parse::<usize>().ok())
        });
        let node = holder.map_or(probe % NODES, |h| (h + 1) % NODES);
        let url = format!(
            "{}/ws?token={token}",
            bases[node].replacen("http://", "ws://", 1)
        );
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let events = http
            .get(format!("{}/infos/{id}/events", bases[node]))
            // A stream, open for the whole measurement.
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .unwrap();
        assert_eq!(
            events.status(),
            200,
            "the event stream opens: {:?}",
            events.headers()
        );
        // Read from the moment they open, as a browser does (an unread socket answers no ping
        // and is closed by the server once the others have taken long to open).
        let mut ws_shows = read_ws(socket);
        let mut events_shows = read_events(events);
        ws_shows.recv().await.expect("the first /ws message");
        events_shows.recv().await.expect("the first event");
        streams.push((ws_shows, events_shows));
    }
    let mut waits = Vec::new();
    // The probe users were first watched together, so they are polled together: changes spread
    // over one interval fall at every point of the polling cycle, not all at one.
    let mut spread = tokio::time::interval(Duration::from_secs(interval_secs()) / PROBES as u32);
    for (probe, (ws_shows, events_shows)) in streams.into_iter().enumerate() {
        spread.tick().await;
        let name = format!("Changed{probe}");
        let changed = Instant::now();
        assert_eq!(
            fake.lock()
                .unwrap()
                .ask(&format!("play rt-probe-{probe} {name}")),
            "ok"
        );
        waits.push((
            tokio::spawn(shown_after(ws_shows, name.clone(), changed)),
            tokio::spawn(shown_after(events_shows, name, changed)),
        ));
    }
    let (mut ws_latencies, mut event_latencies) = (Vec::new(), Vec::new());
    for (on_ws, on_events) in waits {
        ws_latencies.push(on_ws.await.unwrap());
        event_latencies.push(on_events.await.unwrap());
    }
    ws_latencies.sort();
    event_latencies.sort();
    watcher.abort();

    let interval = interval_secs();
    let intervals = elapsed / interval as f64;
    let total_users = ids.len();
    println!(
        "users: {total_users} watched, viewers round-robin over {NODES} nodes (interval {interval} s)"
    );
    let calls = calls_after - calls_before;
    // The users' polls are spread over the interval (see `arrival_spread`), so a window shorter
    // than one interval still gives a rate.
    println!(
        "currently-playing calls: {calls} in {elapsed:.1} s = {:.3} per user per interval (cluster-wide)",
        calls as f64 / intervals / total_users as f64
    );
    for (node, (latencies, sent_late)) in per_node.iter_mut().enumerate() {
        latencies.sort();
        sent_late.sort();
        println!(
            "node-{node} /color: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; the measuring client itself sent late: p99 {:.2} ms; the node's own handling (all /color, its histogram): p99 <= {} ms; resident memory {} MiB",
            latencies.len(),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0),
            percentile(sent_late, 0.99),
            handled_p99[node],
            memory[node] / 1024
        );
    }
    println!(
        "non-200 answers: {} of the watchers' requests, {} of the measured /color requests",
        WATCH_ERRORS.load(std::sync::atomic::Ordering::Relaxed),
        PROBE_ERRORS.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "during the window: {taken_during} leases taken (users changing hands), {redis_failures_during} Redis calls failed or timed out, {deferred_during} claims deferred (Redis slow)"
    );
    for (stream, latencies) in [
        ("/infos/{id}/events event", &event_latencies),
        ("/ws message", &ws_latencies),
    ] {
        println!(
            "change at Spotify -> {stream} on a node not polling the user ({} users): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (the polling interval is {} ms)",
            latencies.len(),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0),
            interval * 1000
        );
    }
    drop(nodes);
    // Best effort: this run's keys.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut connection)
            .await;
    }
}
