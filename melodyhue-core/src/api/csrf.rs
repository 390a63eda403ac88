//! Cross-site request forgery: what a foreign page can make a signed-in browser send.
//!
//! A browser attaches the auth cookies to requests that other sites' pages make (with
//! `COOKIE_SAMESITE=none`, to all of them), and some such requests need no CORS preflight: form
//! posts and `fetch` with a `text/plain` body or no `Content-Type`. Two rules close that door
//! for every request with an unsafe method (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`) that
//! is not authenticated by `Authorization: Bearer` (a bearer token is never sent by a browser on
//! its own, so those requests are left alone):
//!
//! - **Origin.** When it carries an auth cookie, its `Origin` (else the origin of its `Referer`)
//!   must be an allowed origin: one of `CORS_ALLOW_ORIGINS` (not `*`, which never allows
//!   credentials), the origin of `FRONTEND_URL`, or the server's own (the `Host` it was sent
//!   to, any scheme, since TLS usually ends at a proxy). Otherwise `403`. A request with
//!   neither header is not from a browser page (or from one so old it sends no `Origin` on any
//!   request), so it passes: the web frontend's server-side proxy forwards requests that way.
//! - **Content type.** A `Content-Type` other than JSON (`application/json`,
//!   `application/*+json`) is refused with `415`, cookie or not, body or not: every form
//!   encoding and `text/plain` are exactly what a foreign page can send without preflight, and
//!   this also stops signing a victim into the attacker's account. A missing `Content-Type` is
//!   read as JSON, as FastAPI did (FastAPI read other types as no JSON at all: `422`). The one
//!   route meant for a plain HTML form (`POST /auth/email/revert`, the button of the page an
//!   e-mail links to) also takes `application/x-www-form-urlencoded`; it uses no cookie and
//!   acts only on the token in its body.
//!
//! WebSocket upgrades (`/ws`) carry `Origin` always; an access cookie counts there only when the
//! origin is allowed (see [`super::ws::upgrade_token`]).

use http::{HeaderMap, HeaderValue, Method, header};
use url::Url;

use super::{ACCESS_COOKIE, ApiError, Ctx, REFRESH_COOKIE, bearer_token, cookie_value};
use crate::config::Config;

/// The request bodies a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bodies {
    /// JSON only (every route but one).
    Json,
    /// JSON, or an HTML form's `application/x-www-form-urlencoded`.
    JsonOrForm,
}

/// Refuses an unsafe request that a foreign page could have made a browser send (see the
/// module docs); every routed request passes here before its handler.
pub(crate) fn check(cx: &Ctx<'_>, bodies: Bodies) -> Result<(), ApiError> {
    if is_safe(&cx.method) || bearer_token(&cx.headers).is_some() {
        return Ok(());
    }
    let cookie = [ACCESS_COOKIE, REFRESH_COOKIE]
        .iter()
        .any(|name| cookie_value(&cx.headers, name).is_some());
    if cookie && !origin_allowed(cx.app.config(), &cx.headers) {
        return Err(ApiError::CrossSiteRequest);
    }
    let accepted = |content_type: &HeaderValue| {
        is_json(content_type) || (bodies == Bodies::JsonOrForm && is_form(content_type))
    };
    match cx.headers.get(header::CONTENT_TYPE) {
        Some(content_type) if !accepted(content_type) => Err(ApiError::UnsupportedMediaType),
        _ => Ok(()),
    }
}

/// Methods that change nothing (RFC 9110, section 9.2.1).
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// `application/json` or `application/<anything>+json`, parameters ignored (FastAPI's test).
fn is_json(content_type: &HeaderValue) -> bool {
    let Ok(value) = content_type.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

/// `application/x-www-form-urlencoded`, parameters ignored.
pub(crate) fn is_form(content_type: &HeaderValue) -> bool {
    content_type.to_str().is_ok_and(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// Whether a request's page (its `Origin`, else its `Referer`) may use the auth cookies: an
/// explicit CORS origin, `FRONTEND_URL`'s, or the server's own. `true` without either header.
pub(crate) fn origin_allowed(config: &Config, headers: &HeaderMap) -> bool {
    let page = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(origin), _) => origin,
        (None, Some(referer)) => referer,
        (None, None) => return true,
    };
    let Some(page) = page.to_str().ok().and_then(|v| Url::parse(v).ok()) else {
        return false;
    };
    let origin = page.origin();
    if !origin.is_tuple() {
        // `Origin: null`: a sandboxed or privacy-sensitive context, never an allowed page.
        return false;
    }
    let same = |allowed: &str| Url::parse(allowed).is_ok_and(|url| url.origin() == origin);
    let listed = config
        .cors
        .as_ref()
        .and_then(|cors| cors.origins.as_ref())
        .is_some_and(|origins| origins.iter().any(|o| same(o)));
    listed || same(&config.frontend_url) || is_own_host(&page, headers)
}

/// Whether `page` is on the host (and port) the request was sent to, whatever the scheme.
fn is_own_host(page: &Url, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // `Host` as a URL authority: its port, if it has one, else the page scheme's default.
    let Ok(sent_to) = Url::parse(&format!("{}://{host}", page.scheme())) else {
        return false;
    };
    sent_to.host() == page.host() && sent_to.port_or_known_default() == page.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_vars(vars.iter().copied()).unwrap()
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&HeaderValue::from_static(yes)), "{yes}");
        }
        for no in [
            "text/plain",
            "text/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json(&HeaderValue::from_static(no)), "{no}");
        }
    }

    #[test]
    fn allowed_origins() {
        let config = config(&[
            ("ENABLE_CORS", "true"),
            ("CORS_ALLOW_ORIGINS", "https://app.example"),
            ("FRONTEND_URL", "https://melodyhue.example/"),
        ]);
        let host = (header::HOST, "api.example:8765");
        for allowed in [
            "https://app.example",
            "https://melodyhue.example",
            "http://api.example:8765",
            "https://app.example:443",
        ] {
            let h = headers(&[host.clone(), (header::ORIGIN, allowed)]);
            assert!(origin_allowed(&config, &h), "{allowed}");
        }
        for refused in [
            "https://evil.example",
            "null",
            "https://app.example.evil.example",
            "http://app.example",
            "https://api.example",
        ] {
            let h = headers(&[host.clone(), (header::ORIGIN, refused)]);
            assert!(!origin_allowed(&config, &h), "{refused}");
        }
        let referer = headers(&[(header::REFERER, "https://evil.example/page?x=1")]);
        assert!(!origin_allowed(&config, &referer));
        let referer = headers(&[(header::REFERER, "https://app.example/settings")]);
        assert!(origin_allowed(&config, &referer));
        assert!(origin_allowed(&config, &HeaderMap::new()));
    }

    #[test]
    fn any_origin_never_allows_cookies() {
        let config = config(&[("ENABLE_CORS", "true"), ("CORS_ALLOW_ORIGINS", "*")]);
        let h = headers(&[(header::ORIGIN, "https://evil.example")]);
        assert!(!origin_allowed(&config, &h));
    }
}
