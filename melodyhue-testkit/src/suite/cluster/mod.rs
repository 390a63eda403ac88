//! Several nodes over one Redis (`REDIS_URL`): three in-process nodes, each on its own port and
//! its own runtime (stopping a node drops its runtime: its tasks die as a killed process's
//! would), over one scratch PostgreSQL database and the machine's Redis
//! (`MELODYHUE_TEST_REDIS_URL`), against the fake Spotify. Each test uses its own key prefix.
//!
//! Run by [`cluster_suite!`](crate::cluster_suite) in each frontend's `tests/cluster.rs`; each
//! case needs `MELODYHUE_TEST_REDIS_URL` and `MELODYHUE_TEST_POSTGRES_URL` (the Redis outage
//! case needs `redis-server` instead of the shared Redis), and is ignored without them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::spotify::{close_code, next_json, refresh_tokens_sent};
use super::{Harness, TestUser, receive, release_together};
use crate::fake_spotify::{FakeTrack, Scenario};
use crate::{Need, Trial, trial};
use melodyhue_core::model::{Role, SettingsPatch};

mod nodes;

use nodes::{CLIENT_SECRET, OwnRedis, REDIS_VAR};
pub use nodes::{Node, TestCluster};

fn track(name: &str) -> FakeTrack {
    FakeTrack {
        name: name.to_owned(),
        ..FakeTrack::default()
    }
}

/// Viewers of `users` on every running node, each asking `/color` every 100 ms until `until`.
async fn view_everywhere(cluster: &TestCluster, users: &[TestUser], until: Instant) {
    let running: Vec<usize> = (0..cluster.nodes.len())
        .filter(|&node| cluster.nodes[node].thread.is_some())
        .collect();
    view_on(cluster, &running, users, until).await;
}

/// Viewers of `users` on `nodes`, each asking `/color` every 100 ms until `until`. Dropping
/// the future stops them.
async fn view_on(cluster: &TestCluster, nodes: &[usize], users: &[TestUser], until: Instant) {
    let mut viewers = tokio::task::JoinSet::new();
    for &node in nodes {
        for user in users {
            let url = cluster.nodes[node].url(&format!("/color/{}", user.id));
            let http = cluster.http.clone();
            viewers.spawn(async move {
                while Instant::now() < until {
                    let reply = receive(http.get(&url)).await;
                    assert_eq!(reply.status, 200, "{url}: {:?}", reply.body);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    }
    while let Some(viewer) = viewers.join_next().await {
        viewer.expect("a viewer");
    }
}

/// Waits (at most `patience`) until every node's `/infos` of `user` shows the track `name`.
async fn every_node_shows(cluster: &TestCluster, user: &TestUser, name: &str, patience: Duration) {
    let all: Vec<usize> = (0..cluster.nodes.len()).collect();
    nodes_show(cluster, &all, user, name, patience).await;
}

/// Waits (at most `patience`) until the `/infos` of `user` on each of `nodes` shows the track
/// `name` (asking a node starts watching the user there).
async fn nodes_show(
    cluster: &TestCluster,
    nodes: &[usize],
    user: &TestUser,
    name: &str,
    patience: Duration,
) {
    let deadline = Instant::now() + patience;
    for &node in nodes {
        loop {
            let infos = cluster
                .get(node, &format!("/infos/{}", user.id), None)
                .await;
            infos.assert_status(200);
            if infos.body["track"]["name"] == name {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} still shows {:?} after {patience:?}",
                infos.body["track"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits (at most `patience`) until `node_id` holds `user_id`'s lease.
async fn wait_for_holder(cluster: &TestCluster, user_id: &str, node_id: &str, patience: Duration) {
    let deadline = Instant::now() + patience;
    while cluster.lease_holder(user_id).await.as_deref() != Some(node_id) {
        assert!(
            Instant::now() < deadline,
            "{node_id} did not take the user over within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Viewers on all three nodes: each user's Spotify is asked at most once per interval in the
/// whole cluster, and a track change shows on every node's `/infos`.
pub async fn each_user_is_polled_once_per_interval_cluster_wide(h: &Harness) {
    let cluster = TestCluster::start(h, "0.5", &[]).await;
    let users = [
        cluster.player("ada", "rt-ada", track("Ada 1")).await,
        cluster.player("bob", "rt-bob", track("Bob 1")).await,
        cluster.player("cyd", "rt-cyd", track("Cyd 1")).await,
    ];
    cluster.fake.reset_counters();
    let started = Instant::now();
    view_everywhere(&cluster, &users, started + Duration::from_secs(4)).await;
    let elapsed = started.elapsed();
    let intervals = elapsed.as_secs_f64() / 0.5;
    for token in ["rt-ada", "rt-bob", "rt-cyd"] {
        let calls = cluster.fake.currently_playing_calls_for(token);
        eprintln!("{token}: {calls} calls in {elapsed:?} ({intervals:.1} intervals)");
        assert!(
            calls >= 2 && (calls as f64) <= intervals.ceil() + 1.0,
            "{token}: {calls} currently-playing calls in {elapsed:?} ({intervals:.1} intervals) with viewers on three nodes"
        );
    }
    // A track change, seen on every node.
    cluster
        .fake
        .set_scenario("rt-ada", Scenario::Playing(track("Ada 2")));
    every_node_shows(&cluster, &users[0], "Ada 2", Duration::from_secs(3)).await;
}

/// The `/infos` JSON of each `data:` line of an event stream, as the stream goes on, until
/// `wanted` accepts one; `false` when the stream ends or stays silent past `deadline`.
async fn stream_shows(
    response: &mut reqwest::Response,
    deadline: Instant,
    wanted: impl Fn(&Value) -> bool,
) -> bool {
    let mut text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, response.chunk()).await else {
            return false;
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        // Whole lines only; the rest waits for the next chunk.
        while let Some(end) = text.find('\n') {
            let line: String = text.drain(..=end).collect();
            let infos = line
                .trim_end()
                .strip_prefix("data: ")
                .and_then(|data| serde_json::from_str::<Value>(data).ok());
            if infos.is_some_and(|infos| wanted(&infos)) {
                return true;
            }
        }
    }
}

/// A track change at Spotify reaches the event streams (`/infos/{id}/events`) open on every
/// node, though only one node polls the user.
pub async fn a_track_change_reaches_event_streams_on_every_node(h: &Harness) {
    let cluster = TestCluster::start(h, "0.5", &[]).await;
    let user = cluster.player("eve", "rt-eve", track("Eve 1")).await;
    let mut streams = Vec::new();
    for node in &cluster.nodes {
        let response = cluster
            .http
            .get(node.url(&format!("/infos/{}/events", user.id)))
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (node, stream) in streams.iter_mut().enumerate() {
        assert!(
            stream_shows(stream, deadline, |infos| infos["track"]["name"] == "Eve 1").await,
            "node {node} never showed the first track"
        );
    }
    cluster
        .fake
        .set_scenario("rt-eve", Scenario::Playing(track("Eve 2")));
    let deadline = Instant::now() + Duration::from_secs(5);
    for (node, stream) in streams.iter_mut().enumerate() {
        assert!(
            stream_shows(stream, deadline, |infos| infos["track"]["name"] == "Eve 2").await,
            "node {node}'s stream never showed the change"
        );
    }
}

/// A `429` holds for the whole cluster: while its `Retry-After` runs, no node polls the user,
/// although the holder's lease (1.5 intervals) ran out long before.
pub async fn a_rate_limit_holds_for_every_node(h: &Harness) {
    let cluster = TestCluster::start(h, "0.5", &[]).await;
    let users = [cluster.player("lea", "rt-lea", track("Lea")).await];
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(1)).await;
    cluster.fake.set_scenario(
        "rt-lea",
        Scenario::RateLimited {
            retry_after_secs: 4,
        },
    );
    cluster.fake.reset_counters();
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(3)).await;
    assert_eq!(
        cluster.fake.currently_playing_calls_for("rt-lea"),
        1,
        "one 429, then nobody polls during its Retry-After"
    );
}

/// A settings change through one node drops the other nodes' copies of the fallback color at
/// once (the polling interval, 30 s, would otherwise keep them).
pub async fn a_settings_change_reaches_every_node_within_100_ms(h: &Harness) {
    let cluster = TestCluster::start(h, "30", &[]).await;
    let user = cluster.register(0, "eve").await;
    let path = format!("/color/{}", user.id);
    for node in 0..3 {
        let reply = cluster.get(node, &path, None).await;
        assert_eq!(reply.body["color"]["hex"], "#25d865");
    }
    cluster.set_fallback_color(0, &user, "#123456").await;
    let changed = Instant::now();
    for node in 1..3 {
        let took = shows_color(
            &cluster,
            node,
            &user,
            "#123456",
            changed,
            Duration::from_millis(100),
        )
        .await;
        eprintln!("node {node} shows the new color {took:?} after the change");
    }
}

/// Waits until node `node`'s `/color` of `user` shows `hex`, at most `patience` after `since`;
/// how long after `since` it did.
async fn shows_color(
    cluster: &TestCluster,
    node: usize,
    user: &TestUser,
    hex: &str,
    since: Instant,
    patience: Duration,
) -> Duration {
    let path = format!("/color/{}", user.id);
    loop {
        let reply = cluster.get(node, &path, None).await;
        if reply.body["color"]["hex"] == hex {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < patience,
            "node {node} still shows {} after {:?}",
            reply.body["color"]["hex"],
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The node polling a user is killed: another takes the user over within two intervals.
pub async fn a_dead_nodes_users_are_polled_again_within_two_intervals(h: &Harness) {
    let mut cluster = TestCluster::start(h, "1", &[]).await;
    let user = cluster.player("fay", "rt-fay", track("Fay")).await;
    let users = [user];
    view_everywhere(
        &cluster,
        &users,
        Instant::now() + Duration::from_millis(1500),
    )
    .await;
    let holder = cluster
        .lease_holder(&users[0].id)
        .await
        .expect("a node holds the lease");
    let dead = cluster
        .nodes
        .iter()
        .position(|node| node.node_id == holder)
        .expect("the holder is one of the nodes");
    let before = cluster.fake.currently_playing_calls_for("rt-fay");
    cluster.nodes[dead].stop();
    let stopped = Instant::now();
    // The viewers stay, on the two others.
    let viewers = view_everywhere(&cluster, &users, stopped + Duration::from_secs(3));
    let watch = async {
        loop {
            if cluster.fake.currently_playing_calls_for("rt-fay") > before {
                return stopped.elapsed();
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(3),
                "nobody polled the user within 3 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (_, took_over) = tokio::join!(viewers, watch);
    eprintln!("polled again {took_over:?} after the polling node died (interval 1 s)");
    assert!(
        took_over < Duration::from_secs(2),
        "polled again {took_over:?} after its node died (interval 1 s)"
    );
    let new_holder = cluster.lease_holder(&users[0].id).await;
    assert!(new_holder.is_some_and(|h| h != holder));
}

/// Spotify refuses a user's refresh token (`invalid_grant`) on the node that polls: no node
/// tries that token again, not even one that polled the user before and still holds a copy of
/// the connection it read then (its access token expired with the others), and the refusal's
/// pause holds for every node although the poll that met it (which waits 2 s before clearing
/// the token) outlasted a lease (0.75 s) several times.
///
/// Node 0 polls first, then its viewers leave for node 1, which takes the user over once node
/// 0's watch window (30 s) has run out. Node 1 meets the refusal and clears the token; then it
/// dies, and node 0, whose viewers are back, polls again.
pub async fn a_refused_spotify_grant_holds_for_every_node(h: &Harness) {
    let mut cluster = TestCluster::start(h, "0.5", &[]).await;
    let users = [cluster.player("gus", "rt-gus", track("Gus")).await];
    let user = &users[0];
    view_on(
        &cluster,
        &[0],
        &users,
        Instant::now() + Duration::from_millis(1500),
    )
    .await;
    assert_eq!(
        cluster.lease_holder(&user.id).await.as_deref(),
        Some("node-0")
    );
    let refusals_before = async {
        wait_for_holder(&cluster, &user.id, "node-1", Duration::from_secs(45)).await;
        // Node 1 gets its access token with the first poll after taking the user over: that
        // refresh must be over (it polled) before the token is revoked, or it would count.
        let polls = cluster.fake.currently_playing_calls_for("rt-gus");
        let deadline = Instant::now() + Duration::from_secs(5);
        while cluster.fake.currently_playing_calls_for("rt-gus") == polls {
            assert!(Instant::now() < deadline, "node 1 did not poll the user");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = cluster.fake.token_requests().len();
        cluster.fake.revoke_refresh_token("rt-gus");
        cluster.fake.expire_access_tokens("rt-gus");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = cluster
                .get(1, "/spotify/auth/status", Some(&user.access_token))
                .await;
            if status.body["authenticated"] == false {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the refused token is still stored"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        before
    };
    let node_1_viewers = view_on(
        &cluster,
        &[1],
        &users,
        Instant::now() + Duration::from_secs(90),
    );
    let before = tokio::select! {
        before = refusals_before => before,
        () = node_1_viewers => unreachable!("the viewers outlast the case"),
    };
    // The pause is set in Redis a moment after the token is cleared.
    let deadline = Instant::now() + Duration::from_secs(2);
    while cluster.hold_left(&user.id).await.is_zero() {
        assert!(Instant::now() < deadline, "node 1 set no pause");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let taken = "melodyhue_cluster_leases_taken_total";
    let taken_by_node_0 = cluster.metric(0, taken).await;
    cluster.nodes[1].stop();
    view_on(
        &cluster,
        &[0],
        &users,
        Instant::now() + Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        cluster.metric(0, taken).await,
        taken_by_node_0,
        "node 0 took the user during the refusal's pause"
    );
    let tries: Vec<_> = cluster.fake.token_requests()[before..]
        .iter()
        .filter(|request| request.field("refresh_token") == Some("rt-gus"))
        .cloned()
        .collect();
    assert_eq!(
        tries.len(),
        1,
        "the refused refresh token was tried again after the cluster learned of the refusal: {tries:?}"
    );
    let infos = cluster.get(0, &format!("/infos/{}", user.id), None).await;
    infos.assert_status(200);
    assert_eq!(
        infos.body["track"]["name"], "No music playing",
        "{:?}",
        infos.body
    );
}

/// A refused app (`invalid_client`: the client secret is wrong) pauses the user for the whole
/// cluster as it pauses them on one node: its token request is not tried again for 30 s,
/// although the holder's lease (1.5 intervals) runs out long before and viewers ask every node.
/// The right secret, saved through another node, ends the pause at once.
pub async fn a_refused_spotify_app_holds_for_every_node(h: &Harness) {
    let cluster = TestCluster::start(h, "0.5", &[]).await;
    let users = [cluster.player("ida", "rt-ida", track("Ida")).await];
    let user = &users[0];
    let set_secret = |node: usize, secret: &'static str| {
        cluster.send(
            node,
            http::Method::PATCH,
            "/spotify/credentials",
            Some(&user.access_token),
            json!({ "client_secret": secret }),
        )
    };
    set_secret(0, "not-the-app-secret").await.assert_status(200);
    let before = cluster.fake.token_requests().len();
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(4)).await;
    let tries = cluster.fake.token_requests()[before..]
        .iter()
        .filter(|request| request.field("refresh_token") == Some("rt-ida"))
        .count();
    assert_eq!(
        tries, 1,
        "the refused app was tried again during its pause (8 intervals, viewers on 3 nodes)"
    );

    set_secret(2, CLIENT_SECRET).await.assert_status(200);
    every_node_shows(&cluster, user, "Ida", Duration::from_secs(5)).await;
}

/// `count` POSTs of `body` to `path`, spread round-robin over the nodes and sent at the same
/// instant (each on its own connection, opened beforehand, released by one barrier): their
/// statuses.
async fn post_at_once(cluster: &TestCluster, count: usize, path: &str, body: Value) -> Vec<u16> {
    let mut requests = Vec::with_capacity(count);
    for i in 0..count {
        let node = &cluster.nodes[i % cluster.nodes.len()];
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("HTTP client");
        receive(client.get(node.url("/health")))
            .await
            .assert_status(200);
        requests.push(client.post(node.url(path)).json(&body));
    }
    let mut statuses = Vec::with_capacity(count);
    for reply in release_together(requests).await {
        if reply.status == 429 {
            assert!(reply.headers.contains_key("retry-after"));
        }
        statuses.push(reply.status.as_u16());
    }
    statuses
}

/// Wrong passwords sent at once over three nodes are throttled as on one node: of 15, exactly
/// `LOGIN_MAX_FAILURES_PER_IDENTIFIER` (5) are checked.
pub async fn login_failures_over_three_nodes_are_throttled_as_on_one(h: &Harness) {
    let cluster = TestCluster::start(h, "3", &[]).await;
    let user = cluster.register(0, "gil").await;
    let body = json!({"username_or_email": user.email, "password": "wrong-password-1"});
    let mut statuses = post_at_once(&cluster, 15, "/auth/login", body.clone()).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[401; 5].as_slice(), &[429; 10]].concat());
    // And afterwards, on every node.
    for node in 0..3 {
        cluster
            .send(node, http::Method::POST, "/auth/login", None, body.clone())
            .await
            .assert_status(429);
    }
}

/// Mail requests for one address sent at once over three nodes share one budget.
pub async fn mail_budgets_hold_across_nodes(h: &Harness) {
    let cluster = TestCluster::start(h, "3", &[("MAIL_MAX_PER_ADDRESS", "2")]).await;
    let user = cluster.register(0, "kim").await;
    let mut statuses =
        post_at_once(&cluster, 12, "/auth/forgot", json!({"email": user.email})).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[200; 2].as_slice(), &[429; 10]].concat());
}

/// A ban through one node closes the user's `/ws` on another within a second.
pub async fn a_ban_closes_websockets_on_every_node(h: &Harness) {
    let cluster = TestCluster::start(h, "3", &[]).await;
    let user = cluster.register(0, "hal").await;
    let admin = cluster.register(0, "ida").await;
    cluster
        .store
        .set_role(&admin.id, Role::Admin, chrono::Utc::now())
        .await
        .unwrap();
    let ws = format!(
        "{}/ws?token={}",
        cluster.nodes[2].base.replacen("http://", "ws://", 1),
        user.access_token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "now_playing");
    cluster
        .send(
            0,
            http::Method::POST,
            &format!("/modo/users/{}/ban", user.id),
            Some(&admin.access_token),
            json!({"reason": "testing the cluster"}),
        )
        .await
        .assert_status(200);
    let banned = Instant::now();

    let message = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let message = next_json(&mut socket).await;
            if message["type"] != "now_playing" {
                return message;
            }
        }
    })
    .await
    .expect("force_logout within 1 s");
    eprintln!(
        "force_logout reached another node's /ws {:?} after the ban",
        banned.elapsed()
    );
    assert_eq!(message, json!({"type": "force_logout", "reason": "banned"}));
    assert_eq!(close_code(&mut socket).await, 4401);
}

/// Redis dies and comes back: `/color` answers on every node throughout, `/health` says so,
/// and the nodes rejoin by themselves.
pub async fn redis_going_away_is_no_outage(h: &Harness) {
    let mut redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let users = [cluster.player("jon", "rt-jon", track("Jon")).await];
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(1)).await;
    redis.kill();
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(2)).await;
    for node in 0..3 {
        let health = cluster.get(node, "/health", None).await;
        health.assert_status(200);
        assert_eq!(health.body["redis"], "unavailable", "node {node}");
        assert_eq!(health.body["node_id"], format!("node-{node}"));
        assert_eq!(
            cluster.metric(node, "melodyhue_cluster_redis_up").await,
            0,
            "node {node}"
        );
    }
    assert!(redis.resume());
    let back = Instant::now() + Duration::from_secs(10);
    let viewers = view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(3));
    let rejoined = async {
        for node in 0..3 {
            loop {
                let health = cluster.get(node, "/health", None).await;
                if health.body["redis"] == "ok" {
                    break;
                }
                assert!(Instant::now() < back, "node {node} did not rejoin");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    tokio::join!(viewers, rejoined);
    // Back in the cluster: one node polls again.
    cluster.fake.reset_counters();
    let started = Instant::now();
    view_everywhere(&cluster, &users, started + Duration::from_secs(2)).await;
    let calls = cluster.fake.currently_playing_calls_for("rt-jon");
    let intervals = started.elapsed().as_secs_f64() / 0.5;
    assert!(
        (calls as f64) <= intervals.ceil() + 1.0,
        "{calls} calls in {intervals:.1} intervals after Redis came back"
    );
}

/// Redis restarts while nothing calls it (no viewers): each node's subscription notices at
/// once, and the node checks its other connection, broken too, before rejoining. The restart is
/// one outage on each node (counted, and logged, once), and no call after it meets the broken
/// connection (before, the first one did: a second outage, and a login counted locally).
pub async fn a_restart_of_redis_is_one_outage(h: &Harness) {
    let mut redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let users = [cluster.player("noa", "rt-noa", track("Noa")).await];
    redis
        .wait_for_subscriptions(3, &[], Duration::from_secs(3))
        .await;
    let outages = "melodyhue_cluster_redis_outages_total";
    for node in 0..3 {
        assert_eq!(cluster.metric(node, outages).await, 0, "node {node}");
    }
    redis.kill();
    assert!(redis.resume());
    redis
        .wait_for_subscriptions(3, &[], Duration::from_secs(5))
        .await;
    // Calls on the other connection: claims and shares, and a login on each node.
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(1)).await;
    for node in 0..3 {
        cluster
            .send(
                node,
                http::Method::POST,
                "/auth/login",
                None,
                json!({ "username_or_email": users[0].email, "password": "not-her-password" }),
            )
            .await
            .assert_status(401);
    }
    for node in 0..3 {
        assert_eq!(cluster.metric(node, outages).await, 1, "node {node}");
        assert_eq!(
            cluster.metric(node, "melodyhue_cluster_redis_up").await,
            1,
            "node {node}"
        );
    }
}

/// Redis restarts (it keeps nothing) after a user changed hands: the fencing counter starts
/// again above the tokens it gave, so the new holder's states rank above the ones the other
/// nodes showed, and a track change after the restart shows on every node. (Counted from 1
/// again, they ranked below and were ignored: the other nodes kept the old track.)
pub async fn a_track_change_after_a_restart_of_redis_shows_everywhere(h: &Harness) {
    let mut redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let users = [cluster.player("ros", "rt-ros", track("Ros 1")).await];
    let user = &users[0];
    let viewers = view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(20));
    let steps = async {
        every_node_shows(&cluster, user, "Ros 1", Duration::from_secs(3)).await;
        // The user changes hands: its fences climb past the first.
        cluster
            .lease_elsewhere(&user.id, Duration::from_millis(600))
            .await;
        cluster
            .fake
            .set_scenario("rt-ros", Scenario::Playing(track("Ros 2")));
        every_node_shows(&cluster, user, "Ros 2", Duration::from_secs(3)).await;
        redis.kill();
        assert!(redis.resume());
        // Back in the cluster (no node polling alone any more): one holder again.
        let patience = Instant::now() + Duration::from_secs(5);
        for node in 0..3 {
            while cluster.get(node, "/health", None).await.body["redis"] != "ok" {
                assert!(Instant::now() < patience, "node {node} did not rejoin");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while cluster.lease_holder(&user.id).await.is_none() {
            assert!(Instant::now() < patience, "nobody holds the lease again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster
            .fake
            .set_scenario("rt-ros", Scenario::Playing(track("Ros 3")));
        every_node_shows(&cluster, user, "Ros 3", Duration::from_secs(3)).await;
    };
    tokio::join!(viewers, steps);
}

/// Redis stops answering for 2 s (its process paused, as on a stalled machine): a slow Redis
/// is not a lost one, so no node polls alone meanwhile (each claim times out, and follows),
/// and the cluster goes on when Redis answers again.
pub async fn a_silent_redis_is_not_polled_around(h: &Harness) {
    let redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let users = [cluster.player("kim", "rt-kim", track("Kim 1")).await];
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(1)).await;
    let viewers = view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(3));
    let silence = async {
        redis.pause();
        let before = cluster.fake.currently_playing_calls_for("rt-kim");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = cluster.fake.currently_playing_calls_for("rt-kim") - before;
        redis.unpause();
        during
    };
    let ((), during) = tokio::join!(viewers, silence);
    eprintln!("{during} currently-playing calls while Redis was silent for 2 s");
    // One poll may have been decided just before the pause (by a claim, or under the lease the
    // holder's last share renewed).
    assert!(
        during <= 1,
        "{during} currently-playing calls while Redis was silent for 2 s (4 intervals)"
    );
    let deferred = cluster
        .metric_total("melodyhue_cluster_claims_deferred_total")
        .await;
    assert!(deferred >= 3, "{deferred} claims deferred");

    cluster
        .fake
        .set_scenario("rt-kim", Scenario::Playing(track("Kim 2")));
    every_node_shows(&cluster, &users[0], "Kim 2", Duration::from_secs(3)).await;
}

/// Redis stays silent for 9 s (its process paused): each node gives up its subscription, whose
/// pings go unanswered for 5 s (6 s at most after the pause began), and subscribes again once
/// Redis answers. A subscription kept
/// through the silence would leave the node relying on it for credentials changes with no sign
/// of what it missed (a connection that died without a reset looks the same).
pub async fn a_silent_subscription_is_replaced(h: &Harness) {
    let redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let users = [cluster.player("sid", "rt-sid", track("Sid")).await];
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(1)).await;
    let subscribed_before = redis.subscriber_ids();
    assert_eq!(subscribed_before.len(), 3, "one subscription per node");
    redis.pause();
    tokio::time::sleep(Duration::from_secs(9)).await;
    redis.unpause();
    redis
        .wait_for_subscriptions(3, &subscribed_before, Duration::from_secs(3))
        .await;
    every_node_shows(&cluster, &users[0], "Sid", Duration::from_secs(3)).await;
}

/// Redis refuses node 0's publication of a settings change (for 300 ms `PUBLISH` is denied by
/// ACL, as a publish fails when the link to Redis breaks): the publish is tried again, and
/// the other nodes, whose subscriptions never broke and whose copies rely on the pushes, show
/// the change.
pub async fn a_change_whose_publication_failed_reaches_every_node(h: &Harness) {
    let redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let user = cluster.register(0, "ned").await;
    view_on(
        &cluster,
        &[1, 2],
        std::slice::from_ref(&user),
        Instant::now() + Duration::from_secs(1),
    )
    .await;
    redis.allow_publish(false);
    cluster.set_fallback_color(0, &user, "#123456").await;
    let changed = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.allow_publish(true);
    for node in 1..3 {
        shows_color(
            &cluster,
            node,
            &user,
            "#123456",
            changed,
            Duration::from_secs(3),
        )
        .await;
    }
}

/// A credentials change no node heard of (written straight into the database: as a change
/// announced while the subscriptions were down) is read by every node once it is subscribed
/// again: not sooner, since a subscribed node relies on the pushes and reads a connection
/// again only every 10 to 15 minutes, and not later.
pub async fn a_change_missed_while_unsubscribed_is_read_after_it(h: &Harness) {
    let redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let users = [cluster.player("lea", "rt-lea", track("Lea 1")).await];
    let viewers = view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(5));
    let change = async {
        every_node_shows(&cluster, &users[0], "Lea 1", Duration::from_secs(2)).await;
        cluster
            .fake
            .set_scenario("rt-lea-2", Scenario::Playing(track("Lea 2")));
        cluster
            .store_refresh_token_unannounced(&users[0].id, "rt-lea-2")
            .await;
        // Three polling intervals on: unheard of, the change is not seen.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        every_node_shows(&cluster, &users[0], "Lea 1", Duration::ZERO).await;
        redis.kill_connections("pubsub");
        every_node_shows(&cluster, &users[0], "Lea 2", Duration::from_secs(2)).await;
    };
    tokio::join!(viewers, change);
}

/// An idle user's fallback color: a subscribed node keeps its copy fresh for 10 to 15 minutes
/// (a change written straight into the database is not seen after three polling intervals);
/// while Redis is away, for one interval. A copy read while Redis was away, before a change
/// made then, is not kept as fresh once the node is subscribed again: every copy is read
/// again then.
pub async fn copies_read_while_redis_was_away_are_read_again_after_it(h: &Harness) {
    let mut redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let idle = cluster.register(0, "ida").await;
    let path = format!("/color/{}", idle.id);
    let shown_everywhere = |hex: &'static str| {
        let (cluster, path) = (&cluster, path.as_str());
        async move {
            for node in 0..cluster.nodes.len() {
                let reply = cluster.get(node, path, None).await;
                if reply.body["color"]["hex"] != hex {
                    return false;
                }
            }
            true
        }
    };
    let write_color = |hex: &'static str| {
        let store = &cluster.store;
        let user_id = idle.id.as_str();
        async move {
            let patch = SettingsPatch {
                default_overlay_color: Some(hex.parse().unwrap()),
                ..SettingsPatch::default()
            };
            store.update_settings(user_id, &patch).await.unwrap();
        }
    };
    view_everywhere(
        &cluster,
        std::slice::from_ref(&idle),
        Instant::now() + Duration::from_secs(1),
    )
    .await;
    assert!(
        shown_everywhere("#25d865").await,
        "the default fallback color"
    );
    write_color("#123456").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        shown_everywhere("#25d865").await,
        "a color changed unannounced"
    );

    redis.kill();
    // Away from Redis, copies last one interval: each node reads the new color now...
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(shown_everywhere("#123456").await, "read without Redis");
    // ...and misses the next change, made before Redis is back.
    write_color("#abcdef").await;
    assert!(redis.resume());
    // Nothing is asked of the nodes until each is subscribed again, so that the copies they
    // hold are the ones read before the change.
    redis
        .wait_for_subscriptions(3, &[], Duration::from_secs(3))
        .await;
    // Long enough for each node to have heard its subscription confirmed (its copies then
    // judged by the 10 to 15 minute freshness, under which the copy read before the change
    // would still pass), short of any re-read of its own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        shown_everywhere("#abcdef").await,
        "a copy read before the change is still shown"
    );
}

/// A node takes a user over from another holder (here: a lease the test gives away and that
/// runs out), which rotated the refresh token meanwhile: the node reads the connection again
/// and never sends the dead refresh token of its older copy.
pub async fn a_node_taking_a_user_over_reads_the_connection_again(h: &Harness) {
    let cluster = TestCluster::start(h, "0.5", &[]).await;
    let users = [cluster.player("lou", "rt-lou", track("Lou 1")).await];
    // Viewers on node 0 only: it alone polls the user, and keeps a copy of the connection.
    let viewers = view_on(
        &cluster,
        &[0],
        &users,
        Instant::now() + Duration::from_secs(6),
    );
    let takeover = async {
        wait_for_holder(&cluster, &users[0].id, "node-0", Duration::from_secs(2)).await;
        cluster
            .lease_elsewhere(&users[0].id, Duration::from_millis(2500))
            .await;
        // Node 0 polls at most once more under the lease it believes it holds (decided up to
        // 0.625 s from now); its share is refused, and it claims again and follows.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // What the other holder did: Spotify rotated the refresh token (the old one is dead,
        // and so is the access token node 0 got with it), and the holder stored the new one.
        cluster
            .fake
            .set_scenario("rt-lou-2", Scenario::Playing(track("Lou 2")));
        cluster.fake.revoke_refresh_token("rt-lou");
        cluster.fake.expire_access_tokens("rt-lou");
        cluster
            .store_refresh_token_unannounced(&users[0].id, "rt-lou-2")
            .await;
        cluster.fake.reset_counters();
        // Node 0 only: a viewer on another node could take the user over instead.
        nodes_show(&cluster, &[0], &users[0], "Lou 2", Duration::from_secs(4)).await;
        assert_eq!(
            cluster.lease_holder(&users[0].id).await.as_deref(),
            Some("node-0")
        );
        assert_eq!(refresh_tokens_sent(&cluster.fake), ["rt-lou-2"]);
    };
    tokio::join!(viewers, takeover);
}

/// A user whose app is refused is paused for 30 s, on every node: a node whose viewers arrive
/// late in the pause (here after more than the shared state's 4 intervals) shows the state the
/// holder shared at once, instead of waiting a second for a first answer nobody will poll.
pub async fn a_viewer_arriving_during_a_pause_is_answered_at_once(h: &Harness) {
    let cluster = TestCluster::start(h, "0.5", &[]).await;
    let users = [cluster.player("max", "rt-max", track("Max")).await];
    cluster
        .send(
            0,
            http::Method::PATCH,
            "/spotify/credentials",
            Some(&users[0].access_token),
            json!({ "client_secret": "not-the-app-secret" }),
        )
        .await
        .assert_status(200);
    let before = cluster.fake.token_requests().len();
    view_on(
        &cluster,
        &[0],
        &users,
        Instant::now() + Duration::from_secs(1),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = "melodyhue_late_first_answers_total";
    let late_before = cluster.metric(1, late).await;
    view_on(
        &cluster,
        &[1],
        &users,
        Instant::now() + Duration::from_millis(300),
    )
    .await;
    assert_eq!(
        cluster.metric(1, late).await,
        late_before,
        "node 1 had nothing to show its first viewer"
    );
    assert_eq!(
        cluster.fake.token_requests().len() - before,
        1,
        "the refused app was tried again during its pause"
    );
}

/// A holder polls under the lease its last share renewed, without claiming first: one Redis
/// script per poll (the share), not two, on the path that keeps Redis busiest.
pub async fn a_holder_runs_one_script_per_poll(h: &Harness) {
    let redis = OwnRedis::start();
    let cluster = TestCluster::start_on(h, &redis.url(), "0.5", &[]).await;
    let users = [cluster.player("ivy", "rt-ivy", track("Ivy")).await];
    // Viewers on node 0 only: it polls, and no other node claims.
    view_on(
        &cluster,
        &[0],
        &users,
        Instant::now() + Duration::from_secs(1),
    )
    .await;
    let before = cluster.fake.currently_playing_calls_for("rt-ivy");
    redis.take_command_counts();
    view_on(
        &cluster,
        &[0],
        &users,
        Instant::now() + Duration::from_secs(3),
    )
    .await;
    let commands = redis.take_command_counts();
    let polls = cluster.fake.currently_playing_calls_for("rt-ivy") - before;
    let scripts: usize = ["evalsha", "eval"]
        .iter()
        .filter_map(|command| commands.get(*command))
        .map(|&calls| usize::try_from(calls).expect("a count"))
        .sum();
    eprintln!("{scripts} scripts for {polls} polls");
    assert!(polls >= 4, "{polls} polls in 3 s at a 0.5 s interval");
    // The counts are read a moment apart: a poll's share may fall on either side.
    // Room for a claim or two on a loaded machine (a late wake-up, a renewal mid-poll); a
    // claim before each poll makes it two per poll.
    assert!(
        2 * scripts < 3 * polls,
        "{scripts} Redis scripts for {polls} polls of one holder"
    );
}

/// A poll that outlasts its lease (Spotify answers after 4 s; a lease runs 3 s at a 2 s
/// interval) keeps it: the holder renews it for as long as the poll runs, so no node whose
/// viewers ask meanwhile takes the user over (and polls it too).
pub async fn a_poll_outlasting_its_lease_keeps_it(h: &Harness) {
    let cluster = TestCluster::start(h, "2", &[]).await;
    let users = [cluster.player("una", "rt-una", track("Una")).await];
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(3)).await;
    let taken = "melodyhue_cluster_leases_taken_total";
    let taken_before = cluster.metric_total(taken).await;
    assert_eq!(taken_before, 1, "one node took the user");
    cluster.fake.set_scenario(
        "rt-una",
        Scenario::slow(Duration::from_secs(4), Scenario::Playing(track("Una"))),
    );
    let polls_before = cluster.fake.currently_playing_calls_for("rt-una");
    view_everywhere(&cluster, &users, Instant::now() + Duration::from_secs(14)).await;
    let polls = cluster.fake.currently_playing_calls_for("rt-una") - polls_before;
    let taken_after = cluster.metric_total(taken).await;
    eprintln!("{polls} slow polls in 14 s");
    assert!(polls >= 2, "{polls} polls in 14 s of 4 s answers");
    assert_eq!(
        taken_after, taken_before,
        "the user changed hands during polls that outlasted the lease"
    );
}

/// The cluster cases for `harness` (its backend is ignored: a cluster needs PostgreSQL),
/// named `cluster::case`.
pub fn trials(harness: Harness) -> Vec<Trial> {
    let harness = Harness {
        backend: super::Backend::Postgres,
        ..harness
    };
    let with = |extra: Need| {
        let mut needs = vec![extra];
        needs.extend(harness.backend.needs());
        needs
    };
    macro_rules! cases {
        ($need:expr; $($case:ident),* $(,)?) => {
            vec![$(
                trial(concat!("cluster::", stringify!($case)), with($need), move || async move {
                    $case(&harness).await
                }),
            )*]
        };
    }
    let mut trials = cases!(
        Need::var(REDIS_VAR);
        each_user_is_polled_once_per_interval_cluster_wide,
        a_track_change_reaches_event_streams_on_every_node,
        a_rate_limit_holds_for_every_node,
        a_refused_spotify_grant_holds_for_every_node,
        a_refused_spotify_app_holds_for_every_node,
        a_settings_change_reaches_every_node_within_100_ms,
        a_dead_nodes_users_are_polled_again_within_two_intervals,
        a_node_taking_a_user_over_reads_the_connection_again,
        a_viewer_arriving_during_a_pause_is_answered_at_once,
        login_failures_over_three_nodes_are_throttled_as_on_one,
        mail_budgets_hold_across_nodes,
        a_ban_closes_websockets_on_every_node,
    );
    trials.extend(cases!(
        OwnRedis::need();
        redis_going_away_is_no_outage,
        a_restart_of_redis_is_one_outage,
        a_track_change_after_a_restart_of_redis_shows_everywhere,
        a_silent_redis_is_not_polled_around,
        a_change_missed_while_unsubscribed_is_read_after_it,
        copies_read_while_redis_was_away_are_read_again_after_it,
        a_silent_subscription_is_replaced,
        a_change_whose_publication_failed_reaches_every_node,
        a_holder_runs_one_script_per_poll,
        a_poll_outlasting_its_lease_keeps_it,
    ));
    trials
}

/// Defines the `main` of a test target (`harness = false`) that runs the cluster cases
/// ([`trials`]) on a frontend's `serve` function, as [`http_suite!`](crate::http_suite) does.
#[macro_export]
macro_rules! cluster_suite {
    ($serve:expr) => {
        fn main() -> std::process::ExitCode {
            $crate::run($crate::suite::cluster::trials($crate::suite::Harness {
                serve: $serve,
                backend: $crate::suite::Backend::Postgres,
            }))
        }
    };
}
