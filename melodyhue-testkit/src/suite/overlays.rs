//! `/overlays` and `/overlay/{id}`.

use chrono::Duration;
use serde_json::json;

use super::{Harness, TestServer};

pub async fn overlay_lifecycle(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("olly").await;
    let token = Some(user.access_token.as_str());
    let created = server
        .post(
            "/overlays/",
            token,
            json!({"name": "Main", "template": "minimal"}),
        )
        .await;
    created.assert_status(200);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 22);
    let keys: Vec<&str> = created
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["created_at", "id", "name", "template", "updated_at"]);
    assert_eq!(created.body["name"], "Main");
    assert_eq!(created.body["template"], "minimal");
    let fetched = server.get(&format!("/overlays/{id}"), token).await;
    fetched.assert_status(200);
    assert_eq!(fetched.body, created.body);
    server.clock.advance(Duration::seconds(5));
    let renamed = server
        .patch(
            &format!("/overlays/{id}"),
            token,
            json!({"name": "Renamed"}),
        )
        .await;
    renamed.assert_status(200);
    assert_eq!(renamed.body["name"], "Renamed");
    assert_eq!(renamed.body["template"], "minimal", "unchanged fields stay");
    assert_eq!(renamed.body["created_at"], created.body["created_at"]);
    assert_ne!(renamed.body["updated_at"], created.body["updated_at"]);
    let deleted = server.delete(&format!("/overlays/{id}"), token).await;
    deleted.assert_status(200);
    assert_eq!(deleted.body, json!({"status": "ok"}));
    let gone = server.get(&format!("/overlays/{id}"), token).await;
    gone.assert_status(404);
    assert_eq!(gone.detail(), "Overlay not found");
    server
        .delete(&format!("/overlays/{id}"), token)
        .await
        .assert_status(404);
    server.get("/overlays/", None).await.assert_status(401);
}

pub async fn overlays_are_listed_oldest_first(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("pia").await;
    let token = Some(user.access_token.as_str());
    for name in ["first", "second", "third"] {
        server
            .post("/overlays/", token, json!({"name": name}))
            .await
            .assert_status(200);
        server.clock.advance(Duration::seconds(1));
    }
    let list = server.get("/overlays", token).await;
    list.assert_status(200);
    let names: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second", "third"]);
    let other = server.register("empty").await;
    assert_eq!(
        server
            .get("/overlays", Some(&other.access_token))
            .await
            .body,
        json!([])
    );
}

pub async fn overlay_defaults_and_validation(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("quin").await;
    let token = Some(user.access_token.as_str());
    let defaults = server.post("/overlays/", token, json!({})).await;
    defaults.assert_status(200);
    assert_eq!(defaults.body["name"], "Overlay");
    assert_eq!(defaults.body["template"], "classic");
    let empty_body = server
        .send(
            server
                .http
                .post(server.url("/overlays/"))
                .bearer_auth(&user.access_token),
        )
        .await;
    empty_body.assert_status(200);
    assert_eq!(empty_body.body["name"], "Overlay");
    for body in [
        json!({"name": ""}),
        json!({"name": "n".repeat(121)}),
        json!({"template": ""}),
        json!({"template": "t".repeat(65)}),
        json!({"name": 7}),
    ] {
        server
            .post("/overlays/", token, body.clone())
            .await
            .assert_status(422);
    }
    let longest = server
        .post(
            "/overlays/",
            token,
            json!({"name": "n".repeat(120), "template": "t".repeat(64)}),
        )
        .await;
    longest.assert_status(200);
    let id = defaults.body["id"].as_str().unwrap();
    server
        .patch(&format!("/overlays/{id}"), token, json!({"template": ""}))
        .await
        .assert_status(422);
    assert_eq!(
        server.get(&format!("/overlays/{id}"), token).await.body["template"],
        "classic"
    );
}

pub async fn other_users_overlays_are_not_found(h: &Harness) {
    let server = TestServer::start(h).await;
    let owner = server.register("owner").await;
    let intruder = server.register("intruder").await;
    let overlay = server
        .post(
            "/overlays/",
            Some(&owner.access_token),
            json!({"name": "Mine"}),
        )
        .await;
    let id = overlay.body["id"].as_str().unwrap();
    let token = Some(intruder.access_token.as_str());
    for reply in [
        server.get(&format!("/overlays/{id}"), token).await,
        server
            .patch(&format!("/overlays/{id}"), token, json!({"name": "Stolen"}))
            .await,
        server.delete(&format!("/overlays/{id}"), token).await,
        server
            .post(&format!("/overlays/{id}/duplicate"), token, json!({}))
            .await,
        server.get("/overlays/does-not-exist", token).await,
    ] {
        reply.assert_status(404);
        assert_eq!(reply.detail(), "Overlay not found");
    }
    let intact = server
        .get(&format!("/overlays/{id}"), Some(&owner.access_token))
        .await;
    assert_eq!(intact.body["name"], "Mine");
    assert_eq!(server.get("/overlays", token).await.body, json!([]));
}

pub async fn duplicate_names_the_copy(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("rory").await;
    let token = Some(user.access_token.as_str());
    let original = server
        .post(
            "/overlays/",
            token,
            json!({"name": "Stream", "template": "color"}),
        )
        .await;
    let id = original.body["id"].as_str().unwrap();
    let copy = server
        .post(&format!("/overlays/{id}/duplicate"), token, json!({}))
        .await;
    copy.assert_status(200);
    assert_eq!(copy.body["name"], "Stream (copy)");
    assert_eq!(copy.body["template"], "color");
    assert_ne!(copy.body["id"], original.body["id"]);
    let long = server
        .post("/overlays/", token, json!({"name": "n".repeat(120)}))
        .await;
    let long_id = long.body["id"].as_str().unwrap();
    let long_copy = server
        .post(&format!("/overlays/{long_id}/duplicate"), token, json!({}))
        .await;
    long_copy.assert_status(200);
    let name = long_copy.body["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 120);
    assert!(name.ends_with(" (copy)"));
    assert_eq!(
        server
            .get("/overlays", token)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

pub async fn public_overlay_needs_no_auth(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("sia").await;
    let overlay = server
        .post(
            "/overlays/",
            Some(&user.access_token),
            json!({"name": "Public"}),
        )
        .await;
    let id = overlay.body["id"].as_str().unwrap();
    let public = format!("/overlay/{id}");
    let reply = server.get(&public, None).await;
    reply.assert_status(200);
    assert_eq!(reply.body, overlay.body);
    // OBS polls this page: a change shows on the very next poll, then the deletion.
    let token = Some(user.access_token.as_str());
    server
        .patch(
            &format!("/overlays/{id}"),
            token,
            json!({"name": "Renamed"}),
        )
        .await
        .assert_status(200);
    assert_eq!(server.get(&public, None).await.body["name"], "Renamed");
    server
        .delete(&format!("/overlays/{id}"), token)
        .await
        .assert_status(200);
    server.get(&public, None).await.assert_status(404);
    let missing = server.get("/overlay/unknown", None).await;
    missing.assert_status(404);
    assert_eq!(missing.detail(), "Overlay not found");
}
