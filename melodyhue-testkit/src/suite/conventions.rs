//! Conventions of every route: errors, body limit, trailing slashes, CORS, health.

use http::Method;
use serde_json::json;

use super::{Harness, TestServer};

pub async fn health_answers_ok(h: &Harness) {
    let server = TestServer::start(h).await;
    let reply = server.get("/health", None).await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"status": "ok"}));
    assert_eq!(reply.headers["content-type"], "application/json");
}

pub async fn unknown_path_is_404(h: &Harness) {
    let server = TestServer::start(h).await;
    for path in ["/nope", "/auth", "/overlays/a/b/c", "/%ff%fe"] {
        let reply = server.get(path, None).await;
        reply.assert_status(404);
        assert_eq!(reply.detail(), "Not Found");
    }
}

pub async fn wrong_method_is_405(h: &Harness) {
    let server = TestServer::start(h).await;
    let reply = server
        .call(Method::PUT, "/auth/login", None, Some(json!({})))
        .await;
    reply.assert_status(405);
    assert_eq!(reply.detail(), "Method Not Allowed");
    // The methods the path has (RFC 9110, section 15.5.6).
    assert_eq!(reply.headers["allow"], "POST");
    let reply = server.delete("/health", None).await;
    reply.assert_status(405);
    assert_eq!(reply.headers["allow"], "GET");
    let reply = server.call(Method::PUT, "/overlays/x", None, None).await;
    reply.assert_status(405);
    assert_eq!(reply.headers["allow"], "GET, PATCH, DELETE");
}

pub async fn trailing_slash_is_the_same_resource(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("slash").await;
    let created = server
        .post("/overlays/", Some(&user.access_token), json!({"name": "A"}))
        .await;
    created.assert_status(200);
    let with = server.get("/overlays/", Some(&user.access_token)).await;
    let without = server.get("/overlays", Some(&user.access_token)).await;
    with.assert_status(200);
    without.assert_status(200);
    assert_eq!(with.body, without.body);
    assert_eq!(with.body.as_array().unwrap().len(), 1);
    server.get("/health/", None).await.assert_status(200);
}

pub async fn body_over_64_kib_is_413(h: &Harness) {
    let server = TestServer::start(h).await;
    let big = "x".repeat(64 * 1024 + 1);
    let reply = server
        .send(
            server
                .http
                .post(server.url("/auth/register"))
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    reply.assert_status(413);
    assert!(!reply.detail().is_empty());
    // Exactly at the limit is read (and then refused for its content, not its size).
    let at_limit = format!("\"{}\"", "x".repeat(64 * 1024 - 2));
    let reply = server
        .send(
            server
                .http
                .post(server.url("/auth/register"))
                .body(at_limit),
        )
        .await;
    reply.assert_status(422);
}

pub async fn chunked_body_over_64_kib_is_413(h: &Harness) {
    let server = TestServer::start(h).await;
    // A streamed body has no Content-Length: the limit must hold while reading.
    let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, std::io::Error>> = (0..80)
        .map(|_| Ok(http_body::Frame::data(bytes::Bytes::from(vec![b' '; 1024]))))
        .collect();
    let body = reqwest::Body::wrap(http_body_util::StreamBody::new(futures_util::stream::iter(
        chunks,
    )));
    let reply = server
        .send(server.http.post(server.url("/auth/login")).body(body))
        .await;
    reply.assert_status(413);
}

pub async fn malformed_json_is_422(h: &Harness) {
    let server = TestServer::start(h).await;
    for body in ["{", "{\"username\": }", "nul", "\u{0}"] {
        let reply = server
            .send(
                server
                    .http
                    .post(server.url("/auth/register"))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        reply.assert_status(422);
        assert_eq!(reply.body["detail"][0]["loc"], json!(["body"]), "{body:?}");
    }
    let reply = server
        .send(server.http.post(server.url("/auth/login")))
        .await;
    reply.assert_status(422);
    assert_eq!(reply.body["detail"][0]["type"], "missing");
}

pub async fn json_that_is_not_an_object_is_422(h: &Harness) {
    let server = TestServer::start(h).await;
    for body in [json!([1, 2]), json!("text"), json!(42), json!(null)] {
        let reply = server.post("/auth/register", None, body.clone()).await;
        reply.assert_status(422);
        assert_eq!(reply.body["detail"][0]["loc"], json!(["body"]), "{body}");
    }
}

pub async fn cors_is_off_by_default(h: &Harness) {
    let server = TestServer::start(h).await;
    let reply = server
        .send(
            server
                .http
                .get(server.url("/health"))
                .header("origin", "https://evil.example"),
        )
        .await;
    reply.assert_status(200);
    assert!(reply.headers.get("access-control-allow-origin").is_none());
}

pub async fn cors_answers_preflight_and_allowed_origins(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[
            ("ENABLE_CORS", "true"),
            ("CORS_ALLOW_ORIGINS", "*"),
            ("CORS_ALLOW_CREDENTIALS", "true"),
        ],
    )
    .await;
    let reply = server
        .send(
            server
                .http
                .request(Method::OPTIONS, server.url("/auth/login"))
                .header("origin", "https://app.example")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type, authorization",
                ),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    assert!(
        reply.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    assert_eq!(
        reply.headers["access-control-allow-headers"],
        "content-type, authorization"
    );
    // With `*`, credentials are forced off.
    assert!(
        reply
            .headers
            .get("access-control-allow-credentials")
            .is_none()
    );
    let reply = server
        .send(
            server
                .http
                .get(server.url("/health"))
                .header("origin", "https://app.example"),
        )
        .await;
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
}

pub async fn cors_with_credentials_echoes_the_origin(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[
            ("ENABLE_CORS", "true"),
            (
                "CORS_ALLOW_ORIGINS",
                "https://app.example, https://other.example",
            ),
            ("CORS_ALLOW_CREDENTIALS", "true"),
        ],
    )
    .await;
    let allowed = server
        .send(
            server
                .http
                .get(server.url("/health"))
                .header("origin", "https://other.example"),
        )
        .await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://other.example"
    );
    assert_eq!(allowed.headers["access-control-allow-credentials"], "true");
    assert_eq!(allowed.headers["vary"], "Origin");
    let denied = server
        .send(
            server
                .http
                .get(server.url("/health"))
                .header("origin", "https://evil.example"),
        )
        .await;
    denied.assert_status(200);
    assert!(denied.headers.get("access-control-allow-origin").is_none());
    let preflight = server
        .send(
            server
                .http
                .request(Method::OPTIONS, server.url("/overlays"))
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "GET"),
        )
        .await;
    preflight.assert_status(400);
}

pub async fn overlong_ids_are_404(h: &Harness) {
    let server = TestServer::start(h).await;
    let long = "a".repeat(37);
    let reply = server.get(&format!("/color/{long}"), None).await;
    reply.assert_status(404);
    assert_eq!(reply.detail(), "User not found");
    let reply = server.get(&format!("/overlay/{long}"), None).await;
    reply.assert_status(404);
    assert_eq!(reply.detail(), "Overlay not found");
}
