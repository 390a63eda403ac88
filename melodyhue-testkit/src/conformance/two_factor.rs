//! The checks of two-factor authentication: secrets, TOTP steps, login tickets.

use super::*;

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
