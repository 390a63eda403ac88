//! The OpenAPI 3.1 document of the contract (`GET /openapi.json`) and a page rendering it
//! (`GET /docs`).
//!
//! Schemas come from the Rust types: the response types of the handlers and the request
//! bodies they read (`api::bodies`, whose fields' schemas are those of the model's value
//! types, limits included) derive [`utoipa::ToSchema`], and so do the few shapes below that
//! only describe what a handler reads or writes field by field. The operations are one table, [`OPERATIONS`], kept
//! in step with the router: a unit test compares its paths with the router's templates, and a
//! suite case asks a running server every documented operation (routed) and every other
//! method on those paths (`405`).

use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use serde_json::Value;
use utoipa::PartialSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Paths,
    Ref, Required, ResponseBuilder, SchemaFormat, SecurityRequirement, Type,
};

use super::admin::{AdminUserView, PageView, StatsView, WarningItemView};
use super::auth::{LoginTokens, RefreshedTokens, TwoFactorRequired};
use super::error::FieldError;
use super::input::{MAX_PAGE_SIZE, MAX_SEARCH_CHARS};
use super::modo::{ModeratedOverlayView, ModeratedUserView};
use super::overlays::OverlayView;
use super::public::{
    ColorResponse, ColorView, InfosResponse, PaletteView, PublicUserView, TrackView,
};
use super::spotify::CredentialsStatusView;
use super::two_factor::{SentView, TwoFactorLoginTokens, TwoFactorSetupView};
use super::users::{MeView, SettingsView};
use super::{ACCESS_COOKIE, Reply};

/// The request bodies that are not yet types of their own (see `api::bodies` for the others)
/// and the small answers the handlers build inline. Documentation only: the handlers read and
/// write the same fields without these types.
#[allow(dead_code)]
mod shapes {
    use utoipa::ToSchema;

    pub(super) use super::super::bodies::{
        BanBody, CodeBody, EmailBody, LoginBody, ModeratedUserPatchBody, OverlayBody,
        PasswordChangeBody, RegisterBody, ResetBody, SettingsPatchBody, TokenBody,
        TwoFactorLoginBody, UsernameBody, WarnBody,
    };

    #[derive(ToSchema)]
    pub struct RefreshTokenBody {
        /// Else the `mh_refresh_token` cookie.
        #[schema(max_length = 4096)]
        pub refresh_token: Option<String>,
    }

    /// Anything else is ignored: logging out never fails.
    #[derive(ToSchema)]
    pub struct LogoutBody {
        /// Else the `mh_refresh_token` cookie.
        pub refresh_token: Option<String>,
    }

    /// Blank clears a value.
    #[derive(ToSchema)]
    pub struct SpotifyCredentialsBody {
        #[schema(max_length = 255)]
        pub client_id: Option<String>,
        #[schema(max_length = 255)]
        pub client_secret: Option<String>,
        #[schema(max_length = 1024)]
        pub refresh_token: Option<String>,
    }

    #[derive(ToSchema)]
    pub enum RoleName {
        #[schema(rename = "user")]
        User,
        #[schema(rename = "moderator")]
        Moderator,
        #[schema(rename = "admin")]
        Admin,
    }

    #[derive(ToSchema)]
    pub struct RoleBody {
        pub role: RoleName,
    }

    /// `{"detail": "..."}`, the body of every error but `422`.
    #[derive(ToSchema)]
    pub struct Error {
        pub detail: String,
    }

    /// `422`: one entry per bad field.
    #[derive(ToSchema)]
    pub struct ValidationError {
        pub detail: Vec<super::FieldError>,
    }

    /// `{"status": "..."}` (`ok`, `deleted`, `disabled`, `logged_out`).
    #[derive(ToSchema)]
    pub struct Status {
        pub status: String,
    }

    /// `/health`: `ok`, or `unavailable` with a `detail` (503).
    #[derive(ToSchema)]
    pub struct Health {
        pub status: String,
        pub detail: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct AuthorizeUrl {
        pub url: String,
    }

    #[derive(ToSchema)]
    pub struct SpotifyAuthStatus {
        pub authenticated: bool,
    }

    #[derive(ToSchema)]
    pub struct RoleChanged {
        pub status: String,
        pub user_id: String,
        pub role: RoleName,
    }

    #[derive(ToSchema)]
    pub struct WarningDeleted {
        pub status: String,
        pub deleted: u64,
        pub warning_id: String,
    }

    #[derive(ToSchema)]
    pub struct WarningsDeleted {
        pub status: String,
        pub deleted: u64,
        pub user_id: String,
    }

    #[derive(ToSchema)]
    pub struct Warned {
        pub status: String,
        pub warning_id: String,
    }

    #[derive(ToSchema)]
    pub struct Banned {
        pub status: String,
        pub ban_id: String,
        pub revoked_sessions: u64,
    }

    #[derive(ToSchema)]
    pub struct BanRevoked {
        pub status: String,
        #[schema(format = DateTime)]
        pub revoked_at: String,
    }
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    /// Any signed-in user: `401` without a valid token, `403` when banned.
    User,
    /// `/admin` and `/modo`: also `403` for other roles.
    Staff,
}

/// How a handler reads its request body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// It must be sent; a bad one is `422`.
    Required,
    /// It may be left out; a bad one is `422`.
    Optional,
    /// It may be left out, and one that does not fit is ignored: never `422`.
    Lenient,
}

/// A request body: its schema and how it is read.
#[derive(Clone, Copy)]
struct Body(&'static str, Reading);

/// Whether a query parameter must be sent.
const REQUIRED: bool = true;
const OPTIONAL: bool = false;

/// What a query parameter takes.
#[derive(Clone, Copy)]
enum QueryKind {
    /// A string of at most this many characters; an empty value counts as absent.
    Text(usize),
    /// An absolute URL of at most this many characters.
    Url(usize),
    /// A string of any length.
    AnyText,
    /// An integer within these bounds.
    Integer(u32, u32),
    /// `true` or `false`.
    Boolean,
}

/// A query parameter: name, what it takes, whether it must be sent, description.
struct Query(&'static str, QueryKind, bool, &'static str);

/// What a successful call answers.
#[derive(Clone, Copy)]
enum Success {
    Json(&'static str),
    Text(&'static str),
    /// `text/event-stream` whose events carry this JSON schema in their `data`.
    EventStream(&'static str),
    Html,
    SwitchingProtocols,
}

/// One operation of the contract.
struct Operation {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    body: Option<Body>,
    query: &'static [Query],
    success: Success,
    /// Error statuses beyond those that follow from `access` and `body`.
    errors: &'static [u16],
}

const PAGE: Query = Query(
    "page",
    QueryKind::Integer(1, u32::MAX),
    OPTIONAL,
    "Page number, from 1 (default 1).",
);
const PAGE_SIZE: Query = Query(
    "page_size",
    QueryKind::Integer(1, MAX_PAGE_SIZE),
    OPTIONAL,
    "Rows per page (default 20).",
);
const LIST_QUERY: &[Query] = &[
    PAGE,
    PAGE_SIZE,
    Query(
        "search",
        QueryKind::Text(MAX_SEARCH_CHARS),
        OPTIONAL,
        "Substring of username or e-mail (and more where noted).",
    ),
];
const MODERATED_USERS_QUERY: &[Query] = &[
    PAGE,
    PAGE_SIZE,
    Query(
        "search",
        QueryKind::Text(MAX_SEARCH_CHARS),
        OPTIONAL,
        "Substring of username or e-mail.",
    ),
    Query(
        "banned",
        QueryKind::Boolean,
        OPTIONAL,
        "Only banned (`true`) or not banned (`false`) users.",
    ),
];

macro_rules! op {
    ($method:ident $path:literal, $tag:literal, $summary:literal, $access:ident,
     body: $body:expr, query: $query:expr, $success:expr, errors: [$($error:literal),*]) => {
        Operation {
            method: HttpMethod::$method,
            path: $path,
            tag: $tag,
            summary: $summary,
            access: Access::$access,
            body: $body,
            query: $query,
            success: $success,
            errors: &[$($error),*],
        }
    };
}

use Success::{EventStream, Html, Json, SwitchingProtocols, Text};

/// Every operation the router serves.
const OPERATIONS: &[Operation] = &[
    op!(Get "/health", "health", "Health of the server and its database", Public, body: None, query: &[], Json("Health"), errors: []),
    op!(Get "/metrics", "health", "Prometheus metrics (METRICS=true; a token or a direct loopback client)", Public, body: None, query: &[], Text("application/openmetrics-text"), errors: [401, 403, 404]),
    op!(Get "/openapi.json", "health", "This document", Public, body: None, query: &[], Json("Document"), errors: []),
    op!(Get "/docs", "health", "A page rendering this document", Public, body: None, query: &[], Html, errors: []),
    op!(Post "/auth/register", "auth", "Create an account; sets the auth cookies", Public, body: Some(Body("RegisterBody", Reading::Required)), query: &[], Json("LoginTokens"), errors: [409, 429]),
    op!(Post "/auth/login", "auth", "Log in; with 2FA the answer is a ticket for /auth/login/2fa", Public, body: Some(Body("LoginBody", Reading::Required)), query: &[], Json("LoginAnswer"), errors: [401, 403, 429]),
    op!(Post "/auth/login/2fa", "auth", "Finish a 2FA login with the TOTP code", Public, body: Some(Body("TwoFactorLoginBody", Reading::Required)), query: &[], Json("TwoFactorLoginTokens"), errors: [400, 401, 403, 429]),
    op!(Post "/auth/refresh", "auth", "Rotate the session: a new token pair", Public, body: Some(Body("RefreshTokenBody", Reading::Optional)), query: &[], Json("RefreshedTokens"), errors: [401, 403]),
    op!(Post "/auth/logout", "auth", "End the session and clear the cookies", Public, body: Some(Body("LogoutBody", Reading::Lenient)), query: &[], Json("Status"), errors: []),
    op!(Post "/auth/forgot", "auth", "Mail a password-reset link (same answer for unknown e-mails)", Public, body: Some(Body("EmailBody", Reading::Required)), query: &[], Json("SentView"), errors: [429]),
    op!(Post "/auth/reset", "auth", "Set a new password with a reset token", Public, body: Some(Body("ResetBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    op!(Post "/auth/2fa/setup", "2fa", "Start setting up TOTP", User, body: None, query: &[], Json("TwoFactorSetupView"), errors: [400]),
    op!(Post "/auth/2fa/verify", "2fa", "Activate TOTP with a first code", User, body: Some(Body("CodeBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    op!(Post "/auth/2fa/disable", "2fa", "Turn TOTP off with a code", User, body: Some(Body("CodeBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    op!(Post "/auth/2fa/disable/request", "2fa", "Mail a link that turns TOTP off", User, body: None, query: &[], Json("SentView"), errors: [400, 429]),
    op!(Get "/auth/2fa/disable/confirm", "2fa", "Turn TOTP off with the mailed token", Public, body: None, query: &[Query("token", QueryKind::Text(256), REQUIRED, "The mailed token.")], Json("Status"), errors: [400, 422]),
    op!(Post "/auth/2fa/disable/confirm", "2fa", "Turn TOTP off with the mailed token", Public, body: Some(Body("TokenBody", Reading::Required)), query: &[], Json("Status"), errors: [400]),
    op!(Get "/auth/email/revert", "users", "The page the mailed revert link opens: a button that POSTs the token (a link scanner cannot spend it)", Public, body: None, query: &[Query("token", QueryKind::Text(256), REQUIRED, "The mailed token.")], Html, errors: [422]),
    op!(Post "/auth/email/revert", "users", "Undo an e-mail change with the mailed token (JSON, or the page's form: answered with a page); every session of the user ends", Public, body: Some(Body("TokenBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 409]),
    op!(Get "/users/me", "users", "The caller's account", User, body: None, query: &[], Json("MeView"), errors: []),
    op!(Delete "/users/me", "users", "Delete the caller's account and everything that is theirs", User, body: None, query: &[], Json("Status"), errors: []),
    op!(Patch "/users/me/username", "users", "Change the username", User, body: Some(Body("UsernameBody", Reading::Required)), query: &[], Json("MeView"), errors: [409]),
    op!(Patch "/users/me/email", "users", "Change the e-mail address; the old one is mailed a link that undoes it", User, body: Some(Body("EmailBody", Reading::Required)), query: &[], Json("MeView"), errors: [409, 429]),
    op!(Post "/users/me/password", "users", "Change the password; other sessions end", User, body: Some(Body("PasswordChangeBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    op!(Get "/users/{user_id}", "users", "A user's public profile", Public, body: None, query: &[], Json("PublicUserView"), errors: [404]),
    op!(Get "/settings/me", "settings", "The caller's settings", User, body: None, query: &[], Json("SettingsView"), errors: []),
    op!(Patch "/settings/me", "settings", "Change any subset of the settings", User, body: Some(Body("SettingsPatchBody", Reading::Required)), query: &[], Json("SettingsView"), errors: []),
    op!(Get "/overlays", "overlays", "The caller's overlays, oldest first", User, body: None, query: &[], Json("OverlayList"), errors: []),
    op!(Post "/overlays", "overlays", "Create an overlay", User, body: Some(Body("OverlayBody", Reading::Optional)), query: &[], Json("OverlayView"), errors: []),
    op!(Get "/overlays/{id}", "overlays", "One of the caller's overlays", User, body: None, query: &[], Json("OverlayView"), errors: [404]),
    op!(Patch "/overlays/{id}", "overlays", "Change one of the caller's overlays", User, body: Some(Body("OverlayBody", Reading::Required)), query: &[], Json("OverlayView"), errors: [404]),
    op!(Delete "/overlays/{id}", "overlays", "Delete one of the caller's overlays", User, body: None, query: &[], Json("Status"), errors: [404]),
    op!(Post "/overlays/{id}/duplicate", "overlays", "Copy one of the caller's overlays", User, body: None, query: &[], Json("OverlayView"), errors: [404]),
    op!(Get "/overlay/{id}", "overlays", "Any overlay, for its public page", Public, body: None, query: &[], Json("OverlayView"), errors: [404]),
    op!(Get "/color/{user_id}", "now playing", "The color of the user's playing cover, or their fallback color", Public, body: None, query: &[], Json("ColorResponse"), errors: [404]),
    op!(Get "/infos/{user_id}", "now playing", "The color, the track, the palette and a text color", Public, body: None, query: &[], Json("InfosResponse"), errors: [404]),
    op!(Get "/infos/{user_id}/events", "now playing", "Server-Sent Events of `/infos`: the current JSON at once, then one event per change; ids are state fingerprints (`Last-Event-ID` equal to the current one skips the first event); a comment every 15 s", Public, body: None, query: &[], EventStream("InfosResponse"), errors: [404, 429]),
    op!(Get "/ws", "now playing", "WebSocket of now-playing changes (token: header, cookie or `token` query)", Public, body: None, query: &[Query("token", QueryKind::AnyText, OPTIONAL, "An access token.")], SwitchingProtocols, errors: [400]),
    op!(Get "/spotify/credentials/status", "spotify", "Which Spotify credentials are stored", User, body: None, query: &[], Json("CredentialsStatusView"), errors: []),
    op!(Patch "/spotify/credentials", "spotify", "Store Spotify credentials (blank clears)", User, body: Some(Body("SpotifyCredentialsBody", Reading::Required)), query: &[], Json("CredentialsStatusView"), errors: []),
    op!(Get "/spotify/auth/url", "spotify", "The URL that asks the user to grant access (its state is single use, the caller's, for 10 minutes)", User, body: None, query: &[Query("redirect_uri", QueryKind::Url(2048), OPTIONAL, "Default SPOTIFY_REDIRECT_URI.")], Json("AuthorizeUrl"), errors: [400, 422]),
    op!(Get "/spotify/callback", "spotify", "Exchange Spotify's authorization code", User, body: None, query: &[Query("code", QueryKind::Text(2048), OPTIONAL, "The authorization code (missing: 400)."), Query("state", QueryKind::Text(512), OPTIONAL, "The state Spotify sent back; without it, the caller's newest authorization (unknown, used or expired: 400)."), Query("redirect_uri", QueryKind::Url(2048), OPTIONAL, "Default: the redirect URI of the authorization.")], Json("Status"), errors: [400, 422, 502]),
    op!(Get "/spotify/auth/status", "spotify", "Whether Spotify is connected", User, body: None, query: &[], Json("SpotifyAuthStatus"), errors: []),
    op!(Post "/spotify/logout", "spotify", "Forget the Spotify refresh token", User, body: None, query: &[], Json("Status"), errors: []),
    op!(Get "/admin/stats", "admin", "Counts of accounts and overlays", Staff, body: None, query: &[], Json("StatsView"), errors: []),
    op!(Get "/admin/users", "admin", "Accounts, newest first", Staff, body: None, query: LIST_QUERY, Json("AdminUserPage"), errors: [422]),
    op!(Patch "/admin/users/{id}/role", "admin", "Change an account's role", Staff, body: Some(Body("RoleBody", Reading::Required)), query: &[], Json("RoleChanged"), errors: [400, 404]),
    op!(Get "/admin/users/{id}/warnings", "admin", "An account's warnings", Staff, body: None, query: LIST_QUERY, Json("WarningPage"), errors: [404, 422]),
    op!(Delete "/admin/users/{id}/warnings", "admin", "Delete an account's warnings", Staff, body: None, query: &[], Json("WarningsDeleted"), errors: [404]),
    op!(Get "/admin/warnings", "admin", "All warnings (search also over reason and ids)", Staff, body: None, query: LIST_QUERY, Json("WarningPage"), errors: [422]),
    op!(Delete "/admin/warnings/{id}", "admin", "Delete a warning", Staff, body: None, query: &[], Json("WarningDeleted"), errors: [404]),
    op!(Get "/modo/users", "moderation", "Accounts with their ban state", Staff, body: None, query: MODERATED_USERS_QUERY, Json("ModeratedUserPage"), errors: [422]),
    op!(Get "/modo/users/{id}", "moderation", "One account with its ban state", Staff, body: None, query: &[], Json("ModeratedUserView"), errors: [404]),
    op!(Patch "/modo/users/{id}", "moderation", "Change an account's username or e-mail (a new e-mail: admins only, mailed to the old one with a revert link)", Staff, body: Some(Body("ModeratedUserPatchBody", Reading::Required)), query: &[], Json("Status"), errors: [404, 409, 429]),
    op!(Post "/modo/users/{id}/warn", "moderation", "Warn an account", Staff, body: Some(Body("WarnBody", Reading::Required)), query: &[], Json("Warned"), errors: [404]),
    op!(Post "/modo/users/{id}/ban", "moderation", "Ban an account (ends its sessions and WebSockets)", Staff, body: Some(Body("BanBody", Reading::Required)), query: &[], Json("Banned"), errors: [400, 404]),
    op!(Post "/modo/users/{id}/ban/revoke", "moderation", "Lift an account's ban", Staff, body: None, query: &[], Json("BanRevoked"), errors: [404]),
    op!(Get "/modo/overlays", "moderation", "All overlays (search also over name, template and ids)", Staff, body: None, query: LIST_QUERY, Json("ModeratedOverlayPage"), errors: [422]),
    op!(Get "/modo/overlays/{id}", "moderation", "Any overlay", Staff, body: None, query: &[], Json("OverlayView"), errors: [404]),
    op!(Patch "/modo/overlays/{id}", "moderation", "Change any overlay", Staff, body: Some(Body("OverlayBody", Reading::Required)), query: &[], Json("OverlayView"), errors: [404]),
    op!(Delete "/modo/overlays/{id}", "moderation", "Delete any overlay", Staff, body: None, query: &[], Json("Status"), errors: [404]),
];

/// The document, built once.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    // Serializing a document of plain values cannot fail; should it, an empty object is
    // still valid JSON.
    Bytes::from(serde_json::to_vec(&document()).unwrap_or_else(|_| b"{}".to_vec()))
});

pub(super) async fn openapi_json() -> Reply {
    let mut response = Response::new(DOCUMENT.clone());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Swagger UI from a CDN, so nothing is bundled or downloaded at build time. The page runs on
/// the API's own origin, where the access cookie authenticates requests, so the browser must
/// refuse CDN files other than the pinned release: the `integrity` hashes are those of the
/// files in the npm tarball of swagger-ui-dist 5.17.14 (checked against the registry's
/// tarball hash), which jsDelivr serves byte for byte.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>MelodyHue API</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.17.14/swagger-ui.css"
        integrity="sha384-wxLW6kwyHktdDGr6Pv1zgm/VGJh99lfUbzSn6HNHBENZlCN7W602k9VkGdxuFvPn" crossorigin="anonymous">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.17.14/swagger-ui-bundle.js"
          integrity="sha384-wmyclcVGX/WhUkdkATwhaK1X1JtiNrr2EoYJ+diV3vj4v6OC5yCeSu+yW13SYJep" crossorigin="anonymous"></script>
  <script>
    window.onload = () => { window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" }); };
  </script>
</body>
</html>
"##;

pub(super) async fn docs() -> Reply {
    let mut response = Response::new(Bytes::from_static(DOCS_PAGE.as_bytes()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(response)
}

/// `(method, path)` of every documented operation, for the suite.
pub fn documented_operations() -> Vec<(&'static str, &'static str)> {
    OPERATIONS
        .iter()
        .map(|op| (method_name(&op.method), op.path))
        .collect()
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Trace => "TRACE",
    }
}

fn schema_ref(name: &str) -> Ref {
    Ref::from_schema_name(name)
}

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(schema_ref(schema)))
        .build()
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "The request cannot be done as asked",
        401 => "Missing, invalid or expired token or credentials",
        403 => {
            "Banned (with `X-Account-Banned: true`), not allowed, or a cross-site request with cookies"
        }
        404 => "Not found",
        408 => "Body not received within `HTTP_BODY_TIMEOUT`",
        409 => "Already taken",
        413 => "Body over 64 KiB",
        415 => "`Content-Type` not JSON, without a bearer token",
        422 => "Invalid input, one entry per bad field",
        429 => {
            "Too many failures, or this client's password hashes are already in flight; see `Retry-After`"
        }
        502 => "Spotify failed",
        _ => "Database unavailable, or the password-hashing queue is full (with `Retry-After`)",
    }
}

fn operation(op: &Operation) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .tag(op.tag)
        .summary(Some(op.summary))
        .operation_id(Some(format!(
            "{}_{}",
            method_name(&op.method).to_ascii_lowercase(),
            op.path
                .trim_matches('/')
                .replace(['/', '.'], "_")
                .replace(['{', '}'], "")
        )));
    for segment in op.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .max_length(Some(36)),
                    )),
            );
        }
    }
    for Query(name, kind, required, description) in op.query {
        let schema = match *kind {
            QueryKind::Text(max_chars) => ObjectBuilder::new()
                .schema_type(Type::String)
                // An empty value is absent, which a required parameter cannot be.
                .min_length(required.then_some(1))
                .max_length(Some(max_chars)),
            QueryKind::Url(max_chars) => ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom("uri".to_owned())))
                .max_length(Some(max_chars)),
            QueryKind::AnyText => ObjectBuilder::new().schema_type(Type::String),
            QueryKind::Integer(minimum, maximum) => ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(minimum))
                .maximum(Some(maximum)),
            QueryKind::Boolean => ObjectBuilder::new().schema_type(Type::Boolean),
        };
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(if *required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(*description))
                .schema(Some(schema)),
        );
    }
    if let Some(Body(schema, reading)) = op.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(schema))
                .required(Some(if reading == Reading::Required {
                    Required::True
                } else {
                    Required::False
                }))
                .build(),
        ));
    }
    builder = match op.success {
        Json(schema) => builder.response(
            "200",
            ResponseBuilder::new()
                .description("Success")
                .content("application/json", json_content(schema)),
        ),
        Text(content_type) => builder.response(
            "200",
            ResponseBuilder::new().description("Success").content(
                content_type,
                ContentBuilder::new().schema(Some(String::schema())).build(),
            ),
        ),
        EventStream(data_schema) => builder.response(
            "200",
            ResponseBuilder::new()
                .description(format!(
                    "Server-Sent Events; each event's `data` is the JSON of `{data_schema}`"
                ))
                .content(
                    "text/event-stream",
                    ContentBuilder::new().schema(Some(event_schema())).build(),
                ),
        ),
        Html => builder.response(
            "200",
            ResponseBuilder::new().description("Success").content(
                "text/html",
                ContentBuilder::new().schema(Some(String::schema())).build(),
            ),
        ),
        SwitchingProtocols => builder.response(
            "101",
            ResponseBuilder::new().description("The WebSocket upgrade"),
        ),
    };
    let mut errors: Vec<u16> = op.errors.to_vec();
    if !matches!(
        op.method,
        HttpMethod::Get | HttpMethod::Head | HttpMethod::Options | HttpMethod::Trace
    ) {
        // The cross-site rules of unsafe requests (see `api::csrf`).
        errors.extend([403, 415]);
    }
    if let Some(Body(_, reading)) = op.body {
        errors.extend([408, 413]);
        if reading != Reading::Lenient {
            errors.push(422);
        }
    }
    match op.access {
        Access::Public => {}
        Access::User | Access::Staff => {
            errors.extend([401, 403]);
            builder = builder
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .security(SecurityRequirement::new("cookie", Vec::<String>::new()));
        }
    }
    if op.path == "/health" {
        builder = builder.response(
            "503",
            ResponseBuilder::new()
                .description(error_description(503))
                .content("application/json", json_content("Health")),
        );
    } else {
        errors.push(503);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let schema = if status == 422 {
            "ValidationError"
        } else {
            "Error"
        };
        builder = builder.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(error_description(status))
                .content("application/json", json_content(schema)),
        );
    }
    builder.build()
}

fn document() -> OpenApi {
    let mut paths = Paths::new();
    for op in OPERATIONS {
        paths.add_path_operation(op.path, vec![op.method.clone()], operation(op));
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(ACCESS_COOKIE))),
        )
        .schema_from::<LoginTokens>()
        .schema_from::<TwoFactorRequired>()
        .schema_from::<TwoFactorLoginTokens>()
        .schema_from::<RefreshedTokens>()
        .schema_from::<TwoFactorSetupView>()
        .schema_from::<SentView>()
        .schema_from::<MeView>()
        .schema_from::<SettingsView>()
        .schema_from::<PublicUserView>()
        .schema_from::<OverlayView>()
        .schema_from::<ColorResponse>()
        .schema_from::<InfosResponse>()
        .schema_from::<ColorView>()
        .schema_from::<PaletteView>()
        .schema_from::<TrackView>()
        .schema_from::<CredentialsStatusView>()
        .schema_from::<StatsView>()
        .schema_from::<AdminUserView>()
        .schema_from::<WarningItemView>()
        .schema_from::<ModeratedUserView>()
        .schema_from::<ModeratedOverlayView>()
        .schema_from::<FieldError>()
        .schema("AdminUserPage", PageView::<AdminUserView>::schema())
        .schema("WarningPage", PageView::<WarningItemView>::schema())
        .schema("ModeratedUserPage", PageView::<ModeratedUserView>::schema())
        .schema(
            "ModeratedOverlayPage",
            PageView::<ModeratedOverlayView>::schema(),
        )
        .schema("OverlayList", Vec::<OverlayView>::schema())
        .schema(
            "LoginAnswer",
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(schema_ref("LoginTokens"))
                .item(schema_ref("TwoFactorRequired")),
        )
        .schema("Document", ObjectBuilder::new().schema_type(Type::Object));
    macro_rules! shapes {
        ($($shape:ident),* $(,)?) => {
            $(components = components.schema_from::<shapes::$shape>();)*
        };
    }
    shapes!(
        RegisterBody,
        LoginBody,
        TwoFactorLoginBody,
        RefreshTokenBody,
        LogoutBody,
        EmailBody,
        ResetBody,
        CodeBody,
        TokenBody,
        UsernameBody,
        PasswordChangeBody,
        SettingsPatchBody,
        OverlayBody,
        SpotifyCredentialsBody,
        RoleName,
        RoleBody,
        ModeratedUserPatchBody,
        WarnBody,
        BanBody,
        Error,
        ValidationError,
        Status,
        Health,
        AuthorizeUrl,
        SpotifyAuthStatus,
        RoleChanged,
        WarningDeleted,
        WarningsDeleted,
        Warned,
        Banned,
        BanRevoked,
    );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("MelodyHue")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Spotify now-playing colors for stream overlays. Errors are \
                     `{\"detail\": ...}`; see docs/API.md for the whole contract.",
                )),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// The document as JSON, for tests and tools.
pub fn document_json() -> Value {
    serde_json::from_slice(&DOCUMENT).unwrap_or(Value::Null)
}

/// One Server-Sent Event as the WHATWG HTML standard's parser sees it (section 9.2.6): the
/// schema of a `text/event-stream` response describes each event, not the stream's text.
fn event_schema() -> ObjectBuilder {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("data", text())
        .property("event", text())
        .property("id", text())
        .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
        .required("data")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The router's templates, read from its source: a route added without documenting it
    /// fails here.
    #[test]
    fn every_route_of_the_router_is_documented() {
        let router = include_str!("mod.rs");
        let routed: BTreeSet<&str> = router
            .split("=> (")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
            .filter(|template| template.starts_with('/'))
            .collect();
        assert!(routed.len() > 40, "the scan found too little: {routed:?}");
        let documented: BTreeSet<&str> = OPERATIONS.iter().map(|op| op.path).collect();
        assert_eq!(routed, documented);
    }

    #[test]
    fn the_document_is_openapi_3_1_and_refers_only_to_known_schemas() {
        let document = document_json();
        assert_eq!(document["openapi"], "3.1.0");
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "unknown schema {name}");
        }
    }
}
