//! `GET /metrics`: the Prometheus text format, off unless `METRICS=true`.
//!
//! Never public by accident: with `METRICS_TOKEN` set it wants that bearer token; without it,
//! only a client connected directly over the loopback interface may read it (a request that
//! came through a proxy, which carries `X-Forwarded-For` or `Forwarded`, is refused even then,
//! since the proxy's own connection is local).

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use subtle::ConstantTimeEq;

use super::{ApiError, Ctx, Reply, bearer_token};

/// The content type of the OpenMetrics text `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn metrics(cx: &Ctx<'_>) -> Reply {
    let Some(metrics) = cx.app.metrics() else {
        return Err(ApiError::NotFound("Not Found"));
    };
    match &cx.app.config().metrics_token {
        Some(expected) => {
            let presented = bearer_token(&cx.headers).unwrap_or_default();
            let matches: bool = presented
                .as_bytes()
                .ct_eq(expected.expose().as_bytes())
                .into();
            if !matches {
                return Err(ApiError::Unauthorized("Invalid token"));
            }
        }
        None => {
            let proxied = cx.headers.contains_key("x-forwarded-for")
                || cx.headers.contains_key(header::FORWARDED);
            let local = cx.peer.is_some_and(|peer| peer.ip().is_loopback());
            if proxied || !local {
                return Err(ApiError::Forbidden);
            }
        }
    }
    let mut response = Response::new(Bytes::from(metrics.render()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    Ok(response)
}
