//! The storage conformance kit: what every [`Store`] must do.
//!
//! Each check is a free `async fn(&dyn Store)` that exercises some trait methods with their edge
//! cases and panics (like an `assert!`) on the first behaviour that differs from the traits'
//! documentation. Every check expects a fresh, empty store. A backend runs them all with one
//! line in a test target declared with `harness = false`, one test per check ([`trials`]):
//!
//! ```ignore
//! /// A fresh store per check.
//! async fn fresh_store() -> std::sync::Arc<dyn melodyhue_core::store::Store> {
//!     std::sync::Arc::new(my_crate::MyStore::default())
//! }
//! melodyhue_testkit::store_conformance!(fresh_store);
//! ```
//!
//! The factory may return anything that dereferences to `dyn Store` (for instance a value that
//! also drops a scratch database). A backend on a server names what it needs
//! (`store_conformance!(fresh_store, needs = vec![Server::Postgres.need()])`): without it every
//! check is reported as ignored with the reason, and fails under `CI=true`. The checks use fixed
//! times, not the clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::ops::Deref;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::join_all;

use melodyhue_core::store::{BanOutcome, ListQuery, RoleChange, Store, StoreError, UserListQuery};
use melodyhue_core::model::{
    Ban, EmailRevert, EmailRevertOutcome, LoginChallenge, OneTimeToken, Overlay, OverlayPatch,
    Role, Session, Settings, SettingsPatch, SpotifyAuthorization, SpotifyCredentials,
    SpotifyCredentialsPatch, TokenPurpose, User, Warning, new_id,
};
use crate::{Need, Trial, trial};

/// Defines the `main` of a test target (`harness = false`) that runs every check of the kit
/// ([`trials`]), each on a fresh store from `$factory`, an `async fn() -> S` where
/// `S: Deref<Target = dyn Store>`; `needs = ...` names what the store needs from outside.
#[macro_export]
macro_rules! store_conformance {
    ($factory:path) => {
        $crate::store_conformance!($factory, needs = Vec::new());
    };
    ($factory:path, needs = $needs:expr) => {
        fn main() -> std::process::ExitCode {
            $crate::run($crate::conformance::trials($factory, $needs))
        }
    };
}

/// The tests of [`trials`], one per check.
macro_rules! checks {
    ($factory:ident, $needs:ident; $($check:ident),* $(,)?) => {
        vec![$(
            trial(stringify!($check), $needs.clone(), move || async move {
                let store = $factory().await;
                $check(&*store).await;
            }),
        )*]
    };
}

/// Every check of the kit, named after its function, each on a fresh store from `factory`,
/// with `needs`.
pub fn trials<F, Fut, S>(factory: F, needs: Vec<Need>) -> Vec<Trial>
where
    F: Fn() -> Fut + Copy + Send + 'static,
    Fut: Future<Output = S>,
    S: Deref<Target = dyn Store>,
{
    checks!(
    factory, needs;
        ping_answers,
        users_round_trip,
        emails_are_unique_case_insensitively,
        concurrent_inserts_of_one_email_let_exactly_one_win,
        update_profile_changes_only_given_fields,
        update_password_keeps_only_the_given_family,
        replace_password_hash_is_compare_and_set,
        record_login_sets_last_login,
        set_role_never_demotes_the_last_admin,
        concurrent_demotions_keep_one_admin,
        delete_user_cascades_and_keeps_moderator_actions,
        list_users_pages_newest_first_with_exact_totals,
        list_users_search_is_literal_and_case_insensitive,
        list_users_filters_by_active_ban,
        stats_count_everything,
        sessions_round_trip,
        rotate_session_replaces_once,
        concurrent_rotations_leave_one_live_session,
        session_families_and_users_are_revoked_together,
        expired_sessions_are_deleted,
        settings_start_absent_and_patch_from_defaults,
        concurrent_settings_patches_both_apply,
        overlays_round_trip,
        list_overlays_pages_and_searches,
        two_factor_lifecycle,
        totp_steps_are_claimed_once_and_in_order,
        login_challenges_are_consumed_once_and_count_attempts,
        concurrent_challenge_attempts_never_pass_the_limit,
        password_reset_tokens_redeem_once,
        two_factor_disable_tokens_redeem_once,
        spotify_patches_keep_clear_and_set,
        spotify_refresh_tokens_compare_and_set,
        spotify_authorizations_are_taken_once,
        spotify_authorizations_expire_and_are_capped,
        warnings_list_search_and_delete,
        bans_active_expired_revoked,
        purgeable_users_are_old_permanent_active_bans,
        emails_compare_by_their_canonical_form,
        using_a_token_or_changing_the_password_invalidates_mailed_tokens,
        email_changes_are_undone_by_their_revert,
        expired_tokens_are_deleted,
    )
}

/// A fixed instant plus `seconds` (whole milliseconds, as every backend keeps them).
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn user(username: &str, email: &str, created: i64) -> User {
    User {
        id: new_id(),
        username: username.to_owned(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        role: Role::User,
        created_at: at(created),
        updated_at: at(created),
        last_login_at: None,
    }
}

async fn add_user(store: &dyn Store, username: &str, created: i64) -> User {
    let user = user(username, &format!("{username}@example.com"), created);
    store.insert_user(&user).await.expect("insert_user");
    user
}

fn session(user_id: &str, family_id: &str, expires: i64) -> Session {
    Session {
        id: new_id(),
        user_id: user_id.to_owned(),
        token_hash: hex_hash(),
        family_id: family_id.to_owned(),
        created_at: at(0),
        expires_at: at(expires),
        rotated_at: None,
    }
}

/// A unique 64-hex-digit stand-in for a SHA-256.
fn hex_hash() -> String {
    hex::encode(melodyhue_core::model::random_bytes::<32>())
}

fn overlay(owner_id: &str, name: &str, template: &str, created: i64) -> Overlay {
    Overlay {
        id: new_id(),
        owner_id: owner_id.to_owned(),
        name: name.to_owned(),
        template: template.to_owned(),
        created_at: at(created),
        updated_at: at(created),
    }
}

fn ban(user_id: &str, moderator_id: Option<&str>, created: i64, until: Option<i64>) -> Ban {
    Ban {
        id: new_id(),
        user_id: user_id.to_owned(),
        moderator_id: moderator_id.map(str::to_owned),
        reason: "spam".to_owned(),
        created_at: at(created),
        until: until.map(at),
        revoked_at: None,
    }
}

fn warning(user_id: &str, moderator_id: &str, reason: &str, created: i64) -> Warning {
    Warning {
        id: new_id(),
        user_id: user_id.to_owned(),
        moderator_id: Some(moderator_id.to_owned()),
        reason: reason.to_owned(),
        created_at: at(created),
    }
}

fn token(user_id: &str, expires: i64) -> OneTimeToken {
    OneTimeToken {
        token_hash: hex_hash(),
        user_id: user_id.to_owned(),
        created_at: at(0),
        expires_at: at(expires),
    }
}

fn page(page: u32, page_size: u32, search: Option<&str>) -> ListQuery {
    ListQuery {
        page,
        page_size,
        search: search.map(str::to_owned),
    }
}

fn users_query(search: Option<&str>, banned: Option<bool>) -> UserListQuery {
    UserListQuery {
        list: page(1, 100, search),
        banned,
    }
}

async fn usernames(store: &dyn Store, query: &UserListQuery, now: DateTime<Utc>) -> Vec<String> {
    let page = store.list_users(query, now).await.expect("list_users");
    assert_eq!(
        page.total,
        page.items.len() as u64,
        "total of a single page {query:?}"
    );
    page.items.into_iter().map(|u| u.user.username).collect()
}

fn assert_already_exists(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(StoreError::AlreadyExists(name)) => assert_eq!(name, what),
        other => panic!("expected AlreadyExists({what:?}), got {other:?}"),
    }
}

/// `ping` answers on a working store.
pub async fn ping_answers(store: &dyn Store) {
    store.ping().await.expect("ping");
}

/// A user reads back exactly as written (millisecond times included), by id, by e-mail in any
/// case, and by username (shared usernames oldest first).
pub async fn users_round_trip(store: &dyn Store) {
    let mut alice = user("alice", "Alice@Example.com", 10);
    alice.created_at += Duration::milliseconds(123);
    alice.last_login_at = Some(at(11) + Duration::milliseconds(7));
    alice.role = Role::Moderator;
    store.insert_user(&alice).await.unwrap();
    let older = user("alice", "alice2@example.com", 5);
    store.insert_user(&older).await.unwrap();

    assert_eq!(
        store.user_by_id(&alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.user_by_id("no-such-user").await.unwrap(), None);
    for email in [
        "Alice@Example.com",
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
    ] {
        let found = store.user_by_email(email).await.unwrap();
        assert_eq!(found.as_ref().map(|u| &u.id), Some(&alice.id), "{email}");
        // Stored with the case given.
        assert_eq!(found.unwrap().email, "Alice@Example.com");
    }
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
    let ids: Vec<String> = store
        .users_by_username("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, vec![older.id, alice.id]);
    assert!(store.users_by_username("ALICE").await.unwrap().is_empty());
}

/// A second account with the same e-mail in another case is refused with
/// `AlreadyExists("email")`; a reused id with `AlreadyExists("id")`.
pub async fn emails_are_unique_case_insensitively(store: &dyn Store) {
    let first = user("first", "Same@Example.com", 0);
    store.insert_user(&first).await.unwrap();
    let again = user("second", "same@EXAMPLE.com", 1);
    assert_already_exists(store.insert_user(&again).await, "email");
    let same_id = User {
        email: "other@example.com".into(),
        ..first.clone()
    };
    assert_already_exists(store.insert_user(&same_id).await, "id");
    assert!(store.user_by_id(&again.id).await.unwrap().is_none());
}

/// Many concurrent inserts of one e-mail (in different cases): exactly one succeeds, every
/// other one is `AlreadyExists("email")`.
pub async fn concurrent_inserts_of_one_email_let_exactly_one_win(store: &dyn Store) {
    let candidates: Vec<User> = (0..8)
        .map(|i| {
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            user(&format!("racer{i}"), email, i)
        })
        .collect();
    let results = join_all(candidates.iter().map(|u| store.insert_user(u))).await;
    let mut wins = 0;
    for result in results {
        match result {
            Ok(()) => wins += 1,
            Err(StoreError::AlreadyExists("email")) => {}
            Err(other) => panic!("expected AlreadyExists(\"email\"), got {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one insert wins");
    let page = store
        .list_users(&UserListQuery::default(), at(100))
        .await
        .unwrap();
    assert_eq!(page.total, 1);
}

/// `update_profile` changes only what it is given, refuses a taken e-mail (in any case) but
/// not the user's own in another case, and answers `false` for a missing user.
pub async fn update_profile_changes_only_given_fields(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;

    assert!(
        store
            .update_profile(&alice.id, Some("alicia"), None, at(10))
            .await
            .unwrap()
    );
    let now = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (now.username.as_str(), now.email.as_str()),
        ("alicia", "alice@example.com")
    );
    assert_eq!(now.updated_at, at(10));

    assert!(
        store
            .update_profile(&alice.id, None, Some("Alice@New.example"), at(11))
            .await
            .unwrap()
    );
    let now = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (now.username.as_str(), now.email.as_str()),
        ("alicia", "Alice@New.example")
    );
    assert!(
        store
            .update_profile(&alice.id, None, Some("alice@new.example"), at(12))
            .await
            .unwrap(),
        "the user's own e-mail in another case is no conflict"
    );

    match store
        .update_profile(&alice.id, None, Some("BOB@example.com"), at(13))
        .await
    {
        Err(StoreError::AlreadyExists("email")) => {}
        other => panic!("expected AlreadyExists(\"email\"), got {other:?}"),
    }
    assert_eq!(
        store.user_by_id(&bob.id).await.unwrap().unwrap().email,
        "bob@example.com"
    );
    assert!(
        !store
            .update_profile("no-such-user", Some("x"), None, at(14))
            .await
            .unwrap()
    );
}

/// `update_password` sets the hash and deletes the user's other sessions (all of them without
/// a family to keep), leaving other users' sessions alone.
pub async fn update_password_keeps_only_the_given_family(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    let kept = session(&alice.id, "family-a", 1000);
    let other = session(&alice.id, "family-b", 1000);
    let other2 = session(&alice.id, "family-b", 1000);
    let bobs = session(&bob.id, "family-a", 1000);
    for s in [&kept, &other, &other2, &bobs] {
        store.insert_session(s).await.unwrap();
    }

    let revoked = store
        .update_password(&alice.id, "new-hash", Some("family-a"), at(20))
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    let now = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(now.password_hash, "new-hash");
    assert_eq!(now.updated_at, at(20));
    assert!(
        store
            .session_by_token_hash(&kept.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session_by_token_hash(&other.token_hash)
            .await
            .unwrap()
            .is_none()
    );

    let revoked = store
        .update_password(&alice.id, "newer-hash", None, at(21))
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    assert!(
        store
            .session_by_token_hash(&kept.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_token_hash(&bobs.token_hash)
            .await
            .unwrap()
            .is_some()
    );
}

/// `replace_password_hash` sets the hash only while it is the expected one, and touches no
/// session.
pub async fn replace_password_hash_is_compare_and_set(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let live = session(&alice.id, "family", 1000);
    store.insert_session(&live).await.unwrap();
    assert!(
        !store
            .replace_password_hash(&alice.id, "not-the-hash", "rehashed")
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_password_hash(&alice.id, &alice.password_hash, "rehashed")
            .await
            .unwrap()
    );
    let now = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(now.password_hash, "rehashed");
    assert!(
        !store
            .replace_password_hash(&alice.id, &alice.password_hash, "again")
            .await
            .unwrap(),
        "a changed hash is never overwritten"
    );
    assert!(
        !store
            .replace_password_hash("no-such-user", "x", "y")
            .await
            .unwrap()
    );
    assert!(
        store
            .session_by_token_hash(&live.token_hash)
            .await
            .unwrap()
            .is_some()
    );
}

/// `record_login` sets `last_login_at` and nothing else.
pub async fn record_login_sets_last_login(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    store.record_login(&alice.id, at(30)).await.unwrap();
    let now = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(now.last_login_at, Some(at(30)));
    assert_eq!(now.updated_at, alice.updated_at);
}

/// `set_role` changes roles, answers `UserNotFound` for a missing user, and refuses to demote
/// the last admin (`LastAdmin`), while demoting one of two admins is fine.
pub async fn set_role_never_demotes_the_last_admin(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    assert_eq!(
        store
            .set_role("no-such-user", Role::Admin, at(5))
            .await
            .unwrap(),
        RoleChange::UserNotFound
    );
    assert_eq!(
        store.set_role(&alice.id, Role::Admin, at(5)).await.unwrap(),
        RoleChange::Changed
    );
    let now = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!((now.role, now.updated_at), (Role::Admin, at(5)));
    assert_eq!(
        store.set_role(&alice.id, Role::User, at(6)).await.unwrap(),
        RoleChange::LastAdmin
    );
    assert_eq!(
        store.set_role(&alice.id, Role::Admin, at(6)).await.unwrap(),
        RoleChange::Changed,
        "an admin staying admin is no demotion"
    );
    assert_eq!(
        store.set_role(&bob.id, Role::Admin, at(7)).await.unwrap(),
        RoleChange::Changed
    );
    assert_eq!(
        store
            .set_role(&alice.id, Role::Moderator, at(8))
            .await
            .unwrap(),
        RoleChange::Changed
    );
    assert_eq!(
        store.set_role(&bob.id, Role::User, at(9)).await.unwrap(),
        RoleChange::LastAdmin
    );
    assert_eq!(
        store.user_by_id(&bob.id).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert_eq!(
        store.user_by_id(&alice.id).await.unwrap().unwrap().role,
        Role::Moderator
    );
}

/// Two admins demoting each other at the same time: one succeeds, the other gets `LastAdmin`.
pub async fn concurrent_demotions_keep_one_admin(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    for u in [&alice, &bob] {
        store.set_role(&u.id, Role::Admin, at(2)).await.unwrap();
    }
    let (a, b) = tokio::join!(
        store.set_role(&alice.id, Role::User, at(3)),
        store.set_role(&bob.id, Role::User, at(3))
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| *o == RoleChange::LastAdmin);
    assert_eq!(outcomes, [RoleChange::Changed, RoleChange::LastAdmin]);
    assert_eq!(store.stats().await.unwrap().admins_count, 1);
}

/// Deleting a user removes everything of theirs; warnings and bans they issued as a moderator
/// stay, without a moderator; nobody else's data changes. A second delete answers `false`.
pub async fn delete_user_cascades_and_keeps_moderator_actions(store: &dyn Store) {
    let victim = add_user(store, "victim", 0).await;
    let moderator = add_user(store, "moderator", 1).await;
    let bystander = add_user(store, "bystander", 2).await;

    // Everything a user can own, for the victim and (as a control) the bystander.
    for u in [&victim, &bystander] {
        store
            .insert_overlay(&overlay(&u.id, "main", "classic", 3))
            .await
            .unwrap();
        store
            .insert_session(&session(&u.id, "family", 1000))
            .await
            .unwrap();
        store
            .update_settings(
                &u.id,
                &SettingsPatch {
                    theme: Some("dark".into()),
                    ..SettingsPatch::default()
                },
            )
            .await
            .unwrap();
        store
            .save_pending_two_factor(&u.id, "secret", at(4))
            .await
            .unwrap();
        store
            .update_spotify_credentials(
                &u.id,
                &SpotifyCredentialsPatch {
                    client_id: Some(Some("client".into())),
                    client_secret_encrypted: Some(Some("secret".into())),
                    refresh_token_encrypted: Some(Some("refresh".into())),
                },
                at(4),
            )
            .await
            .unwrap();
    }
    let victim_overlay = store.overlays_of(&victim.id).await.unwrap().remove(0);
    let reset = token(&victim.id, 1000);
    store
        .insert_one_time_token(TokenPurpose::PasswordReset, &reset)
        .await
        .unwrap();
    let disable = token(&victim.id, 1000);
    store
        .insert_one_time_token(TokenPurpose::TwoFactorDisable, &disable)
        .await
        .unwrap();
    let challenge = LoginChallenge {
        id: new_id(),
        user_id: victim.id.clone(),
        created_at: at(5),
        expires_at: at(1000),
        used_at: None,
        attempts: 0,
    };
    store.insert_challenge(&challenge).await.unwrap();
    // The victim is warned and banned by the moderator, and as a moderator warned and banned
    // the bystander.
    store
        .insert_warning(&warning(&victim.id, &moderator.id, "rude", 6))
        .await
        .unwrap();
    store
        .ban_user(&ban(&victim.id, Some(&moderator.id), 6, Some(50)), at(6))
        .await
        .unwrap();
    let issued_warning = warning(&bystander.id, &victim.id, "issued", 7);
    store.insert_warning(&issued_warning).await.unwrap();
    let issued_ban = ban(&bystander.id, Some(&victim.id), 7, None);
    store.ban_user(&issued_ban, at(7)).await.unwrap();

    assert!(store.delete_user(&victim.id).await.unwrap());
    assert!(!store.delete_user(&victim.id).await.unwrap());

    assert_eq!(store.user_by_id(&victim.id).await.unwrap(), None);
    assert_eq!(store.user_by_email(&victim.email).await.unwrap(), None);
    assert!(store.overlays_of(&victim.id).await.unwrap().is_empty());
    assert_eq!(store.overlay_by_id(&victim_overlay.id).await.unwrap(), None);
    assert_eq!(store.settings(&victim.id).await.unwrap(), None);
    assert_eq!(store.fallback_color(&victim.id).await.unwrap(), None);
    assert_eq!(store.two_factor(&victim.id).await.unwrap(), None);
    assert_eq!(
        store.spotify_credentials(&victim.id).await.unwrap(),
        SpotifyCredentials::default()
    );
    assert_eq!(store.challenge(&challenge.id).await.unwrap(), None);
    assert_eq!(
        store
            .redeem_password_reset(&reset.token_hash, "x", at(8))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_two_factor_disable(&disable.token_hash, at(8))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.delete_user_sessions(&victim.id).await.unwrap(), 0);
    assert_eq!(store.active_ban(&victim.id, at(8)).await.unwrap(), None);
    let warnings = store
        .list_warnings(None, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(
        warnings.total, 1,
        "only the warning the victim issued is left"
    );
    let kept = &warnings.items[0].warning;
    assert_eq!(
        (kept.id.as_str(), kept.moderator_id.as_deref()),
        (issued_warning.id.as_str(), None)
    );
    assert_eq!(warnings.items[0].moderator_username, None);
    let kept_ban = store
        .active_ban(&bystander.id, at(8))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept_ban.id.as_str(), kept_ban.moderator_id.as_deref()),
        (issued_ban.id.as_str(), None)
    );

    // The bystander's own things are untouched (their sessions went with their ban).
    assert_eq!(store.overlays_of(&bystander.id).await.unwrap().len(), 1);
    assert_eq!(
        store.settings(&bystander.id).await.unwrap().unwrap().theme,
        "dark"
    );
    assert!(store.two_factor(&bystander.id).await.unwrap().is_some());
    assert_eq!(
        store
            .spotify_credentials(&bystander.id)
            .await
            .unwrap()
            .client_id
            .as_deref(),
        Some("client")
    );
    assert!(store.user_by_id(&moderator.id).await.unwrap().is_some());
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.users_count, stats.overlays_count), (2, 1));
}

/// `list_users` pages newest first with the exact total of matching rows.
pub async fn list_users_pages_newest_first_with_exact_totals(store: &dyn Store) {
    for i in 0..25 {
        add_user(store, &format!("user{i:02}"), i).await;
    }
    let first = store
        .list_users(
            &UserListQuery {
                list: page(1, 10, None),
                banned: None,
            },
            at(100),
        )
        .await
        .unwrap();
    assert_eq!(first.total, 25);
    let names: Vec<&str> = first
        .items
        .iter()
        .map(|u| u.user.username.as_str())
        .collect();
    assert_eq!(names[0], "user24");
    assert_eq!(names[9], "user15");
    assert_eq!(names.len(), 10);
    let third = store
        .list_users(
            &UserListQuery {
                list: page(3, 10, None),
                banned: None,
            },
            at(100),
        )
        .await
        .unwrap();
    assert_eq!(third.total, 25);
    let names: Vec<&str> = third
        .items
        .iter()
        .map(|u| u.user.username.as_str())
        .collect();
    assert_eq!(names, ["user04", "user03", "user02", "user01", "user00"]);
    let beyond = store
        .list_users(
            &UserListQuery {
                list: page(9, 10, None),
                banned: None,
            },
            at(100),
        )
        .await
        .unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 25);
}

/// The user search matches username or e-mail as a case-insensitive substring, and `%`, `_`
/// and `!` match only themselves.
pub async fn list_users_search_is_literal_and_case_insensitive(store: &dyn Store) {
    for (i, name) in ["50%_off", "50xxoff", "a!b", "ab", "Zed"]
        .iter()
        .enumerate()
    {
        // The e-mails hold no wildcard, so only usernames match those.
        let email = if *name == "Zed" {
            "Zed@Example.org".to_owned()
        } else {
            format!("user{i}@example.com")
        };
        store
            .insert_user(&user(name, &email, i as i64))
            .await
            .unwrap();
    }
    let query = |search: &'static str| users_query(Some(search), None);
    assert_eq!(usernames(store, &query("%"), at(100)).await, ["50%_off"]);
    assert_eq!(usernames(store, &query("_"), at(100)).await, ["50%_off"]);
    assert_eq!(usernames(store, &query("!"), at(100)).await, ["a!b"]);
    assert_eq!(usernames(store, &query("0%_o"), at(100)).await, ["50%_off"]);
    assert_eq!(usernames(store, &query("zED"), at(100)).await, ["Zed"]);
    assert_eq!(
        usernames(store, &query("zed@EXAMPLE.O"), at(100)).await,
        ["Zed"],
        "e-mails are searched too"
    );
    assert_eq!(
        usernames(store, &query("USER1@"), at(100)).await,
        ["50xxoff"]
    );
    assert!(usernames(store, &query("nobody"), at(100)).await.is_empty());
    assert_eq!(
        usernames(store, &users_query(Some(""), None), at(100))
            .await
            .len(),
        5,
        "an empty search matches everything"
    );
}

/// `banned` filters on the ban active at `now`: expired and revoked bans do not count.
pub async fn list_users_filters_by_active_ban(store: &dyn Store) {
    let active = add_user(store, "active", 0).await;
    let expired = add_user(store, "expired", 1).await;
    let revoked = add_user(store, "revoked", 2).await;
    add_user(store, "clean", 3).await;
    let active_ban = ban(&active.id, None, 10, Some(1000));
    store.ban_user(&active_ban, at(10)).await.unwrap();
    store
        .ban_user(&ban(&expired.id, None, 10, Some(20)), at(10))
        .await
        .unwrap();
    store
        .ban_user(&ban(&revoked.id, None, 10, None), at(10))
        .await
        .unwrap();
    store.revoke_ban(&revoked.id, at(15)).await.unwrap();

    let now = at(30);
    let banned = store
        .list_users(&users_query(None, Some(true)), now)
        .await
        .unwrap();
    assert_eq!(banned.total, 1);
    assert_eq!(banned.items[0].user.id, active.id);
    let shown = banned.items[0].active_ban.clone().unwrap();
    assert_eq!(
        (shown.id, shown.until, shown.reason),
        (active_ban.id, active_ban.until, active_ban.reason)
    );
    assert_eq!(
        usernames(store, &users_query(None, Some(false)), now).await,
        ["clean", "revoked", "expired"]
    );
    let all = store
        .list_users(&users_query(None, None), now)
        .await
        .unwrap();
    assert_eq!(all.total, 4);
    assert!(
        all.items
            .iter()
            .all(|u| u.active_ban.is_some() == (u.user.id == active.id))
    );
    // Before it expired, the temporary ban counted.
    assert_eq!(
        usernames(store, &users_query(None, Some(true)), at(12)).await,
        ["expired", "active"]
    );
}

/// `stats` counts users, overlays, moderators, admins and verified 2FA, and the newest account.
pub async fn stats_count_everything(store: &dyn Store) {
    let empty = store.stats().await.unwrap();
    assert_eq!(
        (
            empty.users_count,
            empty.overlays_count,
            empty.last_user_registered_at
        ),
        (0, 0, None)
    );
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 40).await;
    let carol = add_user(store, "carol", 20).await;
    store
        .set_role(&alice.id, Role::Admin, at(50))
        .await
        .unwrap();
    store
        .set_role(&bob.id, Role::Moderator, at(50))
        .await
        .unwrap();
    store
        .insert_overlay(&overlay(&alice.id, "a", "classic", 1))
        .await
        .unwrap();
    store
        .insert_overlay(&overlay(&carol.id, "b", "classic", 2))
        .await
        .unwrap();
    store
        .insert_overlay(&overlay(&carol.id, "c", "classic", 3))
        .await
        .unwrap();
    store
        .save_pending_two_factor(&alice.id, "s", at(60))
        .await
        .unwrap();
    store
        .save_pending_two_factor(&bob.id, "s", at(60))
        .await
        .unwrap();
    store
        .mark_two_factor_verified(&bob.id, at(61))
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.users_count, 3);
    assert_eq!(stats.overlays_count, 3);
    assert_eq!(stats.moderators_count, 1);
    assert_eq!(stats.admins_count, 1);
    assert_eq!(stats.active_2fa_count, 1);
    assert_eq!(stats.last_user_registered_at, Some(at(40)));
}

/// Sessions read back by token hash exactly as written; deleting one answers whether it existed.
pub async fn sessions_round_trip(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let mut first = session(&alice.id, "family", 1000);
    first.expires_at += Duration::milliseconds(999);
    store.insert_session(&first).await.unwrap();
    assert_eq!(
        store
            .session_by_token_hash(&first.token_hash)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.session_by_token_hash(&hex_hash()).await.unwrap(),
        None
    );
    assert!(store.delete_session(&first.token_hash).await.unwrap());
    assert!(!store.delete_session(&first.token_hash).await.unwrap());
    assert_eq!(
        store
            .session_by_token_hash(&first.token_hash)
            .await
            .unwrap(),
        None
    );
}

/// `rotate_session` marks a session rotated and inserts its successor; a token that is no live
/// session (unknown, or already rotated) changes nothing. Rotated sessions stay readable until
/// a later rotation of their family forgets those rotated before its cutoff.
pub async fn rotate_session_replaces_once(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let old = session(&alice.id, "family", 1000);
    store.insert_session(&old).await.unwrap();
    assert_eq!(
        store.live_session("family").await.unwrap(),
        Some(old.clone())
    );
    let next = session(&alice.id, "family", 2000);
    assert!(
        store
            .rotate_session(&old.token_hash, &next, at(10), at(0))
            .await
            .unwrap()
    );
    assert_eq!(
        store.session_by_token_hash(&old.token_hash).await.unwrap(),
        Some(Session {
            rotated_at: Some(at(10)),
            ..old.clone()
        })
    );
    assert_eq!(
        store.session_by_token_hash(&next.token_hash).await.unwrap(),
        Some(next.clone())
    );
    assert_eq!(
        store.live_session("family").await.unwrap(),
        Some(next.clone())
    );
    assert_eq!(store.live_session("other").await.unwrap(), None);

    let replay = session(&alice.id, "family", 3000);
    for stale in [old.token_hash.as_str(), "unknown"] {
        assert!(
            !store
                .rotate_session(stale, &replay, at(11), at(1))
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store
            .session_by_token_hash(&replay.token_hash)
            .await
            .unwrap(),
        None
    );

    // The next rotation forgets the sessions rotated before its cutoff, and only those.
    let third = session(&alice.id, "family", 3000);
    assert!(
        store
            .rotate_session(&next.token_hash, &third, at(20), at(15))
            .await
            .unwrap()
    );
    assert_eq!(
        store.session_by_token_hash(&old.token_hash).await.unwrap(),
        None
    );
    assert!(
        store
            .session_by_token_hash(&next.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.live_session("family").await.unwrap(), Some(third));
}

/// Of concurrent rotations of one session exactly one succeeds: the login keeps one live
/// session.
pub async fn concurrent_rotations_leave_one_live_session(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let old = session(&alice.id, "family", 1000);
    store.insert_session(&old).await.unwrap();
    let successors: Vec<Session> = (0..8).map(|_| session(&alice.id, "family", 2000)).collect();
    let results = join_all(
        successors
            .iter()
            .map(|next| store.rotate_session(&old.token_hash, next, at(10), at(0))),
    )
    .await;
    let winners: Vec<&Session> = successors
        .iter()
        .zip(&results)
        .filter(|(_, won)| *won.as_ref().unwrap())
        .map(|(next, _)| next)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(
        store.live_session("family").await.unwrap().as_ref(),
        Some(winners[0])
    );
    assert_eq!(
        store.delete_session_family("family").await.unwrap(),
        2,
        "the rotated session and one successor"
    );
}

/// A family's sessions go together, and so do a user's; other families and users stay.
pub async fn session_families_and_users_are_revoked_together(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    let a1 = session(&alice.id, "fam-1", 1000);
    let a2 = session(&alice.id, "fam-1", 1000);
    let a3 = session(&alice.id, "fam-2", 1000);
    let b1 = session(&bob.id, "fam-3", 1000);
    for s in [&a1, &a2, &a3, &b1] {
        store.insert_session(s).await.unwrap();
    }
    assert_eq!(store.delete_session_family("fam-1").await.unwrap(), 2);
    assert_eq!(store.delete_session_family("fam-1").await.unwrap(), 0);
    assert!(
        store
            .session_by_token_hash(&a3.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.delete_user_sessions(&alice.id).await.unwrap(), 1);
    assert_eq!(store.delete_user_sessions(&alice.id).await.unwrap(), 0);
    assert!(
        store
            .session_by_token_hash(&b1.token_hash)
            .await
            .unwrap()
            .is_some()
    );
}

/// `delete_expired_sessions` removes exactly the sessions that expired before `now`.
pub async fn expired_sessions_are_deleted(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let gone = session(&alice.id, "f", 10);
    let edge = session(&alice.id, "f", 20);
    let live = session(&alice.id, "f", 30);
    for s in [&gone, &edge, &live] {
        store.insert_session(s).await.unwrap();
    }
    assert_eq!(store.delete_expired_sessions(at(20)).await.unwrap(), 1);
    assert!(
        store
            .session_by_token_hash(&gone.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_token_hash(&edge.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.delete_expired_sessions(at(31)).await.unwrap(), 2);
}

/// Settings are absent until saved; a patch starts from the defaults and changes only its
/// fields; `fallback_color` is `None` for a missing user, else the saved or default color.
pub async fn settings_start_absent_and_patch_from_defaults(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    assert_eq!(store.settings(&alice.id).await.unwrap(), None);
    assert_eq!(store.fallback_color("no-such-user").await.unwrap(), None);
    assert_eq!(
        store.fallback_color(&alice.id).await.unwrap().as_deref(),
        Some(melodyhue_core::model::DEFAULT_OVERLAY_COLOR)
    );
    let first = store
        .update_settings(
            &alice.id,
            &SettingsPatch {
                theme: Some("dark".into()),
                ..SettingsPatch::default()
            },
        )
        .await
        .unwrap();
    let expected = Settings {
        theme: "dark".into(),
        ..Settings::default()
    };
    assert_eq!(first, expected);
    assert_eq!(store.settings(&alice.id).await.unwrap(), Some(expected));
    let second = store
        .update_settings(
            &alice.id,
            &SettingsPatch {
                default_overlay_color: Some("#ff5500".into()),
                avatar_mode: Some("initials".into()),
                avatar_color: Some("#000000".into()),
                layout: Some("compact".into()),
                ..SettingsPatch::default()
            },
        )
        .await
        .unwrap();
    let expected = Settings {
        theme: "dark".into(),
        layout: "compact".into(),
        default_overlay_color: "#ff5500".into(),
        avatar_mode: "initials".into(),
        avatar_color: "#000000".into(),
    };
    assert_eq!(second, expected);
    assert_eq!(store.settings(&alice.id).await.unwrap(), Some(expected));
    assert_eq!(
        store.fallback_color(&alice.id).await.unwrap().as_deref(),
        Some("#ff5500")
    );
    let unchanged = store
        .update_settings(&alice.id, &SettingsPatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged.default_overlay_color, "#ff5500");
}

/// Concurrent patches of different fields, even the very first ones, both take effect.
pub async fn concurrent_settings_patches_both_apply(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let theme = SettingsPatch {
        theme: Some("dark".into()),
        ..SettingsPatch::default()
    };
    let color = SettingsPatch {
        default_overlay_color: Some("#123456".into()),
        ..SettingsPatch::default()
    };
    let (a, b) = tokio::join!(
        store.update_settings(&alice.id, &theme),
        store.update_settings(&alice.id, &color)
    );
    a.unwrap();
    b.unwrap();
    let saved = store.settings(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (saved.theme.as_str(), saved.default_overlay_color.as_str()),
        ("dark", "#123456")
    );
}

/// Overlays read back as written, a user's oldest first; a patch changes only its fields and
/// `updated_at`; a missing overlay updates to `None` and deletes to `false`.
pub async fn overlays_round_trip(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    let newer = overlay(&alice.id, "Newer", "classic", 20);
    let older = overlay(&alice.id, "Older", "minimal", 10);
    let long_template = "t".repeat(64);
    let bobs = overlay(&bob.id, &"n".repeat(120), &long_template, 5);
    for o in [&newer, &older, &bobs] {
        store.insert_overlay(o).await.unwrap();
    }
    assert_eq!(
        store.overlay_by_id(&bobs.id).await.unwrap(),
        Some(bobs.clone())
    );
    assert_eq!(store.overlay_by_id("no-such-overlay").await.unwrap(), None);
    assert_eq!(
        store.overlays_of(&alice.id).await.unwrap(),
        vec![older.clone(), newer.clone()]
    );
    assert!(store.overlays_of("no-such-user").await.unwrap().is_empty());

    let renamed = store
        .update_overlay(
            &older.id,
            &OverlayPatch {
                name: Some("Renamed".into()),
                template: None,
            },
            at(30),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.template.as_str(),
            renamed.updated_at
        ),
        ("Renamed", "minimal", at(30))
    );
    assert_eq!(renamed.created_at, older.created_at);
    let retemplated = store
        .update_overlay(
            &older.id,
            &OverlayPatch {
                name: None,
                template: Some("color".into()),
            },
            at(31),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (retemplated.name.as_str(), retemplated.template.as_str()),
        ("Renamed", "color")
    );
    assert_eq!(
        store.overlay_by_id(&older.id).await.unwrap(),
        Some(retemplated)
    );
    assert_eq!(
        store
            .update_overlay("no-such-overlay", &OverlayPatch::default(), at(32))
            .await
            .unwrap(),
        None
    );
    assert!(store.delete_overlay(&older.id).await.unwrap());
    assert!(!store.delete_overlay(&older.id).await.unwrap());
    assert_eq!(store.overlays_of(&alice.id).await.unwrap(), vec![newer]);
}

/// All overlays page newest first with exact totals, carry their owner's name, and the search
/// covers name, template, id, owner id and owner name, literally and case-insensitively.
pub async fn list_overlays_pages_and_searches(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bobby_tables", 1).await;
    let mut all = Vec::new();
    for i in 0..12 {
        let o = overlay(&alice.id, &format!("Overlay {i:02}"), "classic", i);
        store.insert_overlay(&o).await.unwrap();
        all.push(o);
    }
    let special = overlay(&bob.id, "100% Fun_Stuff", "Minimal", 100);
    store.insert_overlay(&special).await.unwrap();

    let first = store.list_overlays(&page(1, 5, None)).await.unwrap();
    assert_eq!(first.total, 13);
    assert_eq!(first.items[0].overlay, special);
    assert_eq!(first.items[0].owner_username, "bobby_tables");
    assert_eq!(first.items[1].overlay.name, "Overlay 11");
    assert_eq!(first.items[1].owner_username, "alice");
    let last = store.list_overlays(&page(3, 5, None)).await.unwrap();
    let names: Vec<&str> = last.items.iter().map(|o| o.overlay.name.as_str()).collect();
    assert_eq!(names, ["Overlay 02", "Overlay 01", "Overlay 00"]);

    let found = |search: &str| {
        let query = page(1, 50, Some(search));
        async move {
            let page = store.list_overlays(&query).await.unwrap();
            assert_eq!(page.total, page.items.len() as u64);
            page.items
                .into_iter()
                .map(|o| o.overlay.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("%").await, [special.id.as_str()]);
    assert_eq!(found("fun_").await, [special.id.as_str()]);
    assert_eq!(found("MINIMAL").await, [special.id.as_str()]);
    assert_eq!(found("_tab").await, [special.id.as_str()], "owner name");
    assert_eq!(found(&bob.id).await, [special.id.as_str()], "owner id");
    assert_eq!(found(&all[3].id).await, [all[3].id.as_str()], "overlay id");
    assert_eq!(found("overlay 1").await.len(), 2);
    assert!(found("!").await.is_empty());
}

/// A pending 2FA secret, its verification, replacement by a new pending one, and deletion.
pub async fn two_factor_lifecycle(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    assert_eq!(store.two_factor(&alice.id).await.unwrap(), None);
    assert!(
        !store
            .mark_two_factor_verified(&alice.id, at(1))
            .await
            .unwrap()
    );
    store
        .save_pending_two_factor(&alice.id, "enc-1", at(2))
        .await
        .unwrap();
    let pending = store.two_factor(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (
            pending.secret_encrypted.as_str(),
            pending.enabled_at,
            pending.verified_at
        ),
        ("enc-1", at(2), None)
    );
    assert!(
        store
            .mark_two_factor_verified(&alice.id, at(3))
            .await
            .unwrap()
    );
    assert!(store.claim_totp_step(&alice.id, 7).await.unwrap());
    let verified = store.two_factor(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (verified.verified_at, verified.last_used_step),
        (Some(at(3)), Some(7))
    );
    store
        .save_pending_two_factor(&alice.id, "enc-2", at(4))
        .await
        .unwrap();
    let replaced = store.two_factor(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (
            replaced.secret_encrypted.as_str(),
            replaced.verified_at,
            replaced.last_used_step
        ),
        ("enc-2", None, None)
    );
    assert!(store.delete_two_factor(&alice.id).await.unwrap());
    assert!(!store.delete_two_factor(&alice.id).await.unwrap());
    assert_eq!(store.two_factor(&alice.id).await.unwrap(), None);
}

/// A TOTP step is accepted once, older steps never, newer ones in turn; of concurrent claims of
/// one step exactly one wins; a user without 2FA claims nothing.
pub async fn totp_steps_are_claimed_once_and_in_order(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    assert!(!store.claim_totp_step(&alice.id, 1).await.unwrap());
    store
        .save_pending_two_factor(&alice.id, "enc", at(1))
        .await
        .unwrap();
    store
        .mark_two_factor_verified(&alice.id, at(1))
        .await
        .unwrap();
    assert!(store.claim_totp_step(&alice.id, 100).await.unwrap());
    assert!(!store.claim_totp_step(&alice.id, 100).await.unwrap());
    assert!(!store.claim_totp_step(&alice.id, 99).await.unwrap());
    assert!(store.claim_totp_step(&alice.id, 101).await.unwrap());
    let claims = join_all((0..6).map(|_| store.claim_totp_step(&alice.id, 200))).await;
    let wins = claims.into_iter().filter(|c| *c.as_ref().unwrap()).count();
    assert_eq!(wins, 1);
    assert_eq!(
        store
            .two_factor(&alice.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_step,
        Some(200)
    );
}

/// A login ticket reads back, counts attempts up to a limit while it is live, and is consumed
/// once, only before it expires.
pub async fn login_challenges_are_consumed_once_and_count_attempts(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let ticket = LoginChallenge {
        id: new_id(),
        user_id: alice.id.clone(),
        created_at: at(0),
        expires_at: at(300),
        used_at: None,
        attempts: 0,
    };
    store.insert_challenge(&ticket).await.unwrap();
    assert_eq!(
        store.challenge(&ticket.id).await.unwrap(),
        Some(ticket.clone())
    );
    assert_eq!(store.challenge("no-such-ticket").await.unwrap(), None);
    assert!(
        store
            .take_challenge_attempt(&ticket.id, 2, at(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_challenge_attempt(&ticket.id, 2, at(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_challenge_attempt(&ticket.id, 2, at(1))
            .await
            .unwrap(),
        "out of attempts"
    );
    assert_eq!(
        store.challenge(&ticket.id).await.unwrap().unwrap().attempts,
        2
    );
    assert!(
        store
            .take_challenge_attempt(&ticket.id, 3, at(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_challenge_attempt(&ticket.id, 9, at(300))
            .await
            .unwrap(),
        "expired"
    );
    assert!(
        !store
            .take_challenge_attempt("no-such-ticket", 9, at(1))
            .await
            .unwrap()
    );
    assert!(
        !store.consume_challenge(&ticket.id, at(300)).await.unwrap(),
        "expired"
    );
    assert!(store.consume_challenge(&ticket.id, at(299)).await.unwrap());
    assert!(
        !store.consume_challenge(&ticket.id, at(299)).await.unwrap(),
        "used"
    );
    assert!(
        !store
            .take_challenge_attempt(&ticket.id, 9, at(1))
            .await
            .unwrap(),
        "used"
    );
    let used = store.challenge(&ticket.id).await.unwrap().unwrap();
    assert_eq!((used.used_at, used.attempts), (Some(at(299)), 3));
    assert!(
        !store
            .consume_challenge("no-such-ticket", at(1))
            .await
            .unwrap()
    );

    let raced = LoginChallenge {
        id: new_id(),
        ..ticket
    };
    store.insert_challenge(&raced).await.unwrap();
    let consumed = join_all((0..4).map(|_| store.consume_challenge(&raced.id, at(1)))).await;
    assert_eq!(
        consumed
            .into_iter()
            .filter(|c| *c.as_ref().unwrap())
            .count(),
        1
    );
}

/// Of many concurrent attempts at one ticket, exactly the limit are granted.
pub async fn concurrent_challenge_attempts_never_pass_the_limit(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let ticket = LoginChallenge {
        id: new_id(),
        user_id: alice.id.clone(),
        created_at: at(0),
        expires_at: at(300),
        used_at: None,
        attempts: 0,
    };
    store.insert_challenge(&ticket).await.unwrap();
    let granted = join_all((0..40).map(|_| store.take_challenge_attempt(&ticket.id, 5, at(1))))
        .await
        .into_iter()
        .filter(|g| *g.as_ref().unwrap())
        .count();
    assert_eq!(granted, 5);
    assert_eq!(
        store.challenge(&ticket.id).await.unwrap().unwrap().attempts,
        5
    );
}

/// A password-reset token works once and before it expires: it sets the password, removes 2FA
/// and every session, in one go. Unknown, expired, used or other-purpose tokens change nothing.
pub async fn password_reset_tokens_redeem_once(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    store
        .save_pending_two_factor(&alice.id, "enc", at(1))
        .await
        .unwrap();
    let s1 = session(&alice.id, "f1", 1000);
    let s2 = session(&alice.id, "f2", 1000);
    store.insert_session(&s1).await.unwrap();
    store.insert_session(&s2).await.unwrap();
    let expired = token(&alice.id, 10);
    let valid = token(&alice.id, 3600);
    let other_purpose = token(&alice.id, 3600);
    store
        .insert_one_time_token(TokenPurpose::PasswordReset, &expired)
        .await
        .unwrap();
    store
        .insert_one_time_token(TokenPurpose::PasswordReset, &valid)
        .await
        .unwrap();
    store
        .insert_one_time_token(TokenPurpose::TwoFactorDisable, &other_purpose)
        .await
        .unwrap();

    for unusable in [&hex_hash(), &expired.token_hash, &other_purpose.token_hash] {
        assert_eq!(
            store
                .redeem_password_reset(unusable, "new-hash", at(10))
                .await
                .unwrap(),
            None
        );
    }
    let unchanged = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(unchanged.password_hash, alice.password_hash);
    assert!(store.two_factor(&alice.id).await.unwrap().is_some());

    assert_eq!(
        store
            .redeem_password_reset(&valid.token_hash, "new-hash", at(20))
            .await
            .unwrap(),
        Some(alice.id.clone())
    );
    let now = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (now.password_hash.as_str(), now.updated_at),
        ("new-hash", at(20))
    );
    assert_eq!(store.two_factor(&alice.id).await.unwrap(), None);
    assert!(
        store
            .session_by_token_hash(&s1.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_token_hash(&s2.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .redeem_password_reset(&valid.token_hash, "again", at(21))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .user_by_id(&alice.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new-hash"
    );
}

/// A 2FA-disable token works once and before it expires, and removes 2FA only.
pub async fn two_factor_disable_tokens_redeem_once(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    store
        .save_pending_two_factor(&alice.id, "enc", at(1))
        .await
        .unwrap();
    store
        .mark_two_factor_verified(&alice.id, at(1))
        .await
        .unwrap();
    let kept = session(&alice.id, "f", 1000);
    store.insert_session(&kept).await.unwrap();
    let expired = token(&alice.id, 10);
    let valid = token(&alice.id, 3600);
    let reset = token(&alice.id, 3600);
    store
        .insert_one_time_token(TokenPurpose::TwoFactorDisable, &expired)
        .await
        .unwrap();
    store
        .insert_one_time_token(TokenPurpose::TwoFactorDisable, &valid)
        .await
        .unwrap();
    store
        .insert_one_time_token(TokenPurpose::PasswordReset, &reset)
        .await
        .unwrap();
    for unusable in [&hex_hash(), &expired.token_hash, &reset.token_hash] {
        assert_eq!(
            store
                .redeem_two_factor_disable(unusable, at(10))
                .await
                .unwrap(),
            None
        );
    }
    assert!(store.two_factor(&alice.id).await.unwrap().is_some());
    assert_eq!(
        store
            .redeem_two_factor_disable(&valid.token_hash, at(20))
            .await
            .unwrap(),
        Some(alice.id.clone())
    );
    assert_eq!(store.two_factor(&alice.id).await.unwrap(), None);
    assert!(
        store
            .session_by_token_hash(&kept.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .redeem_two_factor_disable(&valid.token_hash, at(21))
            .await
            .unwrap(),
        None
    );
}

/// Spotify credentials start empty; a patch sets (`Some(Some)`), clears (`Some(None)`) or
/// keeps (`None`) each field.
pub async fn spotify_patches_keep_clear_and_set(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    assert_eq!(
        store.spotify_credentials(&alice.id).await.unwrap(),
        SpotifyCredentials::default()
    );
    assert_eq!(
        store.spotify_credentials("no-such-user").await.unwrap(),
        SpotifyCredentials::default()
    );
    let app = store
        .update_spotify_credentials(
            &alice.id,
            &SpotifyCredentialsPatch {
                client_id: Some(Some("id".into())),
                client_secret_encrypted: Some(Some("secret".into())),
                refresh_token_encrypted: None,
            },
            at(1),
        )
        .await
        .unwrap();
    let expected = SpotifyCredentials {
        client_id: Some("id".into()),
        client_secret_encrypted: Some("secret".into()),
        refresh_token_encrypted: None,
    };
    assert_eq!(app, expected);
    assert_eq!(
        store.spotify_credentials(&alice.id).await.unwrap(),
        expected
    );
    let connected = store
        .update_spotify_credentials(
            &alice.id,
            &SpotifyCredentialsPatch {
                refresh_token_encrypted: Some(Some("refresh".into())),
                ..SpotifyCredentialsPatch::default()
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        connected,
        SpotifyCredentials {
            refresh_token_encrypted: Some("refresh".into()),
            ..expected.clone()
        }
    );
    let cleared = store
        .update_spotify_credentials(
            &alice.id,
            &SpotifyCredentialsPatch {
                client_secret_encrypted: Some(None),
                refresh_token_encrypted: Some(None),
                ..SpotifyCredentialsPatch::default()
            },
            at(3),
        )
        .await
        .unwrap();
    let expected = SpotifyCredentials {
        client_id: Some("id".into()),
        client_secret_encrypted: None,
        refresh_token_encrypted: None,
    };
    assert_eq!(cleared, expected);
    assert_eq!(
        store.spotify_credentials(&alice.id).await.unwrap(),
        expected
    );
    let concurrent = (
        SpotifyCredentialsPatch {
            client_secret_encrypted: Some(Some("s2".into())),
            ..SpotifyCredentialsPatch::default()
        },
        SpotifyCredentialsPatch {
            refresh_token_encrypted: Some(Some("r2".into())),
            ..SpotifyCredentialsPatch::default()
        },
    );
    let (a, b) = tokio::join!(
        store.update_spotify_credentials(&alice.id, &concurrent.0, at(4)),
        store.update_spotify_credentials(&alice.id, &concurrent.1, at(4))
    );
    a.unwrap();
    b.unwrap();
    let both = store.spotify_credentials(&alice.id).await.unwrap();
    assert_eq!(
        (
            both.client_secret_encrypted.as_deref(),
            both.refresh_token_encrypted.as_deref()
        ),
        (Some("s2"), Some("r2"))
    );
}

fn authorization(user_id: &str, created: i64, expires: i64) -> SpotifyAuthorization {
    SpotifyAuthorization {
        state_hash: hex_hash(),
        user_id: user_id.to_owned(),
        redirect_uri: format!("https://app.example/cb?n={created}"),
        created_at: at(created),
        expires_at: at(expires),
    }
}

async fn refresh_token_of(store: &dyn Store, user_id: &str) -> Option<String> {
    store
        .spotify_credentials(user_id)
        .await
        .unwrap()
        .refresh_token_encrypted
}

/// The refresh token is replaced only when it is exactly the expected one (case included), the
/// other fields untouched; of concurrent replacements of one token, exactly one wins.
pub async fn spotify_refresh_tokens_compare_and_set(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    assert!(
        !store
            .replace_spotify_refresh_token(&alice.id, "r1", Some("r2"), at(1))
            .await
            .unwrap(),
        "nothing stored yet"
    );
    assert!(
        !store
            .replace_spotify_refresh_token("no-such-user", "r1", None, at(1))
            .await
            .unwrap()
    );
    store
        .update_spotify_credentials(
            &alice.id,
            &SpotifyCredentialsPatch {
                client_id: Some(Some("id".into())),
                client_secret_encrypted: Some(Some("secret".into())),
                refresh_token_encrypted: Some(Some("Token-A".into())),
            },
            at(1),
        )
        .await
        .unwrap();
    for stale in ["token-a", "TOKEN-A", "Token-B", ""] {
        assert!(
            !store
                .replace_spotify_refresh_token(&alice.id, stale, None, at(2))
                .await
                .unwrap(),
            "{stale:?} is not the stored token"
        );
    }
    assert_eq!(
        refresh_token_of(store, &alice.id).await.as_deref(),
        Some("Token-A")
    );
    assert!(
        store
            .replace_spotify_refresh_token(&alice.id, "Token-A", Some("Token-B"), at(3))
            .await
            .unwrap()
    );
    assert_eq!(
        store.spotify_credentials(&alice.id).await.unwrap(),
        SpotifyCredentials {
            client_id: Some("id".into()),
            client_secret_encrypted: Some("secret".into()),
            refresh_token_encrypted: Some("Token-B".into()),
        }
    );
    // A failure of the old token may not clear the newer one.
    assert!(
        !store
            .replace_spotify_refresh_token(&alice.id, "Token-A", None, at(4))
            .await
            .unwrap()
    );
    assert_eq!(
        refresh_token_of(store, &alice.id).await.as_deref(),
        Some("Token-B")
    );
    let racers: Vec<String> = (0..8).map(|i| format!("Token-C{i}")).collect();
    let outcomes =
        join_all(racers.iter().map(|new| {
            store.replace_spotify_refresh_token(&alice.id, "Token-B", Some(new), at(5))
        }))
        .await;
    let winners: Vec<&String> = racers
        .iter()
        .zip(&outcomes)
        .filter(|(_, won)| *won.as_ref().unwrap())
        .map(|(new, _)| new)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one replacement wins: {outcomes:?}"
    );
    assert_eq!(
        refresh_token_of(store, &alice.id).await.as_ref(),
        Some(winners[0])
    );
    assert!(
        store
            .replace_spotify_refresh_token(&alice.id, winners[0], None, at(6))
            .await
            .unwrap()
    );
    assert_eq!(refresh_token_of(store, &alice.id).await, None);
    assert_eq!(
        store
            .spotify_credentials(&alice.id)
            .await
            .unwrap()
            .client_id
            .as_deref(),
        Some("id"),
        "clearing the token keeps the app"
    );
}

/// An authorization is taken once, only by its user, only before it expires: by its state, or
/// the user's newest without one. Of concurrent takes of one authorization exactly one gets it.
pub async fn spotify_authorizations_are_taken_once(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    let older = authorization(&alice.id, 10, 600);
    let newer = authorization(&alice.id, 20, 600);
    for a in [&older, &newer] {
        store
            .insert_spotify_authorization(a, 10, at(20))
            .await
            .unwrap();
    }
    let take = |user: &str, state: Option<&str>, now: i64| {
        let (user, state) = (user.to_owned(), state.map(str::to_owned));
        async move {
            store
                .take_spotify_authorization(&user, state.as_deref(), at(now))
                .await
                .unwrap()
        }
    };
    assert_eq!(take(&bob.id, Some(&older.state_hash), 30).await, None);
    assert_eq!(take(&bob.id, None, 30).await, None);
    assert_eq!(take(&alice.id, Some(&hex_hash()), 30).await, None);
    assert_eq!(
        take(&alice.id, Some(&older.state_hash), 600).await,
        None,
        "expired at its expiry"
    );
    assert_eq!(
        take(&alice.id, Some(&older.state_hash), 30).await,
        Some(older.clone()),
        "another user's attempt did not use it up"
    );
    assert_eq!(take(&alice.id, Some(&older.state_hash), 31).await, None);
    assert_eq!(take(&alice.id, None, 32).await, Some(newer.clone()));
    assert_eq!(take(&alice.id, None, 33).await, None);
    assert_eq!(take(&alice.id, Some(&newer.state_hash), 33).await, None);

    let contested = authorization(&alice.id, 40, 600);
    store
        .insert_spotify_authorization(&contested, 10, at(40))
        .await
        .unwrap();
    let by_state = join_all((0..8).map(|_| take(&alice.id, Some(&contested.state_hash), 41))).await;
    assert_eq!(
        by_state.iter().flatten().collect::<Vec<_>>(),
        vec![&contested]
    );
    let pair = [
        authorization(&alice.id, 50, 600),
        authorization(&alice.id, 51, 600),
    ];
    for a in &pair {
        store
            .insert_spotify_authorization(a, 10, at(51))
            .await
            .unwrap();
    }
    let newest = join_all((0..8).map(|_| take(&alice.id, None, 52))).await;
    let mut taken: Vec<&SpotifyAuthorization> = newest.iter().flatten().collect();
    taken.sort_by_key(|a| a.created_at);
    assert_eq!(taken, pair.iter().collect::<Vec<_>>(), "each taken once");
    let twice = authorization(&alice.id, 60, 600);
    store
        .insert_spotify_authorization(&twice, 10, at(60))
        .await
        .unwrap();
    assert_already_exists(
        store.insert_spotify_authorization(&twice, 10, at(60)).await,
        "id",
    );
}

/// Inserting deletes every expired authorization and keeps a user's newest `max_per_user`.
pub async fn spotify_authorizations_expire_and_are_capped(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    let short_lived = authorization(&alice.id, 0, 100);
    store
        .insert_spotify_authorization(&short_lived, 3, at(0))
        .await
        .unwrap();
    let batch: Vec<SpotifyAuthorization> =
        (1..=4).map(|i| authorization(&alice.id, i, 1000)).collect();
    for a in &batch {
        store
            .insert_spotify_authorization(a, 3, a.created_at)
            .await
            .unwrap();
    }
    // The cap of 3 pushed out the short-lived one and then the oldest of the batch.
    for gone in [&short_lived, &batch[0]] {
        assert_eq!(
            store
                .take_spotify_authorization(&alice.id, Some(&gone.state_hash), at(5))
                .await
                .unwrap(),
            None
        );
    }
    // Bob's insert, once alice's are expired, deletes them (taken at a time they were alive).
    store
        .insert_spotify_authorization(&authorization(&bob.id, 1000, 2000), 3, at(1000))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_spotify_authorization(&alice.id, None, at(5))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .take_spotify_authorization(&bob.id, None, at(1001))
            .await
            .unwrap()
            .is_some()
    );
    // Deleting a user deletes their authorizations.
    let pending = authorization(&alice.id, 1100, 2000);
    store
        .insert_spotify_authorization(&pending, 3, at(1100))
        .await
        .unwrap();
    assert!(store.delete_user(&alice.id).await.unwrap());
    assert_eq!(
        store
            .take_spotify_authorization(&alice.id, None, at(1101))
            .await
            .unwrap(),
        None
    );
}

/// Warnings list newest first with exact totals and both parties' names, per user or all,
/// searched literally over reason, ids, names and e-mails; they delete one by one or per user.
pub async fn warnings_list_search_and_delete(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    let moderator = add_user(store, "mod_erator", 2).await;
    let w1 = warning(&alice.id, &moderator.id, "Offensive overlay name", 10);
    let w2 = warning(&alice.id, &moderator.id, "100% spam", 20);
    let w3 = warning(&bob.id, &moderator.id, "Rude", 30);
    for w in [&w1, &w2, &w3] {
        store.insert_warning(w).await.unwrap();
    }
    let all = store
        .list_warnings(None, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(all.total, 3);
    let ids: Vec<&str> = all.items.iter().map(|w| w.warning.id.as_str()).collect();
    assert_eq!(ids, [w3.id.as_str(), w2.id.as_str(), w1.id.as_str()]);
    let view = &all.items[1];
    assert_eq!(view.warning, w2);
    assert_eq!(view.user_username.as_deref(), Some("alice"));
    assert_eq!(view.user_email.as_deref(), Some("alice@example.com"));
    assert_eq!(view.moderator_username.as_deref(), Some("mod_erator"));
    assert_eq!(
        view.moderator_email.as_deref(),
        Some("mod_erator@example.com")
    );

    let alices = store
        .list_warnings(Some(&alice.id), &page(2, 1, None))
        .await
        .unwrap();
    assert_eq!(alices.total, 2);
    assert_eq!(alices.items.len(), 1);
    assert_eq!(alices.items[0].warning.id, w1.id);

    let search = |user: Option<&'static str>, term: &'static str| {
        let query = page(1, 50, Some(term));
        let user = user.map(|_| alice.id.clone());
        async move {
            let found = store.list_warnings(user.as_deref(), &query).await.unwrap();
            assert_eq!(found.total, found.items.len() as u64);
            found
                .items
                .into_iter()
                .map(|w| w.warning.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search(None, "%").await, [w2.id.as_str()]);
    assert_eq!(search(None, "OFFENSIVE").await, [w1.id.as_str()]);
    assert_eq!(search(None, "BOB@EXAMPLE").await, [w3.id.as_str()]);
    assert_eq!(
        search(None, "d_e").await,
        [w3.id.as_str(), w2.id.as_str(), w1.id.as_str()]
    );
    assert_eq!(
        search(Some("alice"), "d_e").await,
        [w2.id.as_str(), w1.id.as_str()]
    );
    assert!(search(None, "_xyz").await.is_empty());

    assert!(store.delete_warning(&w3.id).await.unwrap());
    assert!(!store.delete_warning(&w3.id).await.unwrap());
    assert_eq!(store.delete_user_warnings(&alice.id).await.unwrap(), 2);
    assert_eq!(store.delete_user_warnings(&alice.id).await.unwrap(), 0);
    assert_eq!(
        store
            .list_warnings(None, &ListQuery::default())
            .await
            .unwrap()
            .total,
        0
    );
}

/// A ban revokes every session; a second one while it holds is `AlreadyBanned`; a missing user
/// is `UserNotFound`. Temporary bans end at `until`; revoked bans end at once; then a new ban
/// may start. Of two concurrent bans of one user, exactly one is made.
pub async fn bans_active_expired_revoked(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let moderator = add_user(store, "moderator", 1).await;
    store
        .insert_session(&session(&alice.id, "a", 1000))
        .await
        .unwrap();
    store
        .insert_session(&session(&alice.id, "b", 1000))
        .await
        .unwrap();
    let kept = session(&moderator.id, "m", 1000);
    store.insert_session(&kept).await.unwrap();

    assert_eq!(store.active_ban(&alice.id, at(5)).await.unwrap(), None);
    assert_eq!(
        store
            .ban_user(&ban("no-such-user", None, 5, None), at(5))
            .await
            .unwrap(),
        BanOutcome::UserNotFound
    );
    let temporary = ban(&alice.id, Some(&moderator.id), 10, Some(100));
    assert_eq!(
        store.ban_user(&temporary, at(10)).await.unwrap(),
        BanOutcome::Banned {
            revoked_sessions: 2
        }
    );
    assert!(
        store
            .session_by_token_hash(&kept.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .ban_user(&ban(&alice.id, None, 11, None), at(11))
            .await
            .unwrap(),
        BanOutcome::AlreadyBanned
    );
    assert_eq!(
        store.active_ban(&alice.id, at(99)).await.unwrap(),
        Some(temporary.clone())
    );
    assert_eq!(
        store.active_ban(&alice.id, at(100)).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.revoke_ban(&alice.id, at(100)).await.unwrap(), None);

    let permanent = ban(&alice.id, None, 200, None);
    assert_eq!(
        store.ban_user(&permanent, at(200)).await.unwrap(),
        BanOutcome::Banned {
            revoked_sessions: 0
        }
    );
    assert_eq!(
        store.active_ban(&alice.id, at(10_000)).await.unwrap(),
        Some(permanent.clone())
    );
    assert_eq!(
        store.revoke_ban(&alice.id, at(300)).await.unwrap(),
        Some(at(300))
    );
    assert_eq!(store.active_ban(&alice.id, at(301)).await.unwrap(), None);
    assert_eq!(store.revoke_ban(&alice.id, at(302)).await.unwrap(), None);

    let (a, b) = (
        ban(&alice.id, None, 400, None),
        ban(&alice.id, None, 400, None),
    );
    let (ra, rb) = tokio::join!(store.ban_user(&a, at(400)), store.ban_user(&b, at(400)));
    let mut outcomes = [ra.unwrap(), rb.unwrap()];
    outcomes.sort_by_key(|o| *o == BanOutcome::AlreadyBanned);
    assert_eq!(
        outcomes,
        [
            BanOutcome::Banned {
                revoked_sessions: 0
            },
            BanOutcome::AlreadyBanned
        ]
    );
}

/// `purgeable_users` lists users under an active permanent ban made before the cutoff, once
/// each; temporary, revoked and recent bans do not count.
pub async fn purgeable_users_are_old_permanent_active_bans(store: &dyn Store) {
    let old = add_user(store, "old", 0).await;
    let recent = add_user(store, "recent", 1).await;
    let temporary = add_user(store, "temporary", 2).await;
    let revoked = add_user(store, "revoked", 3).await;
    add_user(store, "clean", 4).await;
    store
        .ban_user(&ban(&old.id, None, 10, None), at(10))
        .await
        .unwrap();
    store
        .ban_user(&ban(&recent.id, None, 500, None), at(500))
        .await
        .unwrap();
    store
        .ban_user(&ban(&temporary.id, None, 10, Some(100_000)), at(10))
        .await
        .unwrap();
    store
        .ban_user(&ban(&revoked.id, None, 10, None), at(10))
        .await
        .unwrap();
    store.revoke_ban(&revoked.id, at(20)).await.unwrap();
    assert_eq!(
        store.purgeable_users(at(100)).await.unwrap(),
        vec![old.id.clone()]
    );
    let mut later = store.purgeable_users(at(1000)).await.unwrap();
    later.sort();
    let mut expected = vec![old.id, recent.id];
    expected.sort();
    assert_eq!(later, expected);
}

fn revert(user_id: &str, old_email: &str, new_email: &str, created: i64) -> EmailRevert {
    EmailRevert {
        token_hash: hex_hash(),
        user_id: user_id.to_owned(),
        old_email: old_email.to_owned(),
        new_email: new_email.to_owned(),
        created_at: at(created),
        expires_at: at(created + 7 * 86_400),
    }
}

/// E-mails are one account per canonical form (NFC plus full case folding), accents distinct.
pub async fn emails_compare_by_their_canonical_form(store: &dyn Store) {
    for (taken, again) in [
        ("Össi@example.com", "össi@example.com"),
        ("zo\u{eb}@example.com", "ZOE\u{308}@example.com"),
        ("strasse@example.de", "STRAßE@example.de"),
    ] {
        let first = user("first", taken, 0);
        store.insert_user(&first).await.unwrap();
        assert_already_exists(store.insert_user(&user("second", again, 1)).await, "email");
        let found = store.user_by_email(again).await.unwrap().unwrap();
        assert_eq!((found.id, found.email), (first.id, taken.to_owned()));
    }
    store
        .insert_user(&user("plain", "alice@example.com", 2))
        .await
        .unwrap();
    store
        .insert_user(&user("accent", "álice@exämple.com", 3))
        .await
        .unwrap();
    let found = store
        .user_by_email("ALICE@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.username, "plain");
    // Updates keep the form too.
    let mover = add_user(store, "mover", 4).await;
    assert_already_exists(
        store
            .update_profile(&mover.id, None, Some("ÖSSI@EXAMPLE.COM"), at(5))
            .await
            .map(drop),
        "email",
    );
    store
        .update_profile(&mover.id, None, Some("Möver@example.com"), at(5))
        .await
        .unwrap();
    let found = store
        .user_by_email("MÖVER@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, mover.id);
    assert!(
        store
            .user_by_email("mover@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // Staff search compares canonical forms.
    let names = usernames(store, &users_query(Some("ÖSSI@"), None), at(10)).await;
    assert_eq!(names, ["first"]);
}

/// Using a reset or 2FA-disable token, or changing the password, invalidates every other
/// outstanding reset and 2FA-disable token of the user (and of nobody else).
pub async fn using_a_token_or_changing_the_password_invalidates_mailed_tokens(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 0).await;
    let tokens = [
        (TokenPurpose::PasswordReset, token(&alice.id, 3600)),
        (TokenPurpose::PasswordReset, token(&alice.id, 3600)),
        (TokenPurpose::TwoFactorDisable, token(&alice.id, 3600)),
        (TokenPurpose::PasswordReset, token(&bob.id, 3600)),
    ];
    for (purpose, token) in &tokens {
        store.insert_one_time_token(*purpose, token).await.unwrap();
    }
    assert!(
        store
            .redeem_password_reset(&tokens[1].1.token_hash, "h", at(10))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .redeem_password_reset(&tokens[0].1.token_hash, "h", at(11))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_two_factor_disable(&tokens[2].1.token_hash, at(11))
            .await
            .unwrap(),
        None
    );
    // bob's token is untouched.
    let disable = token(&alice.id, 3600);
    store
        .insert_one_time_token(TokenPurpose::TwoFactorDisable, &disable)
        .await
        .unwrap();
    let reset = token(&alice.id, 3600);
    store
        .insert_one_time_token(TokenPurpose::PasswordReset, &reset)
        .await
        .unwrap();
    assert!(
        store
            .redeem_two_factor_disable(&disable.token_hash, at(12))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .redeem_password_reset(&reset.token_hash, "h", at(13))
            .await
            .unwrap(),
        None
    );
    let reset = token(&alice.id, 3600);
    store
        .insert_one_time_token(TokenPurpose::PasswordReset, &reset)
        .await
        .unwrap();
    store
        .update_password(&alice.id, "new", None, at(14))
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_password_reset(&reset.token_hash, "h", at(15))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_password_reset(&tokens[3].1.token_hash, "h", at(16))
            .await
            .unwrap(),
        Some(bob.id)
    );
}

/// An e-mail change is stored with its revert; a revert restores its old address once, ends
/// the user's sessions and mailed tokens, spends later reverts and keeps earlier ones.
pub async fn email_changes_are_undone_by_their_revert(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let other = add_user(store, "other", 0).await;
    let session = session(&alice.id, "f", 10_000_000);
    store.insert_session(&session).await.unwrap();
    let to_b = revert(&alice.id, "alice@example.com", "b@example.com", 10);
    assert!(
        store
            .change_email(&to_b, Some("alicia"), at(10))
            .await
            .unwrap()
    );
    let changed = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (changed.email.as_str(), changed.username.as_str()),
        ("b@example.com", "alicia")
    );
    assert_already_exists(
        store
            .change_email(
                &revert(&alice.id, "b@example.com", "OTHER@example.com", 11),
                None,
                at(11),
            )
            .await
            .map(drop),
        "email",
    );
    assert!(
        !store
            .change_email(
                &revert("nobody", "x@example.com", "y@example.com", 11),
                None,
                at(11)
            )
            .await
            .unwrap()
    );
    let to_c = revert(&alice.id, "b@example.com", "c@example.com", 20);
    assert!(store.change_email(&to_c, None, at(20)).await.unwrap());
    let reset = token(&alice.id, 100_000);
    store
        .insert_one_time_token(TokenPurpose::PasswordReset, &reset)
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_email_revert(&hex_hash(), at(30))
            .await
            .unwrap(),
        EmailRevertOutcome::Invalid
    );
    assert_eq!(
        store
            .redeem_email_revert(&to_c.token_hash, at(30))
            .await
            .unwrap(),
        EmailRevertOutcome::Reverted {
            user_id: alice.id.clone(),
            restored_email: "b@example.com".into(),
            replaced_email: "c@example.com".into(),
        }
    );
    assert!(
        store
            .session_by_token_hash(&session.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .redeem_password_reset(&reset.token_hash, "h", at(31))
            .await
            .unwrap(),
        None
    );
    // The earlier revert still works; the later one is spent.
    assert_eq!(
        store
            .redeem_email_revert(&to_b.token_hash, at(40))
            .await
            .unwrap(),
        EmailRevertOutcome::Reverted {
            user_id: alice.id.clone(),
            restored_email: "alice@example.com".into(),
            replaced_email: "b@example.com".into(),
        }
    );
    assert_eq!(
        store
            .redeem_email_revert(&to_c.token_hash, at(41))
            .await
            .unwrap(),
        EmailRevertOutcome::Invalid
    );
    assert_eq!(
        store
            .user_by_email("ALICE@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        alice.id
    );
    // An address another account took meanwhile is not restored; the revert stays usable.
    let to_d = revert(&alice.id, "alice@example.com", "d@example.com", 50);
    assert!(store.change_email(&to_d, None, at(50)).await.unwrap());
    store
        .update_profile(&other.id, None, Some("Alice@example.com"), at(51))
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_email_revert(&to_d.token_hash, at(52))
            .await
            .unwrap(),
        EmailRevertOutcome::AddressTaken
    );
    store
        .update_profile(&other.id, None, Some("other@example.com"), at(53))
        .await
        .unwrap();
    // Expired reverts do nothing.
    assert_eq!(
        store
            .redeem_email_revert(&to_d.token_hash, at(50 + 7 * 86_400))
            .await
            .unwrap(),
        EmailRevertOutcome::Invalid
    );
    assert!(matches!(
        store
            .redeem_email_revert(&to_d.token_hash, at(54))
            .await
            .unwrap(),
        EmailRevertOutcome::Reverted { .. }
    ));
    // Deleting the user deletes their reverts.
    assert!(store.delete_user(&alice.id).await.unwrap());
}

/// The purge deletes expired mailed tokens, reverts and login tickets, and nothing else.
pub async fn expired_tokens_are_deleted(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    for (purpose, expires) in [
        (TokenPurpose::PasswordReset, 10),
        (TokenPurpose::PasswordReset, 1000),
        (TokenPurpose::TwoFactorDisable, 10),
    ] {
        store
            .insert_one_time_token(purpose, &token(&alice.id, expires))
            .await
            .unwrap();
    }
    let mut early = revert(&alice.id, "alice@example.com", "b@example.com", 0);
    early.expires_at = at(10);
    assert!(store.change_email(&early, None, at(0)).await.unwrap());
    assert_eq!(store.delete_expired_tokens(at(100)).await.unwrap(), 3);
    assert_eq!(store.delete_expired_tokens(at(100)).await.unwrap(), 0);
    assert_eq!(store.delete_expired_tokens(at(2000)).await.unwrap(), 1);
}
