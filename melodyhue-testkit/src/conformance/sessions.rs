//! The checks of refresh sessions and per-user settings.

use super::*;

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
                theme: Some("dark".parse().unwrap()),
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
                default_overlay_color: Some("#ff5500".parse().unwrap()),
                avatar_mode: Some("initials".parse().unwrap()),
                avatar_color: Some("#000000".parse().unwrap()),
                layout: Some("compact".parse().unwrap()),
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
        theme: Some("dark".parse().unwrap()),
        ..SettingsPatch::default()
    };
    let color = SettingsPatch {
        default_overlay_color: Some("#123456".parse().unwrap()),
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
