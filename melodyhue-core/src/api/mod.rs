//! The HTTP contract, framework-neutral: `http::Request<Bytes>` in, `http::Response` out, with
//! a [`ResponseBody`] that is one buffer or, for event streams, a stream of chunks.
//!
//! Everything a frontend adapter would otherwise repeat lives here: routing, reading tokens
//! from headers and cookies, JSON in and out, validation, errors, cookies, CORS and the body
//! limit. An adapter only moves bytes: it reads at most [`MAX_BODY_BYTES`] of the body
//! (answering [`payload_too_large`] beyond that), calls [`handle`], and writes the response,
//! streaming its body when [`ResponseBody::is_stream`].
//!
//! Routing is one table, `routes::ROUTES`: a row per operation (method, path template, handler,
//! who may call it, request body, query parameters, answers, tag and summary). The dispatcher
//! serves it (a known path with another method is `405` with `Allow`), the OpenAPI document
//! ([`openapi`]) describes it, and its templates are the route label of the logs and metrics.
//!
//! **Adding an endpoint:** write the handler, `async fn(cx: &Ctx<'_>) -> Reply` (or
//! `(cx, id: &str)` for a template with a `{parameter}`), next to its kind; add its row to
//! `ROUTES`, before any row whose template would take its path through a parameter (a schema
//! the row names that the document lacks goes into `openapi::document`'s components; a unit
//! test finds it missing); add its case to the HTTP suite (`melodyhue-testkit/src/suite/`).
//! The suite's coverage case then finds it documented and routed, and, for a `User` or `Staff`
//! row, answering `401` without a token.
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
mod routes;
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
use routes::Found;

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

/// Finds the row of a request in [`routes::ROUTES`] and runs its handler; returns the route
/// template (for logs and metrics) and the reply. A request a foreign page could have made a
/// browser send is refused before its handler runs (see [`csrf`]).
async fn route(cx: &Ctx<'_>, path: &str) -> (&'static str, Reply) {
    let decoded = path_segments(path);
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match routes::find(&cx.method, &segments) {
        Found::Route(route, param) => {
            let reply = match csrf::check(cx, route.bodies) {
                Ok(()) => route.handler.call(cx, param).await,
                Err(refused) => Err(refused),
            };
            (route.path, reply)
        }
        Found::OtherMethod(template) => (template, Ok(routes::method_not_allowed(template))),
        Found::Nothing => ("", Err(ApiError::NotFound("Not Found"))),
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
