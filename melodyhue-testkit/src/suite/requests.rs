//! Requests that must be refused cleanly: NUL characters anywhere a string reaches the
//! database, and what a foreign page can make a signed-in browser send.

use http::Method;
use serde_json::{Value, json};

use super::spotify::{close_code, next_json, ws_url};
use super::{Harness, Reply, TestServer};
use melodyhue_core::api::ACCESS_COOKIE;
use melodyhue_core::api::ws::CLOSE_UNAUTHORIZED;
use melodyhue_core::model::Role;

/// A NUL in a path id is an unknown id, in a query or body string a `422`, on every route and
/// backend (PostgreSQL cannot store or even compare it).
pub async fn nul_characters_are_unknown_ids_or_422(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("nul").await;
    let admin = server.register("nul-admin").await;
    server
        .app
        .store()
        .set_role(&admin.id, Role::Admin, server.app.now())
        .await
        .unwrap();
    let (me, staff) = (
        Some(user.access_token.as_str()),
        Some(admin.access_token.as_str()),
    );
    let unknown = [
        (Method::GET, "/color/%00x", None),
        (Method::GET, "/infos/%00x", None),
        (Method::GET, "/overlay/%00x", None),
        (Method::GET, "/users/%00x", None),
        (Method::GET, "/overlays/%00x", me),
        (Method::DELETE, "/overlays/x%00", me),
        (Method::POST, "/overlays/%00/duplicate", me),
        (Method::GET, "/modo/users/%00x", staff),
        (Method::POST, "/modo/users/%00x/ban/revoke", staff),
        (Method::GET, "/modo/overlays/%00x", staff),
        (Method::GET, "/admin/users/%00x/warnings", staff),
        (Method::DELETE, "/admin/warnings/%00x", staff),
    ];
    for (method, path, token) in unknown {
        let reply = server.call(method.clone(), path, token, None).await;
        reply.assert_status(404);
        assert!(
            reply.detail().ends_with("not found"),
            "{method} {path}: {}",
            reply.body
        );
    }
    let patch = server
        .patch("/overlays/%00x", me, json!({"name": "fine"}))
        .await;
    patch.assert_status(404);

    let nul = "a\u{0}b";
    let warn = format!("/modo/users/{}/warn", user.id);
    let moderate = format!("/modo/users/{}", user.id);
    let bodies: [(Method, &str, Option<&str>, Value, &str); 14] = [
        (
            Method::POST,
            "/auth/register",
            None,
            json!({"username": nul, "email": "n@example.com", "password": "long-enough-1"}),
            "username",
        ),
        (
            Method::POST,
            "/auth/register",
            None,
            json!({"username": "nully", "email": "n\u{0}@example.com", "password": "long-enough-1"}),
            "email",
        ),
        (
            Method::POST,
            "/auth/register",
            None,
            json!({"username": "nully", "email": "n@example.com", "password": "long-\u{0}-enough"}),
            "password",
        ),
        (
            Method::POST,
            "/auth/login",
            None,
            json!({"username_or_email": nul, "password": "whatever"}),
            "username_or_email",
        ),
        (
            Method::POST,
            "/auth/login/2fa",
            None,
            json!({"ticket": nul, "totp": "123456"}),
            "ticket",
        ),
        (
            Method::POST,
            "/auth/refresh",
            None,
            json!({"refresh_token": nul}),
            "refresh_token",
        ),
        (
            Method::POST,
            "/auth/forgot",
            None,
            json!({"email": "a\u{0}@example.com"}),
            "email",
        ),
        (
            Method::POST,
            "/auth/reset",
            None,
            json!({"token": nul, "new_password": "long-enough-1"}),
            "token",
        ),
        (Method::POST, "/overlays", me, json!({"name": nul}), "name"),
        (
            Method::PATCH,
            "/users/me/username",
            me,
            json!({"username": nul}),
            "username",
        ),
        (
            Method::PATCH,
            "/settings/me",
            me,
            json!({"theme": nul}),
            "theme",
        ),
        (
            Method::PATCH,
            "/spotify/credentials",
            me,
            json!({"client_id": nul}),
            "client_id",
        ),
        (
            Method::POST,
            &warn,
            staff,
            json!({"reason": "bad \u{0} reason"}),
            "reason",
        ),
        (
            Method::PATCH,
            &moderate,
            staff,
            json!({"username": nul}),
            "username",
        ),
    ];
    for (method, path, token, body, field) in bodies {
        let reply = server.call(method.clone(), path, token, Some(body)).await;
        assert_validation(&reply, "body", field, &format!("{method} {path}"));
    }
    let queries = [
        ("/modo/users?search=a%00b", "search"),
        ("/admin/warnings?search=%00", "search"),
        ("/modo/overlays?search=%00", "search"),
        ("/spotify/callback?code=%00", "code"),
        ("/auth/2fa/disable/confirm?token=%00", "token"),
    ];
    for (path, name) in queries {
        let token = if path.starts_with("/spotify") {
            me
        } else {
            staff
        };
        let reply = server.get(path, token).await;
        assert_validation(&reply, "query", name, path);
    }
    // Nothing was written, and the accounts still work.
    server
        .login(&user.email, &user.password)
        .await
        .assert_status(200);
}

#[track_caller]
fn assert_validation(reply: &Reply, place: &str, field: &str, what: &str) {
    assert_eq!(reply.status, 422, "{what}: {}", reply.body);
    let errors = reply.body["detail"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["loc"] == json!([place, field]) && e["type"] == "value_error"),
        "{what}: {}",
        reply.body
    );
}

/// A server as deployed behind a browser frontend of another site, with the cookies sent on
/// cross-site requests.
async fn cookie_server(h: &Harness) -> TestServer {
    TestServer::start_with(
        h,
        &[
            ("COOKIE_SAMESITE", "none"),
            ("ENABLE_CORS", "true"),
            ("CORS_ALLOW_ORIGINS", "https://app.example"),
            ("CORS_ALLOW_CREDENTIALS", "true"),
            ("FRONTEND_URL", "https://melodyhue.example"),
        ],
    )
    .await
}

/// An unsafe request with the access cookie, from a page given by `origin` (an `Origin`
/// value, `referer:<url>`, or nothing), with a body of `content_type`.
async fn with_cookie(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    origin: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> Reply {
    let mut request = server
        .http
        .request(method, server.url(path))
        .header("cookie", format!("{ACCESS_COOKIE}={token}"))
        .body(body.to_owned());
    match origin {
        Some(referer) if referer.starts_with("referer:") => {
            request = request.header("referer", &referer["referer:".len()..]);
        }
        Some(origin) => request = request.header("origin", origin),
        None => {}
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    server.send(request).await
}

pub async fn cross_site_requests_with_cookies_are_refused(h: &Harness) {
    let server = cookie_server(h).await;
    let user = server.register("victim").await;
    let token = user.access_token.as_str();
    let json = Some("application/json");
    let overlay = r#"{"name": "Planted"}"#;
    // A foreign page, by Origin or by Referer: refused before anything happens.
    for page in [
        "https://evil.example",
        "null",
        "https://app.example.evil.example",
        "referer:https://evil.example/page",
    ] {
        let reply = with_cookie(
            &server,
            Method::POST,
            "/overlays",
            token,
            Some(page),
            json,
            overlay,
        )
        .await;
        reply.assert_status(403);
        assert_eq!(reply.detail(), "Cross-site request refused", "{page}");
    }
    for (method, path) in [
        (Method::POST, "/spotify/logout"),
        (Method::POST, "/auth/2fa/setup"),
        (Method::DELETE, "/users/me"),
        (Method::POST, "/auth/logout"),
    ] {
        let reply = with_cookie(
            &server,
            method.clone(),
            path,
            token,
            Some("https://evil.example"),
            None,
            "",
        )
        .await;
        reply.assert_status(403);
        assert!(
            reply.set_cookie(ACCESS_COOKIE).is_none(),
            "{method} {path} clears no cookie"
        );
    }
    // A form or text body without Origin (a proxy that drops it) is refused by its type.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let reply = with_cookie(
            &server,
            Method::POST,
            "/overlays",
            token,
            None,
            Some(content_type),
            overlay,
        )
        .await;
        reply.assert_status(415);
        assert_eq!(reply.detail(), "Unsupported Media Type");
    }
    let listed = server.get("/overlays", Some(token)).await;
    assert_eq!(listed.body, json!([]), "nothing was planted");
    assert_eq!(
        server.get("/users/me", Some(token)).await.status,
        200,
        "the account is intact"
    );

    // The allowed pages: the CORS list, FRONTEND_URL, the server itself, and no page at all
    // (the frontend's own server-side proxy sends neither Origin nor Referer).
    let own = server.base.clone();
    for page in [
        Some("https://app.example"),
        Some("https://melodyhue.example"),
        Some(own.as_str()),
        Some("referer:https://app.example/overlays"),
        None,
    ] {
        let reply = with_cookie(
            &server,
            Method::POST,
            "/overlays",
            token,
            page,
            json,
            overlay,
        )
        .await;
        reply.assert_status(200);
    }
    let reply = with_cookie(
        &server,
        Method::POST,
        "/overlays",
        token,
        None,
        Some("application/json; charset=utf-8"),
        overlay,
    )
    .await;
    reply.assert_status(200);
    // Reading is never refused.
    let read = with_cookie(
        &server,
        Method::GET,
        "/overlays",
        token,
        Some("https://evil.example"),
        None,
        "",
    )
    .await;
    read.assert_status(200);
    assert_eq!(read.body.as_array().unwrap().len(), 6);
}

pub async fn bearer_requests_ignore_origin_and_content_type(h: &Harness) {
    let server = cookie_server(h).await;
    let user = server.register("scripted").await;
    let reply = server
        .send(
            server
                .http
                .post(server.url("/overlays"))
                .bearer_auth(&user.access_token)
                .header("origin", "https://evil.example")
                .header("content-type", "text/plain")
                .body(r#"{"name": "From a script"}"#),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["name"], "From a script");
}

pub async fn non_json_bodies_are_415_without_a_bearer_token(h: &Harness) {
    let server = cookie_server(h).await;
    let user = server.register("formy").await;
    let login = |content_type: Option<&'static str>| {
        let mut request = server
            .http
            .post(server.url("/auth/login"))
            .body(json!({"username_or_email": user.email, "password": user.password}).to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        server.send(request)
    };
    // A form or a text body cannot sign anyone in (login CSRF); JSON, or no type, can.
    login(Some("text/plain")).await.assert_status(415);
    login(Some("application/x-www-form-urlencoded"))
        .await
        .assert_status(415);
    login(Some("application/json")).await.assert_status(200);
    login(Some("application/vnd.api+json"))
        .await
        .assert_status(200);
    login(None).await.assert_status(200);
    // A refresh by cookie with an empty form body, as a cross-site form would send it.
    let refresh = server
        .send(
            server
                .http
                .post(server.url("/auth/refresh"))
                .header("cookie", format!("mh_refresh_token={}", user.refresh_token))
                .header("content-type", "application/x-www-form-urlencoded"),
        )
        .await;
    refresh.assert_status(415);
    // The session was not rotated: the token still refreshes.
    server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await
        .assert_status(200);
}

/// An upgrade is taken on every spelling of `/ws` the route table reads as `/ws` (the core
/// decides, for every adapter), and a plain request there is the route's `400`.
pub async fn websocket_upgrades_read_the_path_like_every_route(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("paths").await;
    let base = server.base.replacen("http://", "ws://", 1);
    for path in ["/ws", "/ws/", "/ws//", "//ws", "/%77s"] {
        let url = format!("{base}{path}?token={}", user.access_token);
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        assert_eq!(
            next_json(&mut socket).await["type"],
            "now_playing",
            "{path}"
        );
        server.get(path, None).await.assert_status(400);
    }
    let other = format!("{base}/ws/x?token={}", user.access_token);
    assert!(tokio_tungstenite::connect_async(other).await.is_err());
}

pub async fn websocket_cookies_count_only_from_allowed_origins(h: &Harness) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = cookie_server(h).await;
    let user = server.register("socketed").await;
    let open = |origin: &'static str| {
        let mut request = ws_url(&server, "").into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "cookie",
            format!("{ACCESS_COOKIE}={}", user.access_token)
                .parse()
                .unwrap(),
        );
        headers.insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let (mut foreign, _) = open("https://evil.example").await.unwrap();
    assert_eq!(close_code(&mut foreign).await, CLOSE_UNAUTHORIZED);
    let (mut allowed, _) = open("https://app.example").await.unwrap();
    assert_eq!(next_json(&mut allowed).await["type"], "now_playing");
}
