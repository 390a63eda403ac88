//! CORS for browsers, when `ENABLE_CORS=true`: allowed origins, credentials, preflight.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use super::response::json;
use crate::config::CorsConfig;

const ALLOWED_METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";

fn allowed_origin<'a>(config: &CorsConfig, origin: &'a HeaderValue) -> Option<&'a HeaderValue> {
    match &config.origins {
        None => Some(origin),
        Some(list) => {
            let origin_str = origin.to_str().ok()?;
            list.iter().any(|o| o == origin_str).then_some(origin)
        }
    }
}

/// Answers a preflight request (`OPTIONS` with `Origin` and `Access-Control-Request-Method`),
/// or `None` when the request is not one.
pub(crate) fn preflight(
    config: &CorsConfig,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response<Bytes>> {
    if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let Some(origin) = allowed_origin(config, origin) else {
        return Some(json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"detail": "Disallowed CORS origin"}),
        ));
    };
    let mut response = json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    let out = response.headers_mut();
    allow_origin(config, origin, out);
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    Some(response)
}

/// Adds the CORS headers of an allowed origin to an ordinary response.
pub(crate) fn decorate(
    config: &CorsConfig,
    request_headers: &HeaderMap,
    response: &mut Response<Bytes>,
) {
    if let Some(origin) = request_headers
        .get(header::ORIGIN)
        .and_then(|o| allowed_origin(config, o))
    {
        allow_origin(config, origin, response.headers_mut());
    }
}

fn allow_origin(config: &CorsConfig, origin: &HeaderValue, out: &mut HeaderMap) {
    match &config.origins {
        None => {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        Some(_) => {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            out.append(header::VARY, HeaderValue::from_static("Origin"));
            if config.allow_credentials {
                out.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }
}
