//! The JSON request bodies the handlers read, one type each, built from the model's value
//! types so that every rule is declared once, on its type ([`crate::model::fields`]).
//!
//! A body is read with [`Input`] rather than serde's derive: FastAPI answers every bad field
//! at once, tells a missing field from a wrong type, and some routes read leniently. Each
//! `read` asks [`Input`] for each field in the order FastAPI reports them, and builds the body
//! when none was bad. The OpenAPI schemas derive from the same types: each field's schema is
//! its type's (`T::schema`, or [`optional`]), named as in the document
//! (`RegisterBody`...). The struct names are the schema names, and a struct has no doc
//! comment where its schema has no description.

use chrono::{DateTime, Utc};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use super::ApiError;
use super::input::Input;
use crate::model::{
    Email, HexColor, LoginIdentifier, LoginPassword, LoginTicket, MailedToken, ModerationReason,
    OverlayName, OverlayPatch, OverlayTemplate, Password, RefreshToken, SettingValue,
    SettingsPatch, SpotifyClientId, SpotifyClientSecret, SpotifyRefreshToken, TotpCode, Username,
};
use crate::service::SpotifyCredentialsInput;

/// The schema of an optional field of type `T`: `T`'s, also allowing `null`, as utoipa writes
/// an `Option<String>`.
fn optional<T: PartialSchema>() -> RefOr<Schema> {
    let mut schema = T::schema();
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        if let SchemaType::Type(kind) = &object.schema_type {
            object.schema_type = SchemaType::from_iter([kind.clone(), Type::Null]);
        }
    }
    schema
}

/// `schema` with a description of the field.
fn described(mut schema: RefOr<Schema>, description: String) -> RefOr<Schema> {
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.description = Some(description);
    }
    schema
}

#[derive(Debug, ToSchema)]
pub(super) struct RegisterBody {
    #[schema(schema_with = Username::schema)]
    pub username: Username,
    #[schema(schema_with = Email::schema)]
    pub email: Email,
    #[schema(schema_with = Password::schema)]
    pub password: Password,
}

impl RegisterBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let username = input.value("username");
        let email = input.value("email");
        let password = input.value("password");
        input.build(|| {
            Some(RegisterBody {
                username: username?,
                email: email?,
                password: password?,
            })
        })
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct LoginBody {
    #[schema(schema_with = LoginIdentifier::schema)]
    pub username_or_email: LoginIdentifier,
    #[schema(schema_with = LoginPassword::schema)]
    pub password: LoginPassword,
}

impl LoginBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let username_or_email = input.value("username_or_email");
        let password = input.value("password");
        input.build(|| {
            Some(LoginBody {
                username_or_email: username_or_email?,
                password: password?,
            })
        })
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct TwoFactorLoginBody {
    #[schema(schema_with = LoginTicket::schema)]
    pub ticket: LoginTicket,
    #[schema(schema_with = TotpCode::schema)]
    pub totp: TotpCode,
}

impl TwoFactorLoginBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let ticket = input.value("ticket");
        let totp = input.value("totp");
        input.build(|| {
            Some(TwoFactorLoginBody {
                ticket: ticket?,
                totp: totp?,
            })
        })
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct EmailBody {
    #[schema(schema_with = Email::schema)]
    pub email: Email,
}

impl EmailBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let email = input.value("email");
        input.build(|| Some(EmailBody { email: email? }))
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct ResetBody {
    #[schema(schema_with = MailedToken::schema)]
    pub token: MailedToken,
    #[schema(schema_with = Password::schema)]
    pub new_password: Password,
}

impl ResetBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let token = input.value("token");
        let new_password = input.value("new_password");
        input.build(|| {
            Some(ResetBody {
                token: token?,
                new_password: new_password?,
            })
        })
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct CodeBody {
    #[schema(schema_with = TotpCode::schema)]
    pub code: TotpCode,
}

impl CodeBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let code = input.value("code");
        input.build(|| Some(CodeBody { code: code? }))
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct TokenBody {
    #[schema(schema_with = MailedToken::schema)]
    pub token: MailedToken,
}

impl TokenBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let token = input.value("token");
        input.build(|| Some(TokenBody { token: token? }))
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct UsernameBody {
    #[schema(schema_with = Username::schema)]
    pub username: Username,
}

impl UsernameBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let username = input.value("username");
        input.build(|| {
            Some(UsernameBody {
                username: username?,
            })
        })
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct PasswordChangeBody {
    #[schema(schema_with = LoginPassword::schema)]
    pub old_password: LoginPassword,
    #[schema(schema_with = Password::schema)]
    pub new_password: Password,
}

impl PasswordChangeBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let old_password = input.value("old_password");
        let new_password = input.value("new_password");
        input.build(|| {
            Some(PasswordChangeBody {
                old_password: old_password?,
                new_password: new_password?,
            })
        })
    }
}

/// Any subset; colors are `#rrggbb`.
#[derive(Debug, ToSchema)]
pub(super) struct SettingsPatchBody {
    #[schema(schema_with = optional::<SettingValue>)]
    pub theme: Option<SettingValue>,
    #[schema(schema_with = optional::<SettingValue>)]
    pub layout: Option<SettingValue>,
    #[schema(schema_with = optional::<HexColor>)]
    pub default_overlay_color: Option<HexColor>,
    #[schema(schema_with = color_alias)]
    pub default_color_overlays: Option<HexColor>,
    #[schema(schema_with = color_alias)]
    pub default_color_hex: Option<HexColor>,
    #[schema(schema_with = optional::<SettingValue>)]
    pub avatar_mode: Option<SettingValue>,
    #[schema(schema_with = optional::<HexColor>)]
    pub avatar_color: Option<HexColor>,
}

/// The earlier frontend sent the fallback color under three names.
fn color_alias() -> RefOr<Schema> {
    described(
        optional::<HexColor>(),
        "Alias of `default_overlay_color`.".to_owned(),
    )
}

impl SettingsPatchBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        // In the order the earlier service reported them.
        let theme = input.optional_value("theme");
        let layout = input.optional_value("layout");
        let avatar_mode = input.optional_value("avatar_mode");
        let avatar_color = input.optional_value("avatar_color");
        let default_overlay_color = input.optional_value("default_overlay_color");
        let default_color_overlays = input.optional_value("default_color_overlays");
        let default_color_hex = input.optional_value("default_color_hex");
        input.build(|| {
            Some(SettingsPatchBody {
                theme,
                layout,
                default_overlay_color,
                default_color_overlays,
                default_color_hex,
                avatar_mode,
                avatar_color,
            })
        })
    }
}

impl From<SettingsPatchBody> for SettingsPatch {
    /// The change the body asks for; of the fallback color's names, the first given wins.
    fn from(body: SettingsPatchBody) -> Self {
        SettingsPatch {
            theme: body.theme,
            layout: body.layout,
            default_overlay_color: body
                .default_overlay_color
                .or(body.default_color_overlays)
                .or(body.default_color_hex),
            avatar_mode: body.avatar_mode,
            avatar_color: body.avatar_color,
        }
    }
}

#[derive(Debug, Default, ToSchema)]
pub(super) struct OverlayBody {
    #[schema(schema_with = overlay_name)]
    pub name: Option<OverlayName>,
    #[schema(schema_with = overlay_template)]
    pub template: Option<OverlayTemplate>,
}

fn overlay_name() -> RefOr<Schema> {
    described(
        optional::<OverlayName>(),
        format!("Default `{}` on creation.", OverlayName::DEFAULT),
    )
}

fn overlay_template() -> RefOr<Schema> {
    described(
        optional::<OverlayTemplate>(),
        format!("Default `{}` on creation.", OverlayTemplate::DEFAULT),
    )
}

impl OverlayBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let name = input.optional_value("name");
        let template = input.optional_value("template");
        input.build(|| Some(OverlayBody { name, template }))
    }
}

impl From<OverlayBody> for OverlayPatch {
    fn from(body: OverlayBody) -> Self {
        OverlayPatch {
            name: body.name,
            template: body.template,
        }
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct ModeratedUserPatchBody {
    #[schema(schema_with = optional::<Username>)]
    pub username: Option<Username>,
    #[schema(schema_with = optional::<Email>)]
    pub email: Option<Email>,
}

impl ModeratedUserPatchBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let username = input.optional_value("username");
        let email = input.optional_value("email");
        input.build(|| Some(ModeratedUserPatchBody { username, email }))
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct WarnBody {
    #[schema(schema_with = ModerationReason::schema)]
    pub reason: ModerationReason,
}

impl WarnBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let reason = input.value("reason");
        input.build(|| Some(WarnBody { reason: reason? }))
    }
}

#[derive(Debug, ToSchema)]
pub(super) struct BanBody {
    #[schema(schema_with = ModerationReason::schema)]
    pub reason: ModerationReason,
    /// The end of the ban; `null` or absent: permanent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<Utc>>,
}

impl BanBody {
    /// Reads the body; `until` must be later than `now`.
    pub(super) fn read(mut input: Input, now: DateTime<Utc>) -> Result<Self, ApiError> {
        let reason = input.value("reason");
        let until = input.optional_timestamp_after("until", now);
        input.build(|| {
            Some(BanBody {
                reason: reason?,
                until,
            })
        })
    }
}

// Read by `/auth/refresh`, and leniently by `/auth/logout` (whose own schema, `LogoutBody`,
// says that anything is accepted there). No doc comment: it would become the schema's
// description.
#[derive(Debug, Default, ToSchema)]
pub(super) struct RefreshTokenBody {
    #[schema(schema_with = refresh_token)]
    pub refresh_token: Option<RefreshToken>,
}

fn refresh_token() -> RefOr<Schema> {
    described(
        optional::<RefreshToken>(),
        "Else the `mh_refresh_token` cookie.".to_owned(),
    )
}

impl RefreshTokenBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let refresh_token = input.optional_value("refresh_token");
        input.build(|| Some(RefreshTokenBody { refresh_token }))
    }
}

/// Blank clears a value.
#[derive(Debug, ToSchema)]
pub(super) struct SpotifyCredentialsBody {
    #[schema(schema_with = optional::<SpotifyClientId>)]
    pub client_id: Option<SpotifyClientId>,
    #[schema(schema_with = optional::<SpotifyClientSecret>)]
    pub client_secret: Option<SpotifyClientSecret>,
    #[schema(schema_with = optional::<SpotifyRefreshToken>)]
    pub refresh_token: Option<SpotifyRefreshToken>,
}

impl SpotifyCredentialsBody {
    pub(super) fn read(mut input: Input) -> Result<Self, ApiError> {
        let client_id = input.optional_value("client_id");
        let client_secret = input.optional_value("client_secret");
        let refresh_token = input.optional_value("refresh_token");
        input.build(|| {
            Some(SpotifyCredentialsBody {
                client_id,
                client_secret,
                refresh_token,
            })
        })
    }
}

impl From<SpotifyCredentialsBody> for SpotifyCredentialsInput {
    fn from(body: SpotifyCredentialsBody) -> Self {
        SpotifyCredentialsInput {
            client_id: body.client_id.map(SpotifyClientId::into_string),
            client_secret: body.client_secret.map(SpotifyClientSecret::into_string),
            refresh_token: body.refresh_token.map(SpotifyRefreshToken::into_string),
        }
    }
}
