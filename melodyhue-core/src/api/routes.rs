//! The route table: every operation of the contract, one row each ([`ROUTES`]). The same rows
//! drive the dispatcher ([`find`]), the OpenAPI document ([`super::openapi`]), the route label
//! of the logs and metrics, the `405` answers and the suite's coverage case.
//!
//! A row's template (`/overlays/{id}`) is matched against the request path's segments
//! (percent-decoded, empty ones dropped): a `{name}` segment takes any one segment, handed to
//! the handler as its id; any other segment must be equal. The first row whose template matches
//! names the path, so a template with a fixed segment comes before one with a parameter in its
//! place (`/users/me` before `/users/{user_id}`; a unit test resolves every row's own path).
//! Among the rows of that template the method picks one; none is `405` with `Allow`.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, header};
use utoipa::openapi::path::HttpMethod;

use super::csrf::Bodies::{self, JsonOrForm};
use super::input::{MAX_PAGE_SIZE, MAX_SEARCH_CHARS};
use super::{
    ApiError, Ctx, Reply, admin, auth, events, metrics, modo, openapi, overlays, public, spotify,
    two_factor, users,
};
use crate::model::MailedToken;

/// Who may call an operation. The handlers check it (`Ctx::principal`, first thing they do);
/// the row says it for the document and for the suite, which asks every `User` and `Staff`
/// operation without a token and expects `401`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Public,
    /// Any signed-in user: `401` without a valid token, `403` when banned.
    User,
    /// `/admin` and `/modo`: also `403` for other roles.
    Staff,
}

/// How a handler reads its request body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// It must be sent; a bad one is `422`.
    Required,
    /// It may be left out; a bad one is `422`.
    Optional,
    /// It may be left out, and one that does not fit is ignored: never `422`.
    Lenient,
}

/// A request body: its schema and how it is read.
#[derive(Clone, Copy)]
pub(super) struct Body(pub(super) &'static str, pub(super) Reading);

/// Whether a query parameter must be sent.
const REQUIRED: bool = true;
const OPTIONAL: bool = false;

/// What a query parameter takes.
#[derive(Clone, Copy)]
pub(super) enum QueryKind {
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
pub(super) struct Query(
    pub(super) &'static str,
    pub(super) QueryKind,
    pub(super) bool,
    pub(super) &'static str,
);

/// What a successful call answers.
#[derive(Clone, Copy)]
pub(super) enum Success {
    Json(&'static str),
    Text(&'static str),
    /// `text/event-stream` whose events carry this JSON schema in their `data`.
    EventStream(&'static str),
    Html,
    SwitchingProtocols,
}

/// A handler's answer to come: boxed, and `Send` because the adapters spawn it.
pub(super) type Answer<'r> = Pin<Box<dyn Future<Output = Reply> + Send + 'r>>;

/// A row's handler, in one of the two shapes handlers have.
#[derive(Clone, Copy)]
pub(super) enum Handler {
    /// `f(cx)`, for a template without parameter.
    Plain(for<'r, 'a> fn(&'r Ctx<'a>) -> Answer<'r>),
    /// `f(cx, id)`, for a template with one parameter: the segment in its place.
    WithId(for<'r, 'a> fn(&'r Ctx<'a>, &'r str) -> Answer<'r>),
}

impl Handler {
    /// Runs the handler; `param` is the segment in the place of the template's parameter (the
    /// table's unit test makes sure a `WithId` row's template has one).
    pub(super) fn call<'r>(self, cx: &'r Ctx<'_>, param: &'r str) -> Answer<'r> {
        match self {
            Handler::Plain(handler) => handler(cx),
            Handler::WithId(handler) => handler(cx, param),
        }
    }
}

/// One operation of the contract: how it is served and how it is documented.
pub(super) struct Route {
    pub(super) method: HttpMethod,
    /// The path template: `/`-separated, a parameter is a whole segment `{name}`.
    pub(super) path: &'static str,
    pub(super) handler: Handler,
    /// Which request bodies the cross-site check lets through (see [`super::csrf`]).
    pub(super) bodies: Bodies,
    pub(super) tag: &'static str,
    pub(super) summary: &'static str,
    pub(super) access: Access,
    pub(super) body: Option<Body>,
    pub(super) query: &'static [Query],
    pub(super) success: Success,
    /// Error statuses beyond those that follow from `access` and `body`.
    pub(super) errors: &'static [u16],
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
const SEARCH: Query = Query(
    "search",
    QueryKind::Text(MAX_SEARCH_CHARS),
    OPTIONAL,
    "Substring of username or e-mail (and more where the summary says).",
);
const LIST_QUERY: &[Query] = &[PAGE, PAGE_SIZE, SEARCH];
const MODERATED_USERS_QUERY: &[Query] = &[
    PAGE,
    PAGE_SIZE,
    SEARCH,
    Query(
        "banned",
        QueryKind::Boolean,
        OPTIONAL,
        "Only banned (`true`) or not banned (`false`) users.",
    ),
];

/// A [`Handler`] from a closure-like `|cx| call` or `|cx, id| call`: a function that boxes the
/// call's future.
macro_rules! handler {
    (|$cx:ident| $call:expr) => {{
        fn handler<'r>($cx: &'r Ctx<'_>) -> Answer<'r> {
            Box::pin($call)
        }
        Handler::Plain(handler)
    }};
    (|$cx:ident, $id:ident| $call:expr) => {{
        fn handler<'r>($cx: &'r Ctx<'_>, $id: &'r str) -> Answer<'r> {
            Box::pin($call)
        }
        Handler::WithId(handler)
    }};
}

/// One row: method and template, handler, tag, summary, access, request body (and, for an
/// HTML form's target, `forms: JsonOrForm`), query parameters, success, further errors.
macro_rules! route {
    ($method:ident $path:literal => |$($arg:ident),+| $call:expr, $tag:literal, $summary:literal,
     $access:ident, body: $body:expr, $(forms: $bodies:ident,)? query: $query:expr,
     $success:expr, errors: [$($error:literal),*]) => {
        Route {
            method: HttpMethod::$method,
            path: $path,
            handler: handler!(|$($arg),+| $call),
            bodies: route!(@bodies $($bodies)?),
            tag: $tag,
            summary: $summary,
            access: Access::$access,
            body: $body,
            query: $query,
            success: $success,
            errors: &[$($error),*],
        }
    };
    (@bodies) => { Bodies::Json };
    (@bodies $bodies:ident) => { $bodies };
}

use Success::{EventStream, Html, Json, SwitchingProtocols, Text};

/// Every operation the server answers. To add one: a row here, its handler, its suite case.
pub(super) static ROUTES: &[Route] = &[
    route!(Get "/health" => |cx| public::health(cx), "health", "Health of the server and its database", Public, body: None, query: &[], Json("Health"), errors: []),
    route!(Get "/metrics" => |cx| metrics::metrics(cx), "health", "Prometheus metrics (METRICS=true; a token or a direct loopback client)", Public, body: None, query: &[], Text("application/openmetrics-text"), errors: [401, 403, 404]),
    route!(Get "/openapi.json" => |_cx| openapi::openapi_json(), "health", "This document", Public, body: None, query: &[], Json("Document"), errors: []),
    route!(Get "/docs" => |_cx| openapi::docs(), "health", "A page rendering this document", Public, body: None, query: &[], Html, errors: []),
    route!(Post "/auth/register" => |cx| auth::register(cx), "auth", "Create an account; sets the auth cookies", Public, body: Some(Body("RegisterBody", Reading::Required)), query: &[], Json("LoginTokens"), errors: [409, 429]),
    route!(Post "/auth/login" => |cx| auth::login(cx), "auth", "Log in; with 2FA the answer is a ticket for /auth/login/2fa", Public, body: Some(Body("LoginBody", Reading::Required)), query: &[], Json("LoginAnswer"), errors: [401, 403, 429]),
    route!(Post "/auth/login/2fa" => |cx| two_factor::login(cx), "auth", "Finish a 2FA login with the TOTP code", Public, body: Some(Body("TwoFactorLoginBody", Reading::Required)), query: &[], Json("TwoFactorLoginTokens"), errors: [400, 401, 403, 429]),
    route!(Post "/auth/refresh" => |cx| auth::refresh(cx), "auth", "Rotate the session: a new token pair", Public, body: Some(Body("RefreshTokenBody", Reading::Optional)), query: &[], Json("RefreshedTokens"), errors: [401, 403]),
    route!(Post "/auth/logout" => |cx| auth::logout(cx), "auth", "End the session and clear the cookies", Public, body: Some(Body("LogoutBody", Reading::Lenient)), query: &[], Json("Status"), errors: []),
    route!(Post "/auth/forgot" => |cx| two_factor::forgot(cx), "auth", "Mail a password-reset link (same answer for unknown e-mails)", Public, body: Some(Body("EmailBody", Reading::Required)), query: &[], Json("SentView"), errors: [429]),
    route!(Post "/auth/reset" => |cx| two_factor::reset(cx), "auth", "Set a new password with a reset token", Public, body: Some(Body("ResetBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    route!(Post "/auth/2fa/setup" => |cx| two_factor::setup(cx), "2fa", "Start setting up TOTP", User, body: None, query: &[], Json("TwoFactorSetupView"), errors: [400]),
    route!(Post "/auth/2fa/verify" => |cx| two_factor::verify(cx), "2fa", "Activate TOTP with a first code", User, body: Some(Body("CodeBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    route!(Post "/auth/2fa/disable" => |cx| two_factor::disable(cx), "2fa", "Turn TOTP off with a code", User, body: Some(Body("CodeBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    route!(Post "/auth/2fa/disable/request" => |cx| two_factor::disable_request(cx), "2fa", "Mail a link that turns TOTP off", User, body: None, query: &[], Json("SentView"), errors: [400, 429]),
    route!(Get "/auth/2fa/disable/confirm" => |cx| two_factor::disable_confirm(cx), "2fa", "Turn TOTP off with the mailed token", Public, body: None, query: &[Query("token", QueryKind::Text(MailedToken::MAX_CHARS), REQUIRED, "The mailed token.")], Json("Status"), errors: [400, 422]),
    route!(Post "/auth/2fa/disable/confirm" => |cx| two_factor::disable_confirm(cx), "2fa", "Turn TOTP off with the mailed token", Public, body: Some(Body("TokenBody", Reading::Required)), query: &[], Json("Status"), errors: [400]),
    route!(Get "/auth/email/revert" => |cx| users::email_revert_page(cx), "users", "The page the mailed revert link opens: a button that POSTs the token (a link scanner cannot spend it)", Public, body: None, query: &[Query("token", QueryKind::Text(MailedToken::MAX_CHARS), REQUIRED, "The mailed token.")], Html, errors: [422]),
    route!(Post "/auth/email/revert" => |cx| users::email_revert(cx), "users", "Undo an e-mail change with the mailed token (JSON, or the page's form: answered with a page); every session of the user ends", Public, body: Some(Body("TokenBody", Reading::Required)), forms: JsonOrForm, query: &[], Json("Status"), errors: [400, 409]),
    route!(Get "/users/me" => |cx| users::me(cx), "users", "The caller's account", User, body: None, query: &[], Json("MeView"), errors: []),
    route!(Delete "/users/me" => |cx| users::delete_me(cx), "users", "Delete the caller's account and everything that is theirs", User, body: None, query: &[], Json("Status"), errors: []),
    route!(Patch "/users/me/username" => |cx| users::change_username(cx), "users", "Change the username", User, body: Some(Body("UsernameBody", Reading::Required)), query: &[], Json("MeView"), errors: [409]),
    route!(Patch "/users/me/email" => |cx| users::change_email(cx), "users", "Change the e-mail address; the old one is mailed a link that undoes it", User, body: Some(Body("EmailBody", Reading::Required)), query: &[], Json("MeView"), errors: [409, 429]),
    route!(Post "/users/me/password" => |cx| users::change_password(cx), "users", "Change the password; other sessions end", User, body: Some(Body("PasswordChangeBody", Reading::Required)), query: &[], Json("Status"), errors: [400, 429]),
    route!(Get "/users/{user_id}" => |cx, id| public::user(cx, id), "users", "A user's public profile", Public, body: None, query: &[], Json("PublicUserView"), errors: [404]),
    route!(Get "/settings/me" => |cx| users::settings(cx), "settings", "The caller's settings", User, body: None, query: &[], Json("SettingsView"), errors: []),
    route!(Patch "/settings/me" => |cx| users::update_settings(cx), "settings", "Change any subset of the settings", User, body: Some(Body("SettingsPatchBody", Reading::Required)), query: &[], Json("SettingsView"), errors: []),
    route!(Get "/overlays" => |cx| overlays::list(cx), "overlays", "The caller's overlays, oldest first", User, body: None, query: &[], Json("OverlayList"), errors: []),
    route!(Post "/overlays" => |cx| overlays::create(cx), "overlays", "Create an overlay", User, body: Some(Body("OverlayBody", Reading::Optional)), query: &[], Json("OverlayView"), errors: []),
    route!(Get "/overlays/{id}" => |cx, id| overlays::get(cx, id), "overlays", "One of the caller's overlays", User, body: None, query: &[], Json("OverlayView"), errors: [404]),
    route!(Patch "/overlays/{id}" => |cx, id| overlays::update(cx, id), "overlays", "Change one of the caller's overlays", User, body: Some(Body("OverlayBody", Reading::Required)), query: &[], Json("OverlayView"), errors: [404]),
    route!(Delete "/overlays/{id}" => |cx, id| overlays::delete(cx, id), "overlays", "Delete one of the caller's overlays", User, body: None, query: &[], Json("Status"), errors: [404]),
    route!(Post "/overlays/{id}/duplicate" => |cx, id| overlays::duplicate(cx, id), "overlays", "Copy one of the caller's overlays", User, body: None, query: &[], Json("OverlayView"), errors: [404]),
    route!(Get "/overlay/{id}" => |cx, id| public::overlay(cx, id), "overlays", "Any overlay, for its public page", Public, body: None, query: &[], Json("OverlayView"), errors: [404]),
    route!(Get "/color/{user_id}" => |cx, id| public::color(cx, id), "now playing", "The color of the user's playing cover, or their fallback color", Public, body: None, query: &[], Json("ColorResponse"), errors: [404]),
    route!(Get "/infos/{user_id}" => |cx, id| public::infos(cx, id), "now playing", "The color, the track, the palette and a text color", Public, body: None, query: &[], Json("InfosResponse"), errors: [404]),
    route!(Get "/infos/{user_id}/events" => |cx, id| events::infos_events(cx, id), "now playing", "Server-Sent Events of `/infos`: the current JSON at once, then one event per change; ids are state fingerprints (`Last-Event-ID` equal to the current one skips the first event); a comment every 15 s", Public, body: None, query: &[], EventStream("InfosResponse"), errors: [404, 429]),
    // Upgrades are taken by the adapters before they reach this table.
    route!(Get "/ws" => |_cx| async { Reply::Err(ApiError::BadRequest("WebSocket upgrade required")) }, "now playing", "WebSocket of now-playing changes (token: header, cookie or `token` query)", Public, body: None, query: &[Query("token", QueryKind::AnyText, OPTIONAL, "An access token.")], SwitchingProtocols, errors: [400]),
    route!(Get "/spotify/credentials/status" => |cx| spotify::credentials_status(cx), "spotify", "Which Spotify credentials are stored", User, body: None, query: &[], Json("CredentialsStatusView"), errors: []),
    route!(Patch "/spotify/credentials" => |cx| spotify::update_credentials(cx), "spotify", "Store Spotify credentials (blank clears)", User, body: Some(Body("SpotifyCredentialsBody", Reading::Required)), query: &[], Json("CredentialsStatusView"), errors: []),
    route!(Get "/spotify/auth/url" => |cx| spotify::auth_url(cx), "spotify", "The URL that asks the user to grant access (its state is single use, the caller's, for 10 minutes)", User, body: None, query: &[Query("redirect_uri", QueryKind::Url(2048), OPTIONAL, "Default SPOTIFY_REDIRECT_URI.")], Json("AuthorizeUrl"), errors: [400, 422]),
    route!(Get "/spotify/callback" => |cx| spotify::callback(cx), "spotify", "Exchange Spotify's authorization code", User, body: None, query: &[Query("code", QueryKind::Text(2048), OPTIONAL, "The authorization code (missing: 400)."), Query("state", QueryKind::Text(512), OPTIONAL, "The state Spotify sent back; without it, the caller's newest authorization (unknown, used or expired: 400)."), Query("redirect_uri", QueryKind::Url(2048), OPTIONAL, "Default: the redirect URI of the authorization.")], Json("Status"), errors: [400, 422, 502]),
    route!(Get "/spotify/auth/status" => |cx| spotify::auth_status(cx), "spotify", "Whether Spotify is connected", User, body: None, query: &[], Json("SpotifyAuthStatus"), errors: []),
    route!(Post "/spotify/logout" => |cx| spotify::logout(cx), "spotify", "Forget the Spotify refresh token", User, body: None, query: &[], Json("Status"), errors: []),
    route!(Get "/admin/stats" => |cx| admin::stats(cx), "admin", "Counts of accounts and overlays", Staff, body: None, query: &[], Json("StatsView"), errors: []),
    route!(Get "/admin/users" => |cx| admin::users(cx), "admin", "Accounts, newest first", Staff, body: None, query: LIST_QUERY, Json("AdminUserPage"), errors: [422]),
    route!(Patch "/admin/users/{id}/role" => |cx, id| admin::change_role(cx, id), "admin", "Change an account's role", Staff, body: Some(Body("RoleBody", Reading::Required)), query: &[], Json("RoleChanged"), errors: [400, 404]),
    route!(Get "/admin/users/{id}/warnings" => |cx, id| admin::user_warnings(cx, id), "admin", "An account's warnings", Staff, body: None, query: LIST_QUERY, Json("WarningPage"), errors: [404, 422]),
    route!(Delete "/admin/users/{id}/warnings" => |cx, id| admin::delete_user_warnings(cx, id), "admin", "Delete an account's warnings", Staff, body: None, query: &[], Json("WarningsDeleted"), errors: [404]),
    route!(Get "/admin/warnings" => |cx| admin::warnings(cx), "admin", "All warnings (search also over reason and ids)", Staff, body: None, query: LIST_QUERY, Json("WarningPage"), errors: [422]),
    route!(Delete "/admin/warnings/{id}" => |cx, id| admin::delete_warning(cx, id), "admin", "Delete a warning", Staff, body: None, query: &[], Json("WarningDeleted"), errors: [404]),
    route!(Get "/modo/users" => |cx| modo::users(cx), "moderation", "Accounts with their ban state", Staff, body: None, query: MODERATED_USERS_QUERY, Json("ModeratedUserPage"), errors: [422]),
    route!(Get "/modo/users/{id}" => |cx, id| modo::user(cx, id), "moderation", "One account with its ban state", Staff, body: None, query: &[], Json("ModeratedUserView"), errors: [404]),
    route!(Patch "/modo/users/{id}" => |cx, id| modo::update_user(cx, id), "moderation", "Change an account's username or e-mail (a new e-mail: admins only, mailed to the old one with a revert link)", Staff, body: Some(Body("ModeratedUserPatchBody", Reading::Required)), query: &[], Json("Status"), errors: [404, 409, 429]),
    route!(Post "/modo/users/{id}/warn" => |cx, id| modo::warn(cx, id), "moderation", "Warn an account", Staff, body: Some(Body("WarnBody", Reading::Required)), query: &[], Json("Warned"), errors: [404]),
    route!(Post "/modo/users/{id}/ban" => |cx, id| modo::ban(cx, id), "moderation", "Ban an account (ends its sessions and WebSockets)", Staff, body: Some(Body("BanBody", Reading::Required)), query: &[], Json("Banned"), errors: [400, 404]),
    route!(Post "/modo/users/{id}/ban/revoke" => |cx, id| modo::revoke_ban(cx, id), "moderation", "Lift an account's ban", Staff, body: None, query: &[], Json("BanRevoked"), errors: [404]),
    route!(Get "/modo/overlays" => |cx| modo::overlays(cx), "moderation", "All overlays (search also over name, template and ids)", Staff, body: None, query: LIST_QUERY, Json("ModeratedOverlayPage"), errors: [422]),
    route!(Get "/modo/overlays/{id}" => |cx, id| modo::overlay(cx, id), "moderation", "Any overlay", Staff, body: None, query: &[], Json("OverlayView"), errors: [404]),
    route!(Patch "/modo/overlays/{id}" => |cx, id| modo::update_overlay(cx, id), "moderation", "Change any overlay", Staff, body: Some(Body("OverlayBody", Reading::Required)), query: &[], Json("OverlayView"), errors: [404]),
    route!(Delete "/modo/overlays/{id}" => |cx, id| modo::delete_overlay(cx, id), "moderation", "Delete any overlay", Staff, body: None, query: &[], Json("Status"), errors: [404]),
];

/// What the table says about a request.
pub(super) enum Found<'p> {
    /// The row of the path and method, and the path's segment in the place of the template's
    /// parameter (`""` for a template without one).
    Route(&'static Route, &'p str),
    /// The path is this template's, but no row of it has the method.
    OtherMethod(&'static str),
    /// No template matches the path.
    Nothing,
}

/// Looks a request up: `segments` are the path's, percent-decoded, empty ones dropped. A scan
/// comparing segments, without allocating.
pub(super) fn find<'p>(method: &Method, segments: &[&'p str]) -> Found<'p> {
    let Some((first, param)) = ROUTES
        .iter()
        .find_map(|route| Some((route, matches(route.path, segments)?)))
    else {
        return Found::Nothing;
    };
    match ROUTES
        .iter()
        .find(|route| route.path == first.path && method_name(&route.method) == method.as_str())
    {
        Some(route) => Found::Route(route, param),
        None => Found::OtherMethod(first.path),
    }
}

/// Whether `segments` fit `template`; then the segment in the place of its parameter, if any.
fn matches<'p>(template: &str, segments: &[&'p str]) -> Option<&'p str> {
    let mut parts = template.split('/').filter(|part| !part.is_empty());
    let mut segments = segments.iter();
    let mut param = "";
    loop {
        match (parts.next(), segments.next()) {
            (None, None) => return Some(param),
            (Some(part), Some(segment)) if parameter_name(part).is_some() => param = *segment,
            (Some(part), Some(segment)) if part == *segment => {}
            _ => return None,
        }
    }
}

/// The name of a template segment that is a parameter (`{id}`: `id`).
pub(super) fn parameter_name(part: &str) -> Option<&str> {
    part.strip_prefix('{')?.strip_suffix('}')
}

/// `405` for a path of `template` asked with another method, with the template's methods in
/// `Allow` (RFC 9110, section 15.5.6).
pub(super) fn method_not_allowed(template: &str) -> Response<Bytes> {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|route| route.path == template)
        .map(|route| method_name(&route.method))
        .collect();
    let mut response = ApiError::MethodNotAllowed.into_response();
    if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// A method's name as HTTP spells it.
pub(super) fn method_name(method: &HttpMethod) -> &'static str {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A segment to fill a template's parameter with.
    const ID: &str = "some-id";

    /// The segments of a path for `template`, its parameter filled with [`ID`].
    fn concrete(template: &str) -> Vec<&str> {
        template
            .split('/')
            .filter(|part| !part.is_empty())
            .map(|part| {
                if parameter_name(part).is_some() {
                    ID
                } else {
                    part
                }
            })
            .collect()
    }

    fn method(route: &Route) -> Method {
        Method::from_bytes(method_name(&route.method).as_bytes()).unwrap()
    }

    #[test]
    fn every_template_is_well_formed_and_fits_its_handler() {
        for route in ROUTES {
            let path = route.path;
            let parts: Vec<&str> = path.split('/').skip(1).collect();
            assert!(path.starts_with('/'), "{path}");
            assert!(
                parts.iter().all(|part| !part.is_empty()),
                "{path}: empty segment"
            );
            let parameters: Vec<&str> = parts.iter().filter_map(|p| parameter_name(p)).collect();
            for part in &parts {
                let name = parameter_name(part).unwrap_or(part);
                assert!(
                    !name.is_empty() && !name.contains(['{', '}', '%', '?', '#']),
                    "{path}: segment {part}"
                );
            }
            let shape_fits = match route.handler {
                Handler::Plain(_) => parameters.is_empty(),
                Handler::WithId(_) => parameters.len() == 1,
            };
            assert!(
                shape_fits,
                "{path}: handler takes no or one id, as the template has"
            );
        }
    }

    #[test]
    fn no_two_rows_share_method_and_template() {
        let mut seen = BTreeSet::new();
        for route in ROUTES {
            let key = (method_name(&route.method), route.path);
            assert!(seen.insert(key), "{key:?} twice");
        }
    }

    /// Every row is found for its own path and method (so no earlier template hides it), with
    /// its parameter; another method on the path is `405`.
    #[test]
    fn the_dispatcher_finds_every_row() {
        for route in ROUTES {
            let segments = concrete(route.path);
            match find(&method(route), &segments) {
                Found::Route(found, param) => {
                    assert!(
                        std::ptr::eq(found, route),
                        "{} found {}",
                        route.path,
                        found.path
                    );
                    let expected = if route.path.contains('{') { ID } else { "" };
                    assert_eq!(param, expected, "{}", route.path);
                }
                _ => panic!("{} {} is not found", method_name(&route.method), route.path),
            }
            assert!(
                matches!(find(&Method::PUT, &segments), Found::OtherMethod(t) if t == route.path),
                "PUT {}",
                route.path
            );
        }
    }

    #[test]
    fn unknown_paths_are_nothing() {
        for path in [
            "/",
            "/nope",
            "/auth",
            "/overlays/a/b/c",
            "/users/me/nothing",
        ] {
            let segments = concrete(path);
            assert!(
                matches!(find(&Method::GET, &segments), Found::Nothing),
                "{path}"
            );
        }
    }

    #[test]
    fn a_fixed_segment_wins_over_a_parameter() {
        match find(&Method::GET, &["users", "me"]) {
            Found::Route(route, _) => assert_eq!(route.path, "/users/me"),
            _ => panic!("/users/me"),
        }
        match find(&Method::POST, &["users", "me"]) {
            Found::OtherMethod(template) => assert_eq!(template, "/users/me"),
            _ => panic!("POST /users/me"),
        }
    }

    #[test]
    fn method_not_allowed_lists_the_methods_of_the_path() {
        let response = method_not_allowed("/overlays/{id}");
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()[header::ALLOW], "GET, PATCH, DELETE");
        assert_eq!(response.body(), r#"{"detail":"Method Not Allowed"}"#);
        let response = method_not_allowed("/auth/login");
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
}
