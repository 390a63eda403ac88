//! The OpenAPI 3.1 document of the contract (`GET /openapi.json`) and a page rendering it
//! (`GET /docs`).
//!
//! Schemas come from the Rust types: the response types of the handlers and the request
//! bodies they read (`api::bodies`, whose fields' schemas are those of the model's value
//! types, limits included) derive [`utoipa::ToSchema`], and so do the few shapes below that
//! only describe what a handler reads or writes field by field. The operations are the rows
//! of the route table (`api::routes`), the one the dispatcher serves, so the document cannot
//! miss a route; a suite case asks a running server every documented operation (routed) and
//! every other method on those paths (`405`).

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
use super::modo::{ModeratedOverlayView, ModeratedUserView};
use super::overlays::OverlayView;
use super::public::{
    ColorResponse, ColorView, InfosResponse, PaletteView, PublicUserView, TrackView,
};
use super::routes::Success::{EventStream, Html, Json, SwitchingProtocols, Text};
use super::routes::{
    Access, Body, Query, QueryKind, ROUTES, Reading, Route, method_name, parameter_name,
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
        PasswordChangeBody, RefreshTokenBody, RegisterBody, ResetBody, SettingsPatchBody,
        SpotifyCredentialsBody, TokenBody, TwoFactorLoginBody, UsernameBody, WarnBody,
    };

    /// Anything else is ignored: logging out never fails.
    #[derive(ToSchema)]
    pub struct LogoutBody {
        /// Else the `mh_refresh_token` cookie.
        pub refresh_token: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct RoleBody {
        pub role: crate::model::Role,
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
        pub role: crate::model::Role,
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

/// `(method, path template)` of every documented operation, which is every route, for the
/// suite.
pub fn documented_operations() -> Vec<(&'static str, &'static str)> {
    operations(|_| true)
}

/// `(method, path template)` of every operation only a signed-in caller may call (users, or
/// staff): without a token each answers `401`, which the suite checks.
pub fn signed_in_operations() -> Vec<(&'static str, &'static str)> {
    operations(|route| route.access != Access::Public)
}

fn operations(keep: impl Fn(&Route) -> bool) -> Vec<(&'static str, &'static str)> {
    ROUTES
        .iter()
        .filter(|route| keep(route))
        .map(|route| (method_name(&route.method), route.path))
        .collect()
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

fn operation(op: &Route) -> utoipa::openapi::path::Operation {
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
        if let Some(name) = parameter_name(segment) {
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
    for op in ROUTES {
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
        .schema_from::<crate::model::Role>()
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
    use super::*;

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
