//! `/auth`: registration, login, refresh rotation and reuse detection, logout, tokens.

use chrono::Duration;
use jsonwebtoken::Algorithm;
use serde_json::json;

use super::{Harness, TEST_JWT_SECRET, TEST_PASSWORD, TestServer, sign_claims};
use melodyhue_core::api::{ACCESS_COOKIE, REFRESH_COOKIE};

pub async fn register_returns_tokens_and_cookies(h: &Harness) {
    let server = TestServer::start(h).await;
    let reply = server
        .post(
            "/auth/register",
            None,
            json!({"username": "alice", "email": "alice@example.com", "password": TEST_PASSWORD}),
        )
        .await;
    reply.assert_status(200);
    let body = &reply.body;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["requires_2fa"], false);
    assert_eq!(body["ticket"], json!(null));
    assert_eq!(body["role"], "user");
    assert_eq!(body["user_id"].as_str().unwrap().len(), 22);
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let access_cookie = reply.set_cookie(ACCESS_COOKIE).expect("access cookie");
    let refresh_cookie = reply.set_cookie(REFRESH_COOKIE).expect("refresh cookie");
    assert!(access_cookie.starts_with(&format!("{ACCESS_COOKIE}={access}")));
    assert!(refresh_cookie.starts_with(&format!("{REFRESH_COOKIE}={refresh}")));
    for cookie in [&access_cookie, &refresh_cookie] {
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(!cookie.contains("Secure"), "{cookie}");
    }
    assert!(access_cookie.contains("Max-Age=900"));
    assert!(refresh_cookie.contains("Max-Age=2592000"));
    let me = server.get("/users/me", Some(access)).await;
    me.assert_status(200);
    assert!(
        me.body["last_login_at"].is_string(),
        "last_login_at is set on registration"
    );
}

pub async fn register_validates_every_field(h: &Harness) {
    let server = TestServer::start(h).await;
    let cases = [
        (
            json!({"username": "ab", "email": "a@example.com", "password": TEST_PASSWORD}),
            "username",
            "string_too_short",
        ),
        (
            json!({"username": "a".repeat(81), "email": "a@example.com", "password": TEST_PASSWORD}),
            "username",
            "string_too_long",
        ),
        (
            json!({"username": "abc", "email": "not-an-email", "password": TEST_PASSWORD}),
            "email",
            "value_error",
        ),
        (
            json!({"username": "abc", "email": "a@example.com", "password": "short"}),
            "password",
            "string_too_short",
        ),
        (
            json!({"username": "abc", "email": "a@example.com", "password": "p".repeat(129)}),
            "password",
            "string_too_long",
        ),
        (
            json!({"username": 12, "email": "a@example.com", "password": TEST_PASSWORD}),
            "username",
            "string_type",
        ),
        (
            json!({"email": "a@example.com", "password": TEST_PASSWORD}),
            "username",
            "missing",
        ),
    ];
    for (body, field, kind) in cases {
        let reply = server.post("/auth/register", None, body.clone()).await;
        reply.assert_status(422);
        let errors = reply.body["detail"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{body} -> {}", reply.body);
        assert_eq!(errors[0]["loc"], json!(["body", field]), "{body}");
        assert_eq!(errors[0]["type"], kind, "{body}");
        assert!(errors[0]["msg"].is_string());
    }
    // Every bad field is reported at once.
    let reply = server
        .post(
            "/auth/register",
            None,
            json!({"username": "x", "email": 3, "password": []}),
        )
        .await;
    reply.assert_status(422);
    assert_eq!(reply.body["detail"].as_array().unwrap().len(), 3);
    // Nothing was created.
    assert_eq!(server.app.store().stats().await.unwrap().users_count, 0);
}

pub async fn register_refuses_taken_email_case_insensitively(h: &Harness) {
    let server = TestServer::start(h).await;
    server.register("first").await;
    let reply = server
        .post(
            "/auth/register",
            None,
            json!({"username": "second", "email": "FIRST@Example.COM", "password": TEST_PASSWORD}),
        )
        .await;
    reply.assert_status(409);
    assert_eq!(reply.detail(), "Email already taken");
}

pub async fn concurrent_registrations_of_one_email_give_one_account(h: &Harness) {
    // Every registration may hash at once: the race is the database's to settle.
    let server = TestServer::start_with(h, &[("PASSWORD_HASH_PER_CLIENT", "16")]).await;
    let attempts = (0..8).map(|i| {
        server.post(
            "/auth/register",
            None,
            json!({"username": format!("racer{i}"), "email": if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" }, "password": TEST_PASSWORD}),
        )
    });
    let replies = futures_util::future::join_all(attempts).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let conflicts = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        (ok, conflicts),
        (1, 7),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(server.app.store().stats().await.unwrap().users_count, 1);
}

pub async fn login_by_email_or_username(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("carol").await;
    for identifier in ["carol", "carol@example.com", "CAROL@EXAMPLE.com"] {
        let reply = server.login(identifier, TEST_PASSWORD).await;
        reply.assert_status(200);
        assert_eq!(reply.body["user_id"], user.id.as_str(), "{identifier}");
        assert_eq!(reply.body["requires_2fa"], false);
        assert!(reply.set_cookie(ACCESS_COOKIE).is_some());
        assert!(reply.set_cookie(REFRESH_COOKIE).is_some());
    }
    // Usernames are case-sensitive.
    server
        .login("CAROL", TEST_PASSWORD)
        .await
        .assert_status(401);
}

pub async fn login_with_shared_username_picks_the_matching_password(h: &Harness) {
    let server = TestServer::start(h).await;
    let first = server.register("twin").await;
    let second = server
        .post(
            "/auth/register",
            None,
            json!({"username": "twin", "email": "twin2@example.com", "password": "another-password"}),
        )
        .await;
    second.assert_status(200);
    let reply = server.login("twin", TEST_PASSWORD).await;
    reply.assert_status(200);
    assert_eq!(reply.body["user_id"], first.id.as_str());
    let reply = server.login("twin", "another-password").await;
    reply.assert_status(200);
    assert_eq!(reply.body["user_id"], second.body["user_id"]);
}

pub async fn login_refuses_wrong_credentials(h: &Harness) {
    let server = TestServer::start(h).await;
    server.register("dave").await;
    for (identifier, password) in [
        ("dave", "wrong-password"),
        ("nobody", TEST_PASSWORD),
        ("nobody@example.com", TEST_PASSWORD),
    ] {
        let reply = server.login(identifier, password).await;
        reply.assert_status(401);
        assert_eq!(reply.detail(), "Invalid credentials");
        assert!(reply.set_cookie(ACCESS_COOKIE).is_none());
    }
}

pub async fn login_validates_its_body(h: &Harness) {
    let server = TestServer::start(h).await;
    let reply = server
        .post("/auth/login", None, json!({"username_or_email": "x"}))
        .await;
    reply.assert_status(422);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "password"]));
    let reply = server
        .post(
            "/auth/login",
            None,
            json!({"username_or_email": ["x"], "password": 1}),
        )
        .await;
    reply.assert_status(422);
    assert_eq!(reply.body["detail"].as_array().unwrap().len(), 2);
    let reply = server
        .post(
            "/auth/login",
            None,
            json!({"username_or_email": "x", "password": "p".repeat(2000)}),
        )
        .await;
    reply.assert_status(422);
}

pub async fn two_logins_in_one_second_get_different_tokens(h: &Harness) {
    let server = TestServer::start(h).await;
    server.register("erin").await;
    let (a, b) = tokio::join!(
        server.login("erin", TEST_PASSWORD),
        server.login("erin", TEST_PASSWORD)
    );
    a.assert_status(200);
    b.assert_status(200);
    assert_ne!(a.body["refresh_token"], b.body["refresh_token"]);
    // Both sessions work independently.
    for reply in [&a, &b] {
        let token = reply.body["refresh_token"].as_str().unwrap();
        server
            .post("/auth/refresh", None, json!({"refresh_token": token}))
            .await
            .assert_status(200);
    }
}

pub async fn refresh_rotates_the_session(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("frank").await;
    let reply = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["token_type"], "bearer");
    let new_access = reply.body["access_token"].as_str().unwrap();
    let new_refresh = reply.body["refresh_token"].as_str().unwrap();
    assert_ne!(new_refresh, user.refresh_token);
    assert!(
        reply
            .set_cookie(ACCESS_COOKIE)
            .unwrap()
            .contains(new_access)
    );
    assert!(
        reply
            .set_cookie(REFRESH_COOKIE)
            .unwrap()
            .contains(new_refresh)
    );
    server
        .get("/users/me", Some(new_access))
        .await
        .assert_status(200);
    // The new refresh token works once more.
    server
        .post("/auth/refresh", None, json!({"refresh_token": new_refresh}))
        .await
        .assert_status(200);
}

pub async fn refresh_reads_the_cookie(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("gina").await;
    let reply = server
        .send(
            server
                .http
                .post(server.url("/auth/refresh"))
                .header("cookie", format!("{REFRESH_COOKIE}={}", user.refresh_token)),
        )
        .await;
    reply.assert_status(200);
    assert!(reply.body["access_token"].is_string());
}

pub async fn refresh_reuse_revokes_the_family(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("hank").await;
    // Another login of the same user is another family and must survive.
    let other = server.login("hank", TEST_PASSWORD).await;
    let rotated = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    rotated.assert_status(200);
    let successor = rotated.body["refresh_token"].as_str().unwrap();
    // Presenting the already-rotated token again after the reuse interval is reuse.
    server.clock.advance(Duration::seconds(11));
    let reuse = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    reuse.assert_status(401);
    assert_eq!(reuse.detail(), "session_revoked");
    // ... which revoked its whole family, including the successor.
    let successor_reply = server
        .post("/auth/refresh", None, json!({"refresh_token": successor}))
        .await;
    successor_reply.assert_status(401);
    assert_eq!(successor_reply.detail(), "session_revoked");
    server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": other.body["refresh_token"]}),
        )
        .await
        .assert_status(200);
}

pub async fn refresh_explains_bad_tokens(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("ivan").await;
    let missing = server
        .send(server.http.post(server.url("/auth/refresh")))
        .await;
    missing.assert_status(401);
    assert_eq!(missing.detail(), "missing_refresh_token");
    let empty = server
        .post("/auth/refresh", None, json!({"refresh_token": ""}))
        .await;
    assert_eq!(empty.detail(), "missing_refresh_token");
    let garbage = server
        .post("/auth/refresh", None, json!({"refresh_token": "garbage"}))
        .await;
    garbage.assert_status(401);
    assert_eq!(garbage.detail(), "invalid_token");
    let access = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.access_token}),
        )
        .await;
    access.assert_status(401);
    assert_eq!(access.detail(), "not_refresh_token");
    let other_key = sign_claims(
        &json!({"sub": user.id, "iat": 0, "exp": 4_000_000_000_i64, "type": "refresh", "jti": "x", "fam": "y"}),
        "another-secret",
        Algorithm::HS256,
    );
    let forged = server
        .post("/auth/refresh", None, json!({"refresh_token": other_key}))
        .await;
    assert_eq!(forged.detail(), "invalid_token");
    // A well-signed token without a session (never issued) is refused too.
    let unknown = sign_claims(
        &json!({"sub": user.id, "iat": 0, "exp": 4_000_000_000_i64, "type": "refresh", "jti": "x", "fam": "never"}),
        TEST_JWT_SECRET,
        Algorithm::HS256,
    );
    let reply = server
        .post("/auth/refresh", None, json!({"refresh_token": unknown}))
        .await;
    reply.assert_status(401);
    assert_eq!(reply.detail(), "session_revoked");
    let wrong_type = server
        .post("/auth/refresh", None, json!({"refresh_token": 42}))
        .await;
    wrong_type.assert_status(422);
}

pub async fn refresh_with_an_expired_token_is_refused(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("judy").await;
    server.clock.advance(Duration::days(31));
    let reply = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    reply.assert_status(401);
    assert_eq!(reply.detail(), "token_expired");
}

pub async fn logout_clears_cookies_and_ends_the_session(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("kate").await;
    let reply = server
        .send(
            server
                .http
                .post(server.url("/auth/logout"))
                .header("cookie", format!("{REFRESH_COOKIE}={}", user.refresh_token)),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"status": "ok"}));
    for name in [ACCESS_COOKIE, REFRESH_COOKIE] {
        let cookie = reply.set_cookie(name).expect("cleared cookie");
        assert!(cookie.contains("Max-Age=0"), "{cookie}");
    }
    let refresh = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    refresh.assert_status(401);
    assert_eq!(refresh.detail(), "session_revoked");
}

pub async fn logout_never_fails(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("leo").await;
    server
        .send(server.http.post(server.url("/auth/logout")))
        .await
        .assert_status(200);
    server
        .send(
            server
                .http
                .post(server.url("/auth/logout"))
                .body("{not json"),
        )
        .await
        .assert_status(200);
    server
        .post("/auth/logout", None, json!({"refresh_token": "garbage"}))
        .await
        .assert_status(200);
    // An expired token still ends its session.
    server.clock.advance(Duration::days(40));
    server
        .post(
            "/auth/logout",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await
        .assert_status(200);
    let session = server
        .app
        .store()
        .session_by_token_hash(&melodyhue_core::auth::token_hash(&user.refresh_token))
        .await
        .unwrap();
    assert!(session.is_none());
}

pub async fn access_token_from_cookie_or_bearer(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("mia").await;
    server
        .get("/users/me", Some(&user.access_token))
        .await
        .assert_status(200);
    let by_cookie = server
        .send(server.http.get(server.url("/users/me")).header(
            "cookie",
            format!("other=1; {ACCESS_COOKIE}={}", user.access_token),
        ))
        .await;
    by_cookie.assert_status(200);
    assert_eq!(by_cookie.body["id"], user.id.as_str());
    let none = server.get("/users/me", None).await;
    none.assert_status(401);
    assert_eq!(none.detail(), "Invalid token");
}

pub async fn forged_and_expired_access_tokens_are_401(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("ned").await;
    let claims = json!({"sub": user.id, "iat": 0, "exp": 4_000_000_000_i64, "type": "access", "username": "ned", "role": "admin"});
    let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64_url(&claims.to_string());
    let forged = [
        format!("{header}.{payload}."),
        sign_claims(&claims, "not-the-secret", Algorithm::HS256),
        sign_claims(&claims, TEST_JWT_SECRET, Algorithm::HS512),
        user.refresh_token.clone(),
        "Bearer".into(),
        "a.b.c".into(),
    ];
    for token in &forged {
        let reply = server.get("/users/me", Some(token)).await;
        reply.assert_status(401);
        assert_eq!(reply.detail(), "Invalid token", "{token}");
    }
    // A correctly signed token of a deleted user.
    let ghost = sign_claims(
        &json!({"sub": "ghost", "iat": 0, "exp": 4_000_000_000_i64, "type": "access"}),
        TEST_JWT_SECRET,
        Algorithm::HS256,
    );
    server
        .get("/users/me", Some(&ghost))
        .await
        .assert_status(401);
    server.clock.advance(Duration::minutes(16));
    let expired = server.get("/users/me", Some(&user.access_token)).await;
    expired.assert_status(401);
    assert_eq!(expired.detail(), "Invalid token");
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

pub async fn cookie_attributes_follow_the_configuration(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[
            ("COOKIE_SAMESITE", "none"),
            ("COOKIE_SECURE", "true"),
            ("COOKIE_DOMAIN", "example.com"),
            ("ACCESS_COOKIE_MAX_AGE", "60"),
            ("REFRESH_COOKIE_MAX_AGE", "120"),
        ],
    )
    .await;
    server.register("olga").await;
    let reply = server.login("olga", TEST_PASSWORD).await;
    let access = reply.set_cookie(ACCESS_COOKIE).unwrap();
    let refresh = reply.set_cookie(REFRESH_COOKIE).unwrap();
    for cookie in [&access, &refresh] {
        assert!(cookie.contains("SameSite=None"), "{cookie}");
        assert!(cookie.contains("Secure"), "{cookie}");
        assert!(cookie.contains("Domain=example.com"), "{cookie}");
    }
    assert!(access.contains("Max-Age=60"));
    assert!(refresh.contains("Max-Age=120"));
}

/// `POST /auth/refresh` with a refresh token.
async fn refresh(server: &TestServer, token: &str) -> super::Reply {
    server
        .post("/auth/refresh", None, json!({"refresh_token": token}))
        .await
}

pub async fn refresh_reuse_within_the_interval_answers_the_current_pair(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("tabs").await;
    let first = refresh(&server, &user.refresh_token).await;
    first.assert_status(200);
    let current = first.body["refresh_token"].as_str().unwrap().to_owned();
    // The second tab, a second later, with the same (now rotated) token: the same login's
    // current pair, with cookies, and no new branch.
    server.clock.advance(Duration::seconds(1));
    let second = server
        .send(
            server
                .http
                .post(server.url("/auth/refresh"))
                .header("cookie", format!("{REFRESH_COOKIE}={}", user.refresh_token)),
        )
        .await;
    second.assert_status(200);
    assert_eq!(second.body["refresh_token"], current.as_str());
    assert!(
        second
            .set_cookie(REFRESH_COOKIE)
            .unwrap()
            .starts_with(&format!("{REFRESH_COOKIE}={current}"))
    );
    let access = second.body["access_token"].as_str().unwrap();
    assert!(second.set_cookie(ACCESS_COOKIE).unwrap().contains(access));
    server
        .get("/users/me", Some(access))
        .await
        .assert_status(200);
    // The current token rotates on; the old one, still within 10 s of its own rotation,
    // follows the login to its newest pair.
    server.clock.advance(Duration::seconds(2));
    let next = refresh(&server, &current).await;
    next.assert_status(200);
    let newest = next.body["refresh_token"].as_str().unwrap().to_owned();
    server.clock.advance(Duration::seconds(2));
    let late_tab = refresh(&server, &user.refresh_token).await;
    late_tab.assert_status(200);
    assert_eq!(late_tab.body["refresh_token"], newest.as_str());
    // Past the interval of its rotation, the first token is reuse: the login ends.
    server.clock.advance(Duration::seconds(6));
    let reuse = refresh(&server, &user.refresh_token).await;
    reuse.assert_status(401);
    assert_eq!(reuse.detail(), "session_revoked");
    let after = refresh(&server, &newest).await;
    after.assert_status(401);
    assert_eq!(after.detail(), "session_revoked");
}

pub async fn concurrent_refreshes_keep_one_branch(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("racingtabs").await;
    let token = user.refresh_token.clone();
    let replies = server
        .at_once(16, |_, client| {
            client
                .post(server.url("/auth/refresh"))
                .header("cookie", format!("{REFRESH_COOKIE}={token}"))
        })
        .await;
    assert_eq!(super::status_counts(&replies), [(200, 16)]);
    // Every tab holds the same, live, refresh token: one branch.
    let current = replies[0].body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for reply in &replies {
        assert_eq!(reply.body["refresh_token"], current.as_str());
        assert!(
            reply
                .set_cookie(REFRESH_COOKIE)
                .unwrap()
                .starts_with(&format!("{REFRESH_COOKIE}={current}"))
        );
    }
    let session = server
        .app
        .store()
        .session_by_token_hash(&melodyhue_core::auth::token_hash(&current))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.rotated_at, None);
    assert_eq!(
        server
            .app
            .store()
            .live_session(&session.family_id)
            .await
            .unwrap()
            .map(|live| live.id),
        Some(session.id.clone())
    );
    // Those tabs go on refreshing from the one token; the rotated one is reuse later.
    refresh(&server, &current).await.assert_status(200);
    server.clock.advance(Duration::seconds(11));
    refresh(&server, &token).await.assert_status(401);
}

pub async fn refresh_reuse_interval_zero_revokes_at_once(h: &Harness) {
    let server = TestServer::start_with(h, &[("REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await;
    let user = server.register("strict").await;
    let rotated = refresh(&server, &user.refresh_token).await;
    rotated.assert_status(200);
    let reuse = refresh(&server, &user.refresh_token).await;
    reuse.assert_status(401);
    assert_eq!(reuse.detail(), "session_revoked");
    refresh(&server, rotated.body["refresh_token"].as_str().unwrap())
        .await
        .assert_status(401);
}

pub async fn logout_with_a_just_rotated_token_ends_the_login(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("leaver").await;
    let rotated = refresh(&server, &user.refresh_token).await;
    rotated.assert_status(200);
    // A tab still holding the rotated token logs out: the login ends, not just that row.
    server
        .post(
            "/auth/logout",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await
        .assert_status(200);
    for token in [
        user.refresh_token.as_str(),
        rotated.body["refresh_token"].as_str().unwrap(),
    ] {
        let reply = refresh(&server, token).await;
        reply.assert_status(401);
        assert_eq!(reply.detail(), "session_revoked");
    }
}
