//! What operators rely on: request ids on every response, and `/metrics`.

use http::Method;

use super::{Harness, TestServer};

/// `GET /metrics` as text: status and body (the body is not JSON, so not a [`super::Reply`]).
pub(super) async fn scrape(server: &TestServer, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = server.http.get(server.url("/metrics"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn request_id(reply: &super::Reply) -> String {
    reply.headers["x-request-id"].to_str().unwrap().to_owned()
}

pub async fn every_response_has_a_request_id(h: &Harness) {
    let server =
        TestServer::start_with(h, &[("ENABLE_CORS", "true"), ("CORS_ALLOW_ORIGINS", "*")]).await;
    let first = server.get("/health", None).await;
    let second = server.get("/health", None).await;
    let (a, b) = (request_id(&first), request_id(&second));
    assert!(
        a.len() >= 16 && a.chars().all(|c| c.is_ascii_graphic()),
        "{a}"
    );
    assert_ne!(a, b, "each request gets its own id");

    let not_found = server.get("/no/such/route", None).await;
    not_found.assert_status(404);
    assert!(!request_id(&not_found).is_empty());

    let too_large = server
        .send(
            server
                .http
                .post(server.url("/auth/register"))
                .header("content-type", "application/json")
                .body("x".repeat(64 * 1024 + 1)),
        )
        .await;
    too_large.assert_status(413);
    assert!(!request_id(&too_large).is_empty());

    let preflight = server
        .send(
            server
                .http
                .request(Method::OPTIONS, server.url("/auth/login"))
                .header("origin", "https://app.example")
                .header("access-control-request-method", "POST"),
        )
        .await;
    preflight.assert_status(200);
    assert!(!request_id(&preflight).is_empty());
}

pub async fn a_clients_request_id_is_kept_when_sane(h: &Harness) {
    let server = TestServer::start(h).await;
    let with_id = |id: String| {
        server
            .http
            .get(server.url("/health"))
            .header("x-request-id", id)
    };
    let kept = server.send(with_id("proxy-7f3a.42".into())).await;
    assert_eq!(request_id(&kept), "proxy-7f3a.42");
    let overlong = "a".repeat(129);
    let replaced = server.send(with_id(overlong.clone())).await;
    assert_ne!(request_id(&replaced), overlong);
    let spaced = server.send(with_id("two words".into())).await;
    assert_ne!(request_id(&spaced), "two words");
}

pub async fn metrics_are_off_by_default(h: &Harness) {
    let server = TestServer::start(h).await;
    let reply = server.get("/metrics", None).await;
    reply.assert_status(404);
    assert_eq!(reply.detail(), "Not Found");
}

pub async fn metrics_count_requests_pool_and_cache(h: &Harness) {
    let server = TestServer::start_with(h, &[("METRICS", "true")]).await;
    let user = server.register("metered").await;
    server.get("/health", None).await.assert_status(200);
    server.get("/health", None).await.assert_status(200);
    server
        .get(&format!("/color/{}", user.id), None)
        .await
        .assert_status(200);
    server.get("/no/such/route", None).await.assert_status(404);

    let (status, text) = scrape(&server, &[]).await;
    assert_eq!(status, 200, "{text}");
    for series in [
        r#"melodyhue_http_requests_total{route="/health",method="GET",status="200"} 2"#,
        r#"melodyhue_http_requests_total{route="/color/{user_id}",method="GET",status="200"} 1"#,
        r#"melodyhue_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"melodyhue_http_requests_total{route="/auth/register",method="POST",status="200"} 1"#,
        r#"melodyhue_http_request_duration_seconds_count{route="/health"} 2"#,
        r#"melodyhue_http_request_duration_seconds_bucket{le="+Inf",route="/health"} 2"#,
        r#"melodyhue_cover_cache_lookups_total{result="hit"} 0"#,
        r#"melodyhue_cover_cache_lookups_total{result="miss"} 0"#,
        "melodyhue_watched_users 1",
        r#"melodyhue_db_pool_connections{state="idle"}"#,
        r#"melodyhue_db_pool_connections{state="in_use"}"#,
        "melodyhue_db_pool_max_connections ",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    // Paths of unknown routes never become labels.
    assert!(!text.contains("/no/such/route"));
}

pub async fn metrics_are_never_public_by_accident(h: &Harness) {
    // Without a token: the loopback client reads them, but not through a proxy.
    let server = TestServer::start_with(h, &[("METRICS", "true")]).await;
    assert_eq!(scrape(&server, &[]).await.0, 200);
    let (status, body) = scrape(&server, &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(status, 403);
    assert!(body.contains("Forbidden"), "{body}");
    assert_eq!(
        scrape(&server, &[("forwarded", "for=203.0.113.9")]).await.0,
        403
    );

    // With a token: only that bearer token.
    let server = TestServer::start_with(
        h,
        &[("METRICS", "true"), ("METRICS_TOKEN", "scrape-secret-1")],
    )
    .await;
    assert_eq!(scrape(&server, &[]).await.0, 401);
    let wrong = [("authorization", "Bearer scrape-secret-2")];
    assert_eq!(scrape(&server, &wrong).await.0, 401);
    let prefix = [("authorization", "Bearer scrape-secret")];
    assert_eq!(scrape(&server, &prefix).await.0, 401);
    let right = [("authorization", "Bearer scrape-secret-1")];
    let (status, text) = scrape(&server, &right).await;
    assert_eq!(status, 200);
    assert!(text.contains("melodyhue_http_requests_total"), "{text}");
    let proxied = [
        ("authorization", "Bearer scrape-secret-1"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    assert_eq!(
        scrape(&server, &proxied).await.0,
        200,
        "the token is enough"
    );
}
