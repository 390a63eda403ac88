//! The checks of warnings and bans.

use super::*;

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
