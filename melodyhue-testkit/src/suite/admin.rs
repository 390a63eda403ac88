//! `/admin`: statistics, users and roles, warnings; and the lists' paging and search.

use chrono::Duration;
use http::Method;
use serde_json::{Value, json};

use super::{Harness, Reply, TestServer, TestUser};
use melodyhue_core::model::Role;

/// Registers `name` and gives the account `role` directly in the store.
pub async fn register_with_role(server: &TestServer, name: &str, role: Role) -> TestUser {
    let user = server.register(name).await;
    server
        .app
        .store()
        .set_role(&user.id, role, server.app.now())
        .await
        .unwrap();
    user
}

/// The keys of a JSON object, sorted.
pub fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// The `field` of every item of a list reply.
pub fn column<'a>(reply: &'a Reply, field: &str) -> Vec<&'a str> {
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

/// The 422 of one bad query parameter.
#[track_caller]
pub fn assert_bad_query(reply: &Reply, name: &str, kind: &str) {
    reply.assert_status(422);
    let errors = reply.body["detail"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", reply.body);
    assert_eq!(errors[0]["loc"], json!(["query", name]));
    assert_eq!(errors[0]["type"], kind);
}

pub async fn admin_routes_are_for_admins_only(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let user = server.register("plain").await;
    let warning = server
        .post(
            &format!("/modo/users/{}/warn", user.id),
            Some(&moderator.access_token),
            json!({"reason": "spam links"}),
        )
        .await;
    warning.assert_status(200);
    let warning_id = warning.body["warning_id"].as_str().unwrap();
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/admin/stats".into(), None),
        (Method::GET, "/admin/users".into(), None),
        (
            Method::PATCH,
            format!("/admin/users/{}/role", user.id),
            Some(json!({"role": "user"})),
        ),
        (
            Method::GET,
            format!("/admin/users/{}/warnings", user.id),
            None,
        ),
        (Method::GET, "/admin/warnings".into(), None),
        (
            Method::DELETE,
            format!("/admin/warnings/{warning_id}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/admin/users/{}/warnings", user.id),
            None,
        ),
    ];
    for (method, path, body) in &routes {
        let anonymous = server.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(anonymous.status, 401, "{method} {path}");
        for caller in [&user, &moderator] {
            let reply = server
                .call(
                    method.clone(),
                    path,
                    Some(&caller.access_token),
                    body.clone(),
                )
                .await;
            assert_eq!(reply.status, 403, "{method} {path} as {}", caller.username);
            assert_eq!(reply.detail(), "Forbidden");
            assert!(reply.headers.get("x-account-banned").is_none());
        }
    }
    // The role is checked before the body or the query is validated.
    server
        .patch(
            &format!("/admin/users/{}/role", user.id),
            Some(&moderator.access_token),
            json!({"role": "root"}),
        )
        .await
        .assert_status(403);
    server
        .get("/admin/users?page=0", Some(&user.access_token))
        .await
        .assert_status(403);
    for (method, path, body) in &routes {
        let reply = server
            .call(
                method.clone(),
                path,
                Some(&admin.access_token),
                body.clone(),
            )
            .await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
    }
}

pub async fn stats_count_accounts_and_overlays(h: &Harness) {
    let server = TestServer::start(h).await;
    let empty_admin = register_with_role(&server, "root", Role::Admin).await;
    let stats = server
        .get("/admin/stats", Some(&empty_admin.access_token))
        .await;
    stats.assert_status(200);
    assert_eq!(
        keys(&stats.body),
        [
            "active_2fa_count",
            "admins_count",
            "last_user_registered_at",
            "moderators_count",
            "overlays_count",
            "users_count"
        ]
    );
    register_with_role(&server, "mod1", Role::Moderator).await;
    register_with_role(&server, "mod2", Role::Moderator).await;
    server.clock.advance(Duration::seconds(3));
    let newest = server.register("newest").await;
    for _ in 0..3 {
        server
            .post("/overlays/", Some(&newest.access_token), json!({}))
            .await
            .assert_status(200);
    }
    let stats = server
        .get("/admin/stats", Some(&empty_admin.access_token))
        .await;
    stats.assert_status(200);
    assert_eq!(stats.body["users_count"], 4);
    assert_eq!(stats.body["overlays_count"], 3);
    assert_eq!(stats.body["moderators_count"], 2);
    assert_eq!(stats.body["admins_count"], 1);
    assert_eq!(stats.body["active_2fa_count"], 0);
    let me = server.get("/users/me", Some(&newest.access_token)).await;
    assert_eq!(stats.body["last_user_registered_at"], me.body["created_at"]);
}

pub async fn admin_users_are_paged_newest_first(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let token = Some(admin.access_token.as_str());
    for name in ["usr1", "usr2", "usr3", "usr4", "usr5"] {
        server.clock.advance(Duration::seconds(1));
        server.register(name).await;
    }
    let first = server.get("/admin/users", token).await;
    first.assert_status(200);
    assert_eq!(keys(&first.body), ["items", "page", "page_size", "total"]);
    assert_eq!(first.body["total"], 6);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["page_size"], 20);
    assert_eq!(
        column(&first, "username"),
        ["usr5", "usr4", "usr3", "usr2", "usr1", "root"]
    );
    let item = &first.body["items"][5];
    assert_eq!(
        keys(item),
        [
            "created_at",
            "email",
            "id",
            "last_login_at",
            "role",
            "username"
        ]
    );
    assert_eq!(item["role"], "admin");
    assert_eq!(item["email"], "root@example.com");
    assert!(item["created_at"].as_str().unwrap().ends_with('Z'));
    let second = server.get("/admin/users?page=2&page_size=2", token).await;
    second.assert_status(200);
    assert_eq!(column(&second, "username"), ["usr3", "usr2"]);
    assert_eq!(second.body["total"], 6);
    assert_eq!(second.body["page"], 2);
    assert_eq!(second.body["page_size"], 2);
    let last = server.get("/admin/users?page=3&page_size=2", token).await;
    assert_eq!(column(&last, "username"), ["usr1", "root"]);
    let beyond = server.get("/admin/users?page=9&page_size=2", token).await;
    beyond.assert_status(200);
    assert_eq!(beyond.body["items"], json!([]));
    assert_eq!(
        beyond.body["total"], 6,
        "the total does not depend on the page"
    );
    let widest = server.get("/admin/users?page_size=100", token).await;
    widest.assert_status(200);
    assert_eq!(widest.body["items"].as_array().unwrap().len(), 6);
}

pub async fn list_parameters_are_validated(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let token = Some(admin.access_token.as_str());
    for list in [
        "/admin/users",
        "/admin/warnings",
        &format!("/admin/users/{}/warnings", admin.id),
        "/modo/users",
        "/modo/overlays",
    ] {
        for (query, name, kind) in [
            ("page=0", "page", "greater_than_equal"),
            ("page=-3", "page", "greater_than_equal"),
            ("page=abc", "page", "int_parsing"),
            ("page=", "page", "int_parsing"),
            ("page_size=0", "page_size", "greater_than_equal"),
            ("page_size=101", "page_size", "less_than_equal"),
            ("page_size=1.5", "page_size", "int_parsing"),
        ] {
            let reply = server.get(&format!("{list}?{query}"), token).await;
            assert_bad_query(&reply, name, kind);
        }
        let long_search = "x".repeat(256);
        let reply = server
            .get(&format!("{list}?search={long_search}"), token)
            .await;
        assert_bad_query(&reply, "search", "string_too_long");
        let both = server
            .get(&format!("{list}?page=0&page_size=0"), token)
            .await;
        both.assert_status(422);
        assert_eq!(both.body["detail"].as_array().unwrap().len(), 2);
        server
            .get(&format!("{list}?page=1&page_size=100&search="), token)
            .await
            .assert_status(200);
    }
    let reply = server.get("/modo/users?banned=maybe", token).await;
    assert_bad_query(&reply, "banned", "bool_parsing");
}

pub async fn search_matches_wildcards_literally(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let token = Some(admin.access_token.as_str());
    for name in ["half%off", "half_off", "halfXoff", "HALF!OFF"] {
        server.clock.advance(Duration::seconds(1));
        server.register(name).await;
    }
    for (search, expected) in [
        ("half%25off", vec!["half%off"]),
        ("half_off", vec!["half_off"]),
        ("%25", vec!["half%off"]),
        ("_", vec!["half_off"]),
        ("!", vec!["HALF!OFF"]),
        ("HALF", vec!["HALF!OFF", "halfXoff", "half_off", "half%off"]),
        ("xoff%40EXAMPLE", vec!["halfXoff"]),
        ("nobody", vec![]),
    ] {
        let reply = server
            .get(&format!("/admin/users?search={search}"), token)
            .await;
        reply.assert_status(200);
        assert_eq!(column(&reply, "username"), expected, "search {search}");
        assert_eq!(reply.body["total"], expected.len(), "search {search}");
        let modo = server
            .get(&format!("/modo/users?search={search}"), token)
            .await;
        assert_eq!(column(&modo, "username"), expected, "search {search}");
    }
}

pub async fn roles_change_but_the_last_admin_stays(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let token = Some(admin.access_token.as_str());
    let user = server.register("climber").await;
    let promoted = server
        .patch(
            &format!("/admin/users/{}/role", user.id),
            token,
            json!({"role": "moderator"}),
        )
        .await;
    promoted.assert_status(200);
    assert_eq!(
        promoted.body,
        json!({"status": "ok", "user_id": user.id, "role": "moderator"})
    );
    let me = server.get("/users/me", Some(&user.access_token)).await;
    assert_eq!(me.body["role"], "moderator", "the new role applies at once");
    server
        .get("/modo/users", Some(&user.access_token))
        .await
        .assert_status(200);
    let bad = server
        .patch(
            &format!("/admin/users/{}/role", user.id),
            token,
            json!({"role": "root"}),
        )
        .await;
    bad.assert_status(422);
    assert_eq!(bad.body["detail"][0]["loc"], json!(["body", "role"]));
    assert_eq!(bad.body["detail"][0]["type"], "literal_error");
    server
        .patch(&format!("/admin/users/{}/role", user.id), token, json!({}))
        .await
        .assert_status(422);
    let unknown = server
        .patch(
            "/admin/users/no-such-user/role",
            token,
            json!({"role": "user"}),
        )
        .await;
    unknown.assert_status(404);
    assert_eq!(unknown.detail(), "User not found");

    let last = server
        .patch(
            &format!("/admin/users/{}/role", admin.id),
            token,
            json!({"role": "moderator"}),
        )
        .await;
    last.assert_status(400);
    assert_eq!(last.detail(), "Cannot remove the last admin");
    // Setting the last admin's role to admin again changes nothing and is fine.
    server
        .patch(
            &format!("/admin/users/{}/role", admin.id),
            token,
            json!({"role": "admin"}),
        )
        .await
        .assert_status(200);
    // With a second admin, the first may step down; then the second is the last one.
    server
        .patch(
            &format!("/admin/users/{}/role", user.id),
            token,
            json!({"role": "admin"}),
        )
        .await
        .assert_status(200);
    server
        .patch(
            &format!("/admin/users/{}/role", admin.id),
            token,
            json!({"role": "user"}),
        )
        .await
        .assert_status(200);
    server.get("/admin/stats", token).await.assert_status(403);
    let refused = server
        .patch(
            &format!("/admin/users/{}/role", user.id),
            Some(&user.access_token),
            json!({"role": "user"}),
        )
        .await;
    refused.assert_status(400);
    assert_eq!(refused.detail(), "Cannot remove the last admin");
}

pub async fn warnings_are_listed_and_deleted(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let token = Some(admin.access_token.as_str());
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let warn = async |by: &TestUser, whom: &TestUser, reason: &str| {
        server.clock.advance(Duration::seconds(1));
        let reply = server
            .post(
                &format!("/modo/users/{}/warn", whom.id),
                Some(&by.access_token),
                json!({"reason": reason}),
            )
            .await;
        reply.assert_status(200);
        reply.body["warning_id"].as_str().unwrap().to_owned()
    };
    let first = warn(&moderator, &alice, "first: 100% spamming").await;
    let second = warn(&admin, &bob, "second: rude").await;
    let third = warn(&moderator, &alice, "third: spamming again").await;

    let all = server.get("/admin/warnings", token).await;
    all.assert_status(200);
    assert_eq!(all.body["total"], 3);
    assert_eq!(column(&all, "id"), [&third, &second, &first]);
    let item = &all.body["items"][0];
    assert_eq!(
        keys(item),
        [
            "created_at",
            "id",
            "moderator_email",
            "moderator_id",
            "moderator_username",
            "reason",
            "user_email",
            "user_id",
            "user_username"
        ]
    );
    assert_eq!(item["user_id"], alice.id.as_str());
    assert_eq!(item["user_username"], "alice");
    assert_eq!(item["user_email"], "alice@example.com");
    assert_eq!(item["moderator_id"], moderator.id.as_str());
    assert_eq!(item["moderator_username"], "mod");
    assert_eq!(item["moderator_email"], "mod@example.com");
    assert_eq!(item["reason"], "third: spamming again");
    assert!(item["created_at"].as_str().unwrap().ends_with('Z'));

    // Search covers the reason (wildcards literal), the ids and both parties.
    for (search, expected) in [
        ("100%25", vec![first.as_str()]),
        ("spamming", vec![third.as_str(), first.as_str()]),
        ("ROOT%40example", vec![second.as_str()]),
        (alice.id.as_str(), vec![third.as_str(), first.as_str()]),
        (second.as_str(), vec![second.as_str()]),
    ] {
        let reply = server
            .get(&format!("/admin/warnings?search={search}"), token)
            .await;
        assert_eq!(column(&reply, "id"), expected, "search {search}");
    }
    let paged = server
        .get("/admin/warnings?page=2&page_size=2", token)
        .await;
    assert_eq!(column(&paged, "id"), [&first]);
    assert_eq!(paged.body["total"], 3);

    let alices = server
        .get(&format!("/admin/users/{}/warnings", alice.id), token)
        .await;
    alices.assert_status(200);
    assert_eq!(column(&alices, "id"), [&third, &first]);
    assert_eq!(alices.body["total"], 2);
    let unknown = server.get("/admin/users/nobody/warnings", token).await;
    unknown.assert_status(404);
    assert_eq!(unknown.detail(), "User not found");

    let deleted = server
        .delete(&format!("/admin/warnings/{first}"), token)
        .await;
    deleted.assert_status(200);
    assert_eq!(
        deleted.body,
        json!({"status": "ok", "deleted": 1, "warning_id": first})
    );
    let again = server
        .delete(&format!("/admin/warnings/{first}"), token)
        .await;
    again.assert_status(404);
    assert_eq!(again.detail(), "Warning not found");

    // A deleted moderator's warnings stay, without a moderator.
    server
        .delete("/users/me", Some(&moderator.access_token))
        .await
        .assert_status(200);
    let orphan = server
        .get(&format!("/admin/users/{}/warnings", alice.id), token)
        .await;
    assert_eq!(orphan.body["items"][0]["moderator_id"], Value::Null);
    assert_eq!(orphan.body["items"][0]["moderator_username"], Value::Null);

    let cleared = server
        .delete(&format!("/admin/users/{}/warnings", alice.id), token)
        .await;
    cleared.assert_status(200);
    assert_eq!(
        cleared.body,
        json!({"status": "ok", "deleted": 1, "user_id": alice.id})
    );
    let none_left = server
        .delete(&format!("/admin/users/{}/warnings", alice.id), token)
        .await;
    assert_eq!(none_left.body["deleted"], 0);
    server
        .delete("/admin/users/nobody/warnings", token)
        .await
        .assert_status(404);
    let remaining = server.get("/admin/warnings", token).await;
    assert_eq!(column(&remaining, "id"), [&second]);
}
