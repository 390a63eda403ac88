//! Spotify's tokens over time: revoked and expired ones, rotated refresh tokens, and rotations
//! racing with the database, a callback and a second server.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{
    FRONTEND_CALLBACK, Setup, authorize, connected_user, cover_png, eventually, hex, playing,
    refresh_tokens_sent, second_node, setup, stored_refresh_token, user_with_app,
};
use crate::fake_spotify::{Endpoint, Scenario};
use crate::suite::{Harness, TEST_ENCRYPTION_KEY, TestUser};
use melodyhue_core::color::{self};
use melodyhue_core::secrets::SecretBox;

/// A connected user `name` playing a cover of color `rgb`, Spotify rotating their refresh token
/// (first `refresh_token`) at every refresh and their access tokens living 61 s, so that every
/// poll refreshes: the user, and the hex color the cover shows as.
async fn rotating_player(
    s: &Setup,
    name: &str,
    refresh_token: &str,
    (r, g, b): (u8, u8, u8),
) -> (TestUser, String) {
    let png = cover_png(r, g, b);
    let expected = color::analyze(&png).unwrap().color.hex();
    let cover = s.fake.add_image(&format!("{name}.png"), png, "image/png");
    s.fake.rotate_refresh_tokens(refresh_token);
    s.fake
        .set_access_token_lifetime(refresh_token, Duration::from_secs(61));
    let user = connected_user(s, name, refresh_token, playing(Some(cover))).await;
    (user, expected)
}

pub async fn revoked_refresh_tokens_disconnect_the_user(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    s.fake.revoke_refresh_token("rt-revoked");
    let user = connected_user(&s, "revoked", "rt-revoked", playing(None)).await;
    let reply = s.server.get(&format!("/color/{}", user.id), None).await;
    assert_eq!(hex(&reply.body), "#25d865");
    // Cleared after a short grace (another server may be storing a successor).
    eventually(Duration::from_secs(10), "disconnected", || async {
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body
            == json!({"authenticated": false})
    })
    .await;
    assert_eq!(stored_refresh_token(&s.server, &user.id).await, None);
    assert_eq!(s.fake.currently_playing_calls_for("rt-revoked"), 0);
}

pub async fn expired_access_tokens_are_renewed(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(20, 180, 90);
    let cover = s.fake.add_image("green.png", png.clone(), "image/png");
    let user = connected_user(&s, "renewer", "rt-renew", playing(Some(cover))).await;
    let path = format!("/color/{}", user.id);
    let expected = color::analyze(&png).unwrap().color.hex();
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
    let tokens_before = s.fake.calls(Endpoint::Token);
    s.fake.expire_access_tokens("rt-renew");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
    assert!(
        s.fake.calls(Endpoint::Token) > tokens_before,
        "a new access token was fetched"
    );
}

/// A token endpoint announcing an access token that lives for ever (`expires_in` past what a
/// deadline can hold): the server keeps using it (a day at most), polls go on, no panic.
pub async fn endless_access_tokens_are_kept_a_day_at_most(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(200, 40, 120);
    let cover = s.fake.add_image("endless.png", png.clone(), "image/png");
    s.fake
        .set_access_token_lifetime("rt-endless", Duration::from_secs(u64::MAX));
    let user = connected_user(&s, "endless", "rt-endless", playing(Some(cover))).await;
    let path = format!("/color/{}", user.id);
    let expected = color::analyze(&png).unwrap().color.hex();
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
    let polls = s.fake.currently_playing_calls_for("rt-endless");
    // Several polls later, with the same token.
    eventually(Duration::from_secs(5), "polled again", || async {
        s.server.get(&path, None).await;
        s.fake.currently_playing_calls_for("rt-endless") >= polls + 3
    })
    .await;
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
    assert_eq!(s.fake.calls(Endpoint::Token), 1, "one access token, kept");
}

/// Spotify rotates the refresh token on every refresh, each working once, and access tokens
/// live 61 s (so every poll refreshes); then an access token dies early (a `401`, renewed at
/// once). The user stays connected through every rotation, no dead token is ever sent, and
/// the database always ends up with the newest one.
pub async fn rotated_refresh_tokens_keep_the_user_connected(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let (user, expected) = rotating_player(&s, "rotator", "rt-rot", (60, 140, 220)).await;
    let path = format!("/color/{}", user.id);
    let started = Instant::now();
    let mut expired_once = false;
    while started.elapsed() < Duration::from_secs(4) {
        s.server.get(&path, None).await.assert_status(200);
        if !expired_once && started.elapsed() > Duration::from_secs(2) {
            s.fake.expire_access_tokens("rt-rot");
            expired_once = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = refresh_tokens_sent(&s.fake);
    assert!(sent.len() >= 3, "only {} refreshes: {sent:?}", sent.len());
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        sent.len(),
        "a used refresh token was sent again: {sent:?}"
    );
    eventually(
        Duration::from_secs(5),
        "the newest token stored",
        || async {
            stored_refresh_token(&s.server, &user.id).await == s.fake.latest_refresh_token("rt-rot")
        },
    )
    .await;
    assert_eq!(
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body,
        json!({"authenticated": true})
    );
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
}

/// Runs `sql` (one statement or several) on the database `url` names.
async fn run_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

/// SQL that makes every write of a stored refresh token fail, and SQL that undoes it.
fn refuse_token_writes(url: &str) -> (&'static str, &'static str) {
    if url.starts_with("sqlite:") {
        (
            "CREATE TRIGGER refuse_token_writes BEFORE UPDATE ON api_spotify_tokens \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
            "DROP TRIGGER refuse_token_writes",
        )
    } else if url.starts_with("postgres") {
        (
            "CREATE FUNCTION refuse_token_writes() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
             CREATE TRIGGER refuse_token_writes BEFORE UPDATE ON api_spotify_tokens \
             FOR EACH ROW EXECUTE FUNCTION refuse_token_writes()",
            "DROP TRIGGER refuse_token_writes ON api_spotify_tokens; \
             DROP FUNCTION refuse_token_writes()",
        )
    } else {
        (
            "CREATE TRIGGER refuse_token_writes BEFORE UPDATE ON api_spotify_tokens \
             FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'",
            "DROP TRIGGER refuse_token_writes",
        )
    }
}

/// Rotations while the database cannot store them: the newest token is used from memory (no
/// dead one is ever sent), and stored as soon as the database takes writes again.
pub async fn rotations_survive_a_database_that_cannot_store_them(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let (user, expected) = rotating_player(&s, "outage", "rt-outage", (120, 30, 200)).await;
    let path = format!("/color/{}", user.id);
    eventually(Duration::from_secs(5), "the cover", || async {
        hex(&s.server.get(&path, None).await.body) == expected
    })
    .await;
    let database_url = s.server.app.config().database_url.expose().to_owned();
    let (refuse, allow) = refuse_token_writes(&database_url);
    run_sql(&database_url, refuse).await;
    let stored_before = stored_refresh_token(&s.server, &user.id).await;
    let refreshes_before = refresh_tokens_sent(&s.fake).len();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        refresh_tokens_sent(&s.fake).len() >= refreshes_before + 2,
        "the hub kept rotating"
    );
    assert_eq!(
        stored_refresh_token(&s.server, &user.id).await,
        stored_before,
        "nothing could be stored"
    );
    run_sql(&database_url, allow).await;
    eventually(
        Duration::from_secs(5),
        "the newest token stored",
        || async {
            stored_refresh_token(&s.server, &user.id).await
                == s.fake.latest_refresh_token("rt-outage")
        },
    )
    .await;
    let sent = refresh_tokens_sent(&s.fake);
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        sent.len(),
        "a used refresh token was sent again: {sent:?}"
    );
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
}

/// A newer refresh token stored behind the hub's back (a callback on another server) and the
/// old one refused: the newer one is used, never cleared.
pub async fn a_refused_old_token_never_clears_a_newer_one(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(250, 250, 20);
    let cover = s.fake.add_image("new.png", png.clone(), "image/png");
    let user = connected_user(&s, "reconnected", "rt-old", Scenario::NothingPlaying).await;
    let path = format!("/color/{}", user.id);
    s.server.get(&path, None).await.assert_status(200);
    // Another server completes a new connection: the database holds a newer token.
    s.fake.set_scenario("rt-new", playing(Some(cover)));
    let patch = melodyhue_core::model::SpotifyCredentialsPatch {
        refresh_token_encrypted: Some(Some(SecretBox::new(TEST_ENCRYPTION_KEY).encrypt("rt-new"))),
        ..melodyhue_core::model::SpotifyCredentialsPatch::default()
    };
    s.server
        .app
        .store()
        .update_spotify_credentials(&user.id, &patch, s.server.app.now())
        .await
        .unwrap();
    // The old authorization dies at Spotify, and so does its access token.
    s.fake.revoke_refresh_token("rt-old");
    s.fake.expire_access_tokens("rt-old");
    let expected = color::analyze(&png).unwrap().color.hex();
    eventually(
        Duration::from_secs(10),
        "the new account playing",
        || async { hex(&s.server.get(&path, None).await.body) == expected },
    )
    .await;
    assert_eq!(
        stored_refresh_token(&s.server, &user.id).await.as_deref(),
        Some("rt-new")
    );
    assert_eq!(
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body,
        json!({"authenticated": true})
    );
}

/// A callback stores a new connection while the hub is polling the old one with rotating
/// tokens: the callback's token wins, and the user plays from the new account.
pub async fn a_callback_racing_with_the_poller_wins(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(10, 90, 30);
    let cover = s.fake.add_image("race.png", png.clone(), "image/png");
    let user = user_with_app(&s, "racer").await;
    s.fake.rotate_refresh_tokens("rt-first");
    s.fake
        .set_access_token_lifetime("rt-first", Duration::from_secs(61));
    s.fake.approve_as("rt-first");
    let redirect = authorize(&s.server, &user, FRONTEND_CALLBACK).await;
    let token = Some(user.access_token.as_str());
    s.server
        .get(&format!("/spotify/callback?code={}", redirect.code), token)
        .await
        .assert_status(200);
    let path = format!("/color/{}", user.id);
    // The hub refreshes (and rotates) on every poll; meanwhile the user connects another
    // account, its callback landing between polls or during one.
    s.fake.set_scenario("rt-second", playing(Some(cover)));
    s.fake.approve_as("rt-second");
    for _ in 0..5 {
        s.server.get(&path, None).await.assert_status(200);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let redirect = authorize(&s.server, &user, FRONTEND_CALLBACK).await;
    let callback_path = format!("/spotify/callback?code={}", redirect.code);
    let (callback, _) = tokio::join!(
        s.server.get(&callback_path, token),
        s.server.get(&path, None),
    );
    callback.assert_status(200);
    let expected = color::analyze(&png).unwrap().color.hex();
    eventually(
        Duration::from_secs(10),
        "the second account playing",
        || async { hex(&s.server.get(&path, None).await.body) == expected },
    )
    .await;
    assert_eq!(
        stored_refresh_token(&s.server, &user.id).await,
        s.fake.latest_refresh_token("rt-second")
    );
}

/// Two servers on one database poll the same user, Spotify rotating the refresh token at
/// every refresh: neither ever disconnects the user, and both keep showing the cover.
pub async fn two_servers_share_a_rotating_connection(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let (user, expected) = rotating_player(&s, "shared", "rt-shared", (200, 100, 0)).await;
    let url = s.fake.url();
    let other = second_node(
        h,
        &s.server,
        &[
            ("SPOTIFY_ACCOUNTS_URL", url.as_str()),
            ("SPOTIFY_API_URL", url.as_str()),
            ("SPOTIFY_IMAGE_HOSTS", "http://127.0.0.1"),
            ("SPOTIFY_POLLING_INTERVAL", "0.2"),
        ],
    )
    .await;
    let path = format!("/color/{}", user.id);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let (a, b) = tokio::join!(s.server.get(&path, None), other.get(&path, None));
        a.assert_status(200);
        b.assert_status(200);
        assert!(
            stored_refresh_token(&s.server, &user.id).await.is_some(),
            "the user was disconnected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for node in [&s.server, &other] {
        eventually(
            Duration::from_secs(10),
            "the cover on both servers",
            || async { hex(&node.get(&path, None).await.body) == expected },
        )
        .await;
    }
    eventually(
        Duration::from_secs(5),
        "the newest token stored",
        || async {
            stored_refresh_token(&s.server, &user.id).await
                == s.fake.latest_refresh_token("rt-shared")
        },
    )
    .await;
}
