//! A 30-second database outage, measured: MelodyHue (in this process, on the given frontend)
//! over a database server of its own (PostgreSQL, or MariaDB), which is stopped while a client asks, every 100 ms,
//! for `/users/me` (needs the database), `/color/{id}` and `/overlay/{id}` (what overlays
//! poll), then started again. Prints the time to the first `503`, the latency of the answers
//! during the outage, what `/color` and `/overlay` answered, and the time to recover.
//!
//! Usage: `outage [warp|hyper] [SECONDS=30] [postgres|mariadb]` (needs the database's server
//! binaries: PostgreSQL's initdb and pg_ctl, or mariadb-install-db and mariadbd).

use std::time::{Duration, Instant};

use melodyhue_core::App;
use melodyhue_core::config::Config;
use melodyhue_testkit::cluster::{MariaDbServer, PostgresCluster, Scratch};

/// What one request got.
struct Answer {
    at: Duration,
    status: u16,
    stale: bool,
    took: Duration,
}

async fn ask(client: &reqwest::Client, url: &str, token: Option<&str>, t0: Instant) -> Answer {
    let started = Instant::now();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let (status, stale) = match request.send().await {
        Ok(response) => (
            response.status().as_u16(),
            response
                .headers()
                .get("cache-status")
                .is_some_and(|v| v.to_str().unwrap_or_default().contains("stale-if-error")),
        ),
        Err(_) => (0, false),
    };
    Answer {
        at: started - t0,
        status,
        stale,
        took: started.elapsed(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, answers: &[Answer]) {
    let mut took: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    took.sort();
    let at = |q: f64| {
        took.get(((took.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .map_or(f64::NAN, ms)
    };
    let count = |f: &dyn Fn(&Answer) -> bool| answers.iter().filter(|a| f(a)).count();
    println!(
        "{name:<14} {} requests: {} x 200 fresh, {} x 200 stale, {} x 503, {} other; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        answers.len(),
        count(&|a| a.status == 200 && !a.stale),
        count(&|a| a.status == 200 && a.stale),
        count(&|a| a.status == 503),
        count(&|a| a.status != 200 && a.status != 503),
        at(0.5),
        at(0.99),
        at(1.0),
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let frontend = args.get(1).map_or("warp", String::as_str).to_owned();
    let seconds: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(30);
    let database = args.get(3).map_or("postgres", String::as_str).to_owned();
    let (need, scratch): (_, fn() -> Scratch) = if database == "mariadb" {
        (MariaDbServer::need(), Scratch::mariadb)
    } else {
        (PostgresCluster::need(), Scratch::postgres)
    };
    if !need.is_met() {
        eprintln!("{database}: needs {need}");
        std::process::exit(1);
    }
    let cluster = scratch();
    let data = tempfile::tempdir().unwrap_or_else(|err| panic!("temporary directory: {err}"));
    let config = Config::from_vars([
        ("DATABASE_URL", cluster.url()),
        ("MELODYHUE_DATA_DIR", data.path().display().to_string()),
        (
            "SECRET_KEY",
            "outage-measurement-secret-key-0123456789".to_owned(),
        ),
        (
            "ENCRYPTION_KEY",
            "outage-measurement-encryption-key".to_owned(),
        ),
        ("LOG_LEVEL", "warn".to_owned()),
    ])
    .unwrap_or_else(|err| panic!("configuration: {err}"));
    let app = App::connect(config)
        .await
        .unwrap_or_else(|err| panic!("start: {err}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("bind: {err}"));
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let server = if frontend == "hyper" {
        tokio::spawn(melodyhue_hyper::serve(
            app,
            listener,
            std::future::pending(),
        ))
    } else {
        tokio::spawn(melodyhue_warp::serve(app, listener, std::future::pending()))
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|err| panic!("HTTP client: {err}"));
    let registered: serde_json::Value = client
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"username": "outage", "email": "outage@example.com", "password": "outage-password"}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|err| panic!("register: {err}"))
        .json()
        .await
        .unwrap_or_else(|err| panic!("register: {err}"));
    let token = registered["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let user = registered["user_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let overlay: serde_json::Value = client
        .post(format!("{base}/overlays"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Main"}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|err| panic!("overlay: {err}"))
        .json()
        .await
        .unwrap_or_else(|err| panic!("overlay: {err}"));
    let (me, color, overlay) = (
        format!("{base}/users/me"),
        format!("{base}/color/{user}"),
        format!(
            "{base}/overlay/{}",
            overlay["id"].as_str().unwrap_or_default()
        ),
    );
    // Overlays have been polling.
    for _ in 0..5 {
        ask(&client, &color, None, Instant::now()).await;
        ask(&client, &overlay, None, Instant::now()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    println!("{frontend}: stopping {database} for {seconds} s");
    cluster.stop();
    let t0 = Instant::now();
    // Each path polled on its own, so a slow answer delays no other.
    let poll = |url: String, token: Option<String>| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while t0.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                answers.push(ask(&client, &url, token.as_deref(), t0).await);
            }
            answers
        })
    };
    let polls = [
        poll(me, Some(token.clone())),
        poll(color.clone(), None),
        poll(overlay, None),
    ];
    let mut answers = Vec::new();
    for poll in polls {
        answers.push(poll.await.unwrap_or_default());
    }
    let [mut me_answers, color_answers, overlay_answers] =
        <[Vec<Answer>; 3]>::try_from(answers).unwrap_or_else(|_| panic!("three polls"));
    if let Some(first) = me_answers.iter().position(|a| a.status == 503) {
        let (at, took) = (me_answers[first].at, me_answers[first].took);
        println!(
            "first 503 of /users/me: asked {:.0} ms after the stop, answered after {:.0} ms",
            ms(at),
            ms(took)
        );
        me_answers.retain(|a| a.at > at + took);
        summary("/users/me after", &me_answers);
    }
    summary("/color", &color_answers);
    summary("/overlay", &overlay_answers);

    cluster.start();
    let t1 = Instant::now();
    loop {
        let answer = ask(&client, &color, None, t1).await;
        if answer.status == 200 && !answer.stale {
            println!(
                "recovered: /color fresh again {:.0} ms after the database accepted connections",
                ms(answer.at)
            );
            break;
        }
        if t1.elapsed() > Duration::from_secs(30) {
            println!("not recovered within 30 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
}
