//! The admission of password hashing: per client, a bounded queue, one hash per failed login.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::json;

use super::computations;
use crate::suite::{Harness, TEST_PASSWORD, TestServer, receive};
use melodyhue_core::model::new_id;

pub async fn every_hashing_route_is_admitted_per_client(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[("PASSWORD_HASH_PER_CLIENT", "1"), ("EMAIL_DEBUG", "true")],
    )
    .await;
    let user = server.register("admitted").await;
    let reset = server
        .post("/auth/forgot", None, json!({"email": user.email}))
        .await;
    let reset_token = reset.body["token"].as_str().unwrap().to_owned();
    // Another request of this client is hashing: every route that hashes refuses at once.
    let hashing = server
        .app
        .password_hasher()
        .admit(Some("127.0.0.1".parse().unwrap()))
        .unwrap();
    let computed = computations(&server);
    let refused = [
        server
            .post(
                "/auth/register",
                None,
                json!({"username": "second", "email": "second@example.com", "password": TEST_PASSWORD}),
            )
            .await,
        server.login("admitted", TEST_PASSWORD).await,
        server
            .post(
                "/users/me/password",
                Some(&user.access_token),
                json!({"old_password": TEST_PASSWORD, "new_password": "a-new-password"}),
            )
            .await,
        server
            .post(
                "/auth/reset",
                None,
                json!({"token": reset_token, "new_password": "a-new-password"}),
            )
            .await,
    ];
    for reply in &refused {
        reply.assert_status(429);
        assert_eq!(
            reply.detail(),
            "Too many concurrent requests, try again shortly"
        );
        assert_eq!(reply.headers["retry-after"], "1");
    }
    assert_eq!(computations(&server), computed);
    // Nothing was spent or changed by the refusals.
    drop(hashing);
    server
        .login("admitted", TEST_PASSWORD)
        .await
        .assert_status(200);
    server
        .post(
            "/auth/reset",
            None,
            json!({"token": reset_token, "new_password": "a-new-password"}),
        )
        .await
        .assert_status(200);
}

pub async fn a_full_hash_queue_answers_503_and_light_clients_go_first(h: &Harness) {
    use futures_util::FutureExt as _;
    let server = TestServer::start_with(
        h,
        &[
            ("TRUST_PROXY", "true"),
            ("PASSWORD_HASH_WORKERS", "1"),
            ("PASSWORD_HASH_QUEUE", "1"),
        ],
    )
    .await;
    server.register("queued").await;
    let passwords = &server.app.password_hasher();
    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
    // One request hashes (it holds the only worker), one waits: the queue is full.
    let holder = passwords.admit(ip("192.0.2.1")).unwrap();
    let running = holder.hold_worker().await.unwrap();
    let waiter = passwords.admit(ip("192.0.2.2")).unwrap();
    let mut waiting = Box::pin(waiter.hold_worker());
    assert!((&mut waiting).now_or_never().is_none());
    // A client with no better claim than the waiter is refused at once.
    let busy = server
        .send(
            server
                .http
                .post(server.url("/auth/login"))
                .header("x-forwarded-for", "192.0.2.3")
                .json(&json!({"username_or_email": "queued", "password": TEST_PASSWORD})),
        )
        .await;
    busy.assert_status(503);
    assert_eq!(busy.detail(), "Server busy, try again shortly");
    assert_eq!(busy.headers["retry-after"], "1");
    drop(waiting);
    // A network that hashed a lot waits; a client that never hashed takes its place...
    for _ in 0..5 {
        drop(passwords.admit(ip("198.51.100.1")).unwrap());
    }
    let heavy = passwords.admit(ip("198.51.100.1")).unwrap();
    let mut heavy_waiting = Box::pin(heavy.hold_worker());
    assert!((&mut heavy_waiting).now_or_never().is_none());
    let light = tokio::spawn(receive(
        server
            .http
            .post(server.url("/auth/login"))
            .header("x-forwarded-for", "203.0.113.10")
            .json(&json!({"username_or_email": "queued", "password": TEST_PASSWORD})),
    ));
    let evicted = tokio::time::timeout(StdDuration::from_secs(10), heavy_waiting)
        .await
        .expect("the heavy waiter is told at once");
    assert!(evicted.is_err());
    // ... and hashes as soon as the worker is free.
    drop(running);
    light.await.unwrap().assert_status(200);
}

pub async fn shared_usernames_cost_one_hash_per_failed_login(h: &Harness) {
    let server = TestServer::start(h).await;
    let mut ids = Vec::new();
    for (i, password) in ["first-password", "second-password", "third-password"]
        .iter()
        .enumerate()
    {
        let reply = server
            .post(
                "/auth/register",
                None,
                json!({"username": "crowd", "email": format!("crowd{i}@example.com"), "password": password}),
            )
            .await;
        reply.assert_status(200);
        ids.push(reply.body["user_id"].as_str().unwrap().to_owned());
    }
    server.register("alone").await;
    let failed = |identifier: &'static str| {
        let server = &server;
        async move {
            let before = computations(server);
            server
                .login(identifier, "wrong-password")
                .await
                .assert_status(401);
            computations(server) - before
        }
    };
    // Three accounts, one account, no account: one computation each.
    assert_eq!(failed("crowd").await, 1);
    assert_eq!(failed("alone").await, 1);
    // (The decoy checked for unknown identifiers is made on first use.)
    failed("nobody").await;
    assert_eq!(failed("nobody").await, 1);
    for (id, password) in ids
        .iter()
        .zip(["first-password", "second-password", "third-password"])
    {
        let reply = server.login("crowd", password).await;
        reply.assert_status(200);
        assert_eq!(reply.body["user_id"], id.as_str());
    }
    // Accounts that do not share their username's salt yet (the earlier service's, or renamed
    // ones) cost one computation per salt until each logs in once.
    let store = server.app.store();
    let slot = server.app.password_hasher().admit(None).unwrap();
    for (i, password) in ["one", "two", "three"].iter().enumerate() {
        let now = server.app.now();
        let legacy = melodyhue_core::model::User {
            id: new_id(),
            username: "legacy".into(),
            email: format!("legacy{i}@example.com"),
            password_hash: slot.hash(&format!("legacy-{password}")).await.unwrap(),
            role: melodyhue_core::model::Role::User,
            created_at: now + Duration::seconds(i as i64),
            updated_at: now,
            last_login_at: None,
        };
        store.insert_user(&legacy).await.unwrap();
    }
    drop(slot);
    assert_eq!(failed("legacy").await, 3);
    for password in ["one", "two", "three"] {
        server
            .login("legacy", &format!("legacy-{password}"))
            .await
            .assert_status(200);
    }
    assert_eq!(failed("legacy").await, 1);
    for password in ["one", "two", "three"] {
        server
            .login("legacy", &format!("legacy-{password}"))
            .await
            .assert_status(200);
    }
}
