//! `/modo`: users and bans, warnings, overlays; ban enforcement and the purge of banned accounts.
//! The helpers both parts share.

use serde_json::{Value, json};

use super::{Reply, TestServer, TestUser};

mod bans;
mod moderation;

pub use bans::*;
pub use moderation::*;

#[track_caller]
fn assert_banned(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.body);
    assert_eq!(reply.detail(), "User banned", "{what}");
    assert_eq!(
        reply
            .headers
            .get("x-account-banned")
            .map(|v| v.to_str().unwrap()),
        Some("true"),
        "{what}"
    );
}

async fn ban(server: &TestServer, by: &TestUser, whom: &str, body: Value) -> Reply {
    server
        .post(
            &format!("/modo/users/{whom}/ban"),
            Some(&by.access_token),
            body,
        )
        .await
}

async fn overlay_of(server: &TestServer, owner: &TestUser, name: &str) -> String {
    let reply = server
        .post(
            "/overlays/",
            Some(&owner.access_token),
            json!({"name": name, "template": "classic"}),
        )
        .await;
    reply.assert_status(200);
    reply.body["id"].as_str().unwrap().to_owned()
}
