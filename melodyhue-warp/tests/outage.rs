//! The database goes away and comes back: MelodyHue answers 503 at once meanwhile (the store's
//! circuit is open), keeps answering what overlays poll from their last known values, marked
//! stale, and recovers without a restart. On both frontends, over PostgreSQL and MariaDB. Each
//! test runs a database server of its own (on a free port and a temporary data directory),
//! never the machine's shared servers; ignored when the server binaries are not installed,
//! failed under `CI=true`.

#![allow(clippy::expect_used)]

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use melodyhue_core::App;
use melodyhue_core::api::ws::CLOSE_TRY_AGAIN_LATER;
use melodyhue_testkit::cluster::{MariaDbServer, PostgresCluster, Scratch};
use melodyhue_testkit::suite::{Backend, Harness, Reply, Serve, ServeFuture, TestServer};
use melodyhue_testkit::{run, trial};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn warp(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

fn hyper(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_hyper::serve(
        app,
        listener,
        std::future::pending(),
    ))
}

/// Every request must be answered within this time, database or not (the pool gives up on a
/// connection after a few seconds).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

async fn within_bound(request: impl Future<Output = Reply>) -> Reply {
    tokio::time::timeout(ANSWER_WITHIN, request)
        .await
        .expect("the server answers within the bound, database or not")
}

fn assert_unavailable(reply: &Reply) {
    reply.assert_status(503);
    assert_eq!(reply.body, json!({"detail": "Service unavailable"}));
}

/// The `Cache-Status` of a reply served from a stale copy, if it is one.
fn stale(reply: &Reply) -> bool {
    reply
        .headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("detail=stale-if-error"))
}

/// Polls `path` until it answers `status` (the circuit closes within a probe interval of the
/// database answering again).
async fn eventually(server: &TestServer, path: &str, status: u16) -> Reply {
    within_bound(async {
        loop {
            let reply = server.get(path, None).await;
            if reply.status == status {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

fn main() -> ExitCode {
    let postgres = || vec![PostgresCluster::need()];
    let mariadb = || vec![MariaDbServer::need()];
    run(vec![
        trial("postgres_outage_on_warp", postgres(), || {
            outage(warp, Scratch::postgres)
        }),
        trial("postgres_outage_on_hyper", postgres(), || {
            outage(hyper, Scratch::postgres)
        }),
        trial("mariadb_outage_on_warp", mariadb(), || {
            outage(warp, Scratch::mariadb)
        }),
        trial("mariadb_outage_on_hyper", mariadb(), || {
            outage(hyper, Scratch::mariadb)
        }),
    ])
}

async fn outage(serve: Serve, scratch: fn() -> Scratch) {
    let cluster = scratch();
    let backend = match cluster {
        Scratch::Postgres(_) => Backend::Postgres,
        Scratch::MariaDb(_) => Backend::MySql,
    };
    let harness = Harness { serve, backend };
    // Copies are fresh for half a second, so the ones below are stale once the database stops.
    let server = TestServer::start_with(
        &harness,
        &[
            ("DATABASE_URL", &cluster.url()),
            ("SPOTIFY_POLLING_INTERVAL", "0.5"),
        ],
    )
    .await;
    let user = server.register("outage").await;
    let created = server
        .post(
            "/overlays",
            Some(&user.access_token),
            json!({"name": "Main"}),
        )
        .await;
    created.assert_status(200);
    let overlay = format!("/overlay/{}", created.body["id"].as_str().expect("id"));
    let color = format!("/color/{}", user.id);
    let infos = format!("/infos/{}", user.id);
    // What viewers saw before the outage.
    let seen_overlay = server.get(&overlay, None).await;
    let seen_color = server.get(&color, None).await;
    seen_overlay.assert_status(200);
    seen_color.assert_status(200);
    server.get(&infos, None).await.assert_status(200);
    assert!(!stale(&seen_color));

    cluster.stop();

    let health = within_bound(server.get("/health", None)).await;
    health.assert_status(503);
    assert_eq!(health.body["status"], "unavailable");
    assert_unavailable(&within_bound(server.get("/users/me", Some(&user.access_token))).await);
    assert_unavailable(&within_bound(server.login(&user.email, &user.password)).await);
    assert_unavailable(
        &within_bound(server.post(
            "/auth/register",
            None,
            json!({"username": "later", "email": "later@example.com", "password": "long-enough-1"}),
        ))
        .await,
    );
    // Overlays keep showing what they showed, marked stale.
    for (path, seen) in [(&overlay, &seen_overlay), (&color, &seen_color)] {
        let reply = within_bound(server.get(path, None)).await;
        reply.assert_status(200);
        assert!(stale(&reply), "{path}: {:?}", reply.headers);
        if path == &overlay {
            assert_eq!(reply.body, seen.body);
        } else {
            assert_eq!(reply.body["color"], seen.body["color"]);
        }
    }
    let infos_reply = within_bound(server.get(&infos, None)).await;
    infos_reply.assert_status(200);
    assert!(stale(&infos_reply));
    // Nothing was kept of a user nobody looked at.
    assert_unavailable(&within_bound(server.get("/color/never-seen", None)).await);
    // A socket is asked to come back later, not signed out.
    let ws = format!(
        "{}/ws?token={}",
        server.base.replacen("http://", "ws://", 1),
        user.access_token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws)
        .await
        .expect("upgrade");
    match within_bound_ws(socket.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), CLOSE_TRY_AGAIN_LATER);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }

    cluster.start();

    eventually(&server, "/health", 200).await;
    let fresh = within_bound(server.get(&color, None)).await;
    fresh.assert_status(200);
    assert!(!stale(&fresh), "fresh again once the database answers");
    within_bound(server.get(&overlay, None))
        .await
        .assert_status(200);
    within_bound(server.login(&user.email, &user.password))
        .await
        .assert_status(200);
    within_bound(server.get("/users/me", Some(&user.access_token)))
        .await
        .assert_status(200);
}

async fn within_bound_ws<T>(next: impl Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER_WITHIN, next)
        .await
        .expect("the socket answers within the bound")
}
