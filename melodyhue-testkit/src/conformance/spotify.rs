//! The checks of spotify credentials, refresh tokens and authorizations.

use super::*;

/// Spotify credentials start empty; a patch sets (`Some(Some)`), clears (`Some(None)`) or
/// keeps (`None`) each field.
pub async fn spotify_patches_keep_clear_and_set(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    assert_eq!(
        store.spotify_credentials(&alice.id).await.unwrap(),
        Some(SpotifyCredentials::default())
    );
    assert_eq!(
        store.spotify_credentials("no-such-user").await.unwrap(),
        None
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
        Some(expected.clone())
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
        Some(expected.clone())
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
    let both = store.spotify_credentials(&alice.id).await.unwrap().unwrap();
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
        .unwrap()?
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
        Some(SpotifyCredentials {
            client_id: Some("id".into()),
            client_secret_encrypted: Some("secret".into()),
            refresh_token_encrypted: Some("Token-B".into()),
        })
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
