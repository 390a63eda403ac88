//! [`ApiError`]: every way a request can fail, each variant documenting its status.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use super::response::json;
use crate::auth::admission::Refusal;
use crate::service;
use crate::store::BoxError;

/// One bad field of a request, in the shape FastAPI clients know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where: `["body", "<field>"]`, `["query", "<name>"]` or `["body"]`.
    pub loc: Vec<String>,
    /// What is wrong, for humans.
    pub msg: String,
    /// What is wrong, for programs (`missing`, `string_too_short`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl FieldError {
    /// An error at `loc` (e.g. `["body", "email"]`).
    pub fn new(loc: &[&str], kind: &'static str, msg: impl Into<String>) -> Self {
        FieldError {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind,
        }
    }
}

/// Why a request failed. Bodies are always `{"detail": ...}`. New kinds of failure may be
/// added (`#[non_exhaustive]`): a `match` outside this crate needs a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is understood but cannot be done (`detail` says why).
    #[error("{0}")]
    BadRequest(&'static str),
    /// 401: missing, invalid or expired credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 with `X-Account-Banned: true`: the account is banned.
    #[error("User banned")]
    Banned,
    /// 403: the role does not allow it.
    #[error("Forbidden")]
    Forbidden,
    /// 403: an unsafe request carrying the auth cookies came from a page of another origin
    /// (see `DECISIONS.md`, cross-site requests).
    #[error("Cross-site request refused")]
    CrossSiteRequest,
    /// 404: no such thing (or not yours).
    #[error("{0}")]
    NotFound(&'static str),
    /// 408: the request's body did not arrive within `HTTP_BODY_TIMEOUT`.
    #[error("Request body not received in time")]
    RequestTimeout,
    /// 405: the path exists, the method does not.
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// 409: a unique value is taken.
    #[error("{0}")]
    Conflict(&'static str),
    /// 413: the body is over 64 KiB.
    #[error("Request body too large")]
    PayloadTooLarge,
    /// 415: an unsafe request's `Content-Type` is not JSON (see `DECISIONS.md`, cross-site
    /// requests).
    #[error("Unsupported Media Type")]
    UnsupportedMediaType,
    /// 422: bad fields, one entry each.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 429 with `Retry-After`: a mail budget is spent.
    #[error("Too many e-mails requested, try again later")]
    TooManyMails {
        /// When to try again.
        retry_after: Duration,
    },
    /// 429 with `Retry-After`.
    #[error("Too many failed attempts, try again later")]
    TooManyRequests {
        /// When to try again.
        retry_after: Duration,
    },
    /// Password hashing is saturated, with `Retry-After`: `429` when the client already has
    /// its share of hashes in flight, `503` when the queue is full.
    #[error(transparent)]
    Overloaded(Refusal),
    /// 429: the client IP has `SSE_MAX_STREAMS_PER_IP` event streams open already.
    #[error("Too many event streams from this address")]
    TooManyStreams,
    /// 503: the server has `SSE_MAX_STREAMS` event streams open already.
    #[error("Too many event streams open, try again later")]
    StreamsFull,
    /// 500: logged with its cause, answered without it.
    #[error("Internal server error")]
    Internal(#[source] BoxError),
    /// 502: Spotify does not answer (or answers nonsense).
    #[error("Spotify unavailable")]
    BadGateway,
    /// 503: the database does not answer.
    #[error("Service unavailable")]
    Unavailable,
}

#[derive(Serialize)]
struct Detail<'a, T: Serialize> {
    detail: &'a T,
}

impl ApiError {
    /// The status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Banned | ApiError::Forbidden | ApiError::CrossSiteRequest => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. }
            | ApiError::TooManyMails { .. }
            | ApiError::TooManyStreams
            | ApiError::Overloaded(Refusal::ClientBusy) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(Refusal::ServerBusy) | ApiError::StreamsFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BadGateway => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The response; a 500 is logged here with its cause.
    pub fn into_response(self) -> Response<Bytes> {
        let status = self.status();
        let mut response = match &self {
            ApiError::Validation(errors) => json(status, &Detail { detail: errors }),
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, source = ?cause.source(), "request failed");
                json(
                    status,
                    &Detail {
                        detail: &self.to_string(),
                    },
                )
            }
            _ => json(
                status,
                &Detail {
                    detail: &self.to_string(),
                },
            ),
        };
        let headers = response.headers_mut();
        match self {
            ApiError::Banned => {
                headers.insert("x-account-banned", HeaderValue::from_static("true"));
            }
            ApiError::TooManyRequests { retry_after } | ApiError::TooManyMails { retry_after } => {
                let seconds = retry_after.as_secs().max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            ApiError::Overloaded(refusal) => {
                let seconds = refusal.retry_after().as_secs().max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

impl From<service::Error> for ApiError {
    fn from(err: service::Error) -> Self {
        use service::Error as E;
        match err {
            E::NotFound(what) => ApiError::NotFound(what),
            E::Conflict(what) => ApiError::Conflict(what),
            E::Rejected(why) => ApiError::BadRequest(why),
            E::Unauthorized(why) => ApiError::Unauthorized(why),
            E::Banned => ApiError::Banned,
            E::Forbidden => ApiError::Forbidden,
            E::Throttled { retry_after } => ApiError::TooManyRequests { retry_after },
            E::MailThrottled { retry_after } => ApiError::TooManyMails { retry_after },
            E::Overloaded(refusal) => ApiError::Overloaded(refusal),
            E::Upstream => ApiError::BadGateway,
            E::Unavailable(cause) => {
                // The SQL stores log an outage once, when it starts and ends; one line per
                // request would flood the log for as long as it lasts.
                tracing::debug!(error = %cause, "database unavailable");
                ApiError::Unavailable
            }
            E::Internal(cause) => ApiError::Internal(cause),
        }
    }
}
