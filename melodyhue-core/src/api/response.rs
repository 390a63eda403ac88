//! Building responses: JSON bodies and the auth cookies.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use cookie::{Cookie, SameSite as CookieSameSite};
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::config::{CookieConfig, SameSite};

/// Cookie holding the access token.
pub const ACCESS_COOKIE: &str = "mh_access_token";
/// Cookie holding the refresh token.
pub const REFRESH_COOKIE: &str = "mh_refresh_token";

/// A JSON response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Bytes> {
    // Serializing our own DTOs cannot fail; should it, the client still gets valid JSON.
    let bytes = serde_json::to_vec(body)
        .unwrap_or_else(|_| br#"{"detail":"Internal server error"}"#.to_vec());
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A `200` JSON response.
pub fn ok<T: Serialize + ?Sized>(body: &T) -> Response<Bytes> {
    json(StatusCode::OK, body)
}

/// RFC 3339 in UTC with milliseconds and `Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serde helper for timestamp fields.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::timestamp(*t))
    }

    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::Serializer;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::timestamp(*t)),
                None => s.serialize_none(),
            }
        }
    }
}

fn auth_cookie<'a>(
    config: &CookieConfig,
    name: &'a str,
    value: &'a str,
    max_age: u64,
) -> Cookie<'a> {
    let mut cookie = Cookie::build((name, value))
        .http_only(true)
        .path("/")
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ))
        .same_site(match config.same_site {
            SameSite::Lax => CookieSameSite::Lax,
            SameSite::Strict => CookieSameSite::Strict,
            SameSite::None => CookieSameSite::None,
        })
        .secure(config.secure)
        .build();
    if let Some(domain) = &config.domain {
        cookie.set_domain(domain.clone());
    }
    cookie
}

fn append_cookie(response: &mut Response<Bytes>, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Sets both auth cookies.
pub fn set_auth_cookies(
    response: &mut Response<Bytes>,
    config: &CookieConfig,
    access_token: &str,
    refresh_token: &str,
) {
    append_cookie(
        response,
        &auth_cookie(config, ACCESS_COOKIE, access_token, config.access_max_age),
    );
    append_cookie(
        response,
        &auth_cookie(
            config,
            REFRESH_COOKIE,
            refresh_token,
            config.refresh_max_age,
        ),
    );
}

/// Expires both auth cookies.
pub fn clear_auth_cookies(response: &mut Response<Bytes>, config: &CookieConfig) {
    append_cookie(response, &auth_cookie(config, ACCESS_COOKIE, "", 0));
    append_cookie(response, &auth_cookie(config, REFRESH_COOKIE, "", 0));
}
