//! The nodes of a test cluster: each a server on its own runtime and thread, three of them over
//! one scratch PostgreSQL database, a Redis (the machine's, or one of the test's own) and a fake
//! Spotify.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::super::{
    Harness, Reply, TEST_ENCRYPTION_KEY, TEST_JWT_SECRET, TEST_PASSWORD, TestUser, receive,
};
use crate::database::{ScratchDatabase, Server};
use crate::fake_spotify::{FakeSpotify, FakeTrack, Scenario};
use crate::{Need, needed_var};
use melodyhue_core::App;
use melodyhue_core::auth::password::HashParams;
use melodyhue_core::config::Config;
use melodyhue_core::secrets::SecretBox;
use melodyhue_core::store::Store;

const CLIENT_ID: &str = "cluster-client-id";
pub(super) const CLIENT_SECRET: &str = "cluster-client-secret";

/// One node: a server on its own runtime and thread.
pub struct Node {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its `NODE_ID`.
    pub node_id: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Kills the node: its runtime, and every task on it, is dropped at once.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three nodes, their database, their Redis and a fake Spotify.
pub struct TestCluster {
    /// The nodes (a stopped one stays in place).
    pub nodes: Vec<Node>,
    /// The Spotify they poll.
    pub fake: FakeSpotify,
    /// The database, opened by the test itself (to make admins).
    pub store: Arc<dyn Store>,
    /// A plain client.
    pub http: reqwest::Client,
    redis_url: String,
    prefix: String,
    _database: ScratchDatabase,
}

/// The variable naming the machine's Redis (redis://127.0.0.1:6379).
pub(super) const REDIS_VAR: &str = "MELODYHUE_TEST_REDIS_URL";

/// The machine's Redis, which every case but the outage one declares as a [`Need`].
fn shared_redis() -> String {
    needed_var(REDIS_VAR)
}

impl TestCluster {
    /// Three nodes on the machine's Redis polling every `interval` seconds.
    pub async fn start(h: &Harness, interval: &str, extra: &[(&str, &str)]) -> Self {
        Self::start_on(h, &shared_redis(), interval, extra).await
    }

    /// Three nodes on the Redis at `redis_url`.
    pub async fn start_on(
        h: &Harness,
        redis_url: &str,
        interval: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let database = ScratchDatabase::create(Server::Postgres).await;
        let fake = FakeSpotify::start().await.expect("fake Spotify");
        fake.add_app(CLIENT_ID, CLIENT_SECRET);
        let prefix = format!(
            "melodyhue-test-{}:",
            hex::encode(melodyhue_core::model::random_bytes::<6>())
        );
        let fake_url = fake.url();
        let mut vars: Vec<(String, String)> = [
            ("DATABASE_URL", database.url()),
            ("JWT_SECRET", TEST_JWT_SECRET),
            ("ENCRYPTION_KEY", TEST_ENCRYPTION_KEY),
            ("REDIS_URL", redis_url),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
            ("SPOTIFY_ACCOUNTS_URL", fake_url.as_str()),
            ("SPOTIFY_API_URL", fake_url.as_str()),
            ("SPOTIFY_IMAGE_HOSTS", "http://127.0.0.1"),
            ("SPOTIFY_POLLING_INTERVAL", interval),
            ("METRICS", "true"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut nodes = Vec::new();
        // One after the other: the first runs the migrations.
        for i in 0..3 {
            nodes.push(start_node(h, &vars, &format!("node-{i}")).await);
        }
        let store = melodyhue_core::store::open(database.url())
            .await
            .expect("the test database");
        TestCluster {
            nodes,
            fake,
            store,
            http: reqwest::Client::new(),
            redis_url: redis_url.to_owned(),
            prefix,
            _database: database,
        }
    }

    /// `GET path` on node `i`.
    pub async fn get(&self, i: usize, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.http.get(self.nodes[i].url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        receive(request).await
    }

    /// A request with a JSON body on node `i`.
    pub async fn send(
        &self,
        i: usize,
        method: http::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, self.nodes[i].url(path))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        receive(request).await
    }

    /// Registers `name` through node `i`.
    pub async fn register(&self, i: usize, name: &str) -> TestUser {
        let email = format!("{name}@example.com");
        let reply = self
            .send(
                i,
                http::Method::POST,
                "/auth/register",
                None,
                json!({"username": name, "email": email, "password": TEST_PASSWORD}),
            )
            .await;
        reply.assert_status(200);
        TestUser {
            id: reply.body["user_id"].as_str().unwrap().to_owned(),
            username: name.to_owned(),
            email,
            password: TEST_PASSWORD.to_owned(),
            access_token: reply.body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: reply.body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A user registered through node 0 whose Spotify plays `track` (account `refresh_token`).
    pub async fn player(&self, name: &str, refresh_token: &str, track: FakeTrack) -> TestUser {
        let user = self.register(0, name).await;
        self.fake
            .set_scenario(refresh_token, Scenario::Playing(track));
        self.send(
            0,
            http::Method::PATCH,
            "/spotify/credentials",
            Some(&user.access_token),
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": refresh_token}),
        )
        .await
        .assert_status(200);
        user
    }

    /// Sets `user`'s fallback color (`default_overlay_color`) through node `i`'s API.
    pub async fn set_fallback_color(&self, i: usize, user: &TestUser, hex: &str) {
        self.send(
            i,
            http::Method::PATCH,
            "/settings/me",
            Some(&user.access_token),
            json!({"default_overlay_color": hex}),
        )
        .await
        .assert_status(200);
    }

    /// The value of the sample `series` in node `i`'s `/metrics`.
    pub async fn metric(&self, i: usize, series: &str) -> u64 {
        let text = crate::metrics::scrape(&self.http, &self.nodes[i].base).await;
        crate::metrics::sample(&text, series)
    }

    /// The sum of the sample `series` over every node's `/metrics` (all of them running).
    pub async fn metric_total(&self, series: &str) -> u64 {
        let mut total = 0;
        for node in 0..self.nodes.len() {
            total += self.metric(node, series).await;
        }
        total
    }

    /// Writes `refresh_token` as the user's stored refresh token straight into the database,
    /// announced to no node: a change each node hears of only by reading the database.
    pub async fn store_refresh_token_unannounced(&self, user_id: &str, refresh_token: &str) {
        let stored = self
            .store
            .spotify_credentials(user_id)
            .await
            .expect("the user's credentials")
            .expect("the user")
            .refresh_token_encrypted
            .expect("a stored refresh token");
        let newer = SecretBox::new(TEST_ENCRYPTION_KEY).encrypt(refresh_token);
        let replaced = self
            .store
            .replace_spotify_refresh_token(user_id, &stored, Some(&newer), chrono::Utc::now())
            .await
            .expect("the refresh token written");
        assert!(replaced, "the stored refresh token changed meanwhile");
    }

    /// Gives `user_id`'s lease to a holder that is none of the nodes, for `hold` (with a new
    /// fencing token, as a real holder would take it): every node follows meanwhile, and the
    /// next node to claim takes the user over.
    pub async fn lease_elsewhere(&self, user_id: &str, hold: Duration) {
        let mut connection = self.redis().await;
        let fence: u64 = redis::cmd("INCR")
            .arg(self.user_key("fence", user_id))
            .query_async(&mut connection)
            .await
            .expect("INCR the fence");
        let () = redis::cmd("SET")
            .arg(self.user_key("lease", user_id))
            .arg(format!("elsewhere#test|{fence}"))
            .arg("PX")
            .arg(u64::try_from(hold.as_millis()).expect("a short hold"))
            .query_async(&mut connection)
            .await
            .expect("SET the lease");
    }

    /// The Redis key of `kind` (`lease`, `fence`, `hold`) for `user_id`, under this test's
    /// prefix, as the nodes name it.
    fn user_key(&self, kind: &str, user_id: &str) -> String {
        format!("{}{kind}:{user_id}", self.prefix)
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .expect("Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis connection")
    }

    /// How long the pause the cluster keeps on `user_id` (a `429`'s wait, a refusal's pause)
    /// still runs, read from Redis: zero when there is none.
    pub async fn hold_left(&self, user_id: &str) -> Duration {
        let mut connection = self.redis().await;
        let millis: i64 = redis::cmd("PTTL")
            .arg(self.user_key("hold", user_id))
            .query_async(&mut connection)
            .await
            .expect("PTTL the hold");
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    /// The `NODE_ID` of the node holding `user_id`'s lease now, read from Redis.
    pub async fn lease_holder(&self, user_id: &str) -> Option<String> {
        let mut connection = self.redis().await;
        let value: Option<String> = redis::cmd("GET")
            .arg(self.user_key("lease", user_id))
            .query_async(&mut connection)
            .await
            .expect("GET the lease");
        value.and_then(|v| v.split('#').next().map(str::to_owned))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        // Best effort: the keys of this test's prefix.
        let (url, pattern) = (self.redis_url.clone(), format!("{}*", self.prefix));
        let _ = std::thread::spawn(move || {
            let client = redis::Client::open(url.as_str()).ok()?;
            let mut connection = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .ok()?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut connection)
                .ok()?;
            if !keys.is_empty() {
                let _: Option<i64> = redis::cmd("DEL").arg(keys).query(&mut connection).ok();
            }
            Some(())
        })
        .join();
    }
}

async fn start_node(h: &Harness, vars: &[(String, String)], node_id: &str) -> Node {
    let mut vars = vars.to_vec();
    vars.push(("NODE_ID".to_owned(), node_id.to_owned()));
    let data = tempfile::tempdir().expect("temporary directory");
    vars.push((
        "MELODYHUE_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    ));
    let serve = h.serve;
    let (ready, started) = tokio::sync::oneshot::channel::<String>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let _data = data;
            let mut config = Config::from_vars(vars).expect("node configuration");
            config.password_hashing = HashParams::insecure_fast_for_tests();
            let store = melodyhue_core::store::open(config.database_url.expose())
                .await
                .expect("node database");
            let app = App::builder(config, store).build().expect("node app");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let address = listener.local_addr().expect("local address");
            let server = tokio::spawn(serve(app, listener));
            let _ = ready.send(format!("http://{address}"));
            let _ = stopped.await;
            server.abort();
        });
        runtime.shutdown_background();
    });
    let base = started.await.expect("the node started");
    Node {
        base,
        node_id: node_id.to_owned(),
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// A Redis server of the test's own, on a free port, without persistence.
pub(super) struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// What a test of a Redis of its own needs.
    pub(super) fn need() -> Need {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        Need::found("redis-server", installed)
    }

    pub(super) fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = OwnRedis { port, child: None };
        assert!(redis.resume(), "redis-server does not start");
        redis
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub(super) fn resume(&mut self) -> bool {
        let Ok(child) = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen within 5 s");
    }

    /// Stops the server's process (`SIGSTOP`): connections stay open and nothing answers, as
    /// with a stalled machine. [`OwnRedis::unpause`] lets it go on.
    pub(super) fn pause(&self) {
        self.signal("-STOP");
    }

    pub(super) fn unpause(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server runs");
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal} redis-server");
    }

    /// Closes every connection of `kind` (`CLIENT KILL TYPE <kind>`, but the caller's own):
    /// `pubsub`, the nodes' subscriptions; `normal`, the connections they call Redis on.
    pub(super) fn kill_connections(&self, kind: &str) {
        let killed: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .query(&mut self.connection())
            .expect("CLIENT KILL");
        assert!(killed > 0, "no {kind} connection to close");
    }

    /// Lets the default user `PUBLISH` (`ACL SETUSER default +publish`), or not (`-publish`:
    /// every publication, a node's or a script's, fails with `NOPERM`).
    pub(super) fn allow_publish(&self, allowed: bool) {
        let rule = if allowed { "+publish" } else { "-publish" };
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg(rule)
            .query(&mut self.connection())
            .expect("ACL SETUSER");
    }

    /// The ids of the connections subscribed now (`CLIENT LIST TYPE pubsub`), sorted.
    pub(super) fn subscriber_ids(&self) -> Vec<u64> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut self.connection())
            .expect("CLIENT LIST");
        let mut ids: Vec<u64> = list
            .lines()
            .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How many times each command ran since the last call, by lower-case name (`INFO
    /// commandstats`, then `CONFIG RESETSTAT`).
    pub(super) fn take_command_counts(&self) -> HashMap<String, u64> {
        let mut connection = self.connection();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut connection)
            .expect("INFO commandstats");
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut connection)
            .expect("CONFIG RESETSTAT");
        // Lines such as `cmdstat_evalsha:calls=12,usec=340,...`.
        info.lines()
            .filter_map(|line| {
                let (command, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((command.to_owned(), calls))
            })
            .collect()
    }

    /// Waits (at most `patience`) until exactly `count` connections are subscribed, none of them
    /// one of `replacing` (ids from [`OwnRedis::subscriber_ids`]).
    pub(super) async fn wait_for_subscriptions(
        &self,
        count: usize,
        replacing: &[u64],
        patience: Duration,
    ) {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let now = self.subscriber_ids();
            if now.len() == count && now.iter().all(|id| !replacing.contains(id)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "subscriptions {now:?} after {patience:?}, to replace {replacing:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("Redis URL")
            .get_connection_with_timeout(Duration::from_secs(1))
            .expect("a connection to the test's redis-server")
    }

    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
