//! Connecting a Spotify account: the app credentials, the authorization URL, the OAuth
//! callback and its `state`.

use serde_json::json;

use super::{
    FRONTEND_CALLBACK, authorize, cover_png, hex, playing, second_node, setup, user_with_app,
};
use crate::fake_spotify::Endpoint;
use crate::suite::{Harness, Reply, TEST_ENCRYPTION_KEY, TestUser};
use melodyhue_core::color::{self};
use melodyhue_core::secrets::SecretBox;

pub async fn spotify_credentials_are_stored_encrypted(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = s.server.register("creds").await;
    let token = Some(user.access_token.as_str());
    let status = s.server.get("/spotify/credentials/status", token).await;
    status.assert_status(200);
    assert_eq!(
        status.body,
        json!({"has_client_id": false, "has_client_secret": false, "has_refresh_token": false})
    );
    let patched = s
        .server
        .patch(
            "/spotify/credentials",
            token,
            json!({"client_id": "cid", "client_secret": "top-secret", "refresh_token": "rt-1"}),
        )
        .await;
    patched.assert_status(200);
    assert_eq!(
        patched.body,
        json!({"has_client_id": true, "has_client_secret": true, "has_refresh_token": true})
    );
    let stored = s
        .server
        .app
        .store()
        .spotify_credentials(&user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.client_id.as_deref(), Some("cid"));
    let secret = stored.client_secret_encrypted.unwrap();
    assert!(!secret.contains("top-secret"));
    let secrets = SecretBox::new(TEST_ENCRYPTION_KEY);
    assert_eq!(secrets.decrypt(&secret).unwrap(), "top-secret");
    assert_eq!(
        secrets
            .decrypt(&stored.refresh_token_encrypted.unwrap())
            .unwrap(),
        "rt-1"
    );
    // A blank value clears; an absent one keeps.
    let cleared = s
        .server
        .patch(
            "/spotify/credentials",
            token,
            json!({"client_secret": "  "}),
        )
        .await;
    assert_eq!(
        cleared.body,
        json!({"has_client_id": true, "has_client_secret": false, "has_refresh_token": true})
    );
    s.server
        .patch("/spotify/credentials", token, json!({"client_id": 5}))
        .await
        .assert_status(422);
    s.server
        .get("/spotify/credentials/status", None)
        .await
        .assert_status(401);
}

pub async fn spotify_authorize_url(h: &Harness) {
    let s = setup(
        h,
        "3",
        &[("SPOTIFY_REDIRECT_URI", "https://app.example/cb")],
    )
    .await;
    let user = s.server.register("authurl").await;
    let token = Some(user.access_token.as_str());
    let missing = s.server.get("/spotify/auth/url", token).await;
    missing.assert_status(400);
    assert_eq!(missing.detail(), "Spotify client id not configured");
    s.server
        .patch("/spotify/credentials", token, json!({"client_id": "my id"}))
        .await
        .assert_status(200);
    let default = s.server.get("/spotify/auth/url", token).await;
    default.assert_status(200);
    let url = default.body["url"].as_str().unwrap();
    let (without_state, state) = url.split_once("&state=").unwrap();
    assert_eq!(
        without_state,
        format!(
            "{}/authorize?client_id=my%20id&response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=user-read-currently-playing%20user-read-playback-state&show_dialog=false",
            s.fake.url()
        )
    );
    // 32 random bytes, base64url: nothing to percent-encode, and never the same twice.
    assert_eq!(state.len(), 43, "{state}");
    assert!(
        state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let again = s.server.get("/spotify/auth/url", token).await;
    assert!(!again.body["url"].as_str().unwrap().ends_with(state));
    let custom = s
        .server
        .get(
            "/spotify/auth/url?redirect_uri=http%3A%2F%2Flocalhost%2Fx",
            token,
        )
        .await;
    assert!(
        custom.body["url"]
            .as_str()
            .unwrap()
            .contains("redirect_uri=http%3A%2F%2Flocalhost%2Fx&")
    );
    // A redirect URI must be an absolute URL, byte for byte what Spotify will compare; a NUL
    // is refused first, as in every string the API reads.
    for (bad, error) in [
        ("relative%2Fpath", "url_parsing"),
        ("http%3A%2F%2Fx%2F%00", "value_error"),
        ("http%3A%2F%2Fx%2F%20y", "url_parsing"),
        ("%20", "url_parsing"),
    ] {
        let reply = s
            .server
            .get(&format!("/spotify/auth/url?redirect_uri={bad}"), token)
            .await;
        reply.assert_status(422);
        assert_eq!(reply.body["detail"][0]["type"], error, "{bad}");
    }
    s.server
        .get("/spotify/auth/url", None)
        .await
        .assert_status(401);
}

pub async fn spotify_callback_connects_and_logout_disconnects(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = user_with_app(&s, "callback").await;
    let token = Some(user.access_token.as_str());
    let missing = s.server.get("/spotify/callback", token).await;
    missing.assert_status(400);
    assert_eq!(missing.detail(), "Missing authorization code");
    let unstarted = s.server.get("/spotify/callback?code=nope", token).await;
    unstarted.assert_status(400);
    assert_eq!(unstarted.detail(), "No Spotify authorization in progress");
    s.fake.approve_as("rt-from-code");
    authorize(&s.server, &user, "https://app.example/cb").await;
    let refused = s.server.get("/spotify/callback?code=nope", token).await;
    refused.assert_status(400);
    assert_eq!(refused.detail(), "Spotify refused the authorization code");
    assert_eq!(
        s.server.get("/spotify/auth/status", token).await.body,
        json!({"authenticated": false})
    );
    // A client that passes the redirect URI itself (and the state) keeps working.
    let redirect = authorize(&s.server, &user, "https://app.example/cb").await;
    let ok = s
        .server
        .get(
            &format!(
                "/spotify/callback?code={}&state={}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
                redirect.code, redirect.state
            ),
            token,
        )
        .await;
    ok.assert_status(200);
    assert_eq!(ok.body, json!({"status": "ok"}));
    assert_eq!(
        s.server.get("/spotify/auth/status", token).await.body,
        json!({"authenticated": true})
    );
    let logout = s.server.post("/spotify/logout", token, json!({})).await;
    logout.assert_status(200);
    assert_eq!(logout.body, json!({"status": "logged_out"}));
    assert_eq!(
        s.server.get("/spotify/auth/status", token).await.body,
        json!({"authenticated": false})
    );
    let status = s.server.get("/spotify/credentials/status", token).await;
    assert_eq!(
        status.body["has_client_id"], true,
        "logout keeps the app credentials"
    );
    s.server
        .get("/spotify/callback?code=x", None)
        .await
        .assert_status(401);
}

/// The MelodyHue web frontend's journey: it asks for the URL with its own callback page as
/// `redirect_uri`, and that page then calls `/spotify/callback` with the `code` alone.
pub async fn spotify_connects_the_way_the_frontend_does(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(180, 20, 90);
    let cover = s.fake.add_image("fe.png", png.clone(), "image/png");
    let user = user_with_app(&s, "frontend").await;
    s.fake.approve_as("rt-frontend");
    s.fake.set_scenario("rt-frontend", playing(Some(cover)));
    let redirect = authorize(&s.server, &user, FRONTEND_CALLBACK).await;
    let reply = s
        .server
        .get(
            &format!("/spotify/callback?code={}", redirect.code),
            Some(&user.access_token),
        )
        .await;
    reply.assert_status(200);
    let exchange = s.fake.token_requests().pop().unwrap();
    assert_eq!(exchange.field("grant_type"), Some("authorization_code"));
    assert_eq!(exchange.field("code"), Some(redirect.code.as_str()));
    assert_eq!(exchange.field("redirect_uri"), Some(FRONTEND_CALLBACK));
    assert_eq!(
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body,
        json!({"authenticated": true})
    );
    let color = s.server.get(&format!("/color/{}", user.id), None).await;
    assert_eq!(hex(&color.body), color::analyze(&png).unwrap().color.hex());
    // The state Spotify sent back is used up: the browser's back button cannot replay it.
    let replay = s
        .server
        .get(
            &format!(
                "/spotify/callback?code={}&state={}",
                redirect.code, redirect.state
            ),
            Some(&user.access_token),
        )
        .await;
    replay.assert_status(400);
    assert_eq!(
        replay.detail(),
        "Invalid or expired Spotify authorization state"
    );
}

/// A `state` is the caller's, works once, for ten minutes, on any server of the deployment;
/// a refused one costs no call to Spotify.
pub async fn spotify_state_is_single_use_bound_and_expiring(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let alice = user_with_app(&s, "alice").await;
    let mallory = user_with_app(&s, "mallory").await;
    s.fake.approve_as("rt-alice");
    let callback = |user: &TestUser, query: String| {
        let token = user.access_token.clone();
        let server = &s.server;
        async move {
            server
                .get(&format!("/spotify/callback?{query}"), Some(&token))
                .await
        }
    };
    let refused = |reply: Reply, detail: &str| {
        reply.assert_status(400);
        assert_eq!(reply.detail(), detail);
    };
    const BAD_STATE: &str = "Invalid or expired Spotify authorization state";

    let first = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    let calls_before = s.fake.calls(Endpoint::Token);
    // Another user's state, an unknown one, and (for the other user) no state at all.
    refused(
        callback(
            &mallory,
            format!("code={}&state={}", first.code, first.state),
        )
        .await,
        BAD_STATE,
    );
    refused(
        callback(&alice, format!("code={}&state=made-up", first.code)).await,
        BAD_STATE,
    );
    refused(
        callback(&mallory, format!("code={}", first.code)).await,
        "No Spotify authorization in progress",
    );
    assert_eq!(
        s.fake.calls(Endpoint::Token),
        calls_before,
        "nothing refused reached Spotify"
    );
    // The owner still can, once.
    callback(&alice, format!("code={}&state={}", first.code, first.state))
        .await
        .assert_status(200);
    refused(
        callback(&alice, format!("code={}&state={}", first.code, first.state)).await,
        BAD_STATE,
    );
    refused(
        callback(&alice, format!("code={}", first.code)).await,
        "No Spotify authorization in progress",
    );

    // Ten minutes, by the server's clock.
    let late = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    let late_too = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    s.server.clock.advance(chrono::Duration::seconds(601));
    refused(
        callback(&alice, format!("code={}&state={}", late.code, late.state)).await,
        BAD_STATE,
    );
    refused(
        callback(&alice, format!("code={}", late_too.code)).await,
        "No Spotify authorization in progress",
    );

    // Started on one server, completed on another.
    let other = second_node(h, &s.server, &[("SPOTIFY_ACCOUNTS_URL", &s.fake.url())]).await;
    other.clock.advance(chrono::Duration::seconds(601));
    let started_here = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    let reply = other
        .get(
            &format!("/spotify/callback?code={}", started_here.code),
            Some(&alice.access_token),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(
        s.fake.token_requests().pop().unwrap().field("redirect_uri"),
        Some(FRONTEND_CALLBACK)
    );
}

/// Two tabs: each authorization completes with its own redirect URI, in any order.
pub async fn spotify_authorizations_in_two_tabs_complete_with_their_own_redirect(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = user_with_app(&s, "tabs").await;
    s.fake.approve_as("rt-tabs");
    let first = authorize(&s.server, &user, "https://one.example/cb").await;
    let second = authorize(&s.server, &user, "https://two.example/cb").await;
    for (tab, redirect_uri) in [
        (&first, "https://one.example/cb"),
        (&second, "https://two.example/cb"),
    ] {
        s.server
            .get(
                &format!("/spotify/callback?code={}&state={}", tab.code, tab.state),
                Some(&user.access_token),
            )
            .await
            .assert_status(200);
        assert_eq!(
            s.fake.token_requests().pop().unwrap().field("redirect_uri"),
            Some(redirect_uri)
        );
    }
}
