//! A fake Spotify: accounts and Web API endpoints served on loopback, with scripted answers.
//!
//! [`FakeSpotify::start`] binds `127.0.0.1:0` and serves, until the last handle is dropped
//! or [`FakeSpotify::shutdown`] is called:
//!
//! - `POST /api/token` — the accounts service. The app authenticates with HTTP Basic
//!   (`client_id:client_secret`) or with `client_id`/`client_secret` form fields; an
//!   unknown app or wrong secret is `400 {"error": "invalid_client"}`.
//!   `grant_type=authorization_code` redeems (once) a code registered with
//!   [`FakeSpotify::add_authorization_code`] and needs a `redirect_uri`;
//!   `grant_type=refresh_token` accepts any refresh token registered through a code or a
//!   scenario, unless revoked (`400 {"error": "invalid_grant", "error_description":
//!   "Refresh token revoked"}`). Access tokens are fresh strings that map back to their
//!   refresh token and live until [`FakeSpotify::expire_access_tokens`].
//! - `GET /v1/me/player/currently-playing` — answers the [`Scenario`] of the refresh token
//!   behind the bearer token (default [`Scenario::NothingPlaying`]); an unknown bearer
//!   token is `401`. Like Spotify, episodes are only described when the query asks for
//!   `additional_types=episode` (otherwise their `item` is `null`).
//! - `GET /images/{name}` — bytes registered with [`FakeSpotify::add_image`] and friends.
//!
//! Everything can be changed while the server runs, and every call is counted.
//! The server's [`FakeSpotify::url`] serves as both `SPOTIFY_ACCOUNTS_URL` and
//! `SPOTIFY_API_URL`.
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! use melodyhue_core::testing::fake_spotify::{FakeSpotify, FakeTrack, Scenario};
//!
//! let fake = FakeSpotify::start().await?;
//! fake.add_app("client-id", "client-secret");
//! let cover = fake.add_image("cover.jpg", vec![0xff, 0xd8], "image/jpeg");
//! fake.add_authorization_code("code-from-redirect", "alice-refresh-token");
//! fake.set_scenario(
//!     "alice-refresh-token",
//!     Scenario::Playing(FakeTrack { cover_url: Some(cover), ..FakeTrack::default() }),
//! );
//! // point SPOTIFY_ACCOUNTS_URL and SPOTIFY_API_URL at fake.url() ...
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest form body the token endpoint reads.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Access-token lifetime announced by the token endpoint, in seconds.
const TOKEN_LIFETIME_SECS: u64 = 3600;
/// Chunk size of an endless image.
const ENDLESS_CHUNK_BYTES: usize = 64 * 1024;

/// What the currently-playing endpoint answers for one refresh token (one user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// `200`, a track playing.
    Playing(FakeTrack),
    /// `200`, a track paused (`is_playing: false`).
    Paused(FakeTrack),
    /// `204 No Content`. The default.
    NothingPlaying,
    /// `200`, a podcast episode playing. Leave [`FakeEpisode::image_url`] empty for an
    /// episode that only has its show's image.
    Episode(FakeEpisode),
    /// `200`, an ad: `currently_playing_type: "ad"`, `item: null`.
    Ad,
    /// `200`, `currently_playing_type: "unknown"`, `item: null`.
    UnknownType,
    /// `429` with `Retry-After: retry_after_secs`.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// `500` with Spotify's error body.
    ServerError,
    /// Waits `delay`, then answers `then`.
    Slow {
        /// How long to wait before answering.
        delay: Duration,
        /// The answer after the wait.
        then: Box<Scenario>,
    },
    /// `401 {"error": {"status": 401, "message": "The access token expired"}}`, whatever
    /// the access token.
    AccessTokenExpired,
}

impl Scenario {
    /// [`Scenario::Slow`] without the boxing.
    pub fn slow(delay: Duration, then: Scenario) -> Self {
        Self::Slow {
            delay,
            then: Box::new(then),
        }
    }
}

/// A track as the fake describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTrack {
    /// Spotify id.
    pub id: String,
    /// Track name.
    pub name: String,
    /// Artist names.
    pub artists: Vec<String>,
    /// Album name.
    pub album: String,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// Position in milliseconds.
    pub progress_ms: u64,
    /// The 640 px album cover. The album's `images` list it together with two smaller
    /// variants (`?size=300`, `?size=64`), and not largest first, so a client must pick by
    /// size.
    pub cover_url: Option<String>,
}

impl Default for FakeTrack {
    fn default() -> Self {
        Self {
            id: "4uLU6hMCjMI75M1A2tKUQC".to_owned(),
            name: "Fake Song".to_owned(),
            artists: vec!["Fake Artist".to_owned(), "Featured Artist".to_owned()],
            album: "Fake Album".to_owned(),
            duration_ms: 212_000,
            progress_ms: 42_000,
            cover_url: None,
        }
    }
}

/// A podcast episode as the fake describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeEpisode {
    /// Spotify id.
    pub id: String,
    /// Episode name.
    pub name: String,
    /// Show name.
    pub show_name: String,
    /// Show publisher.
    pub publisher: String,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// Position in milliseconds.
    pub progress_ms: u64,
    /// The episode's own 640 px image; `None` sends an empty `images` list.
    pub image_url: Option<String>,
    /// The show's 640 px image.
    pub show_image_url: Option<String>,
}

impl Default for FakeEpisode {
    fn default() -> Self {
        Self {
            id: "512ojhOuo1ktJprKbVcKyQ".to_owned(),
            name: "Fake Episode".to_owned(),
            show_name: "Fake Show".to_owned(),
            publisher: "Fake Publisher".to_owned(),
            duration_ms: 3_600_000,
            progress_ms: 60_000,
            image_url: None,
            show_image_url: None,
        }
    }
}

/// The endpoints whose calls are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /api/token`.
    Token,
    /// `GET /v1/me/player/currently-playing`.
    CurrentlyPlaying,
    /// `GET /images/{name}`.
    Image,
}

/// A running fake Spotify. Clones are handles on the same server, which stops when the
/// last handle is dropped or [`FakeSpotify::shutdown`] is called.
#[derive(Clone)]
pub struct FakeSpotify {
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<bool>>,
    url: String,
}

impl fmt::Debug for FakeSpotify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeSpotify")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its panic behind ours.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct State {
    apps: HashMap<String, String>,
    codes: HashMap<String, String>,
    refresh_tokens: HashSet<String>,
    revoked: HashSet<String>,
    access_tokens: HashMap<String, String>,
    expired_access_tokens: HashSet<String>,
    issued: u64,
    scenarios: HashMap<String, Scenario>,
    images: HashMap<String, FakeImage>,
    calls: HashMap<Endpoint, usize>,
    currently_playing_calls: HashMap<String, usize>,
}

#[derive(Clone)]
struct FakeImage {
    delay: Duration,
    body: ImageBody,
}

#[derive(Clone)]
enum ImageBody {
    Bytes { bytes: Bytes, content_type: String },
    Endless { content_type: String },
    Redirect { location: String },
}

type Body = BoxBody<Bytes, Infallible>;

impl FakeSpotify {
    /// Binds `127.0.0.1:0` and serves on a tokio task. Ready as soon as this returns.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(listener, Arc::clone(&shared), stopped));
        Ok(Self {
            shared,
            stop: Arc::new(stop),
            url,
        })
    }

    /// `http://127.0.0.1:PORT`, without trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops accepting connections and drops the open ones, for every handle.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Registers a Spotify app (replacing the secret of a known client id).
    pub fn add_app(&self, client_id: &str, client_secret: &str) {
        self.shared
            .lock()
            .apps
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    /// Registers an authorization code that can be redeemed once, for `refresh_token`.
    pub fn add_authorization_code(&self, code: &str, refresh_token: &str) {
        let mut state = self.shared.lock();
        state
            .codes
            .insert(code.to_owned(), refresh_token.to_owned());
        state.refresh_tokens.insert(refresh_token.to_owned());
    }

    /// Sets what currently-playing answers for the user behind `refresh_token` (which
    /// becomes a valid refresh token if it was not yet). Takes effect on the next call.
    pub fn set_scenario(&self, refresh_token: &str, scenario: Scenario) {
        let mut state = self.shared.lock();
        state.refresh_tokens.insert(refresh_token.to_owned());
        state.scenarios.insert(refresh_token.to_owned(), scenario);
    }

    /// Makes `refresh_token` answer `invalid_grant` from now on. Access tokens already
    /// issued for it stay valid, as on Spotify.
    pub fn revoke_refresh_token(&self, refresh_token: &str) {
        self.shared.lock().revoked.insert(refresh_token.to_owned());
    }

    /// Expires every access token issued so far for `refresh_token`: they get `401`
    /// ("The access token expired") until the client refreshes.
    pub fn expire_access_tokens(&self, refresh_token: &str) {
        let mut state = self.shared.lock();
        let expired: Vec<String> = state
            .access_tokens
            .iter()
            .filter(|(_, owner)| *owner == refresh_token)
            .map(|(token, _)| token.clone())
            .collect();
        for token in expired {
            state.access_tokens.remove(&token);
            state.expired_access_tokens.insert(token);
        }
    }

    /// Serves `bytes` at `/images/{name}` with `content_type`; returns the image's URL.
    pub fn add_image(&self, name: &str, bytes: Vec<u8>, content_type: &str) -> String {
        self.add_image_body(
            name,
            Duration::ZERO,
            ImageBody::Bytes {
                bytes: bytes.into(),
                content_type: content_type.to_owned(),
            },
        )
    }

    /// Like [`FakeSpotify::add_image`], but the answer starts only after `delay`.
    pub fn add_slow_image(
        &self,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
        delay: Duration,
    ) -> String {
        self.add_image_body(
            name,
            delay,
            ImageBody::Bytes {
                bytes: bytes.into(),
                content_type: content_type.to_owned(),
            },
        )
    }

    /// Serves at `/images/{name}` an image that never ends (chunked, no `Content-Length`):
    /// a client that reads it all never finishes. Returns the image's URL.
    pub fn add_endless_image(&self, name: &str, content_type: &str) -> String {
        self.add_image_body(
            name,
            Duration::ZERO,
            ImageBody::Endless {
                content_type: content_type.to_owned(),
            },
        )
    }

    /// Answers `/images/{name}` with `302 Found` to `location`. Returns the image's URL.
    pub fn add_image_redirect(&self, name: &str, location: &str) -> String {
        self.add_image_body(
            name,
            Duration::ZERO,
            ImageBody::Redirect {
                location: location.to_owned(),
            },
        )
    }

    fn add_image_body(&self, name: &str, delay: Duration, body: ImageBody) -> String {
        self.shared
            .lock()
            .images
            .insert(name.to_owned(), FakeImage { delay, body });
        format!(
            "{}/images/{}",
            self.url,
            utf8_percent_encode(name, NON_ALPHANUMERIC)
        )
    }

    /// Calls received by `endpoint` since the start or the last [`FakeSpotify::reset_counters`].
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.shared
            .lock()
            .calls
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Currently-playing calls made with access tokens of `refresh_token`.
    pub fn currently_playing_calls_for(&self, refresh_token: &str) -> usize {
        self.shared
            .lock()
            .currently_playing_calls
            .get(refresh_token)
            .copied()
            .unwrap_or(0)
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        let mut state = self.shared.lock();
        state.calls.clear();
        state.currently_playing_calls.clear();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
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
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/api/token") => token(shared, request).await,
        (&Method::GET, "/v1/me/player/currently-playing") => {
            let access_token = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            let query = request.uri().query().unwrap_or_default().as_bytes();
            let with_episodes = url::form_urlencoded::parse(query).any(|(name, value)| {
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
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let credentials = basic.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });

    let mut state = shared.lock();
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
            if field("redirect_uri").is_none() {
                return oauth_error("invalid_request", "redirect_uri must be supplied");
            }
            match field("code").and_then(|code| state.codes.remove(code)) {
                Some(refresh_token) => state.grant(&refresh_token, true),
                None => oauth_error("invalid_grant", "Invalid authorization code"),
            }
        }
        Some("refresh_token") => match field("refresh_token") {
            Some(refresh_token) if state.revoked.contains(refresh_token) => {
                oauth_error("invalid_grant", "Refresh token revoked")
            }
            Some(refresh_token) if state.refresh_tokens.contains(refresh_token) => {
                state.grant(refresh_token, false)
            }
            _ => oauth_error("invalid_grant", "Invalid refresh token"),
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
        let Some(refresh_token) = state.access_tokens.get(access_token).cloned() else {
            return if state.expired_access_tokens.contains(access_token) {
                api_error(StatusCode::UNAUTHORIZED, "The access token expired")
            } else {
                api_error(StatusCode::UNAUTHORIZED, "Invalid access token")
            };
        };
        *state
            .currently_playing_calls
            .entry(refresh_token.clone())
            .or_default() += 1;
        state
            .scenarios
            .get(&refresh_token)
            .cloned()
            .unwrap_or(Scenario::NothingPlaying)
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
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs.into());
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

async fn image(shared: &Shared, name: &str) -> Response<Body> {
    let image = {
        let mut state = shared.lock();
        state.count(Endpoint::Image);
        state.images.get(name).cloned()
    };
    let Some(image) = image else {
        return api_error(StatusCode::NOT_FOUND, "Image not found");
    };
    tokio::time::sleep(image.delay).await;
    let (status, content_type, body) = match image.body {
        ImageBody::Bytes {
            bytes,
            content_type,
        } => (StatusCode::OK, content_type, Full::new(bytes).boxed()),
        ImageBody::Endless { content_type } => {
            let chunk = Bytes::from(vec![0u8; ENDLESS_CHUNK_BYTES]);
            let frames = futures_util::stream::repeat_with(move || {
                Ok::<_, Infallible>(Frame::data(chunk.clone()))
            });
            (
                StatusCode::OK,
                content_type,
                StreamBody::new(frames).boxed(),
            )
        }
        ImageBody::Redirect { location } => {
            let mut response = empty(StatusCode::FOUND);
            if let Ok(location) = location.parse() {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return response;
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(content_type) = content_type.parse() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

impl State {
    fn count(&mut self, endpoint: Endpoint) {
        *self.calls.entry(endpoint).or_default() += 1;
    }

    /// Issues an access token for `refresh_token` (and hands the refresh token back after
    /// a code exchange, as Spotify does).
    fn grant(&mut self, refresh_token: &str, with_refresh_token: bool) -> Response<Body> {
        self.issued += 1;
        let access_token = format!("fake-access-token-{}", self.issued);
        self.access_tokens
            .insert(access_token.clone(), refresh_token.to_owned());
        let mut body = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "scope": "user-read-currently-playing user-read-playback-state",
        });
        if with_refresh_token {
            body["refresh_token"] = json!(refresh_token);
        }
        json_response(StatusCode::OK, body)
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Spotify's image list for a 640 px image, not largest first.
fn images_json(url: Option<&str>) -> Value {
    let Some(url) = url else {
        return json!([]);
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    json!([
        {"url": format!("{url}{separator}size=300"), "width": 300, "height": 300},
        {"url": url, "width": 640, "height": 640},
        {"url": format!("{url}{separator}size=64"), "width": 64, "height": 64},
    ])
}

fn track_json(track: &FakeTrack, is_playing: bool) -> Value {
    let artists: Vec<Value> = track
        .artists
        .iter()
        .enumerate()
        .map(|(index, name)| {
            json!({"type": "artist", "id": format!("fake-artist-{index}"), "name": name})
        })
        .collect();
    json!({
        "timestamp": now_ms(),
        "context": null,
        "progress_ms": track.progress_ms,
        "is_playing": is_playing,
        "currently_playing_type": "track",
        "actions": {"disallows": {"resuming": is_playing}},
        "item": {
            "type": "track",
            "id": track.id,
            "uri": format!("spotify:track:{}", track.id),
            "name": track.name,
            "duration_ms": track.duration_ms,
            "explicit": false,
            "artists": artists,
            "album": {
                "type": "album",
                "id": "fake-album",
                "name": track.album,
                "artists": artists,
                "images": images_json(track.cover_url.as_deref()),
            },
        },
    })
}

fn episode_json(episode: &FakeEpisode, described: bool) -> Value {
    let item = if described {
        json!({
            "type": "episode",
            "id": episode.id,
            "uri": format!("spotify:episode:{}", episode.id),
            "name": episode.name,
            "duration_ms": episode.duration_ms,
            "images": images_json(episode.image_url.as_deref()),
            "show": {
                "type": "show",
                "id": "fake-show",
                "name": episode.show_name,
                "publisher": episode.publisher,
                "images": images_json(episode.show_image_url.as_deref()),
            },
        })
    } else {
        Value::Null
    };
    json!({
        "timestamp": now_ms(),
        "context": null,
        "progress_ms": episode.progress_ms,
        "is_playing": true,
        "currently_playing_type": "episode",
        "actions": {"disallows": {"resuming": true}},
        "item": item,
    })
}

fn itemless_json(currently_playing_type: &str) -> Value {
    json!({
        "timestamp": now_ms(),
        "context": null,
        "progress_ms": 5_000,
        "is_playing": true,
        "currently_playing_type": currently_playing_type,
        "actions": {"disallows": {"resuming": true}},
        "item": null,
    })
}

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = status;
    response
}

/// The Web API's error shape: `{"error": {"status": …, "message": …}}`.
fn api_error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        json!({"error": {"status": status.as_u16(), "message": message}}),
    )
}

/// The accounts service's error shape: `400 {"error": …, "error_description": …}`.
fn oauth_error(error: &str, description: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description}),
    )
}
