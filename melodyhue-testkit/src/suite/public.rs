//! `/color/{user_id}` and `/infos/{user_id}` without Spotify: the fallback color.

use serde_json::json;

use super::{Harness, TestServer};

pub async fn color_falls_back_to_the_default_color(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("tina").await;
    let reply = server.get(&format!("/color/{}", user.id), None).await;
    reply.assert_status(200);
    let body = &reply.body;
    assert_eq!(
        body["color"],
        json!({"r": 0x25, "g": 0xd8, "b": 0x65, "hex": "#25d865"})
    );
    assert_eq!(body["source"], "album");
    assert_eq!(body["status"], "success");
    assert_eq!(body["user"], user.id.as_str());
    assert!(body["processing_time_ms"].as_f64().unwrap() >= 0.0);
    let now = chrono::Utc::now().timestamp();
    assert!((body["timestamp"].as_i64().unwrap() - now).abs() < 60);
}

pub async fn infos_without_music(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("uwe").await;
    let reply = server.get(&format!("/infos/{}", user.id), None).await;
    reply.assert_status(200);
    assert_eq!(reply.body["color"]["hex"], "#25d865");
    assert_eq!(
        reply.body["track"],
        json!({"id": null, "name": "No music playing", "is_playing": false})
    );
    assert_eq!(reply.body["status"], "success");
}

pub async fn new_default_color_shows_at_once(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("vic").await;
    let path = format!("/color/{}", user.id);
    server.get(&path, None).await.assert_status(200);
    server
        .patch(
            "/settings/me",
            Some(&user.access_token),
            json!({"default_overlay_color": "#FF5500"}),
        )
        .await
        .assert_status(200);
    let reply = server.get(&path, None).await;
    assert_eq!(
        reply.body["color"],
        json!({"r": 255, "g": 85, "b": 0, "hex": "#ff5500"})
    );
    let infos = server.get(&format!("/infos/{}", user.id), None).await;
    assert_eq!(infos.body["color"]["hex"], "#ff5500");
}

pub async fn deleted_user_is_404_at_once(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("wendy").await;
    let path = format!("/color/{}", user.id);
    server.get(&path, None).await.assert_status(200);
    server
        .delete("/users/me", Some(&user.access_token))
        .await
        .assert_status(200);
    let reply = server.get(&path, None).await;
    reply.assert_status(404);
    assert_eq!(reply.detail(), "User not found");
}

pub async fn unknown_user_is_404(h: &Harness) {
    let server = TestServer::start(h).await;
    for path in ["/color/nobody", "/infos/nobody"] {
        let reply = server.get(path, None).await;
        reply.assert_status(404);
        assert_eq!(reply.detail(), "User not found");
    }
}
