//! Bans: what they block, their rules and end, and the purge of long-banned accounts by the
//! background jobs.

use std::time::Duration as StdDuration;

use chrono::Duration;
use http::Method;
use serde_json::{Value, json};

use super::{assert_banned, ban, overlay_of};
use crate::suite::admin::{keys, register_with_role};
use crate::suite::{Harness, TEST_PASSWORD, TestServer, TestUser};
use melodyhue_core::model::Role;
use melodyhue_core::service::{AccountEvent, PURGE_BANNED_AFTER};

pub async fn ban_revokes_sessions_and_blocks_every_route(h: &Harness) {
    let server = TestServer::start(h).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let user = server.register("gus").await;
    let second_login = server.login("gus", TEST_PASSWORD).await;
    second_login.assert_status(200);
    let overlay = overlay_of(&server, &user, "Main").await;
    let mut events = server.app.account_events();

    let banned = ban(&server, &moderator, &user.id, json!({"reason": "spam"})).await;
    banned.assert_status(200);
    assert_eq!(keys(&banned.body), ["ban_id", "revoked_sessions", "status"]);
    assert_eq!(banned.body["status"], "ok");
    assert_eq!(banned.body["revoked_sessions"], 2);
    assert_eq!(banned.body["ban_id"].as_str().unwrap().len(), 22);
    // The realtime layer is told, to send `force_logout` and close the user's WebSockets.
    assert_eq!(
        events.try_recv().unwrap(),
        AccountEvent::Banned {
            user_id: user.id.clone()
        }
    );

    // Sessions are gone, and the account refuses every kind of entry.
    let refresh = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    assert_banned(&refresh, "refresh");
    let cookie_refresh = server
        .send(server.http.post(server.url("/auth/refresh")).header(
            "cookie",
            format!(
                "{}={}",
                melodyhue_core::api::REFRESH_COOKIE,
                second_login.body["refresh_token"].as_str().unwrap()
            ),
        ))
        .await;
    assert_banned(&cookie_refresh, "refresh by cookie");
    assert_banned(&server.login("gus", TEST_PASSWORD).await, "login by name");
    assert_banned(
        &server.login("gus@example.com", TEST_PASSWORD).await,
        "login by e-mail",
    );
    // A wrong password still says only that the credentials are wrong.
    server
        .login("gus", "wrong-password")
        .await
        .assert_status(401);
    let token = Some(user.access_token.as_str());
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/users/me".into(), None),
        (Method::GET, "/overlays".into(), None),
        (
            Method::POST,
            "/overlays/".into(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::PATCH,
            "/settings/me".into(),
            Some(json!({"theme": "dark"})),
        ),
        (
            Method::PATCH,
            format!("/overlays/{overlay}"),
            Some(json!({"name": "y"})),
        ),
        (Method::DELETE, format!("/overlays/{overlay}"), None),
        (Method::DELETE, "/users/me".into(), None),
    ];
    for (method, path, body) in &calls {
        let reply = server.call(method.clone(), path, token, body.clone()).await;
        assert_banned(&reply, &format!("{method} {path}"));
    }
    // The public overlay page still works: banning hides nothing from viewers.
    server
        .get(&format!("/overlay/{overlay}"), None)
        .await
        .assert_status(200);

    let revoked = server
        .post(
            &format!("/modo/users/{}/ban/revoke", user.id),
            Some(&moderator.access_token),
            json!({}),
        )
        .await;
    revoked.assert_status(200);
    assert_eq!(keys(&revoked.body), ["revoked_at", "status"]);
    let revoked_at = revoked.body["revoked_at"].as_str().unwrap();
    assert!(
        revoked_at.ends_with('Z') && revoked_at.len() == 24,
        "{revoked_at}"
    );
    server.login("gus", TEST_PASSWORD).await.assert_status(200);
    server.get("/users/me", token).await.assert_status(200);
    let again = server
        .post(
            &format!("/modo/users/{}/ban/revoke", user.id),
            Some(&moderator.access_token),
            json!({}),
        )
        .await;
    again.assert_status(404);
    assert_eq!(again.detail(), "No active ban");
}

pub async fn banned_staff_lose_their_powers(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    ban(&server, &admin, &moderator.id, json!({"reason": "abuse"}))
        .await
        .assert_status(200);
    assert_banned(
        &server
            .get("/modo/users", Some(&moderator.access_token))
            .await,
        "GET /modo/users",
    );
    assert_banned(
        &ban(&server, &moderator, &admin.id, json!({"reason": "revenge"})).await,
        "POST /modo/users/{id}/ban",
    );
}

pub async fn temporary_bans_end_by_themselves(h: &Harness) {
    let server = TestServer::start(h).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let user = server.register("hal").await;
    let until = (server.app.now() + Duration::hours(1)).to_rfc3339();
    ban(
        &server,
        &moderator,
        &user.id,
        json!({"reason": "cool down", "until": until}),
    )
    .await
    .assert_status(200);
    server.clock.advance(Duration::minutes(59));
    assert_banned(
        &server.login("hal", TEST_PASSWORD).await,
        "login during the ban",
    );
    server.clock.advance(Duration::minutes(2));
    let back = server.login("hal", TEST_PASSWORD).await;
    back.assert_status(200);
    server
        .get("/users/me", back.body["access_token"].as_str())
        .await
        .assert_status(200);
    // An ended ban is no ban: revoking finds none, and a new ban is accepted.
    let moderator = server.login("mod", TEST_PASSWORD).await;
    let token = moderator.body["access_token"].as_str();
    server
        .post(
            &format!("/modo/users/{}/ban/revoke", user.id),
            token,
            json!({}),
        )
        .await
        .assert_status(404);
    server
        .post(
            &format!("/modo/users/{}/ban", user.id),
            token,
            json!({"reason": "again"}),
        )
        .await
        .assert_status(200);
}

pub async fn ban_rules(h: &Harness) {
    let server = TestServer::start(h).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let other_admin = register_with_role(&server, "boss", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let other_moderator = register_with_role(&server, "mod2", Role::Moderator).await;
    let user = server.register("ivy").await;

    ban(&server, &moderator, &user.id, json!({"reason": "first"}))
        .await
        .assert_status(200);
    let twice = ban(&server, &moderator, &user.id, json!({"reason": "second"})).await;
    twice.assert_status(400);
    assert_eq!(twice.detail(), "User already banned");

    for caller in [&moderator, &admin] {
        let own = ban(&server, caller, &caller.id, json!({"reason": "oops"})).await;
        own.assert_status(403);
        assert_eq!(own.detail(), "Forbidden");
    }
    let on_admin = ban(&server, &moderator, &admin.id, json!({"reason": "coup"})).await;
    on_admin.assert_status(403);
    assert_eq!(on_admin.detail(), "Forbidden");
    let unknown = ban(
        &server,
        &moderator,
        "no-such-user",
        json!({"reason": "who"}),
    )
    .await;
    unknown.assert_status(404);
    assert_eq!(unknown.detail(), "User not found");

    let past = (server.app.now() - Duration::seconds(1)).to_rfc3339();
    for (body, kind) in [
        (json!({"reason": "ok reason", "until": past}), "value_error"),
        (
            json!({"reason": "ok reason", "until": "next tuesday"}),
            "datetime_from_date_parsing",
        ),
        // A number is a unix timestamp, as pydantic reads it: 12 s after 1970 is past.
        (json!({"reason": "ok reason", "until": 12}), "value_error"),
        (
            json!({"reason": "ok reason", "until": true}),
            "datetime_type",
        ),
        (json!({"reason": "no"}), "string_too_short"),
        (json!({}), "missing"),
    ] {
        let reply = ban(&server, &moderator, &other_moderator.id, body).await;
        reply.assert_status(422);
        assert_eq!(reply.body["detail"][0]["type"], kind, "{}", reply.body);
    }
    // A null `until` is a permanent ban; moderators may ban moderators.
    ban(
        &server,
        &moderator,
        &other_moderator.id,
        json!({"reason": "permanent", "until": null}),
    )
    .await
    .assert_status(200);

    // Admins ban admins; moderators cannot lift that ban, admins can.
    ban(&server, &admin, &other_admin.id, json!({"reason": "rogue"}))
        .await
        .assert_status(200);
    let lift = server
        .post(
            &format!("/modo/users/{}/ban/revoke", other_admin.id),
            Some(&moderator.access_token),
            json!({}),
        )
        .await;
    lift.assert_status(403);
    server
        .post(
            &format!("/modo/users/{}/ban/revoke", other_admin.id),
            Some(&admin.access_token),
            json!({}),
        )
        .await
        .assert_status(200);
    let unknown = server
        .post(
            "/modo/users/no-such-user/ban/revoke",
            Some(&admin.access_token),
            json!({}),
        )
        .await;
    unknown.assert_status(404);
    assert_eq!(unknown.detail(), "User not found");
}

pub async fn purge_deletes_long_permanent_bans_only(h: &Harness) {
    let server = TestServer::start(h).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let permanent = server.register("perm").await;
    let temporary = server.register("temp").await;
    let revoked = server.register("lifted").await;
    let later = server.register("later").await;
    let bystander = server.register("calm").await;
    let overlay = overlay_of(&server, &permanent, "Doomed").await;
    let warned = server
        .post(
            &format!("/modo/users/{}/warn", permanent.id),
            Some(&moderator.access_token),
            json!({"reason": "last warning"}),
        )
        .await;
    warned.assert_status(200);
    let in_a_year = (server.app.now() + Duration::days(365)).to_rfc3339();
    for (user, body) in [
        (&permanent, json!({"reason": "for good"})),
        (&temporary, json!({"reason": "a year", "until": in_a_year})),
        (&revoked, json!({"reason": "for good, then not"})),
    ] {
        ban(&server, &moderator, &user.id, body)
            .await
            .assert_status(200);
    }
    server
        .post(
            &format!("/modo/users/{}/ban/revoke", revoked.id),
            Some(&moderator.access_token),
            json!({}),
        )
        .await
        .assert_status(200);
    server.clock.advance(Duration::days(100));
    let relogged = server.login("mod", TEST_PASSWORD).await;
    let moderator = TestUser {
        access_token: relogged.body["access_token"].as_str().unwrap().to_owned(),
        ..moderator
    };
    ban(
        &server,
        &moderator,
        &later.id,
        json!({"reason": "also for good"}),
    )
    .await
    .assert_status(200);

    server
        .clock
        .advance(PURGE_BANNED_AFTER - Duration::days(100) - Duration::hours(1));
    assert_eq!(server.app.jobs().purge_banned_users().await.unwrap(), 0);
    server.clock.advance(Duration::hours(2));
    assert_eq!(server.app.jobs().purge_banned_users().await.unwrap(), 1);
    assert_eq!(server.app.jobs().purge_banned_users().await.unwrap(), 0);

    // Gone with all their data; everyone else stays.
    let store = server.app.store();
    assert!(store.user_by_id(&permanent.id).await.unwrap().is_none());
    for user in [&moderator, &temporary, &revoked, &later, &bystander] {
        assert!(
            store.user_by_id(&user.id).await.unwrap().is_some(),
            "{} stays",
            user.username
        );
    }
    server
        .get(&format!("/overlay/{overlay}"), None)
        .await
        .assert_status(404);
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let warnings = server
        .get("/admin/warnings", Some(&admin.access_token))
        .await;
    assert_eq!(warnings.body["total"], 0);
    assert_banned(
        &server.login("temp", TEST_PASSWORD).await,
        "a temporary ban is not purged",
    );
    server
        .login("lifted", TEST_PASSWORD)
        .await
        .assert_status(200);
}

pub async fn background_jobs_run_at_start_and_repeat(h: &Harness) {
    let server = TestServer::start(h).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let user = server.register("kim").await;
    ban(&server, &moderator, &user.id, json!({"reason": "for good"}))
        .await
        .assert_status(200);
    server.clock.advance(PURGE_BANNED_AFTER + Duration::days(1));

    // The first run happens at start, without waiting for the daily period.
    let jobs = server.app.jobs().spawn_background_jobs();
    let mut reports = jobs.reports();
    let first = *reports.wait_for(|r| r.runs >= 1).await.unwrap();
    assert_eq!(first.runs, 1);
    assert_eq!(first.purged_users, 1);
    // The moderator's refresh session expired long ago.
    assert_eq!(first.expired_sessions, 1);
    assert!(
        server
            .app
            .store()
            .user_by_id(&user.id)
            .await
            .unwrap()
            .is_none()
    );
    drop(jobs);

    // Later runs follow at every period.
    let jobs = server
        .app
        .jobs()
        .spawn_background_jobs_every(StdDuration::from_millis(20));
    let mut reports = jobs.reports();
    let third = *reports.wait_for(|r| r.runs >= 3).await.unwrap();
    assert_eq!((third.purged_users, third.expired_sessions), (0, 0));
}
