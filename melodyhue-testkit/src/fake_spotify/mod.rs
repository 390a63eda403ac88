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
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod images;
mod scenario;
mod server;

pub use scenario::{FakeEpisode, FakeTrack, Scenario};

use images::FakeImage;
use server::{Body, json_response, serve};

/// Access-token lifetime announced by the token endpoint by default, in seconds.
const TOKEN_LIFETIME_SECS: u64 = 3600;

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
                // A lifetime past what an `Instant` can hold never ends.
                expires_at: Instant::now()
                    .checked_add(Duration::from_secs(lifetime))
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400)),
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
