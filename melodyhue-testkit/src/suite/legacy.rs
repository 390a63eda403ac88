//! Adopting a database made by the earlier Python MelodyHue service (MariaDB).
//!
//! [`adopts_the_legacy_database`] loads that service's dump (`tests/fixtures/legacy-mariadb.sql`,
//! described in `tests/fixtures/README.md`) into a scratch database, starts a server on it with
//! the old service's secrets, and checks through HTTP (and the store) that nothing was lost.
//! Each kind of check is a small function over [`Adopted`], so adding one (such as a TOTP login
//! once two-step login exists) is one more function and one more call.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::{Connection as _, MySqlConnection};

use super::{Harness, Reply, TestServer, case};
use crate::Trial;
use crate::database::{ScratchDatabase, Server};
use melodyhue_core::secrets::SecretBox;

/// The dump of the earlier service's database.
pub const LEGACY_DUMP: &str = include_str!("../../fixtures/legacy-mariadb.sql");
/// The earlier service's `JWT_SECRET`.
pub const LEGACY_JWT_SECRET: &str = "legacy-jwt-secret-0123456789abcdef";
/// The earlier service's `SECRET_KEY`.
pub const LEGACY_SECRET_KEY: &str = "legacy-secret-key-0123456789abcdef";
/// The earlier service's `ENCRYPTION_KEY`.
pub const LEGACY_ENCRYPTION_KEY: &str = "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E=";
/// bob's TOTP secret (stored Fernet-encrypted).
pub const BOB_TOTP_SECRET: &str = "NKTWPTHCJBOZLIYUM6PCE4EI2QLSEFHI";
/// alice's id in the dump.
pub const ALICE_ID: &str = "nZy7c9Q1Sem8VqPMCeC_ag";
/// bob's id in the dump.
pub const BOB_ID: &str = "wA8Y0H7LQGyFS2GTKo6nTw";

/// The tables of the earlier service.
const LEGACY_TABLES: [&str; 12] = [
    "api_users",
    "api_overlays",
    "api_user_sessions",
    "api_twofa",
    "api_spotify_secrets",
    "api_spotify_tokens",
    "api_password_resets",
    "api_twofa_disable",
    "api_user_settings",
    "api_login_challenges",
    "api_user_warnings",
    "api_user_bans",
];

/// The adoption checks on `harness` (whose backend must be [`super::Backend::MySql`]): a
/// database made by the earlier Python service is adopted in place, and rows of it that collide
/// under the canonical e-mail form are adopted without a loss.
pub fn trials(harness: Harness) -> Vec<Trial> {
    vec![
        case("legacy_database_is_adopted", harness, |h| async move {
            adopts_the_legacy_database(&h).await;
        }),
        case(
            "legacy_email_collisions_keep_the_oldest",
            harness,
            |h| async move {
                adoption_keeps_the_oldest_of_colliding_emails(&h).await;
            },
        ),
    ]
}

/// A server running on the adopted database.
pub struct Adopted {
    /// The server (the old service's secrets, the adopted database).
    pub server: TestServer,
    /// The database (declared last: dropped after the server).
    pub database: ScratchDatabase,
}

/// Loads the dump, starts a server on it, and checks everything the earlier service's users
/// must find again. Needs a MariaDB/MySQL server (see [`trials`]).
pub async fn adopts_the_legacy_database(h: &Harness) {
    let database = ScratchDatabase::create(Server::MySql).await;
    database
        .execute_script(LEGACY_DUMP)
        .await
        .expect("load the legacy dump");
    let before = snapshot(database.url()).await;
    assert_eq!(before.rows["api_users"], 6, "the dump is loaded");

    let server = TestServer::start_with(
        h,
        &[
            ("DATABASE_URL", database.url()),
            ("JWT_SECRET", LEGACY_JWT_SECRET),
            ("SECRET_KEY", LEGACY_SECRET_KEY),
            ("ENCRYPTION_KEY", LEGACY_ENCRYPTION_KEY),
        ],
    )
    .await;
    let adopted = Adopted { server, database };

    let migrated = snapshot(adopted.database.url()).await;
    assert_eq!(
        migrated.rows, before.rows,
        "no row lost or added by the upgrade"
    );
    migrations_run_twice_change_nothing(&adopted, &migrated).await;
    every_user_logs_in_with_their_password(&adopted).await;
    alice_finds_her_overlays_settings_and_color(&adopted).await;
    secrets_decrypt_with_the_old_key(&adopted).await;
    legacy_sessions_are_not_honoured_and_stay(&adopted).await;
}

/// What a database holds: rows per table, the schema, the migrations applied.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    rows: BTreeMap<&'static str, i64>,
    schema: Vec<String>,
    migrations: Vec<(i64, Vec<u8>)>,
}

async fn snapshot(url: &str) -> Snapshot {
    let mut conn = MySqlConnection::connect(url).await.expect("connect");
    let mut rows = BTreeMap::new();
    let mut schema = Vec::new();
    for table in LEGACY_TABLES {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .expect("count rows");
        rows.insert(table, count);
        let (_, create): (String, String) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SHOW CREATE TABLE {table}")))
                .fetch_one(&mut conn)
                .await
                .expect("show create table");
        schema.push(create);
    }
    let migrations =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    conn.close().await.expect("close");
    Snapshot {
        rows,
        schema,
        migrations,
    }
}

/// Opening the store again (as a restart does) runs no migration and changes no table.
async fn migrations_run_twice_change_nothing(adopted: &Adopted, migrated: &Snapshot) {
    assert!(!migrated.migrations.is_empty(), "migrations were recorded");
    let again = melodyhue_core::store::open(adopted.database.url())
        .await
        .expect("open the adopted database again");
    again.ping().await.expect("ping");
    drop(again);
    assert_eq!(&snapshot(adopted.database.url()).await, migrated);
}

async fn login(server: &TestServer, identifier: &str, password: &str) -> Reply {
    server.login(identifier, password).await
}

/// Each user of the old service logs in with their old password (argon2-cffi hashes); the
/// banned one gets 403; a wrong password is still refused.
async fn every_user_logs_in_with_their_password(adopted: &Adopted) {
    let server = &adopted.server;
    for (identifier, password, role) in [
        ("alice@example.com", "alice-password-1", "user"),
        ("carol@example.com", "carol-password-333", "admin"),
        ("alice2@example.com", "alice2-password-4", "user"),
        ("mallory", "mallory-password-5", "moderator"),
    ] {
        let reply = login(server, identifier, password).await;
        reply.assert_status(200);
        assert_eq!(reply.body["role"], role, "{identifier}");
    }
    // The shared username picks the account whose password matches.
    let reply = login(server, "alice", "alice2-password-4").await;
    reply.assert_status(200);
    assert_eq!(reply.body["user_id"], "CInse5zQTkWweQt_xpJdqQ");
    let reply = login(server, "alice", "alice-password-1").await;
    reply.assert_status(200);
    assert_eq!(reply.body["user_id"], ALICE_ID);

    bob_logs_in(server).await;

    let banned = login(server, "spammer@example.com", "spammer-password-6").await;
    banned.assert_status(403);
    assert_eq!(banned.detail(), "User banned");
    login(server, "carol@example.com", "alice-password-1")
        .await
        .assert_status(401);
}

/// bob's e-mail was stored as `Bob@example.com`; any case finds it. His 2FA is verified, so his
/// password leads to a ticket, which a code from [`BOB_TOTP_SECRET`] (the secret the earlier
/// service encrypted) turns into tokens.
async fn bob_logs_in(server: &TestServer) {
    let mut ticket = String::new();
    for identifier in ["Bob@example.com", "bob@example.com", "bob"] {
        let reply = login(server, identifier, "bob-password-22").await;
        reply.assert_status(200);
        assert_eq!(
            reply.body["requires_2fa"],
            json!(true),
            "{identifier}: {}",
            reply.body
        );
        ticket = reply.body["ticket"].as_str().expect("ticket").to_owned();
    }
    let code =
        melodyhue_core::auth::totp::code_at(BOB_TOTP_SECRET, server.app.now()).expect("code");
    let reply = server
        .post(
            "/auth/login/2fa",
            None,
            json!({"ticket": ticket, "totp": code}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["user_id"], BOB_ID);
}

async fn access_token(server: &TestServer, identifier: &str, password: &str) -> String {
    let reply = login(server, identifier, password).await;
    reply.assert_status(200);
    reply.body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// alice sees her two overlays and her settings; her fallback color shows on `/color`.
async fn alice_finds_her_overlays_settings_and_color(adopted: &Adopted) {
    let server = &adopted.server;
    let token = access_token(server, "alice@example.com", "alice-password-1").await;
    let overlays = server.get("/overlays", Some(&token)).await;
    overlays.assert_status(200);
    let mut found: Vec<(String, String)> = overlays
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap_or_default().to_owned(),
                o["template"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("Color only".to_owned(), "color".to_owned()),
            ("Stream main".to_owned(), "classic".to_owned())
        ]
    );
    let public = server.get("/overlay/f9BrfSikRtWxErn3BMXAlw", None).await;
    public.assert_status(200);
    assert_eq!(public.body["name"], "Stream main");

    let settings = server.get("/settings/me", Some(&token)).await;
    settings.assert_status(200);
    assert_eq!(settings.body["theme"], "dark");
    assert_eq!(settings.body["default_overlay_color"], "#ff5500");

    let color = server.get(&format!("/color/{ALICE_ID}"), None).await;
    color.assert_status(200);
    assert_eq!(color.body["color"]["hex"], "#ff5500");
}

/// Secrets the old service encrypted decrypt with its `ENCRYPTION_KEY`.
async fn secrets_decrypt_with_the_old_key(adopted: &Adopted) {
    let store = adopted.server.app.store();
    let secrets = SecretBox::new(LEGACY_ENCRYPTION_KEY);
    let spotify = store
        .spotify_credentials(ALICE_ID)
        .await
        .expect("spotify")
        .expect("Alice exists");
    assert_eq!(spotify.client_id.as_deref(), Some("alice-client-id"));
    let decrypt = |value: Option<String>| {
        secrets
            .decrypt(&value.expect("an encrypted value"))
            .expect("decrypts")
    };
    assert_eq!(
        decrypt(spotify.client_secret_encrypted),
        "alice-client-secret"
    );
    assert_eq!(
        decrypt(spotify.refresh_token_encrypted),
        "alice-spotify-refresh-token"
    );
    let two_factor = store
        .two_factor(BOB_ID)
        .await
        .expect("2FA")
        .expect("bob has 2FA");
    assert!(two_factor.verified_at.is_some());
    assert_eq!(decrypt(Some(two_factor.secret_encrypted)), BOB_TOTP_SECRET);
}

/// A refresh token the old service issued (decrypted from its session row) is refused, and
/// the old rows are left as they are, to expire (docs/DECISIONS.md).
async fn legacy_sessions_are_not_honoured_and_stay(adopted: &Adopted) {
    let mut conn = MySqlConnection::connect(adopted.database.url())
        .await
        .expect("connect");
    let legacy: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, refresh_token FROM api_user_sessions WHERE refresh_token IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("legacy sessions");
    assert_eq!(legacy.len(), 5);
    let secrets = SecretBox::new(LEGACY_ENCRYPTION_KEY);
    let token = secrets.decrypt(&legacy[0].1).expect("a Fernet token");
    let expires = jwt_expiry(&token);
    let reply = adopted
        .server
        .post("/auth/refresh", None, json!({ "refresh_token": token }))
        .await;
    reply.assert_status(401);
    let expected = if expires > adopted.server.app.now().timestamp() {
        "session_revoked"
    } else {
        "token_expired"
    };
    assert_eq!(reply.detail(), expected);
    let after: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, refresh_token FROM api_user_sessions WHERE refresh_token IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("legacy sessions");
    assert_eq!(after, legacy, "legacy session rows are left untouched");
    conn.close().await.expect("close");
}

/// The `exp` claim of a JWT, read without checking it.
fn jwt_expiry(token: &str) -> i64 {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["exp"].as_i64().expect("exp")
}

/// Adoption when rows of the earlier service collide under the canonical e-mail form (its
/// `utf8mb4_general_ci` told `straße@` from `strasse@`): no row changes or goes, the oldest
/// account keeps the address, the later one still logs in by username. Addresses that the old
/// collation merged (accents) become distinct accounts.
pub async fn adoption_keeps_the_oldest_of_colliding_emails(h: &Harness) {
    let database = ScratchDatabase::create(Server::MySql).await;
    database
        .execute_script(LEGACY_DUMP)
        .await
        .expect("load the legacy dump");
    let mut conn = MySqlConnection::connect(database.url())
        .await
        .expect("connect");
    // alice's hash: both accounts have her password.
    for (id, username, email, created_at) in [
        (
            "strasseNewerAccount0001",
            "strasse-new",
            "STRASSE@example.de",
            "2021-01-01 00:00:00",
        ),
        (
            "strasseOlderAccount0001",
            "strasse-old",
            "straße@example.de",
            "2020-01-01 00:00:00",
        ),
        (
            "zoeDecomposedAccount001",
            "zoe-new",
            "zoe\u{308}@example.com",
            "2022-01-01 00:00:00",
        ),
        (
            "zoePrecomposedAccount01",
            "zoe-old",
            "zo\u{eb}@example.com",
            "2019-01-01 00:00:00",
        ),
    ] {
        sqlx::query(
            "INSERT INTO api_users (id, username, email, password_hash, role, created_at, updated_at) \
             SELECT ?, ?, ?, password_hash, 'user', ?, ? FROM api_users WHERE id = ?",
        )
        .bind(id)
        .bind(username)
        .bind(email)
        .bind(created_at)
        .bind(created_at)
        .bind(ALICE_ID)
        .execute(&mut conn)
        .await
        .expect("the old collation lets both in");
    }
    let before = snapshot(database.url()).await;
    let server = TestServer::start_with(
        h,
        &[
            ("DATABASE_URL", database.url()),
            ("JWT_SECRET", LEGACY_JWT_SECRET),
            ("ENCRYPTION_KEY", LEGACY_ENCRYPTION_KEY),
        ],
    )
    .await;
    assert_eq!(
        snapshot(database.url()).await.rows,
        before.rows,
        "no row lost"
    );
    for (address, oldest) in [
        ("STRAßE@EXAMPLE.DE", "strasseOlderAccount0001"),
        ("strasse@example.de", "strasseOlderAccount0001"),
        ("ZOE\u{308}@example.com", "zoePrecomposedAccount01"),
    ] {
        let login = server.login(address, "alice-password-1").await;
        login.assert_status(200);
        assert_eq!(login.body["user_id"], oldest, "{address}");
    }
    for (username, id) in [
        ("strasse-new", "strasseNewerAccount0001"),
        ("zoe-new", "zoeDecomposedAccount001"),
    ] {
        let login = server.login(username, "alice-password-1").await;
        login.assert_status(200);
        assert_eq!(login.body["user_id"], id);
        let canonical: Option<String> =
            sqlx::query_scalar("SELECT email_canonical FROM api_users WHERE id = ?")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(canonical, None, "{username} keeps no canonical address");
    }
    // Every legacy spelling still logs in (bob is stored as `Bob@example.com`).
    server
        .login("BOB@EXAMPLE.COM", "bob-password-22")
        .await
        .assert_status(200);
    // Accents are distinct now: a new account, which does not log into alice's.
    let accented = server
        .post(
            "/auth/register",
            None,
            json!({"username": "alice-accent", "email": "álice@exämple.com", "password": "another-password-1"}),
        )
        .await;
    accented.assert_status(200);
    server
        .login("alice@example.com", "another-password-1")
        .await
        .assert_status(401);
    // A second start changes nothing more.
    drop(server);
    let again = TestServer::start_with(
        h,
        &[
            ("DATABASE_URL", database.url()),
            ("JWT_SECRET", LEGACY_JWT_SECRET),
            ("ENCRYPTION_KEY", LEGACY_ENCRYPTION_KEY),
        ],
    )
    .await;
    again
        .login("strasse@example.de", "alice-password-1")
        .await
        .assert_status(200);
}
