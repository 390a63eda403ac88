//! Plain domain types shared by the storage traits, the services and the HTTP layer.
//!
//! Nothing here knows about SQL or HTTP. Times are UTC; ids are short random strings.
//!
//! The values a caller hands in ([`Username`], [`Email`], [`Password`], [`OverlayName`],
//! [`HexColor`]...) are types that check their rule when they are made (see [`fields`]), and
//! the services take those types: every caller of the library, not only the HTTP layer, keeps
//! the limits. Each limit is a constant of its type; the HTTP layer maps an [`InvalidValue`]
//! to FastAPI's `422` entry and writes the OpenAPI schemas from the types.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;

pub mod fields;

pub use fields::{
    Email, HexColor, InvalidValue, LoginIdentifier, LoginPassword, LoginTicket, MailedToken,
    ModerationReason, OverlayName, OverlayTemplate, Password, RefreshToken, SettingValue,
    SpotifyClientId, SpotifyClientSecret, SpotifyRefreshToken, TotpCode, Username,
};

/// A fresh id: base64url (no padding) of 16 random bytes, 22 characters.
pub fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// `N` bytes from the operating system's CSPRNG (through `rand`'s thread-local generator).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The form of an e-mail address that every comparison uses (registration, login, reset,
/// e-mail change, staff search), stored beside the address as typed.
///
/// Unicode NFC, then full case folding (Unicode `CaseFolding.txt`, statuses C and F, so `ß`
/// folds to `ss` and `Å` to `å`), then NFC again (folding can leave a sequence that composes).
/// Accents stay distinct: `álice@exämple.com` is not `alice@example.com`. Both steps use ICU4X
/// data of one Unicode version. The address is trimmed first.
///
/// ```
/// use melodyhue_core::model::canonical_email;
/// assert_eq!(canonical_email("ÅSA@Example.COM"), canonical_email("åsa@example.com"));
/// assert_eq!(canonical_email("zoe\u{308}@example.com"), "zo\u{eb}@example.com");
/// assert_ne!(canonical_email("álice@example.com"), canonical_email("alice@example.com"));
/// ```
pub fn canonical_email(email: &str) -> String {
    canonical_text(email.trim())
}

/// [`canonical_email`] without the trimming, for search terms.
pub(crate) fn canonical_text(text: &str) -> String {
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc();
    let composed = nfc.normalize(text);
    let folded = icu_casemap::CaseMapper::new().fold_string(&composed);
    nfc.normalize(&folded).into_owned()
}

/// Ids in paths are accepted up to this length (older rows may differ from [`new_id`]).
pub const MAX_ID_LEN: usize = 36;

/// What an account may do; in JSON and in the database, its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Role {
    /// A streamer: their own overlays, settings and Spotify connection.
    #[default]
    User,
    /// May warn, ban and edit users and overlays (`/modo`), but not admins.
    Moderator,
    /// May do everything, including changing roles (`/admin`).
    Admin,
}

impl Role {
    /// The name stored in the database and sent in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may use the `/modo` routes.
    pub fn is_moderator(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `user`, `moderator`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "moderator" => Ok(Role::Moderator),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Short id.
    pub id: String,
    /// Display name (a [`Username`] when set through the library; rows of the earlier service
    /// are kept as they are); not unique.
    pub username: String,
    /// Stored as the user typed it; unique by its [`canonical_email`] form.
    pub email: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Last change of any account field.
    pub updated_at: DateTime<Utc>,
    /// Last successful login (or registration).
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Per-user display preferences. `default_overlay_color` is what `/color` shows while nothing plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// UI theme, e.g. `light`.
    pub theme: String,
    /// UI layout, e.g. `default`.
    pub layout: String,
    /// `#rrggbb`, lowercase.
    pub default_overlay_color: String,
    /// How the avatar is drawn, e.g. `gravatar`.
    pub avatar_mode: String,
    /// `#rrggbb`, lowercase.
    pub avatar_color: String,
}

/// The overlay color of a user who never changed it.
pub const DEFAULT_OVERLAY_COLOR: &str = "#25d865";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            theme: "light".into(),
            layout: "default".into(),
            default_overlay_color: DEFAULT_OVERLAY_COLOR.into(),
            avatar_mode: "gravatar".into(),
            avatar_color: DEFAULT_OVERLAY_COLOR.into(),
        }
    }
}

/// A partial change of [`Settings`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    /// New theme.
    pub theme: Option<SettingValue>,
    /// New layout.
    pub layout: Option<SettingValue>,
    /// New fallback color.
    pub default_overlay_color: Option<HexColor>,
    /// New avatar mode.
    pub avatar_mode: Option<SettingValue>,
    /// New avatar color.
    pub avatar_color: Option<HexColor>,
}

impl SettingsPatch {
    /// `settings` with this patch applied.
    pub fn apply_to(&self, mut settings: Settings) -> Settings {
        let fields = [
            (self.theme.as_deref(), &mut settings.theme),
            (self.layout.as_deref(), &mut settings.layout),
            (
                self.default_overlay_color.as_deref(),
                &mut settings.default_overlay_color,
            ),
            (self.avatar_mode.as_deref(), &mut settings.avatar_mode),
            (self.avatar_color.as_deref(), &mut settings.avatar_color),
        ];
        for (new, field) in fields {
            if let Some(value) = new {
                value.clone_into(field);
            }
        }
        settings
    }
}

/// A named overlay of one user: what the stream shows and how (its template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Short id; also the public URL of the overlay.
    pub id: String,
    /// The owning user.
    pub owner_id: String,
    /// An [`OverlayName`] when set through the library.
    pub name: String,
    /// An [`OverlayTemplate`] when set through the library, e.g. `classic`.
    pub template: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A partial change of an [`Overlay`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayPatch {
    /// New name.
    pub name: Option<OverlayName>,
    /// New template.
    pub template: Option<OverlayTemplate>,
}

/// An overlay with its owner's name, as moderators list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedOverlay {
    /// The overlay.
    pub overlay: Overlay,
    /// Its owner's username.
    pub owner_username: String,
}

/// One refresh token's session. Only the SHA-256 of the token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Row id.
    pub id: String,
    /// Whose session.
    pub user_id: String,
    /// Hex SHA-256 of the refresh token.
    pub token_hash: String,
    /// Every session descended from one login shares its family; reuse of a rotated
    /// token revokes the whole family.
    pub family_id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the refresh token expires.
    pub expires_at: DateTime<Utc>,
    /// When its token was exchanged for a successor's; `None` while it is the live session of
    /// its login. A rotated session is kept for the refresh-token reuse interval only.
    pub rotated_at: Option<DateTime<Utc>>,
}

/// A user's TOTP secret; active only once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoFactor {
    /// Whose.
    pub user_id: String,
    /// The base32 secret, Fernet-encrypted.
    pub secret_encrypted: String,
    /// When set up.
    pub enabled_at: DateTime<Utc>,
    /// When the first code was accepted; `None` while pending.
    pub verified_at: Option<DateTime<Utc>>,
    /// The last accepted TOTP time step; a code of this step or older is refused.
    pub last_used_step: Option<i64>,
}

/// A login that passed the password and waits for its TOTP code (the `ticket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginChallenge {
    /// The ticket.
    pub id: String,
    /// Whose login.
    pub user_id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// It dies then.
    pub expires_at: DateTime<Utc>,
    /// Set when a code was accepted.
    pub used_at: Option<DateTime<Utc>>,
    /// Codes checked so far (each counted before it is checked; column `failed_attempts`).
    pub attempts: u32,
}

/// What a one-time e-mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// `/auth/reset`.
    PasswordReset,
    /// `/auth/2fa/disable/confirm`.
    TwoFactorDisable,
}

/// A one-time token sent by e-mail. Only its SHA-256 hex is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// Hex SHA-256 of the raw token.
    pub token_hash: String,
    /// Whose.
    pub user_id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// It dies then.
    pub expires_at: DateTime<Utc>,
}

/// The undo of an e-mail change, mailed to the address that was replaced. Only the SHA-256 hex
/// of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRevert {
    /// Hex SHA-256 of the raw token.
    pub token_hash: String,
    /// Whose address changed.
    pub user_id: String,
    /// The address before the change, restored by the revert.
    pub old_email: String,
    /// The address after the change.
    pub new_email: String,
    /// When the change was made.
    pub created_at: DateTime<Utc>,
    /// It dies then.
    pub expires_at: DateTime<Utc>,
}

/// What redeeming an [`EmailRevert`] token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailRevertOutcome {
    /// The address is restored; every session and outstanding token of the user is gone.
    Reverted {
        /// Whose address.
        user_id: String,
        /// The address now in place again.
        restored_email: String,
        /// The address it replaced.
        replaced_email: String,
    },
    /// The token is unknown, used or expired; nothing changed.
    Invalid,
    /// Another account has taken the old address since; nothing changed (the token stays usable).
    AddressTaken,
}

/// A user's own Spotify app and connection. Secrets are Fernet-encrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpotifyCredentials {
    /// The Spotify app's client id (plain).
    pub client_id: Option<String>,
    /// The Spotify app's client secret, encrypted.
    pub client_secret_encrypted: Option<String>,
    /// The user's Spotify refresh token, encrypted.
    pub refresh_token_encrypted: Option<String>,
}

/// A change of [`SpotifyCredentials`]: `None` keeps a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpotifyCredentialsPatch {
    /// New client id.
    pub client_id: Option<Option<String>>,
    /// New encrypted client secret.
    pub client_secret_encrypted: Option<Option<String>>,
    /// New encrypted refresh token.
    pub refresh_token_encrypted: Option<Option<String>>,
}

/// A Spotify authorization in progress: what `/spotify/auth/url` sent the user to Spotify with,
/// kept until the callback completes it. Only the SHA-256 hex of its OAuth `state` is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotifyAuthorization {
    /// Hex SHA-256 of the `state` parameter of the authorize URL.
    pub state_hash: String,
    /// The user who asked for the URL; only they may complete it.
    pub user_id: String,
    /// The `redirect_uri` of the authorize URL, which the code exchange must repeat
    /// (RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// When the URL was made.
    pub created_at: DateTime<Utc>,
    /// It can no longer be completed from then on.
    pub expires_at: DateTime<Utc>,
}

/// A moderator's warning to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Row id.
    pub id: String,
    /// The warned user.
    pub user_id: String,
    /// Who warned; `None` once that account is deleted.
    pub moderator_id: Option<String>,
    /// Why.
    pub reason: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A warning with the names of both parties, as listed to admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningView {
    /// The warning.
    pub warning: Warning,
    /// The warned user's name.
    pub user_username: Option<String>,
    /// The warned user's e-mail.
    pub user_email: Option<String>,
    /// The moderator's name.
    pub moderator_username: Option<String>,
    /// The moderator's e-mail.
    pub moderator_email: Option<String>,
}

/// A ban. Active while not revoked and `until` is absent or in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Row id.
    pub id: String,
    /// The banned user.
    pub user_id: String,
    /// Who banned; `None` once that account is deleted.
    pub moderator_id: Option<String>,
    /// Why.
    pub reason: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// End of a temporary ban; `None` = permanent.
    pub until: Option<DateTime<Utc>>,
    /// When the ban was lifted.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Ban {
    /// Whether the ban holds at `now`.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.until.is_none_or(|until| until > now)
    }
}

/// A user with their active ban, if any, as moderators list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWithBan {
    /// The user.
    pub user: User,
    /// Their active ban.
    pub active_ban: Option<Ban>,
}

/// Counts for the admin dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// All accounts.
    pub users_count: u64,
    /// All overlays.
    pub overlays_count: u64,
    /// Accounts with role moderator.
    pub moderators_count: u64,
    /// Accounts with role admin.
    pub admins_count: u64,
    /// Accounts with verified 2FA.
    pub active_2fa_count: u64,
    /// Newest account's creation time.
    pub last_user_registered_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_url_safe_characters() {
        let id = new_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(new_id(), id);
    }

    #[test]
    fn canonical_emails_fold_case_fully_and_compose() {
        // Full folding (not ASCII-only, not simple folding).
        assert_eq!(canonical_email("Össi@example.com"), "össi@example.com");
        assert_eq!(
            canonical_email("STRASSE@x.de"),
            canonical_email("straße@x.de")
        );
        assert_eq!(canonical_email("\u{212a}elvin@x.de"), "kelvin@x.de");
        // Decomposed and precomposed are one address; accents stay distinct.
        assert_eq!(
            canonical_email("zoe\u{308}@example.com"),
            canonical_email("ZO\u{cb}@example.com")
        );
        assert_ne!(
            canonical_email("zoe@example.com"),
            canonical_email("zoë@example.com")
        );
        assert_eq!(canonical_email(" a@b.c "), "a@b.c");
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::User, Role::Moderator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn patch_changes_only_given_fields() {
        let patch = SettingsPatch {
            theme: Some("dark".parse().unwrap()),
            ..SettingsPatch::default()
        };
        let settings = patch.apply_to(Settings::default());
        assert_eq!(settings.theme, "dark");
        assert_eq!(settings.layout, "default");
    }
}
