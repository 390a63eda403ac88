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

use crate::{Need, Trial, trial};
use melodyhue_core::model::{
    Ban, EmailRevert, EmailRevertOutcome, LoginChallenge, OneTimeToken, Overlay, OverlayPatch,
    Role, Session, Settings, SettingsPatch, SpotifyAuthorization, SpotifyCredentials,
    SpotifyCredentialsPatch, TokenPurpose, User, Warning, new_id,
};
use melodyhue_core::store::{BanOutcome, ListQuery, RoleChange, Store, StoreError, UserListQuery};

// The checks, by area; each is public here too (`conformance::ping_answers`).
mod moderation;
mod overlays;
mod sessions;
mod spotify;
mod tokens;
mod two_factor;
mod users;

pub use moderation::*;
pub use overlays::*;
pub use sessions::*;
pub use spotify::*;
pub use tokens::*;
pub use two_factor::*;
pub use users::*;

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
