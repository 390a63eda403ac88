//! The use cases of MelodyHue: register, log in, create an overlay, ban a user... They decide;
//! the storage traits remember. No HTTP types here.
//!
//! They are grouped by area, each a view of an [`App`](crate::App) that borrows it:
//! [`Accounts`] (`app.accounts()`), [`SecondFactor`] (`app.two_factor()`), [`Recovery`]
//! (`app.recovery()`), [`UserSettings`] (`app.settings()`), [`Overlays`] (`app.overlays()`),
//! [`Moderation`] (`app.moderation()`), [`Spotify`] (`app.spotify()`), [`Playing`]
//! (`app.now_playing()`) and [`Jobs`] (`app.jobs()`). A view is `Copy` and costs nothing to
//! make: `app.accounts().login(..)`.
//!
//! The types of each use case are re-exported here. One module is public for what it holds
//! beyond them: [`now_playing`], with the now-playing hub ([`now_playing::hub`]: which users are
//! polled, their latest state in memory, subscriptions for `/ws` and the event stream) and the
//! interface through which several nodes share the polling ([`now_playing::coordination`]).

mod accounts;
mod attempts;
mod hot_reads;
mod jobs;
mod moderation;
pub mod now_playing;
mod overlays;
mod recovery;
mod settings;
mod spotify;
mod two_factor;

pub use accounts::{
    Accounts, EMAIL_REVERT_LIFETIME, IssuedTokens, LoginOutcome, Principal, Profile, Registration,
};
pub use jobs::{BackgroundJobs, JOBS_PERIOD, Jobs, JobsReport, PURGE_BANNED_AFTER};
pub use moderation::{AccountEvent, BanReceipt, Moderation, require_admin, require_moderator};
pub use now_playing::{NowPlaying, Playing, Track};
pub use overlays::Overlays;
pub use recovery::{ONE_TIME_TOKEN_LIFETIME, Recovery};
pub use settings::UserSettings;
pub use spotify::{
    MAX_PENDING_SPOTIFY_AUTHORIZATIONS, SPOTIFY_AUTHORIZATION_LIFETIME, Spotify,
    SpotifyCredentialsInput, SpotifyStatus,
};
pub use two_factor::{
    EmailedToken, MAX_TICKET_ATTEMPTS, SecondFactor, TICKET_LIFETIME, TwoFactorSetup,
};

pub(crate) use hot_reads::HotReads;
pub use hot_reads::STALE_IF_ERROR;

use std::time::Duration;

use crate::auth::admission::Refusal;
use crate::auth::password::HashError;
use crate::store::{BoxError, StoreError};

/// Why a use case refused or failed. Each variant says what the caller did wrong (or that the
/// server failed); the HTTP layer maps them to statuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing does not exist, or is not the caller's (`"Overlay not found"`).
    #[error("{0}")]
    NotFound(&'static str),
    /// A unique value is taken (`"Email already taken"`).
    #[error("{0}")]
    Conflict(&'static str),
    /// The request cannot be done as asked (`"Invalid old password"`).
    #[error("{0}")]
    Rejected(&'static str),
    /// Not authenticated, or the credentials or token are not accepted (`"Invalid token"`).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The account is banned.
    #[error("User banned")]
    Banned,
    /// The caller's role does not allow this.
    #[error("Forbidden")]
    Forbidden,
    /// Too many failed attempts; try again after the delay.
    #[error("Too many failed attempts, try again later")]
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
    /// The mail budget of the recipient or of the client is spent; try again after the delay.
    #[error("Too many e-mails requested, try again later")]
    MailThrottled {
        /// When to try again.
        retry_after: Duration,
    },
    /// Password hashing is saturated: this client already has its share of hashes in flight,
    /// or the queue is full of clients with a better claim. Try again shortly.
    #[error(transparent)]
    Overloaded(Refusal),
    /// Spotify could not be reached, or answered nonsense.
    #[error("Spotify unavailable")]
    Upstream,
    /// The database cannot be reached.
    #[error("Service unavailable")]
    Unavailable(#[source] StoreError),
    /// Anything else; logged, never shown.
    #[error("Internal server error")]
    Internal(#[source] BoxError),
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Error::Unavailable(err),
            other => Error::Internal(Box::new(other)),
        }
    }
}

impl From<HashError> for Error {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Refused(refusal) => Error::Overloaded(refusal),
            failed @ HashError::Failed(_) => Error::internal(failed),
        }
    }
}

impl Error {
    /// Wraps an unexpected failure.
    pub(crate) fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Box::new(err))
    }
}

/// How long a node trusts a copy of a row without reading the database while every change made
/// on another node is pushed to it (a cluster node whose subscription is up), plus up to half
/// of it at random: a safety net only, for a change written behind the service's back. The
/// copies of Spotify connections, fallback colors and overlays live this long there.
pub(crate) const PUSHED_COPY_LIFETIME: Duration = Duration::from_secs(600);

/// A value served from a copy because the database is unavailable (RFC 5861's
/// stale-if-error; see [`STALE_IF_ERROR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    /// How long ago the copy was read from the database.
    pub age: Duration,
    /// How long after its read the copy was fresh (one polling interval; 10 to 15 minutes on
    /// a cluster node that hears of every change).
    pub fresh_for: Duration,
}

/// Result of a use case.
pub type Result<T, E = Error> = std::result::Result<T, E>;
