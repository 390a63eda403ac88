//! The checks of accounts: users, profiles, roles, listing and statistics.

use super::*;

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
                    theme: Some("dark".parse().unwrap()),
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
    assert_eq!(store.spotify_credentials(&victim.id).await.unwrap(), None);
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
