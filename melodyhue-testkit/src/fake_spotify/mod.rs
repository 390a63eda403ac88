//! A fake Spotify: accounts and Web API endpoints served on loopback, with scripted answers.
//!
//! [`FakeSpotify::start`] binds `127.0.0.1:0` and serves, until the last handle is dropped
//! or [`FakeSpotify::shutdown`] is called:
//!
//! - `GET /authorize` — the consent page, already approved: for a known `client_id` and a
//!   `redirect_uri`, `302` to `redirect_uri?code=…&state=…` (state echoed when given), the
//!   code granting the account set with [`FakeSpotify::approve_as`] and bound to that client
//!   and redirect URI; `error=access_denied` instead when no account approves. An unknown
//!   client or a missing redirect URI is `400`.
//! - `POST /api/token` — the accounts service. The app authenticates with HTTP Basic
//!   (`client_id:client_secret`) or with `client_id`/`client_secret` form fields; an
//!   unknown app or wrong secret is `400 {"error": "invalid_client"}`. Every request's form
//!   is recorded ([`FakeSpotify::token_requests`]).
//!   `grant_type=authorization_code` redeems (once) a code from `/authorize` or
//!   [`FakeSpotify::add_authorization_code`]; it needs a `redirect_uri`, identical to the
//!   authorization's when the code is bound to one (else `invalid_grant`, as RFC 6749 §4.1.3
//!   asks). `grant_type=refresh_token` accepts a live refresh token, unless revoked
//!   (`400 {"error": "invalid_grant", …}`). An account told to
//!   [rotate](FakeSpotify::rotate_refresh_tokens) answers every refresh with a new refresh
//!   token, and the one used dies: each works once. Access tokens are fresh strings that map
//!   back to their account and live for the account's
//!   [lifetime](FakeSpotify::set_access_token_lifetime) (1 h by default) or until
//!   [`FakeSpotify::expire_access_tokens`].
//! - `GET /v1/me/player/currently-playing` — answers the [`Scenario`] of the account behind
//!   the bearer token (default [`Scenario::NothingPlaying`]); an unknown or expired bearer
//!   token is `401`. Like Spotify, episodes are only described when the query asks for
//!   `additional_types=episode` (otherwise their `item` is `null`).
//! - `GET /images/{name}` — bytes registered with [`FakeSpotify::add_image`] and friends.
//!
//! An *account* is one Spotify user: it is named by the first refresh token it was given
//! ([`FakeSpotify::set_scenario`], [`FakeSpotify::add_authorization_code`]), and every method
//! that takes a refresh token accepts that name or any refresh token of the account.
//! Everything can be changed while the server runs, and every call is counted.
//! [`FakeSpotify::stop_answering`] makes the whole server accept connections and read
//! requests but never answer. The server's [`FakeSpotify::url`] serves as both
//! `SPOTIFY_ACCOUNTS_URL` and `SPOTIFY_API_URL`.
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! use melodyhue_testkit::fake_spotify::{FakeSpotify, FakeTrack, Scenario};
//!
//! let fake = FakeSpotify::start().await?;
//! fake.add_app("client-id", "client-secret");
//! let cover = fake.add_image("cover.jpg", vec![0xff, 0xd8], "image/jpeg");
//! fake.add_authorization_code("code-from-redirect", "alice-refresh-token");
//! fake.set_scenario(
//!     "alice-refresh-token",
//!     Scenario::Playing(FakeTrack { cover_url: Some(cover), ..FakeTrack::default() }),
//! );
//! fake.rotate_refresh_tokens("alice-refresh-token");
//! // point SPOTIFY_ACCOUNTS_URL and SPOTIFY_API_URL at fake.url() ...
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
/// Access-token lifetime announced by the token endpoint by default, in seconds.
const TOKEN_LIFETIME_SECS: u64 = 3600;
/// Chunk size of an endless image.
const ENDLESS_CHUNK_BYTES: usize = 64 * 1024;

/// What the currently-playing endpoint answers for one account.
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
    /// `429` with this `Retry-After` header value verbatim (an HTTP-date, garbage), or none.
    /// [`Scenario::rate_limited_until`] makes the HTTP-date of an instant.
    RateLimitedWith {
        /// The header's value; `None` sends no `Retry-After`.
        retry_after: Option<String>,
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

    /// `429` with `Retry-After` as the HTTP-date (IMF-fixdate, RFC 9110 §5.6.7) of `when`.
    pub fn rate_limited_until(when: SystemTime) -> Self {
        Self::RateLimitedWith {
            retry_after: Some(httpdate::fmt_http_date(when)),
        }
    }
}

/// A track as the fake describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTrack {
    /// Spotify id; `None` for a local file (`id: null`, `is_local: true`, a
    /// `spotify:local:…` URI, and no album images whatever `cover_url` says).
    pub id: Option<String>,
    /// Track name.
    pub name: String,
    /// Artist names.
    pub artists: Vec<String>,
    /// Album name.
    pub album: String,
    /// Length in milliseconds; `None` sends `duration_ms: null`.
    pub duration_ms: Option<u64>,
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
            id: Some("4uLU6hMCjMI75M1A2tKUQC".to_owned()),
            name: "Fake Song".to_owned(),
            artists: vec!["Fake Artist".to_owned(), "Featured Artist".to_owned()],
            album: "Fake Album".to_owned(),
            duration_ms: Some(212_000),
            progress_ms: 42_000,
            cover_url: None,
        }
    }
}

impl FakeTrack {
    /// A local file of the user's, as Spotify describes one: no id, no cover.
    pub fn local_file(name: &str, artist: &str, album: &str) -> Self {
        Self {
            id: None,
            name: name.to_owned(),
            artists: vec![artist.to_owned()],
            album: album.to_owned(),
            ..Self::default()
        }
    }

    /// `spotify:track:{id}`, or for a local file `spotify:local:{artist}:{album}:{name}:{seconds}`
    /// with `+` for spaces, as Spotify writes them.
    pub fn uri(&self) -> String {
        match &self.id {
            Some(id) => format!("spotify:track:{id}"),
            None => {
                let part = |text: &str| text.replace(' ', "+");
                format!(
                    "spotify:local:{}:{}:{}:{}",
                    part(self.artists.first().map_or("", String::as_str)),
                    part(&self.album),
                    part(&self.name),
                    self.duration_ms.unwrap_or(0) / 1000
                )
            }
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
    /// `GET /authorize`.
    Authorize,
    /// `POST /api/token`.
    Token,
    /// `GET /v1/me/player/currently-playing`.
    CurrentlyPlaying,
    /// `GET /images/{name}`.
    Image,
}

/// One request to `POST /api/token`, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The client id of HTTP Basic authentication, else of the form.
    pub client_id: Option<String>,
    /// The form fields (the last value of a repeated one).
    pub form: BTreeMap<String, String>,
}

impl TokenRequest {
    /// A form field (`grant_type`, `code`, `redirect_uri`, `refresh_token`...).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.get(name).map(String::as_str)
    }
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
    codes: HashMap<String, IssuedCode>,
    /// Live refresh tokens, and the account of each.
    refresh_tokens: HashMap<String, String>,
    revoked: HashSet<String>,
    accounts: HashMap<String, Account>,
    access_tokens: HashMap<String, AccessGrant>,
    expired_access_tokens: HashSet<String>,
    issued: u64,
    /// The account that approves `/authorize`.
    approving: Option<String>,
    images: HashMap<String, FakeImage>,
    calls: HashMap<Endpoint, usize>,
    /// Currently-playing calls by account.
    currently_playing_calls: HashMap<String, usize>,
    token_requests: Vec<TokenRequest>,
    /// `Some(retry_after)`: every token request answers `429`.
    token_rate_limit: Option<Option<String>>,
    unresponsive: bool,
}

/// One Spotify user.
struct Account {
    scenario: Scenario,
    rotates: bool,
    token_lifetime_secs: u64,
    /// The newest refresh token issued.
    latest: String,
}

/// What an authorization code grants, once.
struct IssuedCode {
    account: String,
    /// Set for codes from `/authorize`: the exchange must come from this client...
    client_id: Option<String>,
    /// ...and repeat this redirect URI.
    redirect_uri: Option<String>,
}

struct AccessGrant {
    account: String,
    expires_at: Instant,
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

    /// From now on every request is read and never answered (until [`FakeSpotify::shutdown`]):
    /// a Spotify that accepts connections but hangs.
    pub fn stop_answering(&self) {
        self.shared.lock().unresponsive = true;
    }

    /// Registers a Spotify app (replacing the secret of a known client id).
    pub fn add_app(&self, client_id: &str, client_secret: &str) {
        self.shared
            .lock()
            .apps
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    /// Registers an authorization code that can be redeemed once, by any app and with any
    /// `redirect_uri`, for `refresh_token` (its account is made if needed).
    pub fn add_authorization_code(&self, code: &str, refresh_token: &str) {
        let mut state = self.shared.lock();
        let account = state.account_named(refresh_token);
        state.codes.insert(
            code.to_owned(),
            IssuedCode {
                account,
                client_id: None,
                redirect_uri: None,
            },
        );
    }

    /// From now on `/authorize` approves every request as the account of `refresh_token`
    /// (made if needed): its codes grant that account a new refresh token.
    pub fn approve_as(&self, refresh_token: &str) {
        let mut state = self.shared.lock();
        let account = state.account_named(refresh_token);
        state.approving = Some(account);
    }

    /// Sets what currently-playing answers for the account of `refresh_token` (which
    /// becomes a live refresh token of a new account if it is unknown). Takes effect on the
    /// next call.
    pub fn set_scenario(&self, refresh_token: &str, scenario: Scenario) {
        let mut state = self.shared.lock();
        let account = state.account_named(refresh_token);
        if let Some(account) = state.accounts.get_mut(&account) {
            account.scenario = scenario;
        }
    }

    /// From now on, each refresh of the account of `refresh_token` answers a new refresh
    /// token and kills the one it used (`invalid_grant` when used again), as Spotify does
    /// with rotating refresh tokens.
    pub fn rotate_refresh_tokens(&self, refresh_token: &str) {
        let mut state = self.shared.lock();
        let account = state.account_named(refresh_token);
        if let Some(account) = state.accounts.get_mut(&account) {
            account.rotates = true;
        }
    }

    /// The `expires_in` of the account's future access tokens, which really die then
    /// (`401` afterwards).
    pub fn set_access_token_lifetime(&self, refresh_token: &str, lifetime: Duration) {
        let mut state = self.shared.lock();
        let account = state.account_named(refresh_token);
        if let Some(account) = state.accounts.get_mut(&account) {
            account.token_lifetime_secs = lifetime.as_secs();
        }
    }

    /// The newest refresh token issued to the account of `refresh_token`, if it is known.
    pub fn latest_refresh_token(&self, refresh_token: &str) -> Option<String> {
        let state = self.shared.lock();
        let account = state.account_of(refresh_token)?;
        state.accounts.get(&account).map(|a| a.latest.clone())
    }

    /// Makes `refresh_token` answer `invalid_grant` from now on. Access tokens already
    /// issued for it stay valid, as on Spotify.
    pub fn revoke_refresh_token(&self, refresh_token: &str) {
        let mut state = self.shared.lock();
        state.refresh_tokens.remove(refresh_token);
        state.revoked.insert(refresh_token.to_owned());
    }

    /// Expires every access token issued so far to the account of `refresh_token`: they get
    /// `401` ("The access token expired") until the client refreshes.
    pub fn expire_access_tokens(&self, refresh_token: &str) {
        let mut state = self.shared.lock();
        let Some(account) = state.account_of(refresh_token) else {
            return;
        };
        let expired: Vec<String> = state
            .access_tokens
            .iter()
            .filter(|(_, grant)| grant.account == account)
            .map(|(token, _)| token.clone())
            .collect();
        for token in expired {
            state.access_tokens.remove(&token);
            state.expired_access_tokens.insert(token);
        }
    }

    /// Makes every token request answer `429` with this `Retry-After` value (`None`: no
    /// header), or answer normally again when `rate_limited` is false.
    pub fn rate_limit_token_requests(&self, rate_limited: bool, retry_after: Option<&str>) {
        self.shared.lock().token_rate_limit = rate_limited.then(|| retry_after.map(str::to_owned));
    }

    /// Every token request received so far, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.lock().token_requests.clone()
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

    /// Currently-playing calls made with access tokens of the account of `refresh_token`.
    pub fn currently_playing_calls_for(&self, refresh_token: &str) -> usize {
        let state = self.shared.lock();
        state
            .account_of(refresh_token)
            .and_then(|account| state.currently_playing_calls.get(&account).copied())
            .unwrap_or(0)
    }

    /// Sets every counter back to zero and forgets the recorded token requests.
    pub fn reset_counters(&self) {
        let mut state = self.shared.lock();
        state.calls.clear();
        state.currently_playing_calls.clear();
        state.token_requests.clear();
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

    /// The account a refresh token (or an account name) belongs to.
    fn account_of(&self, refresh_token: &str) -> Option<String> {
        self.refresh_tokens.get(refresh_token).cloned().or_else(|| {
            self.accounts
                .contains_key(refresh_token)
                .then(|| refresh_token.to_owned())
        })
    }

    /// The account of `refresh_token`, made (with that token live) when unknown.
    fn account_named(&mut self, refresh_token: &str) -> String {
        if let Some(account) = self.account_of(refresh_token) {
            return account;
        }
        self.refresh_tokens
            .insert(refresh_token.to_owned(), refresh_token.to_owned());
        self.accounts.insert(
            refresh_token.to_owned(),
            Account {
                scenario: Scenario::NothingPlaying,
                rotates: false,
                token_lifetime_secs: TOKEN_LIFETIME_SECS,
                latest: refresh_token.to_owned(),
            },
        );
        refresh_token.to_owned()
    }

    /// A new live refresh token of `account`.
    fn new_refresh_token(&mut self, account: &str) -> String {
        self.issued += 1;
        let token = format!("{account}~{}", self.issued);
        self.refresh_tokens
            .insert(token.clone(), account.to_owned());
        if let Some(account) = self.accounts.get_mut(account) {
            account.latest.clone_from(&token);
        }
        token
    }

    /// Issues an access token for `account`, with `refresh_token` in the answer when given
    /// (after a code exchange, or a refresh that rotated).
    fn grant(&mut self, account: &str, refresh_token: Option<String>) -> Response<Body> {
        self.issued += 1;
        let access_token = format!("fake-access-token-{}", self.issued);
        let lifetime = self
            .accounts
            .get(account)
            .map_or(TOKEN_LIFETIME_SECS, |account| account.token_lifetime_secs);
        self.access_tokens.insert(
            access_token.clone(),
            AccessGrant {
                account: account.to_owned(),
                expires_at: Instant::now() + Duration::from_secs(lifetime),
            },
        );
        let mut body = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": "user-read-currently-playing user-read-playback-state",
        });
        if let Some(refresh_token) = refresh_token {
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
    // Local files have no ids anywhere and no album images.
    let local = track.id.is_none();
    let artists: Vec<Value> = track
        .artists
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let id = (!local).then(|| format!("fake-artist-{index}"));
            json!({"type": "artist", "id": id, "name": name})
        })
        .collect();
    let cover = track.cover_url.as_deref().filter(|_| !local);
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
            "uri": track.uri(),
            "is_local": local,
            "name": track.name,
            "duration_ms": track.duration_ms,
            "explicit": false,
            "artists": artists,
            "album": {
                "type": "album",
                "id": (!local).then_some("fake-album"),
                "name": track.album,
                "artists": artists,
                "images": images_json(cover),
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

/// A plain-text answer (the accounts service's error pages).
fn text(status: StatusCode, body: &'static str) -> Response<Body> {
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
