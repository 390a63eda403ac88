//! The HTTP contract, framework-neutral: `http::Request<Bytes>` in, `http::Response` out, with
//! a [`ResponseBody`] that is one buffer or, for event streams, a stream of chunks.
//!
//! Everything a frontend adapter would otherwise repeat lives here: routing, reading tokens
//! from headers and cookies, JSON in and out, validation, errors, cookies, CORS and the body
//! limit. An adapter only moves bytes: it reads at most [`MAX_BODY_BYTES`] of the body
//! (answering [`payload_too_large`] beyond that), calls [`handle`], and writes the response,
//! streaming its body when [`ResponseBody::is_stream`].
//!
//! ```no_run
//! # async fn example(app: melodyhue_core::App) {
//! let request = http::Request::get("/health").body(bytes::Bytes::new()).unwrap();
//! let response = melodyhue_core::api::handle(&app, request, None).await;
//! assert_eq!(response.status(), 200);
//! # }
//! ```

mod admin;
mod auth;
mod bodies;
mod body;
mod cors;
mod csrf;
mod error;
pub mod events;
mod input;
mod metrics;
mod modo;
pub mod openapi;
mod overlays;
mod public;
mod response;
mod spotify;
mod two_factor;
mod users;
pub mod ws;

pub use body::ResponseBody;
pub use error::{ApiError, FieldError};
pub use response::{ACCESS_COOKIE, REFRESH_COOKIE};

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use tracing::Instrument;

use crate::App;
use crate::model::{MAX_ID_LEN, new_id};
use crate::service::Principal;
use input::{Input, QueryInput};

/// Request bodies above this many bytes are refused with `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The `413` an adapter answers when a body grows past [`MAX_BODY_BYTES`] while it reads it.
pub fn payload_too_large() -> Response<Bytes> {
    ApiError::PayloadTooLarge.into_response()
}

/// The response header carrying the request's id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest `X-Request-Id` taken from a client; a longer or unprintable one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Answers one request. Never panics and never fails: every problem is a status and a
/// `{"detail": ...}` body. `peer` is the client's socket address, when known. The body is one
/// buffer, except for event streams (`/infos/{user_id}/events`), which the caller sends as
/// their chunks come and drops when the client goes away.
///
/// Every response carries `X-Request-Id`: the client's own when it sent a short printable
/// one (so a proxy's id follows the request), else a fresh one. The request's log lines
/// carry it too.
pub async fn handle(
    app: &App,
    request: Request<Bytes>,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let id = request_id(request.headers());
    let method = request.method().clone();
    let span = tracing::info_span!("request", id = id.to_str().unwrap_or_default());
    let (template, response) = answer(app, request, peer).instrument(span.clone()).await;
    let response = span.in_scope(|| finish(app, &method, template, started, &id, response));
    body::into_response_body(response)
}

/// Stamps the request id on a response, counts it in the metrics and logs it.
fn finish(
    app: &App,
    method: &Method,
    template: &'static str,
    started: Instant,
    id: &HeaderValue,
    mut response: Response<Bytes>,
) -> Response<Bytes> {
    response.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
    let status = response.status().as_u16();
    let took = started.elapsed();
    if let Some(metrics) = app.metrics() {
        metrics.observe(template, method.as_str(), status, took);
    }
    tracing::info!(
        %method,
        route = template,
        status,
        elapsed_ms = took.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The client's `X-Request-Id` when it is short and printable, else a fresh random id.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LEN
                && bytes.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .or_else(|| HeaderValue::from_str(&new_id()).ok())
        .unwrap_or_else(|| HeaderValue::from_static("unknown"))
}

/// Routes one request; returns the route template (for logs and metrics) and the response.
async fn answer(
    app: &App,
    request: Request<Bytes>,
    peer: Option<SocketAddr>,
) -> (&'static str, Response<Bytes>) {
    let (parts, body) = request.into_parts();
    let cors = app.config().cors.as_ref();
    if let Some(preflight) = cors.and_then(|c| cors::preflight(c, &parts.method, &parts.headers)) {
        return ("preflight", preflight);
    }
    let path = parts.uri.path().to_owned();
    let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let cx = Ctx {
        app,
        method: parts.method,
        headers: parts.headers,
        query,
        body,
        peer,
    };
    let (template, result) = if cx.body.len() > MAX_BODY_BYTES {
        ("", Err(ApiError::PayloadTooLarge))
    } else {
        route(&cx, &path).await
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    if let Some(cors) = cors {
        cors::decorate(cors, &cx.headers, &mut response);
    }
    (template, response)
}

type Reply = Result<Response<Bytes>, ApiError>;

/// Dispatches on the method within one path; other methods get `405`. A request a foreign page
/// could have made a browser send is refused before its handler runs (see [`csrf`]).
macro_rules! methods {
    ($cx:expr, form: $($method:ident => $call:expr),+ $(,)?) => {
        methods!(@ $cx, csrf::Bodies::JsonOrForm, $($method => $call),+)
    };
    ($cx:expr, $($method:ident => $call:expr),+ $(,)?) => {
        methods!(@ $cx, csrf::Bodies::Json, $($method => $call),+)
    };
    (@ $cx:expr, $bodies:expr, $($method:ident => $call:expr),+) => {
        match $cx.method {
            $(Method::$method => match csrf::check($cx, $bodies) {
                Ok(()) => $call.await,
                Err(refused) => Err(refused),
            },)+
            _ => Err(ApiError::MethodNotAllowed),
        }
    };
}

/// The segments of a request path as the route table reads them: percent-decoded, empty ones
/// dropped (`/ws/`, `//ws` and `/%77s` are all `["ws"]`).
fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Finds the handler of a path; returns the route template (for logs) and the reply.
async fn route(cx: &Ctx<'_>, path: &str) -> (&'static str, Reply) {
    let decoded = path_segments(path);
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["health"] => ("/health", methods!(cx, GET => public::health(cx))),
        ["metrics"] => ("/metrics", methods!(cx, GET => metrics::metrics(cx))),
        ["openapi.json"] => (
            "/openapi.json",
            methods!(cx, GET => openapi::openapi_json()),
        ),
        ["docs"] => ("/docs", methods!(cx, GET => openapi::docs())),
        ["auth", "register"] => ("/auth/register", methods!(cx, POST => auth::register(cx))),
        ["auth", "login"] => ("/auth/login", methods!(cx, POST => auth::login(cx))),
        ["auth", "refresh"] => ("/auth/refresh", methods!(cx, POST => auth::refresh(cx))),
        ["auth", "logout"] => ("/auth/logout", methods!(cx, POST => auth::logout(cx))),
        ["auth", "login", "2fa"] => (
            "/auth/login/2fa",
            methods!(cx, POST => two_factor::login(cx)),
        ),
        ["auth", "forgot"] => ("/auth/forgot", methods!(cx, POST => two_factor::forgot(cx))),
        ["auth", "reset"] => ("/auth/reset", methods!(cx, POST => two_factor::reset(cx))),
        ["auth", "2fa", "setup"] => (
            "/auth/2fa/setup",
            methods!(cx, POST => two_factor::setup(cx)),
        ),
        ["auth", "2fa", "verify"] => (
            "/auth/2fa/verify",
            methods!(cx, POST => two_factor::verify(cx)),
        ),
        ["auth", "2fa", "disable"] => (
            "/auth/2fa/disable",
            methods!(cx, POST => two_factor::disable(cx)),
        ),
        ["auth", "2fa", "disable", "request"] => (
            "/auth/2fa/disable/request",
            methods!(cx, POST => two_factor::disable_request(cx)),
        ),
        ["auth", "2fa", "disable", "confirm"] => (
            "/auth/2fa/disable/confirm",
            methods!(cx, GET => two_factor::disable_confirm(cx), POST => two_factor::disable_confirm(cx)),
        ),
        ["auth", "email", "revert"] => (
            "/auth/email/revert",
            methods!(cx, form: GET => users::email_revert_page(cx), POST => users::email_revert(cx)),
        ),
        ["users", "me"] => (
            "/users/me",
            methods!(cx, GET => users::me(cx), DELETE => users::delete_me(cx)),
        ),
        ["users", "me", "username"] => (
            "/users/me/username",
            methods!(cx, PATCH => users::change_username(cx)),
        ),
        ["users", "me", "email"] => (
            "/users/me/email",
            methods!(cx, PATCH => users::change_email(cx)),
        ),
        ["users", "me", "password"] => (
            "/users/me/password",
            methods!(cx, POST => users::change_password(cx)),
        ),
        ["users", id] => (
            "/users/{user_id}",
            methods!(cx, GET => public::user(cx, id)),
        ),
        ["settings", "me"] => (
            "/settings/me",
            methods!(cx, GET => users::settings(cx), PATCH => users::update_settings(cx)),
        ),
        ["overlays"] => (
            "/overlays",
            methods!(cx, GET => overlays::list(cx), POST => overlays::create(cx)),
        ),
        ["overlays", id] => (
            "/overlays/{id}",
            methods!(
                cx,
                GET => overlays::get(cx, id),
                PATCH => overlays::update(cx, id),
                DELETE => overlays::delete(cx, id),
            ),
        ),
        ["overlays", id, "duplicate"] => (
            "/overlays/{id}/duplicate",
            methods!(cx, POST => overlays::duplicate(cx, id)),
        ),
        ["overlay", id] => (
            "/overlay/{id}",
            methods!(cx, GET => public::overlay(cx, id)),
        ),
        ["spotify", "credentials", "status"] => (
            "/spotify/credentials/status",
            methods!(cx, GET => spotify::credentials_status(cx)),
        ),
        ["spotify", "credentials"] => (
            "/spotify/credentials",
            methods!(cx, PATCH => spotify::update_credentials(cx)),
        ),
        ["spotify", "auth", "url"] => (
            "/spotify/auth/url",
            methods!(cx, GET => spotify::auth_url(cx)),
        ),
        ["spotify", "auth", "status"] => (
            "/spotify/auth/status",
            methods!(cx, GET => spotify::auth_status(cx)),
        ),
        ["spotify", "callback"] => (
            "/spotify/callback",
            methods!(cx, GET => spotify::callback(cx)),
        ),
        ["spotify", "logout"] => ("/spotify/logout", methods!(cx, POST => spotify::logout(cx))),
        // Upgrades are taken by the adapters before they reach this table.
        ["ws"] => (
            "/ws",
            methods!(cx, GET => async { Err(ApiError::BadRequest("WebSocket upgrade required")) }),
        ),
        ["color", id] => (
            "/color/{user_id}",
            methods!(cx, GET => public::color(cx, id)),
        ),
        ["infos", id] => (
            "/infos/{user_id}",
            methods!(cx, GET => public::infos(cx, id)),
        ),
        ["infos", id, "events"] => (
            "/infos/{user_id}/events",
            methods!(cx, GET => events::infos_events(cx, id)),
        ),
        ["admin", ..] | ["modo", ..] => staff_route(cx, &segments).await,
        _ => ("", Err(ApiError::NotFound("Not Found"))),
    }
}

/// The `/admin` (role admin) and `/modo` (role moderator or admin) routes.
async fn staff_route(cx: &Ctx<'_>, segments: &[&str]) -> (&'static str, Reply) {
    match segments {
        ["admin", "stats"] => ("/admin/stats", methods!(cx, GET => admin::stats(cx))),
        ["admin", "users"] => ("/admin/users", methods!(cx, GET => admin::users(cx))),
        ["admin", "users", id, "role"] => (
            "/admin/users/{id}/role",
            methods!(cx, PATCH => admin::change_role(cx, id)),
        ),
        ["admin", "users", id, "warnings"] => (
            "/admin/users/{id}/warnings",
            methods!(
                cx,
                GET => admin::user_warnings(cx, id),
                DELETE => admin::delete_user_warnings(cx, id),
            ),
        ),
        ["admin", "warnings"] => ("/admin/warnings", methods!(cx, GET => admin::warnings(cx))),
        ["admin", "warnings", id] => (
            "/admin/warnings/{id}",
            methods!(cx, DELETE => admin::delete_warning(cx, id)),
        ),
        ["modo", "users"] => ("/modo/users", methods!(cx, GET => modo::users(cx))),
        ["modo", "users", id] => (
            "/modo/users/{id}",
            methods!(cx, GET => modo::user(cx, id), PATCH => modo::update_user(cx, id)),
        ),
        ["modo", "users", id, "warn"] => (
            "/modo/users/{id}/warn",
            methods!(cx, POST => modo::warn(cx, id)),
        ),
        ["modo", "users", id, "ban"] => (
            "/modo/users/{id}/ban",
            methods!(cx, POST => modo::ban(cx, id)),
        ),
        ["modo", "users", id, "ban", "revoke"] => (
            "/modo/users/{id}/ban/revoke",
            methods!(cx, POST => modo::revoke_ban(cx, id)),
        ),
        ["modo", "overlays"] => ("/modo/overlays", methods!(cx, GET => modo::overlays(cx))),
        ["modo", "overlays", id] => (
            "/modo/overlays/{id}",
            methods!(
                cx,
                GET => modo::overlay(cx, id),
                PATCH => modo::update_overlay(cx, id),
                DELETE => modo::delete_overlay(cx, id),
            ),
        ),
        _ => ("", Err(ApiError::NotFound("Not Found"))),
    }
}

/// One request as handlers see it.
pub(crate) struct Ctx<'a> {
    pub(crate) app: &'a App,
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    /// The query string's pairs, decoded, in order.
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) peer: Option<SocketAddr>,
}

impl Ctx<'_> {
    /// The body as a JSON object; `optional` bodies may be empty.
    pub(crate) fn input(&self, optional: bool) -> Result<Input, ApiError> {
        Input::parse(&self.body, optional)
    }

    /// The query string's parameters, to read and validate.
    pub(crate) fn query(&self) -> QueryInput<'_> {
        QueryInput::new(&self.query)
    }

    /// A cookie of the request.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        cookie_value(&self.headers, name)
    }

    /// The access token: `Authorization: Bearer`, else the access cookie.
    pub(crate) fn access_token(&self) -> Option<String> {
        bearer_token(&self.headers).or_else(|| self.cookie(ACCESS_COOKIE))
    }

    /// The authenticated caller, or `401 Invalid token` / `403 User banned`.
    pub(crate) async fn principal(&self) -> Result<Principal, ApiError> {
        let token = self
            .access_token()
            .ok_or(ApiError::Unauthorized("Invalid token"))?;
        Ok(self.app.accounts().authenticate(&token).await?)
    }

    /// The client's IP: the socket peer; or, when the configuration trusts proxies
    /// (`TRUST_PROXY`), the `X-Forwarded-For` entry the proxies appended (see
    /// [`forwarded_client`]).
    pub(crate) fn client_ip(&self) -> Option<IpAddr> {
        let config = self.app.config();
        if config.trust_proxy {
            if let Some(ip) = forwarded_client(&self.headers, config.trusted_proxy_hops) {
                return Some(ip);
            }
        }
        self.peer.map(|p| p.ip())
    }
}

/// The client address that `hops` trusted proxies recorded in `X-Forwarded-For`: the entry
/// `hops` from the right of the whole list (every header line, in order). Each proxy appends
/// the address it received the request from, so entries further left were written by the
/// client and prove nothing. A list shorter than `hops` was written by our proxies only: its
/// first entry is the client. `None` without the header, or when that entry is not an address
/// (`1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`).
fn forwarded_client(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let entry = entries.get(entries.len().saturating_sub(hops))?;
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// The value of cookie `name` in the `Cookie` headers.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A path id, or `404 <not_found>` when no id can be like it: longer than any id, or holding a
/// NUL character (which PostgreSQL cannot even compare).
pub(crate) fn path_id<'a>(id: &'a str, not_found: &'static str) -> Result<&'a str, ApiError> {
    if id.is_empty() || id.contains(input::NUL) || id.chars().count() > MAX_ID_LEN {
        Err(ApiError::NotFound(not_found))
    } else {
        Ok(id)
    }
}

/// Reads a request body of any type within [`MAX_BODY_BYTES`] (never buffering more) and
/// within `HTTP_BODY_TIMEOUT` (`408` for a body still arriving then), then [`handle`]s the
/// request. This is all an adapter needs for ordinary requests.
pub async fn handle_incoming<B>(
    app: &App,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: Into<crate::store::BoxError>,
{
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    // Answers given before `handle` could see the request.
    let early = |response| {
        let id = request_id(&parts.headers);
        finish(app, &parts.method, "", started, &id, response).map(ResponseBody::from)
    };
    let mut body = Box::pin(body);
    let declared_too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > MAX_BODY_BYTES as u64);
    if declared_too_large {
        drain_refused(&mut body).await;
        return early(payload_too_large());
    }
    let limited = http_body_util::Limited::new(&mut body, MAX_BODY_BYTES);
    let read = http_body_util::BodyExt::collect(limited);
    let body_timeout = app.config().connections.body_timeout;
    match tokio::time::timeout(body_timeout, read).await {
        Ok(Ok(collected)) => {
            handle(app, Request::from_parts(parts, collected.to_bytes()), peer).await
        }
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            drain_refused(&mut body).await;
            early(payload_too_large())
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "request body could not be read");
            early(ApiError::BadRequest("Request body could not be read").into_response())
        }
        Err(_) => early(ApiError::RequestTimeout.into_response()),
    }
}

/// How much of a refused body is read (and dropped) before answering `413`.
const DRAIN_BYTES: usize = 1024 * 1024;
/// How long reading a refused body may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops the rest of a refused body, within [`DRAIN_BYTES`] and [`DRAIN_TIME`].
///
/// A client still sending its body when the server answers and closes the connection may get
/// a reset instead of the `413`; letting a moderately oversized body arrive first means it
/// reads the answer. Nothing is kept, and a larger or slower body is cut off.
async fn drain_refused<B>(body: &mut std::pin::Pin<Box<B>>)
where
    B: http_body::Body,
{
    let drain = async {
        let mut read = 0;
        while let Some(Ok(frame)) = http_body_util::BodyExt::frame(body).await {
            read += frame.data_ref().map_or(0, bytes::Buf::remaining);
            if read > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}
