//! The fake's HTTP server: the connection loop, the routes, `/authorize`, `/api/token`, the
//! currently-playing endpoint, and the shapes of their answers.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::images::image;
use super::scenario::{episode_json, itemless_json, track_json};
use super::{Endpoint, IssuedCode, Scenario, Shared, TokenRequest};

/// Largest form body the token endpoint reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(super) type Body = BoxBody<Bytes, Infallible>;

pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        // Stop first: after a shutdown, nothing more is served.
        let accepted = tokio::select! {
            biased;
            _ = until_stopped(&mut stopped) => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(route(&shared, request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                biased;
                _ = until_stopped(&mut stopped) => {}
                _ = connection => {}
            }
        });
    }
}

/// Resolves on [`FakeSpotify::shutdown`] or when the last handle is gone.
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    if shared.lock().unresponsive {
        // The connection task drops this on shutdown.
        return std::future::pending().await;
    }
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/authorize") => authorize(shared, &query),
        (&Method::POST, "/api/token") => token(shared, request).await,
        (&Method::GET, "/v1/me/player/currently-playing") => {
            let access_token = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            let with_episodes =
                url::form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
                    name == "additional_types" && value.split(',').any(|kind| kind == "episode")
                });
            currently_playing(shared, &access_token, with_episodes).await
        }
        (&Method::GET, _) => match path.strip_prefix("/images/") {
            Some(name) => image(shared, &percent_decode_str(name).decode_utf8_lossy()).await,
            None => api_error(StatusCode::NOT_FOUND, "Service not found"),
        },
        _ => api_error(StatusCode::NOT_FOUND, "Service not found"),
    }
}

fn authorize(shared: &Shared, query: &str) -> Response<Body> {
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut state = shared.lock();
    state.count(Endpoint::Authorize);
    let client_id = params
        .get("client_id")
        .filter(|id| state.apps.contains_key(*id));
    let (Some(client_id), Some(redirect_uri)) = (client_id, params.get("redirect_uri")) else {
        return text(StatusCode::BAD_REQUEST, "INVALID_CLIENT: Invalid client");
    };
    if params.get("response_type").map(String::as_str) != Some("code") {
        return text(StatusCode::BAD_REQUEST, "unsupported_response_type");
    }
    let mut answer = url::form_urlencoded::Serializer::new(String::new());
    match state.approving.clone() {
        Some(account) => {
            state.issued += 1;
            let code = format!("fake-code-{}", state.issued);
            state.codes.insert(
                code.clone(),
                IssuedCode {
                    account,
                    client_id: Some(client_id.clone()),
                    redirect_uri: Some(redirect_uri.clone()),
                },
            );
            answer.append_pair("code", &code);
        }
        None => {
            answer.append_pair("error", "access_denied");
        }
    }
    if let Some(oauth_state) = params.get("state") {
        answer.append_pair("state", oauth_state);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", answer.finish());
    let mut response = empty(StatusCode::FOUND);
    if let Ok(location) = location.parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn token(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    shared.lock().count(Endpoint::Token);
    let basic = basic_credentials(request.headers());
    let Ok(body) = Limited::new(request.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
    else {
        return oauth_error("invalid_request", "Invalid request body");
    };
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let credentials = basic.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });

    let mut state = shared.lock();
    state.token_requests.push(TokenRequest {
        client_id: credentials.as_ref().map(|(id, _)| id.clone()),
        form: form.clone(),
    });
    if let Some(retry_after) = state.token_rate_limit.clone() {
        let mut response = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "rate_limited", "error_description": "Too many requests"}),
        );
        set_retry_after(&mut response, retry_after.as_deref());
        return response;
    }
    let Some((client_id, client_secret)) = credentials else {
        return oauth_error("invalid_client", "Invalid client");
    };
    match state.apps.get(&client_id) {
        None => return oauth_error("invalid_client", "Invalid client"),
        Some(secret) if *secret != client_secret => {
            return oauth_error("invalid_client", "Invalid client secret");
        }
        Some(_) => {}
    }
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    match field("grant_type") {
        Some("authorization_code") => {
            let Some(redirect_uri) = field("redirect_uri") else {
                return oauth_error("invalid_request", "redirect_uri must be supplied");
            };
            // A code is used up by any attempt (RFC 6749 §4.1.2).
            let Some(code) = field("code").and_then(|code| state.codes.remove(code)) else {
                return oauth_error("invalid_grant", "Invalid authorization code");
            };
            if code.client_id.as_ref().is_some_and(|id| *id != client_id) {
                return oauth_error("invalid_grant", "Invalid authorization code");
            }
            if code
                .redirect_uri
                .as_deref()
                .is_some_and(|uri| uri != redirect_uri)
            {
                return oauth_error("invalid_grant", "Invalid redirect URI");
            }
            let refresh_token = if code.client_id.is_some() {
                state.new_refresh_token(&code.account)
            } else {
                state
                    .accounts
                    .get(&code.account)
                    .map_or_else(|| code.account.clone(), |a| a.latest.clone())
            };
            state.grant(&code.account, Some(refresh_token))
        }
        Some("refresh_token") => match field("refresh_token") {
            Some(refresh_token) if state.revoked.contains(refresh_token) => {
                oauth_error("invalid_grant", "Refresh token revoked")
            }
            Some(refresh_token) => match state.refresh_tokens.get(refresh_token).cloned() {
                Some(account) => {
                    let rotated = state
                        .accounts
                        .get(&account)
                        .is_some_and(|account| account.rotates)
                        .then(|| {
                            state.refresh_tokens.remove(refresh_token);
                            state.new_refresh_token(&account)
                        });
                    state.grant(&account, rotated)
                }
                None => oauth_error("invalid_grant", "Invalid refresh token"),
            },
            None => oauth_error("invalid_grant", "Invalid refresh token"),
        },
        _ => oauth_error("unsupported_grant_type", "grant_type parameter is missing"),
    }
}

async fn currently_playing(
    shared: &Shared,
    access_token: &str,
    with_episodes: bool,
) -> Response<Body> {
    let mut scenario = {
        let mut state = shared.lock();
        state.count(Endpoint::CurrentlyPlaying);
        let live = state
            .access_tokens
            .get(access_token)
            .filter(|grant| grant.expires_at > Instant::now())
            .map(|grant| grant.account.clone());
        let Some(account) = live else {
            let known = state.access_tokens.contains_key(access_token)
                || state.expired_access_tokens.contains(access_token);
            return if known {
                api_error(StatusCode::UNAUTHORIZED, "The access token expired")
            } else {
                api_error(StatusCode::UNAUTHORIZED, "Invalid access token")
            };
        };
        *state
            .currently_playing_calls
            .entry(account.clone())
            .or_default() += 1;
        state
            .accounts
            .get(&account)
            .map_or(Scenario::NothingPlaying, |account| account.scenario.clone())
    };
    loop {
        let response = match scenario {
            Scenario::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                scenario = *then;
                continue;
            }
            Scenario::Playing(track) => json_response(StatusCode::OK, track_json(&track, true)),
            Scenario::Paused(track) => json_response(StatusCode::OK, track_json(&track, false)),
            Scenario::NothingPlaying => empty(StatusCode::NO_CONTENT),
            Scenario::Episode(episode) => {
                json_response(StatusCode::OK, episode_json(&episode, with_episodes))
            }
            Scenario::Ad => json_response(StatusCode::OK, itemless_json("ad")),
            Scenario::UnknownType => json_response(StatusCode::OK, itemless_json("unknown")),
            Scenario::RateLimited { retry_after_secs } => {
                let mut response =
                    api_error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded");
                set_retry_after(&mut response, Some(&retry_after_secs.to_string()));
                response
            }
            Scenario::RateLimitedWith { retry_after } => {
                let mut response =
                    api_error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded");
                set_retry_after(&mut response, retry_after.as_deref());
                response
            }
            Scenario::ServerError => api_error(StatusCode::INTERNAL_SERVER_ERROR, "Server error."),
            Scenario::AccessTokenExpired => {
                api_error(StatusCode::UNAUTHORIZED, "The access token expired")
            }
        };
        return response;
    }
}

fn set_retry_after(response: &mut Response<Body>, retry_after: Option<&str>) {
    if let Some(value) = retry_after.and_then(|value| value.parse().ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

/// `client_id:client_secret` from `Authorization: Basic …`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (client_id, client_secret) = decoded.split_once(':')?;
    Some((client_id.to_owned(), client_secret.to_owned()))
}

pub(super) fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

pub(super) fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = status;
    response
}

/// The Web API's error shape: `{"error": {"status": …, "message": …}}`.
pub(super) fn api_error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        json!({"error": {"status": status.as_u16(), "message": message}}),
    )
}

/// A plain-text answer (the accounts service's error pages).
pub(super) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The accounts service's error shape: `400 {"error": …, "error_description": …}`.
fn oauth_error(error: &str, description: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description}),
    )
}
