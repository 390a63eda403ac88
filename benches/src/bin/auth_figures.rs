//! The figures of the login hardening, measured over HTTP on loopback against an in-process
//! warp server (issue 16, items 1 to 4):
//!
//! 1. how many of 100 concurrent guesses for one account are checked;
//! 2. how many of 200 concurrent codes on one 2FA ticket are checked, per database;
//! 3. the time of a legitimate login alone and under a flood of 32 bogus logins kept in flight
//!    from other addresses (argon2 with its real cost);
//! 4. the time of a failed login by a username that 1 or 3 accounts share.
//!
//! Concurrent requests go out on pre-connected clients released by one barrier. Item 2 runs on
//! PostgreSQL and MariaDB too when `MELODYHUE_TEST_POSTGRES_URL` / `MELODYHUE_TEST_MYSQL_URL`
//! are set. Usage: `cargo run -p melodyhue-benches --bin auth_figures [ITEM...]` (all items
//! without arguments).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use melodyhue_core::App;
use melodyhue_core::auth::password::{HashParams, PasswordHasher};
use melodyhue_core::auth::totp;
use melodyhue_core::config::Config;
use melodyhue_core::model::{Role, User, new_id};
use melodyhue_testkit::database::{ScratchDatabase, Server as DatabaseServer};
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-42";

/// Budgets out of the way, for figures of the other limits.
const NO_BUDGETS: [(&str, &str); 2] = [
    ("LOGIN_MAX_FAILURES_PER_IDENTIFIER", "1000000"),
    ("LOGIN_MAX_FAILURES_PER_IP", "1000000"),
];

/// No refusals: every request queues (in the fair order).
const NO_ADMISSION: [(&str, &str); 2] = [
    ("PASSWORD_HASH_PER_CLIENT", "100000"),
    ("PASSWORD_HASH_QUEUE", "100000"),
];

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Server {
    base: String,
    app: App,
    task: tokio::task::JoinHandle<()>,
    _data: tempfile::TempDir,
    _database: Option<ScratchDatabase>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// A server with the real argon2 cost (unless `fast_hashes`) on SQLite or a scratch
    /// database of `database`.
    async fn start(
        vars: &[(&str, &str)],
        database: Option<DatabaseServer>,
        fast_hashes: bool,
    ) -> Result<Server, Failure> {
        let data = tempfile::tempdir()?;
        let database = match database {
            Some(server) => Some(ScratchDatabase::create(server).await),
            None => None,
        };
        let url = match &database {
            Some(database) => database.url().to_owned(),
            None => format!("sqlite:{}/melodyhue.db", data.path().display()),
        };
        // The environment may tune the server (e.g. PASSWORD_HASH_QUEUE); the cases override it.
        let mut all: Vec<(String, String)> = std::env::vars().collect();
        all.extend([
            ("DATABASE_URL".to_owned(), url),
            (
                "JWT_SECRET".to_owned(),
                "auth-figures-secret-0123456789abcdef".to_owned(),
            ),
            (
                "ENCRYPTION_KEY".to_owned(),
                "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E=".to_owned(),
            ),
            ("LOG_LEVEL".to_owned(), "warn".to_owned()),
        ]);
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut config = Config::from_vars(all)?;
        if fast_hashes {
            config.password_hashing = HashParams::insecure_fast_for_tests();
        }
        let app = App::connect(config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(melodyhue_warp::serve(
            app.clone(),
            listener,
            std::future::pending(),
        ));
        Ok(Server {
            base,
            app,
            task,
            _data: data,
            _database: database,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Result<(u16, Value), Failure> {
        let mut request = client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn register(
        &self,
        client: &reqwest::Client,
        username: &str,
        email: &str,
    ) -> Result<Value, Failure> {
        let (status, body) = self
            .post(
                client,
                "/auth/register",
                None,
                json!({"username": username, "email": email, "password": PASSWORD}),
            )
            .await?;
        if status != 200 {
            return Err(format!("register {username}: {status} {body}").into());
        }
        Ok(body)
    }

    /// Sends `count` requests at once from pre-connected clients; their statuses.
    async fn at_once<F>(&self, count: usize, request: F) -> Result<Vec<u16>, Failure>
    where
        F: Fn(usize, &reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut requests = Vec::with_capacity(count);
        for i in 0..count {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            client.get(self.url("/health")).send().await?;
            requests.push(request(i, &client));
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(count));
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    request.send().await.map(|r| r.status().as_u16())
                })
            })
            .collect();
        let mut statuses = Vec::with_capacity(count);
        for task in tasks {
            statuses.push(task.await??);
        }
        Ok(statuses)
    }
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

fn summary(statuses: &[u16]) -> String {
    let mut distinct: Vec<u16> = statuses.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
        .iter()
        .map(|s| format!("{s} x{}", count(statuses, *s)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn item1() -> Result<(), Failure> {
    println!("## 1. 100 concurrent guesses for one account, one address");
    for with_right_password in [false, true] {
        let server = Server::start(&NO_ADMISSION, None, true).await?;
        let client = reqwest::Client::new();
        server
            .register(&client, "raced", "raced@example.com")
            .await?;
        let statuses = server
            .at_once(100, |i, client| {
                let password = if with_right_password && i == 50 {
                    PASSWORD.to_owned()
                } else {
                    format!("guess-{i}")
                };
                client
                    .post(server.url("/auth/login"))
                    .json(&json!({"username_or_email": "raced", "password": password}))
            })
            .await?;
        println!(
            "{}: checked {} of 100 ({})",
            if with_right_password {
                "99 wrong + the right one"
            } else {
                "100 wrong"
            },
            count(&statuses, 401) + count(&statuses, 200),
            summary(&statuses)
        );
    }
    Ok(())
}

async fn item2(database: Option<DatabaseServer>, label: &str) -> Result<(), Failure> {
    let server = Server::start(&NO_BUDGETS, database, true).await?;
    let client = reqwest::Client::new();
    let user = server
        .register(&client, "ticketrace", "ticketrace@example.com")
        .await?;
    let token = user["access_token"].as_str().ok_or("no token")?;
    let (_, setup) = server
        .post(&client, "/auth/2fa/setup", Some(token), json!({}))
        .await?;
    let secret = setup["secret"].as_str().ok_or("no secret")?.to_owned();
    let now = server.app.now();
    let code = totp::code_at(&secret, now)?;
    server
        .post(
            &client,
            "/auth/2fa/verify",
            Some(token),
            json!({"code": code}),
        )
        .await?;
    let (_, login) = server
        .post(
            &client,
            "/auth/login",
            None,
            json!({"username_or_email": "ticketrace", "password": PASSWORD}),
        )
        .await?;
    let ticket = login["ticket"].as_str().ok_or("no ticket")?.to_owned();
    let valid: Vec<String> = (-2..=2)
        .map(|s| totp::code_at(&secret, now + chrono::Duration::seconds(30 * s)))
        .collect::<Result<_, _>>()?;
    let wrong = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !valid.contains(c))
        .ok_or("no wrong code")?;
    let statuses = server
        .at_once(200, |_, client| {
            client
                .post(server.url("/auth/login/2fa"))
                .json(&json!({"ticket": ticket, "totp": wrong}))
        })
        .await?;
    println!(
        "{label}: checked {} of 200 ({})",
        count(&statuses, 401),
        summary(&statuses)
    );
    Ok(())
}

/// How bogus logins pick their addresses.
#[derive(Clone, Copy)]
enum Flood {
    /// Each of the 32 connections has its own address.
    PerConnection,
    /// All 32 connections share one address.
    OneAddress,
    /// Every request comes from an address never seen before.
    FreshAddresses,
}

/// Ten legitimate logins during a flood of 32 bogus logins kept in flight, one after the other,
/// each from its own address (203.0.113.100-109: clients that did not log in within the last
/// minute); their times and statuses, and the flood's statuses.
async fn under_flood(
    vars: &[(&str, &str)],
    flood: Option<Flood>,
    retry_delay: Duration,
) -> Result<(Vec<Duration>, Vec<u16>, Vec<u16>), Failure> {
    let mut all = vec![("TRUST_PROXY", "true")];
    all.extend_from_slice(&NO_BUDGETS);
    all.extend_from_slice(vars);
    let server = Arc::new(Server::start(&all, None, false).await?);
    let client = reqwest::Client::new();
    server
        .register(&client, "legit", "legit@example.com")
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sequence = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    if let Some(flood) = flood {
        for connection in 0..32u64 {
            let (server, stop, sequence) = (
                Arc::clone(&server),
                Arc::clone(&stop),
                Arc::clone(&sequence),
            );
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            flooders.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = sequence.fetch_add(1, Ordering::Relaxed);
                    let address = match flood {
                        Flood::PerConnection => format!("198.51.100.{connection}"),
                        Flood::OneAddress => "198.51.100.1".to_owned(),
                        Flood::FreshAddresses => {
                            format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
                        }
                    };
                    let sent = client
                        .post(server.url("/auth/login"))
                        .header("x-forwarded-for", address)
                        .json(&json!({"username_or_email": format!("bogus{n}"), "password": "wrong-password"}))
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            if matches!(status, 429 | 503) {
                                tokio::time::sleep(retry_delay).await;
                            }
                            statuses.push(status);
                        }
                        Err(_) => statuses.push(0),
                    }
                }
                statuses
            }));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut times = Vec::new();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        let response = client
            .post(server.url("/auth/login"))
            .header("x-forwarded-for", format!("203.0.113.{}", 100 + i))
            .json(&json!({"username_or_email": "legit", "password": PASSWORD}))
            .send()
            .await?;
        times.push(started.elapsed());
        statuses.push(response.status().as_u16());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut flood_statuses = Vec::new();
    for flooder in flooders {
        flood_statuses.extend(flooder.await?);
    }
    Ok((times, statuses, flood_statuses))
}

/// One measurement of item 3.
struct FloodCase {
    label: &'static str,
    /// Server settings.
    vars: &'static [(&'static str, &'static str)],
    flood: Option<Flood>,
    /// How long a flooder waits after a `429` or `503`.
    retry_delay: Duration,
}

async fn item3() -> Result<(), Failure> {
    println!(
        "## 3. a legitimate login (10, each from its own address) alone and under 32 bogus logins in flight"
    );
    let hammering = Duration::from_millis(50);
    let polite = Duration::from_secs(1);
    let cases = [
        FloodCase {
            label: "alone",
            vars: &[],
            flood: None,
            retry_delay: hammering,
        },
        FloodCase {
            label: "32 addresses, refused ones retry after 50 ms",
            vars: &[],
            flood: Some(Flood::PerConnection),
            retry_delay: hammering,
        },
        FloodCase {
            label: "32 addresses, refused ones retry after Retry-After (1 s)",
            vars: &[],
            flood: Some(Flood::PerConnection),
            retry_delay: polite,
        },
        FloodCase {
            label: "32 addresses, nothing refused (the fair order alone)",
            vars: &NO_ADMISSION,
            flood: Some(Flood::PerConnection),
            retry_delay: hammering,
        },
        FloodCase {
            label: "one address, refused ones retry after 50 ms",
            vars: &[],
            flood: Some(Flood::OneAddress),
            retry_delay: hammering,
        },
        FloodCase {
            label: "a new address per request, retry after 50 ms",
            vars: &[],
            flood: Some(Flood::FreshAddresses),
            retry_delay: hammering,
        },
    ];
    for FloodCase {
        label,
        vars,
        flood,
        retry_delay,
    } in cases
    {
        let (times, statuses, flood_statuses) = under_flood(vars, flood, retry_delay).await?;
        let slowest = times.iter().max().copied().unwrap_or_default();
        println!(
            "{label}: median {}, slowest {}; legit answers: {}; flood answers: {}",
            ms(median(times)),
            ms(slowest),
            summary(&statuses),
            if flood_statuses.is_empty() {
                "-".to_owned()
            } else {
                summary(&flood_statuses)
            }
        );
    }
    Ok(())
}

async fn item4() -> Result<(), Failure> {
    println!("## 4. a failed login (20 in a row) by a username k accounts share");
    let server = Server::start(&NO_BUDGETS, None, false).await?;
    let client = reqwest::Client::new();
    server.register(&client, "solo", "solo@example.com").await?;
    for i in 0..3 {
        server
            .register(&client, "trio", &format!("trio{i}@example.com"))
            .await?;
    }
    // Three accounts of the earlier service: a salt each, until each logs in once.
    let hasher = PasswordHasher::new(
        HashParams::default(),
        server.app.config().password_admission,
    )?;
    for i in 0..3 {
        let now = server.app.now();
        let hash = hasher.admit(None)?.hash(PASSWORD).await?;
        server
            .app
            .store()
            .insert_user(&User {
                id: new_id(),
                username: "legacytrio".into(),
                email: format!("legacytrio{i}@example.com"),
                password_hash: hash,
                role: Role::User,
                created_at: now + chrono::Duration::seconds(i),
                updated_at: now,
                last_login_at: None,
            })
            .await?;
    }
    let mut medians = Vec::new();
    for identifier in ["nobody", "solo", "trio", "legacytrio"] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let (status, _) = server
                .post(
                    &client,
                    "/auth/login",
                    None,
                    json!({"username_or_email": identifier, "password": "wrong-password"}),
                )
                .await?;
            times.push(started.elapsed());
            if status != 401 {
                return Err(format!("{identifier}: {status}").into());
            }
        }
        let median = median(times);
        medians.push(median);
        println!("{identifier}: median {}", ms(median));
    }
    println!(
        "k=3 / k=1: {:.2} (shared salt), {:.2} (salts of the earlier service)",
        medians[2].as_secs_f64() / medians[1].as_secs_f64(),
        medians[3].as_secs_f64() / medians[1].as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let items: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |item: &str| items.is_empty() || items.iter().any(|i| i == item);
    if wanted("1") {
        item1().await?;
    }
    if wanted("2") {
        println!("## 2. 200 concurrent codes on one 2FA ticket");
        item2(None, "SQLite").await?;
        for (server, label) in [
            (DatabaseServer::Postgres, "PostgreSQL"),
            (DatabaseServer::MySql, "MariaDB"),
        ] {
            if server.admin_url().is_some() {
                item2(Some(server), label).await?;
            } else {
                println!("{label}: skipped (no server URL)");
            }
        }
    }
    if wanted("3") {
        item3().await?;
    }
    if wanted("4") {
        item4().await?;
    }
    Ok(())
}
