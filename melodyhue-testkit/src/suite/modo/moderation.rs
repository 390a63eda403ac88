//! What moderators do through `/modo`: who may, users and their bans, edits, warnings and
//! overlays.

use chrono::{Duration, SecondsFormat};
use http::Method;
use serde_json::{Value, json};

use super::{ban, overlay_of};
use crate::suite::admin::{column, keys, register_with_role};
use crate::suite::{Harness, TEST_PASSWORD, TestServer};
use melodyhue_core::model::Role;

/// Every `/modo` route, on `target` and one of their overlays.
fn modo_routes(target: &str, overlay: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/modo/users".into(), None),
        (Method::GET, format!("/modo/users/{target}"), None),
        (
            Method::PATCH,
            format!("/modo/users/{target}"),
            Some(json!({"username": "target"})),
        ),
        (
            Method::POST,
            format!("/modo/users/{target}/warn"),
            Some(json!({"reason": "be nice"})),
        ),
        (
            Method::POST,
            format!("/modo/users/{target}/ban"),
            Some(json!({"reason": "enough"})),
        ),
        (
            Method::POST,
            format!("/modo/users/{target}/ban/revoke"),
            None,
        ),
        (Method::GET, "/modo/overlays".into(), None),
        (Method::GET, format!("/modo/overlays/{overlay}"), None),
        (
            Method::PATCH,
            format!("/modo/overlays/{overlay}"),
            Some(json!({"name": "Renamed"})),
        ),
        (Method::DELETE, format!("/modo/overlays/{overlay}"), None),
    ]
}

pub async fn modo_routes_are_for_moderators_and_admins(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let user = server.register("plain").await;
    let target = server.register("target").await;
    let overlay = overlay_of(&server, &target, "Main").await;
    for (method, path, body) in &modo_routes(&target.id, &overlay) {
        let anonymous = server.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(anonymous.status, 401, "{method} {path}");
        let reply = server
            .call(method.clone(), path, Some(&user.access_token), body.clone())
            .await;
        assert_eq!(reply.status, 403, "{method} {path}");
        assert_eq!(reply.detail(), "Forbidden");
    }
    // The role is checked before the body is validated.
    server
        .post(
            &format!("/modo/users/{}/ban", target.id),
            Some(&user.access_token),
            json!({"reason": ""}),
        )
        .await
        .assert_status(403);
    // Both staff roles reach every route (each on an overlay of its own, as the last call
    // deletes it).
    for caller in [&moderator, &admin] {
        let overlay = overlay_of(&server, &target, "Main").await;
        for (method, path, body) in &modo_routes(&target.id, &overlay) {
            let reply = server
                .call(
                    method.clone(),
                    path,
                    Some(&caller.access_token),
                    body.clone(),
                )
                .await;
            assert_eq!(
                reply.status, 200,
                "{method} {path} as {}: {}",
                caller.username, reply.body
            );
        }
    }
}

pub async fn moderators_see_users_with_their_bans(h: &Harness) {
    let server = TestServer::start(h).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let token = Some(moderator.access_token.as_str());
    let mut users = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        server.clock.advance(Duration::seconds(1));
        users.push(server.register(name).await);
    }
    let until = server.app.now() + Duration::days(3);
    let until_text = until.to_rfc3339_opts(SecondsFormat::Millis, true);
    ban(
        &server,
        &moderator,
        &users[0].id,
        json!({"reason": "for good"}),
    )
    .await
    .assert_status(200);
    ban(
        &server,
        &moderator,
        &users[2].id,
        json!({"reason": "three days", "until": until_text}),
    )
    .await
    .assert_status(200);

    let all = server.get("/modo/users", token).await;
    all.assert_status(200);
    assert_eq!(keys(&all.body), ["items", "page", "page_size", "total"]);
    assert_eq!(all.body["total"], 5);
    assert_eq!(
        column(&all, "username"),
        ["dan", "cat", "ben", "ann", "mod"]
    );
    let item = |name: &str| -> Value {
        all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        keys(&item("ann")),
        [
            "ban_reason",
            "ban_until",
            "created_at",
            "email",
            "id",
            "is_banned",
            "last_login_at",
            "role",
            "username"
        ]
    );
    assert_eq!(item("ann")["is_banned"], true);
    assert_eq!(item("ann")["ban_reason"], "for good");
    assert_eq!(item("ann")["ban_until"], Value::Null, "permanent");
    assert_eq!(item("cat")["is_banned"], true);
    assert_eq!(item("cat")["ban_until"], until_text.as_str());
    assert_eq!(item("ben")["is_banned"], false);
    assert_eq!(item("ben")["ban_reason"], Value::Null);
    assert_eq!(item("ben")["ban_until"], Value::Null);
    assert_eq!(item("mod")["role"], "moderator");

    let banned = server.get("/modo/users?banned=true", token).await;
    assert_eq!(column(&banned, "username"), ["cat", "ann"]);
    assert_eq!(banned.body["total"], 2);
    let not_banned = server.get("/modo/users?banned=false", token).await;
    assert_eq!(column(&not_banned, "username"), ["dan", "ben", "mod"]);
    assert_eq!(not_banned.body["total"], 3);
    let paged = server
        .get("/modo/users?banned=false&page=2&page_size=2", token)
        .await;
    assert_eq!(column(&paged, "username"), ["mod"]);
    assert_eq!(paged.body["total"], 3);
    let searched = server.get("/modo/users?banned=1&search=CAT", token).await;
    assert_eq!(column(&searched, "username"), ["cat"]);

    // Once the temporary ban is over, the lists say so.
    server
        .clock
        .advance(Duration::days(3) + Duration::seconds(1));
    let moderator = server.login("mod", TEST_PASSWORD).await;
    let token = moderator.body["access_token"].as_str();
    let banned = server.get("/modo/users?banned=true", token).await;
    assert_eq!(column(&banned, "username"), ["ann"]);

    let one = server
        .get(&format!("/modo/users/{}", users[0].id), token)
        .await;
    one.assert_status(200);
    assert_eq!(one.body, item("ann"));
    let unknown = server.get("/modo/users/no-such-user", token).await;
    unknown.assert_status(404);
    assert_eq!(unknown.detail(), "User not found");
}

pub async fn moderators_edit_users_but_not_admins(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let other_admin = register_with_role(&server, "boss", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let user = server.register("eve").await;
    server.register("taken").await;
    let path = format!("/modo/users/{}", user.id);
    let token = Some(moderator.access_token.as_str());
    // The moderation page sends the unchanged address along with a new username: not a change.
    let edited = server
        .patch(
            &path,
            token,
            json!({"username": "eve2", "email": "EVE@example.com"}),
        )
        .await;
    edited.assert_status(200);
    assert_eq!(edited.body, json!({"status": "ok"}));
    let shown = server.get(&path, token).await;
    assert_eq!(shown.body["username"], "eve2");
    assert_eq!(shown.body["email"], "eve@example.com");
    // A new address is for admins only.
    let new_email = server
        .patch(&path, token, json!({"email": "Eve2@Example.com"}))
        .await;
    new_email.assert_status(403);
    let edited = server
        .patch(
            &path,
            Some(&admin.access_token),
            json!({"email": "Eve2@Example.com"}),
        )
        .await;
    edited.assert_status(200);
    assert_eq!(
        server.get(&path, token).await.body["email"],
        "Eve2@Example.com"
    );
    server
        .login("eve2@example.com", TEST_PASSWORD)
        .await
        .assert_status(200);
    let taken_email = server
        .patch(
            &path,
            Some(&admin.access_token),
            json!({"email": "TAKEN@example.com"}),
        )
        .await;
    taken_email.assert_status(409);
    assert_eq!(taken_email.detail(), "Email already taken");
    let taken_name = server
        .patch(&path, token, json!({"username": "taken"}))
        .await;
    taken_name.assert_status(409);
    assert_eq!(taken_name.detail(), "Username already taken");
    let invalid = server
        .patch(&path, token, json!({"username": "x", "email": "nope"}))
        .await;
    invalid.assert_status(422);
    assert_eq!(invalid.body["detail"].as_array().unwrap().len(), 2);
    server
        .patch(
            "/modo/users/no-such-user",
            token,
            json!({"username": "abc"}),
        )
        .await
        .assert_status(404);
    // Nothing changed by the refused edits.
    let shown = server.get(&path, token).await;
    assert_eq!(shown.body["username"], "eve2");

    let on_admin = server
        .patch(
            &format!("/modo/users/{}", admin.id),
            token,
            json!({"username": "pwned"}),
        )
        .await;
    on_admin.assert_status(403);
    assert_eq!(on_admin.detail(), "Forbidden");
    // Moderators still see admins.
    server
        .get(&format!("/modo/users/{}", admin.id), token)
        .await
        .assert_status(200);
    // Admins may edit admins.
    server
        .patch(
            &format!("/modo/users/{}", other_admin.id),
            Some(&admin.access_token),
            json!({"username": "big-boss"}),
        )
        .await
        .assert_status(200);
}

pub async fn warnings_by_moderators(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let other_admin = register_with_role(&server, "boss", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let user = server.register("fred").await;
    let token = Some(moderator.access_token.as_str());
    let warned = server
        .post(
            &format!("/modo/users/{}/warn", user.id),
            token,
            json!({"reason": "please stop"}),
        )
        .await;
    warned.assert_status(200);
    assert_eq!(keys(&warned.body), ["status", "warning_id"]);
    assert_eq!(warned.body["status"], "ok");
    let listed = server
        .get(
            &format!("/admin/users/{}/warnings", user.id),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(
        column(&listed, "id"),
        [warned.body["warning_id"].as_str().unwrap()]
    );
    assert_eq!(column(&listed, "reason"), ["please stop"]);
    for (body, field) in [
        (json!({"reason": "no"}), "reason"),
        (json!({"reason": "x".repeat(501)}), "reason"),
        (json!({}), "reason"),
    ] {
        let reply = server
            .post(&format!("/modo/users/{}/warn", user.id), token, body)
            .await;
        reply.assert_status(422);
        assert_eq!(reply.body["detail"][0]["loc"], json!(["body", field]));
    }
    server
        .post(
            &format!("/modo/users/{}/warn", user.id),
            token,
            json!({"reason": "x".repeat(500)}),
        )
        .await
        .assert_status(200);
    let unknown = server
        .post(
            "/modo/users/no-such-user/warn",
            token,
            json!({"reason": "hello"}),
        )
        .await;
    unknown.assert_status(404);
    assert_eq!(unknown.detail(), "User not found");
    server
        .post(
            &format!("/modo/users/{}/warn", admin.id),
            token,
            json!({"reason": "hello"}),
        )
        .await
        .assert_status(403);
    server
        .post(
            &format!("/modo/users/{}/warn", other_admin.id),
            Some(&admin.access_token),
            json!({"reason": "hello"}),
        )
        .await
        .assert_status(200);
}

pub async fn moderators_manage_overlays(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let owner = server.register("jaywalker").await;
    let token = Some(moderator.access_token.as_str());
    let mut ids = Vec::new();
    for name in ["50% off", "50_ off", "plain"] {
        server.clock.advance(Duration::seconds(1));
        ids.push(overlay_of(&server, &owner, name).await);
    }
    server.clock.advance(Duration::seconds(1));
    let admins_overlay = overlay_of(&server, &admin, "Admin's").await;

    let list = server.get("/modo/overlays", token).await;
    list.assert_status(200);
    assert_eq!(list.body["total"], 4);
    assert_eq!(
        column(&list, "name"),
        ["Admin's", "plain", "50_ off", "50% off"]
    );
    let item = &list.body["items"][1];
    assert_eq!(
        keys(item),
        [
            "created_at",
            "id",
            "name",
            "owner_id",
            "owner_username",
            "template",
            "updated_at"
        ]
    );
    assert_eq!(item["owner_id"], owner.id.as_str());
    assert_eq!(item["owner_username"], "jaywalker");
    assert_eq!(item["template"], "classic");
    // Ids are searched too and are random base64url, so each wildcard term holds a character
    // no id can (`%`, a space): "50_" alone matched a random id containing it.
    for (search, expected) in [
        ("50%25", vec!["50% off"]),
        ("_%20off", vec!["50_ off"]),
        ("JAYWALK", vec!["plain", "50_ off", "50% off"]),
        (ids[2].as_str(), vec!["plain"]),
        ("classic", vec!["Admin's", "plain", "50_ off", "50% off"]),
    ] {
        let reply = server
            .get(&format!("/modo/overlays?search={search}"), token)
            .await;
        assert_eq!(column(&reply, "name"), expected, "search {search}");
        assert_eq!(reply.body["total"], expected.len());
    }
    let paged = server.get("/modo/overlays?page=2&page_size=3", token).await;
    assert_eq!(column(&paged, "name"), ["50% off"]);

    // One overlay answers like the owner's own calls.
    let path = format!("/modo/overlays/{}", ids[2]);
    let shown = server.get(&path, token).await;
    shown.assert_status(200);
    let owners = server
        .get(&format!("/overlays/{}", ids[2]), Some(&owner.access_token))
        .await;
    assert_eq!(shown.body, owners.body);
    let renamed = server
        .patch(&path, token, json!({"name": "Cleaned up"}))
        .await;
    renamed.assert_status(200);
    assert_eq!(keys(&renamed.body), keys(&owners.body));
    assert_eq!(renamed.body["name"], "Cleaned up");
    server
        .patch(&path, token, json!({"name": ""}))
        .await
        .assert_status(422);
    let deleted = server.delete(&path, token).await;
    deleted.assert_status(200);
    assert_eq!(deleted.body, json!({"status": "ok"}));
    let gone = server.get(&path, token).await;
    gone.assert_status(404);
    assert_eq!(gone.detail(), "Overlay not found");
    server.delete(&path, token).await.assert_status(404);
    server
        .patch(&path, token, json!({"name": "x"}))
        .await
        .assert_status(404);

    // An admin's overlay: moderators may look, not touch; admins may.
    let admin_path = format!("/modo/overlays/{admins_overlay}");
    server.get(&admin_path, token).await.assert_status(200);
    server
        .patch(&admin_path, token, json!({"name": "mine now"}))
        .await
        .assert_status(403);
    server.delete(&admin_path, token).await.assert_status(403);
    server
        .patch(
            &admin_path,
            Some(&admin.access_token),
            json!({"template": "minimal"}),
        )
        .await
        .assert_status(200);
}
