//! The Spotify Web API client: OAuth code exchange and refresh on the accounts service,
//! the currently-playing endpoint, and cover downloads under an [`ImagePolicy`].
//!
//! One [`SpotifyClient`] serves every user: it holds no per-user state, every call takes
//! the credentials it needs, and clones share one connection pool (HTTP/2 to Spotify).
//! Every request has the timeout of [`SpotifyEndpoints::timeout`]; redirects are never
//! followed blindly. Tokens and secrets are never logged nor put in error messages.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use url::Url;

use super::images::ImagePolicy;
use super::wire::{lenient, parse_currently_playing, parse_object, parse_token_grant};

/// Spotify's accounts service (OAuth), the default of `SPOTIFY_ACCOUNTS_URL`.
pub const DEFAULT_ACCOUNTS_URL: &str = "https://accounts.spotify.com";
/// Spotify's Web API, the default of `SPOTIFY_API_URL`.
pub const DEFAULT_API_URL: &str = "https://api.spotify.com";
/// Default timeout of one request, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait assumed when Spotify answers 429 without a usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The longest wait taken from a `Retry-After`: Spotify's longest known bans last about a day,
/// and a client asks again after this long rather than trusting an absurd value for ever.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Scopes MelodyHue asks for, already encoded as they appear in the authorize URL.
const SCOPES: &str = "user-read-currently-playing%20user-read-playback-state";
/// Spotify's JSON answers are a few KiB; anything far larger is not Spotify.
const MAX_API_BODY_BYTES: usize = 1024 * 1024;
/// Redirects followed (each re-checked against the policy) when downloading a cover.
const MAX_IMAGE_REDIRECTS: usize = 3;
/// Characters left as they are in a query component: RFC 3986 "unreserved".
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where Spotify lives, and how long one request may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotifyEndpoints {
    /// Base URL of the accounts service (`SPOTIFY_ACCOUNTS_URL`), e.g. `https://accounts.spotify.com`.
    pub accounts_url: String,
    /// Base URL of the Web API (`SPOTIFY_API_URL`), e.g. `https://api.spotify.com`.
    pub api_url: String,
    /// Timeout of one request, from connecting to the last byte of the body.
    pub timeout: Duration,
}

impl Default for SpotifyEndpoints {
    fn default() -> Self {
        Self {
            accounts_url: DEFAULT_ACCOUNTS_URL.to_owned(),
            api_url: DEFAULT_API_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A user's Spotify app: the client id and secret they registered with Spotify.
#[derive(Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// The app's client id (not secret).
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// What the accounts service grants: an access token, and sometimes a new refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// Bearer token for the Web API.
    pub access_token: String,
    /// How long the access token lives from the moment it was issued (`expires_in`; an hour when
    /// absent, at most a day).
    pub expires_in: Duration,
    /// A refresh token: always after a code exchange; after a refresh only when Spotify
    /// rotates it, in which case it replaces the stored one.
    pub refresh_token: Option<String>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The answer of the currently-playing endpoint (Spotify's "Get Currently Playing Track").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playback {
    /// Nothing to show: `204 No Content`, an empty body, or a track or episode answer
    /// without an item.
    Nothing,
    /// Something is loaded, playing or paused (see [`CurrentlyPlaying::is_playing`]). Ads and
    /// items of unknown type are reported here too, with their [`CurrentlyPlayingType`], even when
    /// Spotify sends no details about them.
    Item(CurrentlyPlaying),
}

/// What kind of item is loaded (Spotify's `currently_playing_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CurrentlyPlayingType {
    /// A music track.
    Track,
    /// A podcast episode.
    Episode,
    /// An advertisement (Spotify usually sends no item for it).
    Ad,
    /// Spotify's `unknown`, or any type this client does not know.
    Unknown,
}

/// The item loaded in the user's player, as far as Spotify describes it: its currently-playing
/// object, with the fields of its `item` (track or episode) flattened, names in Spotify's terms.
/// What the service shows from it is [`crate::service::NowPlaying`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentlyPlaying {
    /// What kind of item this is.
    pub currently_playing_type: CurrentlyPlayingType,
    /// Playing (`true`) or paused (`false`).
    pub is_playing: bool,
    /// Position in the item, in milliseconds.
    pub progress_ms: Option<u64>,
    /// Spotify id of the track or episode; `None` for a local file.
    pub id: Option<String>,
    /// Spotify URI (`spotify:track:…`, `spotify:local:…` for a local file).
    pub uri: Option<String>,
    /// Track or episode name.
    pub name: Option<String>,
    /// Track: artist names, in Spotify's order. Episode: the show's publisher, or the show
    /// name when there is no publisher.
    pub artists: Vec<String>,
    /// Track: album name. Episode: show name.
    pub album: Option<String>,
    /// Length of the item, in milliseconds, when Spotify gives it.
    pub duration_ms: Option<u64>,
    /// The largest cover: the album's for a track; for an episode its own image, else the
    /// show's.
    pub image_url: Option<String>,
}

/// Why a Spotify call failed. The messages never contain tokens or secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpotifyError {
    /// `429 Too Many Requests`: wait `retry_after` before calling again for this user or app.
    /// It comes from `Retry-After` as seconds or an HTTP-date ([`retry_after_delay`]), is at
    /// most [`MAX_RETRY_AFTER`], and is [`DEFAULT_RETRY_AFTER`] when the header is absent or
    /// unreadable.
    #[error("Spotify rate limit: retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// The accounts service answered `invalid_grant`: the authorization code or refresh
    /// token is invalid, used or revoked. The user must connect Spotify again.
    #[error("Spotify refused the authorization code or refresh token")]
    InvalidGrant,
    /// The accounts service answered `invalid_client`: the client id or secret is wrong.
    #[error("Spotify refused the app's client id or secret")]
    InvalidClient,
    /// The Web API answered 401: the access token expired or is invalid. Refreshing and
    /// retrying once is the caller's job.
    #[error("Spotify refused the access token")]
    Unauthorized,
    /// Any other error status from Spotify (or from an image host).
    #[error("Spotify answered HTTP {status}")]
    Upstream {
        /// The HTTP status code.
        status: u16,
    },
    /// No complete answer within the timeout.
    #[error("Spotify did not answer in time")]
    Timeout,
    /// Connecting, sending or receiving failed.
    #[error("network error talking to Spotify: {0}")]
    Network(String),
    /// The answer could not be understood (not JSON, missing token, far too large).
    #[error("unexpected answer from Spotify: {0}")]
    InvalidResponse(String),
    /// A cover was not downloaded: not an http(s) URL, host not allowed, redirected
    /// elsewhere, or larger than allowed.
    #[error("cover image rejected: {0}")]
    ImageRejected(String),
    /// The client could not be built (bad base URL, TLS setup).
    #[error("Spotify client misconfigured: {0}")]
    Config(String),
}

impl SpotifyError {
    /// A short label of the kind of failure (`rate_limited`, `timeout`...), for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidClient => "invalid_client",
            Self::Unauthorized => "unauthorized",
            Self::Upstream { status } if *status >= 500 => "server_error",
            Self::Upstream { .. } => "client_error",
            Self::Timeout => "timeout",
            Self::Network(_) => "network_error",
            Self::InvalidResponse(_) => "invalid_response",
            Self::ImageRejected(_) => "rejected",
            Self::Config(_) => "config_error",
        }
    }

    fn from_reqwest(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            return Self::Timeout;
        }
        // reqwest's own message is terse ("error sending request"); the cause is in the
        // source chain. URLs in it never carry tokens: those travel in headers and bodies.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Network(message)
    }
}

/// A Spotify Web API client shared by every user. Cheap to clone: clones share one
/// connection pool.
#[derive(Clone)]
pub struct SpotifyClient {
    http: reqwest::Client,
    base: Arc<BaseUrls>,
    calls: Arc<CallCounts>,
}

/// How many calls of each kind ended how, shared by the clones of one client (for `/metrics`).
#[derive(Debug, Default)]
struct CallCounts(std::sync::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>);

impl CallCounts {
    fn record<T>(&self, kind: &'static str, result: &Result<T, SpotifyError>) {
        let outcome = result.as_ref().map_or_else(SpotifyError::outcome, |_| "ok");
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry((kind, outcome)).or_default() += 1;
    }
}

/// Base URLs without trailing slash, ready for appending paths.
#[derive(Debug)]
struct BaseUrls {
    accounts: String,
    api: String,
}

impl fmt::Debug for SpotifyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpotifyClient")
            .field("accounts_url", &self.base.accounts)
            .field("api_url", &self.base.api)
            .finish_non_exhaustive()
    }
}

enum Capped {
    Body(Bytes),
    TooLarge,
}

impl SpotifyClient {
    /// Builds the client. Fails only on a base URL that is not http(s) or if TLS cannot be
    /// set up.
    pub fn new(endpoints: SpotifyEndpoints) -> Result<Self, SpotifyError> {
        let http = reqwest::Client::builder()
            .timeout(endpoints.timeout)
            .connect_timeout(endpoints.timeout)
            // Redirects of the API are not expected; those of image hosts are followed by
            // hand so that every hop is checked against the image policy.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("melodyhue/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| SpotifyError::Config(error.to_string()))?;
        Ok(Self {
            http,
            base: Arc::new(BaseUrls {
                accounts: base_url(&endpoints.accounts_url, "accounts URL")?,
                api: base_url(&endpoints.api_url, "API URL")?,
            }),
            calls: Arc::default(),
        })
    }

    /// The calls made so far as `(kind, outcome, count)`: kinds `token_exchange`,
    /// `token_refresh`, `currently_playing` and `cover`; outcome `ok` or the error's
    /// [`SpotifyError::outcome`].
    pub fn call_counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let counts = self
            .calls
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts
            .iter()
            .map(|(&(kind, outcome), &count)| (kind, outcome, count))
            .collect()
    }

    /// The URL that sends the user to Spotify to grant MelodyHue access:
    /// `{accounts_url}/authorize?client_id=…&response_type=code&redirect_uri=…&scope=user-read-currently-playing%20user-read-playback-state&show_dialog=false&state=…`,
    /// with `client_id`, `redirect_uri` and `state` percent-encoded. Spotify sends `state` back
    /// to `redirect_uri` with the code (RFC 6749 §4.1.1-4.1.2).
    pub fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> String {
        format!(
            "{}/authorize?client_id={}&response_type=code&redirect_uri={}&scope={SCOPES}&show_dialog=false&state={}",
            self.base.accounts,
            utf8_percent_encode(client_id, QUERY_COMPONENT),
            utf8_percent_encode(redirect_uri, QUERY_COMPONENT),
            utf8_percent_encode(state, QUERY_COMPONENT),
        )
    }

    /// Exchanges the authorization `code` Spotify sent to `redirect_uri` for tokens
    /// (the grant then holds a refresh token). A refused code is [`SpotifyError::InvalidGrant`].
    pub async fn exchange_code(
        &self,
        app: &AppCredentials,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, SpotifyError> {
        let grant = self
            .token_request(
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                ],
            )
            .await;
        self.calls.record("token_exchange", &grant);
        grant
    }

    /// Gets a fresh access token with a refresh token. A dead refresh token is
    /// [`SpotifyError::InvalidGrant`]; when the grant holds a new refresh token, store it.
    pub async fn refresh(
        &self,
        app: &AppCredentials,
        refresh_token: &str,
    ) -> Result<TokenGrant, SpotifyError> {
        let grant = self
            .token_request(
                app,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await;
        self.calls.record("token_refresh", &grant);
        grant
    }

    /// What the user is playing: `GET {api_url}/v1/me/player/currently-playing?additional_types=episode`.
    pub async fn currently_playing(&self, access_token: &str) -> Result<Playback, SpotifyError> {
        let playback = self.fetch_currently_playing(access_token).await;
        self.calls.record("currently_playing", &playback);
        playback
    }

    async fn fetch_currently_playing(&self, access_token: &str) -> Result<Playback, SpotifyError> {
        let mut response = self
            .http
            .get(format!(
                "{}/v1/me/player/currently-playing?additional_types=episode",
                self.base.api
            ))
            .bearer_auth(access_token)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(SpotifyError::from_reqwest)?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Playback::Nothing);
        }
        if !status.is_success() {
            return Err(api_error(response).await);
        }
        match read_capped(&mut response, MAX_API_BODY_BYTES).await? {
            Capped::Body(body) => parse_currently_playing(&body),
            Capped::TooLarge => Err(SpotifyError::InvalidResponse(
                "currently-playing answer too large".to_owned(),
            )),
        }
    }

    /// Downloads a cover from `url` if `policy` allows its host (and the host of every
    /// redirect), reading at most `policy.max_bytes`.
    pub async fn fetch_image(
        &self,
        url: &str,
        policy: &ImagePolicy,
    ) -> Result<Bytes, SpotifyError> {
        let image = self.download_image(url, policy).await;
        self.calls.record("cover", &image);
        image
    }

    async fn download_image(&self, url: &str, policy: &ImagePolicy) -> Result<Bytes, SpotifyError> {
        let mut url = Url::parse(url)
            .map_err(|_| SpotifyError::ImageRejected("not a valid URL".to_owned()))?;
        for _ in 0..=MAX_IMAGE_REDIRECTS {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(SpotifyError::ImageRejected("not an http(s) URL".to_owned()));
            }
            if !policy.allows(&url) {
                return Err(SpotifyError::ImageRejected(format!(
                    "{}://{} is not an allowed image host",
                    url.scheme(),
                    url.host_str().unwrap_or_default()
                )));
            }
            let mut response = self
                .http
                .get(url.clone())
                .send()
                .await
                .map_err(SpotifyError::from_reqwest)?;
            let status = response.status();
            if status.is_redirection() {
                url = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|location| location.to_str().ok())
                    .and_then(|location| url.join(location).ok())
                    .ok_or_else(|| {
                        SpotifyError::ImageRejected("redirect without a valid location".to_owned())
                    })?;
                continue;
            }
            if !status.is_success() {
                return Err(SpotifyError::Upstream {
                    status: status.as_u16(),
                });
            }
            return match read_capped(&mut response, policy.max_bytes).await? {
                Capped::Body(body) => Ok(body),
                Capped::TooLarge => Err(SpotifyError::ImageRejected(format!(
                    "larger than {} bytes",
                    policy.max_bytes
                ))),
            };
        }
        Err(SpotifyError::ImageRejected("too many redirects".to_owned()))
    }

    async fn token_request(
        &self,
        app: &AppCredentials,
        form: &[(&str, &str)],
    ) -> Result<TokenGrant, SpotifyError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut response = self
            .http
            .post(format!("{}/api/token", self.base.accounts))
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(SpotifyError::from_reqwest)?;
        if !response.status().is_success() {
            return Err(accounts_error(response).await);
        }
        match read_capped(&mut response, MAX_API_BODY_BYTES).await? {
            Capped::Body(body) => parse_token_grant(&body),
            Capped::TooLarge => Err(SpotifyError::InvalidResponse(
                "token answer too large".to_owned(),
            )),
        }
    }
}

fn base_url(value: &str, what: &str) -> Result<String, SpotifyError> {
    let trimmed = value.trim().trim_end_matches('/');
    match Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(trimmed.to_owned())
        }
        _ => Err(SpotifyError::Config(format!(
            "Spotify {what} {value:?} is not an http(s) URL"
        ))),
    }
}

/// Reads a body, giving up as soon as it would exceed `max` bytes (before buffering more).
async fn read_capped(response: &mut reqwest::Response, max: usize) -> Result<Capped, SpotifyError> {
    let announced = response.content_length();
    if announced.is_some_and(|length| length > max as u64) {
        return Ok(Capped::TooLarge);
    }
    let capacity = announced.map_or(0, |length| length.min(max as u64) as usize);
    let mut body = BytesMut::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await.map_err(SpotifyError::from_reqwest)? {
        if chunk.len() > max - body.len() {
            return Ok(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped::Body(body.freeze()))
}

/// Reads the (small) body of an error answer, if it is there; reading it to the end also
/// lets the connection go back to the pool.
async fn error_body(response: &mut reqwest::Response) -> Option<Bytes> {
    match read_capped(response, MAX_API_BODY_BYTES).await {
        Ok(Capped::Body(body)) => Some(body),
        _ => None,
    }
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| retry_after_delay(value, std::time::SystemTime::now()))
        .map_or(DEFAULT_RETRY_AFTER, |delay| delay.min(MAX_RETRY_AFTER))
}

/// The wait a `Retry-After` value asks for at `now` (RFC 9110 §10.2.3): `delay-seconds` (digits
/// only), or an HTTP-date in any of the three formats of RFC 9110 §5.6.7, a date in the past
/// meaning no wait at all. `None` when the value is neither.
pub fn retry_after_delay(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Maps an error answer of the Web API.
async fn api_error(mut response: reqwest::Response) -> SpotifyError {
    let status = response.status();
    let error = match status {
        StatusCode::UNAUTHORIZED => SpotifyError::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => SpotifyError::RateLimited {
            retry_after: retry_after(&response),
        },
        _ => SpotifyError::Upstream {
            status: status.as_u16(),
        },
    };
    error_body(&mut response).await;
    error
}

/// Maps an error answer of the accounts service (`{"error": "...", "error_description": "..."}`).
async fn accounts_error(mut response: reqwest::Response) -> SpotifyError {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        #[serde(default, deserialize_with = "lenient")]
        error: Option<String>,
    }
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = retry_after(&response);
        error_body(&mut response).await;
        return SpotifyError::RateLimited { retry_after };
    }
    let body = error_body(&mut response).await;
    let error = body.and_then(|body| parse_object::<OAuthError>(&body, "error").ok());
    match error.and_then(|error| error.error).as_deref() {
        Some("invalid_grant") => SpotifyError::InvalidGrant,
        Some("invalid_client") => SpotifyError::InvalidClient,
        _ => SpotifyError::Upstream {
            status: status.as_u16(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let delay = |value: &str| retry_after_delay(value, now);
        assert_eq!(delay("120"), Some(Duration::from_secs(120)));
        assert_eq!(delay(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            delay("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT; the three formats of RFC 9110 §5.6.7.
        for date in [
            "Tue, 14 Nov 2023 22:15:20 GMT",
            "Tuesday, 14-Nov-23 22:15:20 GMT",
            "Tue Nov 14 22:15:20 2023",
        ] {
            assert_eq!(delay(date), Some(Duration::from_secs(120)), "{date:?}");
        }
        // A date in the past means now.
        assert_eq!(delay("Tue, 14 Nov 2023 22:13:19 GMT"), Some(Duration::ZERO));
        assert_eq!(delay("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        for bad in ["", "-5", "1.5", "+3", "soon", "Tue, 14 Nov 2023", "0x10"] {
            assert_eq!(delay(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let app = AppCredentials {
            client_id: "id".into(),
            client_secret: "s3cret".into(),
        };
        let grant = TokenGrant {
            access_token: "acc3ss".into(),
            expires_in: Duration::from_secs(1),
            refresh_token: Some("r3fresh".into()),
        };
        let debug = format!("{app:?} {grant:?}");
        for secret in ["s3cret", "acc3ss", "r3fresh"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("id"));
    }
}
