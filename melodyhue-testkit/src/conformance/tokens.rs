//! The checks of mailed one-time tokens, canonical e-mails and e-mail reverts.

use super::*;

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
