//! `/users` and `/settings`: the caller's account and settings.

use serde_json::json;

use super::{Harness, TEST_PASSWORD, TestServer};
use melodyhue_core::auth::token_hash;

pub async fn me_shows_the_account(h: &Harness) {
    let server = TestServer::start(h).await;
    let reply = server
        .post(
            "/auth/register",
            None,
            json!({"username": "Pat", "email": "  Pat@Example.com", "password": TEST_PASSWORD}),
        )
        .await;
    reply.assert_status(200);
    let token = reply.body["access_token"].as_str().unwrap();
    let me = server.get("/users/me", Some(token)).await;
    me.assert_status(200);
    let body = &me.body;
    assert_eq!(body["username"], "Pat");
    assert_eq!(body["email"], "Pat@Example.com");
    assert_eq!(body["role"], "user");
    assert_eq!(body["default_overlay_color"], "#25d865");
    assert_eq!(body["twofa_enabled"], false);
    // MD5 of the trimmed, lowercased address "pat@example.com".
    assert_eq!(
        body["avatar_url"],
        "https://www.gravatar.com/avatar/3ddcaf169f35457c40bc5960e69c4601?s=128&d=identicon"
    );
    let created = body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
}

pub async fn public_profile_and_unknown_user(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("quinn").await;
    let reply = server.get(&format!("/users/{}", user.id), None).await;
    reply.assert_status(200);
    let keys: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "avatar_url",
            "created_at",
            "default_overlay_color",
            "id",
            "username"
        ]
    );
    assert_eq!(reply.body["username"], "quinn");
    let missing = server.get("/users/unknown-id", None).await;
    missing.assert_status(404);
    assert_eq!(missing.detail(), "User not found");
}

pub async fn change_username(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("rita").await;
    server.register("taken").await;
    let reply = server
        .patch(
            "/users/me/username",
            Some(&user.access_token),
            json!({"username": "rita2"}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["username"], "rita2");
    assert_eq!(reply.body["email"], user.email.as_str());
    let conflict = server
        .patch(
            "/users/me/username",
            Some(&user.access_token),
            json!({"username": "taken"}),
        )
        .await;
    conflict.assert_status(409);
    assert_eq!(conflict.detail(), "Username already taken");
    // Keeping one's own name is fine.
    server
        .patch(
            "/users/me/username",
            Some(&user.access_token),
            json!({"username": "rita2"}),
        )
        .await
        .assert_status(200);
    server
        .patch(
            "/users/me/username",
            Some(&user.access_token),
            json!({"username": "ab"}),
        )
        .await
        .assert_status(422);
    server
        .patch("/users/me/username", None, json!({"username": "abc"}))
        .await
        .assert_status(401);
}

pub async fn change_email(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("sam").await;
    server.register("other").await;
    let reply = server
        .patch(
            "/users/me/email",
            Some(&user.access_token),
            json!({"email": "sam.new@example.com"}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["email"], "sam.new@example.com");
    server
        .login("sam.new@example.com", TEST_PASSWORD)
        .await
        .assert_status(200);
    let conflict = server
        .patch(
            "/users/me/email",
            Some(&user.access_token),
            json!({"email": "OTHER@example.com"}),
        )
        .await;
    conflict.assert_status(409);
    assert_eq!(conflict.detail(), "Email already taken");
    server
        .patch(
            "/users/me/email",
            Some(&user.access_token),
            json!({"email": "nope"}),
        )
        .await
        .assert_status(422);
}

pub async fn change_password_revokes_other_sessions(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("tess").await;
    let other = server.login("tess", TEST_PASSWORD).await;
    let wrong = server
        .post(
            "/users/me/password",
            Some(&user.access_token),
            json!({"old_password": "wrong-password", "new_password": "brand-new-password"}),
        )
        .await;
    wrong.assert_status(400);
    assert_eq!(wrong.detail(), "Invalid old password");
    server
        .post(
            "/users/me/password",
            Some(&user.access_token),
            json!({"old_password": TEST_PASSWORD, "new_password": "short"}),
        )
        .await
        .assert_status(422);
    let ok = server
        .post(
            "/users/me/password",
            Some(&user.access_token),
            json!({"old_password": TEST_PASSWORD, "new_password": "brand-new-password"}),
        )
        .await;
    ok.assert_status(200);
    assert_eq!(ok.body, json!({"status": "ok"}));
    // The other login's session is gone; the caller's own session continues.
    let other_refresh = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": other.body["refresh_token"]}),
        )
        .await;
    other_refresh.assert_status(401);
    server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await
        .assert_status(200);
    server.login("tess", TEST_PASSWORD).await.assert_status(401);
    server
        .login("tess", "brand-new-password")
        .await
        .assert_status(200);
}

pub async fn delete_account_removes_everything(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("uma").await;
    let keeper = server.register("keeper").await;
    let overlay = server
        .post("/overlays/", Some(&user.access_token), json!({}))
        .await;
    let kept_overlay = server
        .post("/overlays/", Some(&keeper.access_token), json!({}))
        .await;
    server
        .patch(
            "/settings/me",
            Some(&user.access_token),
            json!({"theme": "dark"}),
        )
        .await
        .assert_status(200);
    let reply = server.delete("/users/me", Some(&user.access_token)).await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"status": "deleted"}));
    let store = server.app.store();
    assert!(store.user_by_id(&user.id).await.unwrap().is_none());
    assert!(store.overlays_of(&user.id).await.unwrap().is_empty());
    assert!(store.settings(&user.id).await.unwrap().is_none());
    assert!(
        store
            .session_by_token_hash(&token_hash(&user.refresh_token))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .overlay_by_id(overlay.body["id"].as_str().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .overlay_by_id(kept_overlay.body["id"].as_str().unwrap())
            .await
            .unwrap()
            .is_some()
    );
    server
        .get("/users/me", Some(&user.access_token))
        .await
        .assert_status(401);
    server
        .get(&format!("/color/{}", user.id), None)
        .await
        .assert_status(404);
    server.login("uma", TEST_PASSWORD).await.assert_status(401);
    server
        .get("/users/me", Some(&keeper.access_token))
        .await
        .assert_status(200);
}

pub async fn settings_defaults_and_patch(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("vera").await;
    let token = Some(user.access_token.as_str());
    let defaults = server.get("/settings/me", token).await;
    defaults.assert_status(200);
    assert_eq!(
        defaults.body,
        json!({"theme": "light", "layout": "default", "default_overlay_color": "#25d865", "avatar_mode": "gravatar", "avatar_color": "#25d865"})
    );
    let patched = server
        .patch(
            "/settings/me",
            token,
            json!({"theme": "dark", "avatar_color": "#ABCDEF"}),
        )
        .await;
    patched.assert_status(200);
    assert_eq!(patched.body["theme"], "dark");
    assert_eq!(patched.body["avatar_color"], "#abcdef");
    assert_eq!(patched.body["layout"], "default");
    let again = server
        .patch("/settings/me", token, json!({"layout": "compact"}))
        .await;
    assert_eq!(again.body["theme"], "dark", "earlier changes are kept");
    assert_eq!(again.body["layout"], "compact");
    assert_eq!(server.get("/settings/me", token).await.body, again.body);
    let me = server.get("/users/me", token).await;
    assert_eq!(me.body["default_overlay_color"], "#25d865");
    server.get("/settings/me", None).await.assert_status(401);
}

pub async fn settings_aliases_of_the_overlay_color(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("wes").await;
    let token = Some(user.access_token.as_str());
    for (field, color) in [
        ("default_overlay_color", "#111111"),
        ("default_color_overlays", "#222222"),
        ("default_color_hex", "#333333"),
    ] {
        let reply = server
            .patch("/settings/me", token, json!({ field: color }))
            .await;
        reply.assert_status(200);
        assert_eq!(reply.body["default_overlay_color"], color, "{field}");
    }
    let me = server.get("/users/me", token).await;
    assert_eq!(me.body["default_overlay_color"], "#333333");
}

pub async fn settings_refuse_bad_values_and_change_nothing(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("xena").await;
    let token = Some(user.access_token.as_str());
    let before = server.get("/settings/me", token).await.body;
    let cases = [
        json!({"theme": "dark", "default_overlay_color": "red"}),
        json!({"theme": "dark", "avatar_color": "#12345"}),
        json!({"theme": "dark", "default_color_hex": "#GGGGGG"}),
        json!({"theme": ""}),
        json!({"theme": "t".repeat(33)}),
        json!({"layout": 5, "theme": "dark"}),
        json!({"theme": "dark", "avatar_mode": ["x"]}),
    ];
    for body in cases {
        let reply = server.patch("/settings/me", token, body.clone()).await;
        reply.assert_status(422);
        assert!(reply.body["detail"].is_array(), "{body}");
        assert_eq!(
            server.get("/settings/me", token).await.body,
            before,
            "{body} changed something"
        );
    }
}
